//! BERT's normalizer and pre-tokenizer, fused into one streaming pass that cuts the original
//! text into words, each word carrying, per byte, the index of the ORIGINAL character it came
//! from (so token offsets are character offsets into the caller's text).
//!
//! Semantics are Hugging Face tokenizers' `BertNormalizer` then `BertPreTokenizer`:
//!
//! 1. clean_text: drop U+0000, U+FFFD and "control" characters (Cc, Cf, Co as the
//!    `unicode_categories` crate tabulates them, but not `\t \n \r`); map whitespace to ' '.
//! 2. handle_chinese_chars: put spaces around CJK ideographs.
//! 3. strip_accents (defaults to `lowercase`): NFD (with canonical reordering of combining
//!    marks), then drop nonspacing marks (Mn).
//! 4. lowercase: `char::to_lowercase` (one char may become several).
//! 5. split on whitespace (removed) and on punctuation (ASCII punctuation or Unicode P*),
//!    each punctuation character its own word.
//!
//! Every normalized character maps to exactly the original character it came from. The
//! category tables are those of the `unicode_categories` crate, the one HF uses, so the same
//! characters count as control or punctuation.
//!
//! Complexity: O(n) in the text, no allocation per word (the word buffer is reused).

use std::sync::OnceLock;

use unicode_categories::UnicodeCategories;
use unicode_normalization::char::{canonical_combining_class, decompose_canonical};

/// The options of `BertNormalizer` (`strip_accents` already resolved from `lowercase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BertNormalizer {
    pub clean_text: bool,
    pub handle_chinese_chars: bool,
    pub strip_accents: bool,
    pub lowercase: bool,
}

impl Default for BertNormalizer {
    fn default() -> Self {
        BertNormalizer {
            clean_text: true,
            handle_chinese_chars: true,
            strip_accents: true,
            lowercase: true,
        }
    }
}

impl BertNormalizer {
    /// HF's constructor: `strip_accents = None` follows `lowercase`.
    pub fn new(
        clean_text: bool,
        handle_chinese_chars: bool,
        strip_accents: Option<bool>,
        lowercase: bool,
    ) -> Self {
        BertNormalizer {
            clean_text,
            handle_chinese_chars,
            strip_accents: strip_accents.unwrap_or(lowercase),
            lowercase,
        }
    }

    /// A normalizer that changes nothing (tokenizer.json with `"normalizer": null`).
    pub fn identity() -> Self {
        BertNormalizer {
            clean_text: false,
            handle_chinese_chars: false,
            strip_accents: false,
            lowercase: false,
        }
    }
}

fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && c.is_other()
}

/// CJK ideographs as HF's BertNormalizer defines them (note the gap at U+2B820..U+2B91F).
fn is_chinese_char(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B920..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

fn is_bert_punct(c: char) -> bool {
    c.is_ascii_punctuation() || c.is_punctuation()
}

/// Dropped by clean_text: U+0000, U+FFFD and control characters.
const DROP: u8 = 1;
/// `char::is_whitespace`.
const WS: u8 = 2;
/// BERT punctuation.
const PUNCT: u8 = 4;
/// A nonspacing mark (Mn).
const MN: u8 = 8;
/// A CJK ideograph (handle_chinese_chars).
const CJK: u8 = 16;
/// NFD leaves it alone and its combining class is 0.
const NFD_SAME: u8 = 32;
/// `to_lowercase` leaves it alone.
const LOWER_SAME: u8 = 64;

fn compute_props(c: char) -> u8 {
    let mut p = 0;
    if c == '\0' || c == '\u{fffd}' || is_control(c) {
        p |= DROP;
    }
    if c.is_whitespace() {
        p |= WS;
    }
    if is_bert_punct(c) {
        p |= PUNCT;
    }
    if c.is_mark_nonspacing() {
        p |= MN;
    }
    if is_chinese_char(c) {
        p |= CJK;
    }
    let mut n = 0;
    let mut same = true;
    decompose_canonical(c, |d| {
        n += 1;
        same &= d == c;
    });
    if n == 1 && same && canonical_combining_class(c) == 0 {
        p |= NFD_SAME;
    }
    if c.to_lowercase().eq(std::iter::once(c)) {
        p |= LOWER_SAME;
    }
    p
}

/// The properties above, from a table for the Basic Multilingual Plane (filled a block of
/// 256 characters at a time, on first use) and computed for the other planes.
#[inline]
fn props(c: char) -> u8 {
    static BLOCKS: [OnceLock<Box<[u8; 256]>>; 256] = [const { OnceLock::new() }; 256];
    let u = c as u32;
    if u >= 0x10000 {
        return compute_props(c);
    }
    let block = BLOCKS[(u >> 8) as usize].get_or_init(|| {
        let mut t = Box::new([0u8; 256]);
        for (i, slot) in t.iter_mut().enumerate() {
            if let Some(ch) = char::from_u32((u & !0xFF) | i as u32) {
                *slot = compute_props(ch);
            }
        }
        t
    });
    block[(u & 0xFF) as usize]
}

/// What an ASCII byte becomes: dropped, a word boundary, a punctuation word, or a letter.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ascii {
    Drop,
    Space,
    Punct(u8),
    Keep(u8),
}

/// The streaming normalizer + pre-tokenizer. `words` calls back with each word: its
/// normalized text and, per byte, the index of the original character (relative to the
/// `char_base` given).
pub struct BertSplitter {
    norm: BertNormalizer,
    ascii: [Ascii; 128],
}

/// Reusable buffers for one pass.
#[derive(Default)]
pub struct WordBuf {
    /// The normalized text of the current word.
    pub word: String,
    /// Per byte of `word`: the index of the original character it came from.
    pub align: Vec<u32>,
    /// Combining marks (ccc != 0) waiting for canonical reordering: (char, original index).
    pending: Vec<(char, u32, u8)>,
}

impl BertSplitter {
    pub fn new(norm: BertNormalizer) -> Self {
        let mut ascii = [Ascii::Drop; 128];
        for (b, slot) in ascii.iter_mut().enumerate() {
            let c = b as u8 as char;
            let c = if norm.lowercase {
                c.to_ascii_lowercase()
            } else {
                c
            };
            *slot = if (b == 0 || is_control(c)) && norm.clean_text {
                Ascii::Drop
            } else if c.is_whitespace() {
                Ascii::Space
            } else if is_bert_punct(c) {
                Ascii::Punct(c as u8)
            } else {
                Ascii::Keep(c as u8)
            };
        }
        BertSplitter { norm, ascii }
    }

    pub fn normalizer(&self) -> BertNormalizer {
        self.norm
    }

    /// Cuts `text` into words. `on_word(buf)` sees `buf.word` / `buf.align` (never empty) and
    /// must leave them as they are (they are cleared here). Original character indices start
    /// at `char_base`. Returns the number of characters of `text`.
    pub fn split<E>(
        &self,
        text: &str,
        char_base: u32,
        buf: &mut WordBuf,
        on_word: &mut dyn FnMut(&WordBuf) -> Result<(), E>,
    ) -> Result<u32, E> {
        buf.word.clear();
        buf.align.clear();
        buf.pending.clear();
        let bytes = text.as_bytes();
        let mut i = 0;
        let mut ci = char_base;
        while i < bytes.len() {
            let b = bytes[i];
            if b < 0x80 && buf.pending.is_empty() {
                match self.ascii[b as usize] {
                    Ascii::Drop => {}
                    Ascii::Space => flush(buf, on_word)?,
                    Ascii::Punct(p) => {
                        flush(buf, on_word)?;
                        buf.word.push(p as char);
                        buf.align.push(ci);
                        flush(buf, on_word)?;
                    }
                    Ascii::Keep(_) => {
                        // A run of ASCII word characters in one go: letters and digits 16
                        // bytes at a time, then any other kept byte (controls, when
                        // clean_text is off).
                        let alnum = crate::pretok::ascii_alnum_run(&bytes[i..]);
                        let run = alnum
                            + bytes[i + alnum..]
                                .iter()
                                .position(|&c| {
                                    c >= 0x80 || !matches!(self.ascii[c as usize], Ascii::Keep(_))
                                })
                                .unwrap_or(bytes.len() - i - alnum);
                        let start = buf.word.len();
                        if run == alnum && run <= 16 && i + 16 <= bytes.len() {
                            push_alnum16(
                                &mut buf.word,
                                &bytes[i..i + 16],
                                run,
                                self.norm.lowercase,
                            );
                        } else {
                            // ASCII, so `i..i + run` are character boundaries
                            buf.word.push_str(&text[i..i + run]);
                            if self.norm.lowercase {
                                buf.word[start..].make_ascii_lowercase();
                            }
                        }
                        buf.align.extend(ci..ci + run as u32);
                        i += run;
                        ci += run as u32;
                        continue;
                    }
                }
                i += 1;
            } else {
                let c = text[i..].chars().next().unwrap_or('\u{fffd}');
                i += c.len_utf8();
                self.clean(c, ci, buf, on_word)?;
            }
            ci += 1;
        }
        self.flush_pending(buf, on_word)?;
        flush(buf, on_word)?;
        Ok(ci - char_base)
    }

    fn clean<E>(
        &self,
        c: char,
        ci: u32,
        buf: &mut WordBuf,
        on_word: &mut dyn FnMut(&WordBuf) -> Result<(), E>,
    ) -> Result<(), E> {
        let p = props(c);
        let c = if self.norm.clean_text {
            if p & DROP != 0 {
                return Ok(());
            }
            if p & WS != 0 {
                ' '
            } else {
                c
            }
        } else {
            c
        };
        if self.norm.handle_chinese_chars && p & CJK != 0 {
            self.decompose(' ', ci, buf, on_word)?;
            self.decompose(c, ci, buf, on_word)?;
            self.decompose(' ', ci, buf, on_word)
        } else {
            self.decompose(c, ci, buf, on_word)
        }
    }

    /// NFD with canonical reordering, then dropping Mn (when stripping accents).
    fn decompose<E>(
        &self,
        c: char,
        ci: u32,
        buf: &mut WordBuf,
        on_word: &mut dyn FnMut(&WordBuf) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.norm.strip_accents {
            return self.lower(c, ci, buf, on_word);
        }
        if props(c) & NFD_SAME != 0 {
            self.flush_pending(buf, on_word)?;
            return self.unmark(c, ci, buf, on_word);
        }
        let mut result = Ok(());
        decompose_canonical(c, |d| {
            if result.is_err() {
                return;
            }
            let ccc = canonical_combining_class(d);
            if ccc == 0 {
                result = self
                    .flush_pending(buf, on_word)
                    .and_then(|()| self.unmark(d, ci, buf, on_word));
            } else {
                // stable insertion by combining class
                let at = buf
                    .pending
                    .iter()
                    .rposition(|&(_, _, k)| k <= ccc)
                    .map_or(0, |p| p + 1);
                buf.pending.insert(at, (d, ci, ccc));
            }
        });
        result
    }

    fn flush_pending<E>(
        &self,
        buf: &mut WordBuf,
        on_word: &mut dyn FnMut(&WordBuf) -> Result<(), E>,
    ) -> Result<(), E> {
        if buf.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut buf.pending);
        for &(d, ci, _) in &pending {
            self.unmark(d, ci, buf, on_word)?;
        }
        buf.pending = pending;
        buf.pending.clear();
        Ok(())
    }

    fn unmark<E>(
        &self,
        c: char,
        ci: u32,
        buf: &mut WordBuf,
        on_word: &mut dyn FnMut(&WordBuf) -> Result<(), E>,
    ) -> Result<(), E> {
        if props(c) & MN != 0 {
            return Ok(());
        }
        self.lower(c, ci, buf, on_word)
    }

    fn lower<E>(
        &self,
        c: char,
        ci: u32,
        buf: &mut WordBuf,
        on_word: &mut dyn FnMut(&WordBuf) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.norm.lowercase && props(c) & LOWER_SAME == 0 {
            for l in c.to_lowercase() {
                classify(l, ci, buf, on_word)?;
            }
            Ok(())
        } else {
            classify(c, ci, buf, on_word)
        }
    }
}

fn classify<E>(
    c: char,
    ci: u32,
    buf: &mut WordBuf,
    on_word: &mut dyn FnMut(&WordBuf) -> Result<(), E>,
) -> Result<(), E> {
    let p = props(c);
    if p & WS != 0 {
        flush(buf, on_word)
    } else if p & PUNCT != 0 {
        flush(buf, on_word)?;
        push(buf, c, ci);
        flush(buf, on_word)
    } else {
        push(buf, c, ci);
        Ok(())
    }
}

fn push(buf: &mut WordBuf, c: char, ci: u32) {
    buf.word.push(c);
    for _ in 0..c.len_utf8() {
        buf.align.push(ci);
    }
}

/// Appends the first `run` bytes of `chunk`, ASCII letters and digits, lowercased when asked,
/// with one 16-byte store instead of a call to `memcpy` for a few bytes.
#[inline(always)]
fn push_alnum16(word: &mut String, chunk: &[u8], run: usize, lowercase: bool) {
    let mut v = u128::from_le_bytes(chunk.try_into().unwrap());
    if lowercase {
        // for letters and digits, setting bit 5 is ASCII lowercasing (digits have it already)
        v |= u128::from_le_bytes([0x20; 16]);
    }
    let start = word.len();
    word.reserve(16);
    // SAFETY: `reserve` made room for 16 bytes at `start`; only the first `run` become part
    // of the string, and those are ASCII letters and digits (the caller's run), so it stays
    // UTF-8.
    unsafe {
        let bytes = word.as_mut_vec();
        std::ptr::write_unaligned(
            bytes.as_mut_ptr().add(start).cast::<[u8; 16]>(),
            v.to_le_bytes(),
        );
        bytes.set_len(start + run);
    }
}

fn flush<E>(
    buf: &mut WordBuf,
    on_word: &mut dyn FnMut(&WordBuf) -> Result<(), E>,
) -> Result<(), E> {
    if !buf.word.is_empty() {
        on_word(buf)?;
        buf.word.clear();
        buf.align.clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(norm: BertNormalizer, text: &str) -> Vec<(String, u32, u32)> {
        let s = BertSplitter::new(norm);
        let mut out = Vec::new();
        let mut buf = WordBuf::default();
        s.split::<()>(text, 0, &mut buf, &mut |b| {
            out.push((b.word.clone(), b.align[0], b.align[b.align.len() - 1] + 1));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn splits_like_bert() {
        let w = words(
            BertNormalizer::default(),
            "Hey friend!  Héllo,野口 a\u{200b}b",
        );
        let got: Vec<_> = w.iter().map(|(s, a, b)| (s.as_str(), *a, *b)).collect();
        assert_eq!(
            got,
            vec![
                ("hey", 0, 3),
                ("friend", 4, 10),
                ("!", 10, 11),
                ("hello", 13, 18),
                (",", 18, 19),
                ("野", 19, 20),
                ("口", 20, 21),
                ("ab", 22, 25),
            ]
        );
    }

    #[test]
    fn ascii_runs_of_every_length_at_every_distance_from_the_end() {
        // words of 1..=20 letters and digits, followed by 0..=20 bytes: the 16-byte copy is
        // taken or not, and must give the same words as lowercasing char by char
        let alnum = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789";
        for n in 1..=20 {
            for tail in 0..=20 {
                let word = &alnum[n % 7..n % 7 + n];
                let text = format!("{word}{}", ".".repeat(tail));
                for lower in [false, true] {
                    let norm = BertNormalizer::new(true, true, Some(false), lower);
                    let w = words(norm, &text);
                    let want = if lower {
                        word.to_lowercase()
                    } else {
                        word.to_string()
                    };
                    assert_eq!(
                        (w[0].0.as_str(), w[0].1, w[0].2),
                        (want.as_str(), 0, n as u32)
                    );
                    assert_eq!(w.len(), 1 + tail, "{text:?}");
                }
            }
        }
    }

    #[test]
    fn cased_keeps_accents_and_case() {
        let norm = BertNormalizer::new(true, true, None, false);
        let w = words(norm, "Héllo İ");
        assert_eq!(w[0].0, "Héllo");
        assert_eq!(w[1].0, "İ");
        let lower_only = BertNormalizer::new(true, true, Some(false), true);
        assert_eq!(words(lower_only, "İ")[0].0, "i\u{307}");
    }

    #[test]
    fn table_agrees_with_the_definitions() {
        for u in (0..0x3_0000u32).step_by(7).chain(0..0x800) {
            if let Some(c) = char::from_u32(u) {
                assert_eq!(props(c), compute_props(c), "U+{u:04X}");
                assert_eq!(props(c) & PUNCT != 0, is_bert_punct(c));
            }
        }
    }

    #[test]
    fn combining_marks_are_reordered_before_stripping() {
        // ccc 220 (below) sorts before ccc 230 (above); both are Mn and dropped
        let w = words(BertNormalizer::default(), "a\u{301}\u{323}b");
        assert_eq!(w, vec![("ab".to_string(), 0, 4)]);
    }
}
