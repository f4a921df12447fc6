//! The normalizers and pre-tokenizers of `tokenizer.json` files converted from SentencePiece
//! models: `Precompiled` (the model's character map), `Replace`, `Prepend` and `Strip`
//! normalizers, and the `WhitespaceSplit` and `Metaspace` pre-tokenizers (spaces become `▁`,
//! one is prepended, words optionally split before each `▁`), with Hugging Face's alignments:
//! an inserted character belongs to the original character it was inserted after (or, for
//! `Prepend`, before), a replacement to the last character it replaces.

use fancy_regex::Regex;
use unicode_segmentation::UnicodeSegmentation;

use crate::bert::WordBuf;
use crate::spm::CharsMap;

/// When the `Metaspace` pre-tokenizer prepends its replacement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrependScheme {
    /// To every section (text between added tokens) that does not start with it.
    Always,
    /// Only to the section (or word) at the start of the text.
    First,
    Never,
}

/// What a `Replace` normalizer looks for.
#[derive(Clone, Debug)]
pub enum Pattern {
    Literal(String),
    Regex(Regex),
}

/// One normalizer step.
#[derive(Clone, Debug)]
pub enum Step {
    /// Prepends the string to a non-empty section.
    Prepend(String),
    /// Replaces each match of the pattern with a string.
    Replace(Pattern, String),
    /// Removes whitespace at the start and/or end.
    Strip { left: bool, right: bool },
    /// The SentencePiece character map, applied as Hugging Face's `Precompiled` does.
    Precompiled(Box<CharsMap>),
}

/// The `Metaspace` pre-tokenizer.
#[derive(Clone, Copy, Debug)]
pub struct Metaspace {
    pub replacement: char,
    pub prepend: PrependScheme,
    pub split: bool,
}

/// The normalizer steps, then the pre-tokenizers: an optional `WhitespaceSplit` and an
/// optional `Metaspace`, applied to each section.
#[derive(Clone, Debug)]
pub struct MetaspaceSplitter {
    steps: Vec<Step>,
    whitespace_split: bool,
    pre: Option<Metaspace>,
}

impl MetaspaceSplitter {
    pub fn new(steps: Vec<Step>, whitespace_split: bool, pre: Option<Metaspace>) -> Self {
        MetaspaceSplitter {
            steps,
            whitespace_split,
            pre,
        }
    }

    /// Calls `on_word` with each word of `text` (a section whose first character is original
    /// character `char_base`), its bytes aligned to original characters; returns the number of
    /// characters of `text`.
    pub fn split<E: From<crate::Error>>(
        &self,
        text: &str,
        char_base: u32,
        buf: &mut WordBuf,
        on_word: &mut dyn FnMut(&WordBuf) -> Result<(), E>,
    ) -> Result<u32, E> {
        buf.word.clear();
        buf.word.push_str(text);
        buf.align.clear();
        buf.align.reserve(text.len());
        // each byte gets the index of the character it belongs to
        let mut ci = char_base.wrapping_sub(1);
        buf.align.extend(text.bytes().map(|b| {
            ci = ci.wrapping_add(u32::from(!is_continuation(b)));
            ci
        }));
        let chars = ci.wrapping_sub(char_base).wrapping_add(1);
        for step in &self.steps {
            match step {
                Step::Prepend(s) => prepend(buf, s),
                Step::Replace(Pattern::Literal(from), to) if from.len() == 1 => {
                    replace_byte(buf, from.as_bytes()[0], to)
                }
                Step::Replace(Pattern::Literal(from), to) => {
                    let matches: Vec<_> = buf
                        .word
                        .match_indices(from.as_str())
                        .map(|(p, m)| (p, p + m.len()))
                        .collect();
                    replace(buf, &matches, to);
                }
                Step::Replace(Pattern::Regex(re), to) => {
                    let mut matches = Vec::new();
                    for m in re.find_iter(&buf.word) {
                        // the engine gave up (backtrack limit): an error, not a text half
                        // replaced
                        let m = m.map_err(|e| {
                            let after = matches.last().map_or(0, |&(_, end)| end);
                            E::from(crate::Error::Invalid {
                                origin: format!("normalizer Replace {:?}", re.as_str()),
                                msg: format!("{e} (after byte {after} of a word)"),
                            })
                        })?;
                        matches.push((m.start(), m.end()));
                    }
                    replace(buf, &matches, to);
                }
                Step::Strip { left, right } => strip(buf, *left, *right),
                Step::Precompiled(map) => precompiled(buf, map),
            }
        }
        // after WhitespaceSplit no word holds a space left for Metaspace to replace
        if let Some(m) = self.pre.as_ref().filter(|_| !self.whitespace_split) {
            let mut rep = [0u8; 4];
            replace_byte(buf, b' ', m.replacement.encode_utf8(&mut rep));
        }
        let whole = std::mem::take(buf);
        let mut res = Ok(());
        if self.whitespace_split {
            let mut start = None;
            let bytes = whole.word.as_bytes();
            let mut i = 0;
            while i <= bytes.len() {
                let (white, len) = match bytes.get(i) {
                    None => (true, 1),
                    Some(&b) if b < 0x80 => (matches!(b, b'\t'..=b'\r' | b' '), 1),
                    Some(_) => {
                        let c = whole.word[i..].chars().next().unwrap_or(' ');
                        (c.is_whitespace(), c.len_utf8())
                    }
                };
                let at = i;
                i += len;
                let i = at;
                match (start, white) {
                    (None, false) => start = Some(i),
                    (Some(s), true) => {
                        start = None;
                        // HF's "first": the word starts at the start of the whole text
                        let at_start = whole.align[s] == 0;
                        res = self.emit(
                            &whole.word[s..i],
                            &whole.align[s..i],
                            at_start,
                            buf,
                            on_word,
                        );
                        if res.is_err() {
                            break;
                        }
                    }
                    _ => {}
                }
            }
        } else if !whole.word.is_empty() {
            res = self.emit(&whole.word, &whole.align, char_base == 0, buf, on_word);
        }
        *buf = whole;
        res.map(|()| chars)
    }

    /// The `Metaspace` step on one pre-tokenized word: prepends the replacement if the scheme
    /// says so, and cuts before each replacement if `split` (HF's `MergedWithNext`).
    fn emit<E>(
        &self,
        word: &str,
        align: &[u32],
        at_start: bool,
        buf: &mut WordBuf,
        on_word: &mut dyn FnMut(&WordBuf) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut part = |prefix: &str, range: std::ops::Range<usize>| {
            buf.word.clear();
            buf.align.clear();
            buf.word.push_str(prefix);
            buf.align
                .extend(std::iter::repeat_n(align[range.start], prefix.len()));
            buf.word.push_str(&word[range.clone()]);
            buf.align.extend_from_slice(&align[range]);
            on_word(buf)
        };
        let Some(m) = &self.pre else {
            return part("", 0..word.len());
        };
        let mut rep = [0u8; 4];
        let rep: &str = m.replacement.encode_utf8(&mut rep);
        let prepend = !word.starts_with(m.replacement)
            && match m.prepend {
                PrependScheme::Always => true,
                PrependScheme::First => at_start,
                PrependScheme::Never => false,
            };
        let prefix = if prepend { rep } else { "" };
        if !m.split {
            return part(prefix, 0..word.len());
        }
        let mut start = 0;
        let cuts = word
            .match_indices(m.replacement)
            .map(|(p, _)| p)
            .chain([word.len()]);
        for p in cuts {
            if p > start {
                part(if start == 0 { prefix } else { "" }, start..p)?;
            }
            start = p;
        }
        Ok(())
    }
}

/// Whether `b` continues a UTF-8 character (no character starts at it).
#[inline]
pub(crate) fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// HF's `NormalizedString::prepend`: nothing on an empty string; otherwise the new characters
/// share the first character's alignment.
fn prepend(buf: &mut WordBuf, s: &str) {
    let Some(&first) = buf.align.first() else {
        return;
    };
    buf.word.insert_str(0, s);
    buf.align.splice(0..0, std::iter::repeat_n(first, s.len()));
}

/// HF's `NormalizedString::replace`: each match (byte range, in order, disjoint) becomes
/// `to`, whose characters all take the alignment of the match's last byte.
fn replace(buf: &mut WordBuf, matches: &[(usize, usize)], to: &str) {
    if matches.is_empty() || buf.word.is_empty() {
        return; // (HF inserts nothing into empty text either)
    }
    let old = std::mem::take(buf);
    let mut last = 0;
    for &(s, e) in matches {
        buf.word.push_str(&old.word[last..s]);
        buf.align.extend_from_slice(&old.align[last..s]);
        buf.word.push_str(to);
        // An empty match (a regex such as `(?=a)`) inserts `to`, aligned as HF aligns an
        // insertion: to the character before it; at the start to the one after (where HF
        // gives the empty span (0, 0), which a per-byte character index cannot say).
        let at = if e > s { e - 1 } else { s.saturating_sub(1) };
        let align = old.align.get(at).copied().unwrap_or_default();
        buf.align.extend(std::iter::repeat_n(align, to.len()));
        last = e;
    }
    buf.word.push_str(&old.word[last..]);
    buf.align.extend_from_slice(&old.align[last..]);
}

/// [`replace`] of each occurrence of the one-byte string `from` (ASCII: a character of its
/// own): in one pass with no branch per byte when `to` has at most 4 bytes. Words of a few
/// letters hold a space every few bytes, and a branch or a copy per match costs more than
/// the bytes between.
fn replace_byte(buf: &mut WordBuf, from: u8, to: &str) {
    assert!(from.is_ascii(), "a one-byte string is ASCII");
    let hits = memchr::memchr_iter(from, buf.word.as_bytes()).count();
    if hits == 0 {
        return;
    }
    if to.len() > 4 {
        let matches: Vec<_> = memchr::memchr_iter(from, buf.word.as_bytes())
            .map(|p| (p, p + 1))
            .collect();
        return replace(buf, &matches, to);
    }
    let mut to_word = [0u8; 4];
    to_word[..to.len()].copy_from_slice(to.as_bytes());
    let to_word = u32::from_le_bytes(to_word);
    // 4 bytes of slack: each byte writes 4 and keeps 1 (or `to.len()`)
    let len = buf.word.len() + hits * to.len() - hits;
    let (mut word, mut align) = (vec![0u8; len + 4], vec![0u32; len + 4]);
    let mut j = 0;
    for (&b, &a) in buf.word.as_bytes().iter().zip(&buf.align) {
        let hit = b == from;
        let w = if hit { to_word } else { b as u32 };
        word[j..j + 4].copy_from_slice(&w.to_le_bytes());
        align[j..j + 4].copy_from_slice(&[a; 4]);
        j += if hit { to.len() } else { 1 };
    }
    word.truncate(len);
    align.truncate(len);
    // SAFETY: `buf.word` was a `str` and `from`, ASCII, a whole character of it: the bytes
    // are its characters in order, some of them replaced by all of the `str` `to`. (Checking
    // would cost a tenth of the whole encoding.)
    buf.word = unsafe { String::from_utf8_unchecked(word) };
    buf.align = align;
}

/// HF's `lstrip` / `rstrip`: whitespace (`char::is_whitespace`) goes.
fn strip(buf: &mut WordBuf, left: bool, right: bool) {
    if right {
        let end = buf.word.trim_end().len();
        buf.word.truncate(end);
        buf.align.truncate(end);
    }
    if left {
        let start = buf.word.len() - buf.word.trim_start().len();
        buf.word.drain(..start);
        buf.align.drain(..start);
    }
}

/// One piece of HF's transformation list (`NormalizedString::transform`), with runs of kept
/// characters as one copy.
enum Op {
    /// The original bytes `start..end` kept: one entry `(c, 0)` per character.
    Copy(usize, usize),
    /// One output character and its change: 0 replaces the next original character, 1
    /// inserts after the previous one, -n replaces one and removes the n after it.
    Char(char, isize),
    /// The entry before also removes this many more original characters.
    Skip(usize),
}

/// HF's `Precompiled` normalizer. Unlike sentencepiece's longest match, it looks up each
/// grapheme cluster of fewer than 6 bytes whole, taking the SHORTEST rule it starts with
/// (so a rule for its first character rewrites the whole cluster), and otherwise each of its
/// characters alone.
fn precompiled(buf: &mut WordBuf, map: &CharsMap) {
    let mut ops: Vec<Op> = Vec::new();
    let mut modified = false;
    let copy = |ops: &mut Vec<Op>, start: usize, end: usize| match ops.last_mut() {
        Some(Op::Copy(_, e)) if *e == start => *e = end,
        _ => ops.push(Op::Copy(start, end)),
    };
    let mut rewrite = |ops: &mut Vec<Op>, old: &str, new: &[u8]| {
        modified = true;
        // the map's replacements are UTF-8 (the .model's strings); a corrupt one is dropped
        let new = std::str::from_utf8(new).unwrap_or("");
        let count = new.chars().count() as isize;
        let diff = count - old.chars().count() as isize;
        // HF: the last `diff` new characters are insertions; a shrink lowers the change of
        // the last entry, even one before this cluster (and nothing when there is none)
        let inserted = diff.max(0);
        ops.extend(
            new.chars()
                .enumerate()
                .map(|(k, c)| Op::Char(c, isize::from(k as isize >= count - inserted))),
        );
        if diff < 0 {
            match ops.last_mut() {
                None => {}
                Some(Op::Char(_, change)) => *change += diff,
                Some(_) => ops.push(Op::Skip(-diff as usize)),
            }
        }
    };
    let text = buf.word.as_str();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Between two ASCII characters there is always a grapheme boundary (except inside
        // CR LF), so an ASCII byte followed by one is a cluster of its own.
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        if b < 0x80 && next.is_none_or(|n| n < 0x80) && !(b == b'\r' && next == Some(b'\n')) {
            match map.ascii_rule(b) {
                Some(new) => rewrite(&mut ops, &text[i..i + 1], new),
                None => copy(&mut ops, i, i + 1),
            }
            i += 1;
            continue;
        }
        // up to the next boundary between two ASCII bytes: the same clusters as in the
        // whole text
        let mut end = i + 1;
        while end < bytes.len()
            && !(bytes[end - 1] < 0x80
                && bytes[end] < 0x80
                && !(bytes[end - 1] == b'\r' && bytes[end] == b'\n'))
        {
            end += 1;
        }
        for (gi, g) in text[i..end].grapheme_indices(true) {
            if g.len() < 6 {
                if let Some(new) = map.shortest(g.as_bytes()) {
                    rewrite(&mut ops, g, new);
                    continue;
                }
            }
            for (j, c) in g.char_indices() {
                let part = &g[j..j + c.len_utf8()];
                match map.shortest(part.as_bytes()) {
                    Some(new) => rewrite(&mut ops, part, new),
                    None => {
                        let at = i + gi + j;
                        copy(&mut ops, at, at + part.len())
                    }
                }
            }
        }
        i = end;
    }
    if modified {
        transform(buf, &ops);
    }
}

/// HF's `NormalizedString::transform` of the whole buffer. The original characters are
/// consumed in order; a copied run whose start is where consumption stands (always, except
/// after a removal at the very start) is copied with its alignments at once.
fn transform(buf: &mut WordBuf, ops: &[Op]) {
    let old = std::mem::take(buf);
    let last = old.align.len().saturating_sub(1);
    // byte offset of the next original character to consume
    let mut at: usize = 0;
    let consume = |at: &mut usize| {
        *at += old.word[(*at).min(old.word.len())..]
            .chars()
            .next()
            .map_or(0, char::len_utf8);
    };
    let push = |buf: &mut WordBuf, c: char, align: u32| {
        buf.word.push(c);
        buf.align.extend(std::iter::repeat_n(align, c.len_utf8()));
    };
    for op in ops {
        match *op {
            Op::Copy(s, e) if s == at => {
                buf.word.push_str(&old.word[s..e]);
                buf.align.extend_from_slice(&old.align[s..e]);
                at = e;
            }
            Op::Copy(s, e) => {
                for c in old.word[s..e].chars() {
                    let a = old.align[at.min(last)];
                    consume(&mut at);
                    push(buf, c, a);
                }
            }
            Op::Skip(n) => {
                for _ in 0..n {
                    consume(&mut at);
                }
            }
            Op::Char(c, change) if change > 0 => {
                // inserted: shares the alignment of the byte before
                push(buf, c, old.align[at.max(1).min(last + 1) - 1]);
            }
            Op::Char(c, change) => {
                let a = old.align[at.min(last)];
                for _ in 0..=(-change) {
                    consume(&mut at);
                }
                push(buf, c, a);
            }
        }
    }
}
