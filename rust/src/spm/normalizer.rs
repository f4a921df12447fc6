//! SentencePiece's normalizer: the precompiled character map (a darts-clone double-array trie
//! of rewrite rules, longest match wins), whitespace handling and `▁` escaping, with the exact
//! semantics of `normalizer.cc` (so ids match the sentencepiece library byte for byte).

use super::proto::NormalizerSpec;
use crate::metaspace::is_continuation;
use crate::trie::Trie;
use crate::{Error, Result};

/// U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's visible space.
pub const SPACE: &str = "\u{2581}";
/// [`SPACE`] as a `char`.
pub const SPACE_CHAR: char = '\u{2581}';

/// A darts-clone double array: the precompiled character map's trie.
#[derive(Clone)]
struct DoubleArray {
    units: Vec<u32>,
}

impl DoubleArray {
    #[inline]
    fn offset(unit: u32) -> usize {
        ((unit >> 10) << ((unit & (1 << 9)) >> 6)) as usize
    }

    /// The root's position, or `None` for an empty (corrupt) map.
    #[inline]
    fn root(&self) -> Option<usize> {
        Some(Self::offset(*self.units.first()?))
    }

    /// From the node at `pos` along byte `b`: the child's position and whether a key ends
    /// there, or `None` without such an edge. Out-of-range positions (only in a corrupt map)
    /// count as a missing edge.
    #[inline]
    fn step(&self, pos: usize, b: u8) -> Option<(usize, bool)> {
        let pos = pos ^ b as usize;
        let unit = *self.units.get(pos)?;
        // the label is the low byte; leaf units carry bit 31 and never match
        if unit & ((1 << 31) | 0xFF) != b as u32 {
            return None;
        }
        Some((pos ^ Self::offset(unit), (unit >> 8) & 1 == 1))
    }

    /// The longest key that `bytes` starts with: `(length, value)`.
    #[inline]
    fn longest_prefix(&self, bytes: &[u8]) -> Option<(usize, u32)> {
        let mut pos = self.root()?;
        let mut best = None;
        for (i, &b) in bytes.iter().enumerate() {
            let Some((next, is_key)) = self.step(pos, b) else {
                break;
            };
            pos = next;
            if is_key {
                let value = *self.units.get(pos)? & ((1 << 31) - 1);
                best = Some((i + 1, value));
            }
        }
        best
    }

    /// Whether there is a node for `key`: a key is `key` or starts with it.
    fn has_node(&self, key: &[u8]) -> bool {
        let Some(mut pos) = self.root() else {
            return false;
        };
        for &b in key {
            match self.step(pos, b) {
                Some((next, _)) => pos = next,
                None => return false,
            }
        }
        true
    }
}

/// A precompiled character map: rewrite rules from a byte string to its replacement.
#[derive(Clone)]
pub struct CharsMap {
    trie: DoubleArray,
    /// The rewritten strings, NUL-separated (a rule's value is an offset into it).
    replacements: Vec<u8>,
    /// The replacement (start, end) of each one-byte ASCII key.
    ascii: [Option<(u32, u32)>; 128],
}

impl std::fmt::Debug for CharsMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CharsMap({} trie units)", self.trie.units.len())
    }
}

impl CharsMap {
    /// Parses the blob: a little-endian `u32` trie size in bytes, the trie's units, then the
    /// replacements.
    pub(crate) fn parse(blob: &[u8], origin: &str) -> Result<Self> {
        let bad = |msg: &str| Error::invalid(origin, format!("precompiled_charsmap: {msg}"));
        if blob.len() <= 4 {
            return Err(bad("shorter than its header"));
        }
        let size = u32::from_le_bytes(blob[..4].try_into().unwrap()) as usize;
        if size > blob.len() - 4 || size % 4 != 0 {
            return Err(bad("the trie size exceeds the blob"));
        }
        // Whole strings of UTF-8 (NUL, their separator, is ASCII): the normalized text of any
        // `str` stays UTF-8, as the models' segmentation needs.
        if let Err(e) = std::str::from_utf8(&blob[4 + size..]) {
            return Err(bad(&format!(
                "a replacement is not UTF-8 (byte {} of the replacements)",
                e.valid_up_to()
            )));
        }
        let units = blob[4..4 + size]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let mut map = CharsMap {
            trie: DoubleArray { units },
            replacements: blob[4 + size..].to_vec(),
            ascii: [None; 128],
        };
        map.ascii = std::array::from_fn(|b| {
            let v = map.shortest_value(&[b as u8])?;
            let r = map.replacement(v)?;
            Some((v, v + r.len() as u32))
        });
        Ok(map)
    }

    /// The NUL-terminated replacement at `offset`, or `None` when a corrupt map points outside
    /// or into the middle of a character.
    fn replacement(&self, offset: u32) -> Option<&[u8]> {
        let rest = self.replacements.get(offset as usize..)?;
        if rest.first().is_some_and(|&b| is_continuation(b)) {
            return None;
        }
        let end = memchr::memchr(0, rest)?;
        Some(&rest[..end])
    }

    /// sentencepiece's rule: the longest rule `input` starts with, as (bytes it consumes,
    /// replacement).
    #[inline]
    fn longest(&self, input: &[u8]) -> Option<(usize, &[u8])> {
        let (len, v) = self.trie.longest_prefix(input)?;
        if input.get(len).is_some_and(|&b| is_continuation(b)) {
            return None; // a corrupt rule that would cut a character: no rule
        }
        Some((len, self.replacement(v)?))
    }

    /// Hugging Face's rule (`Precompiled::transform`): the replacement of the *shortest* rule
    /// that `chunk` starts with, the walk stopping at a NUL byte.
    pub(crate) fn shortest(&self, chunk: &[u8]) -> Option<&[u8]> {
        self.replacement(self.shortest_value(chunk)?)
    }

    /// The value (replacement offset) of the shortest rule `chunk` starts with.
    fn shortest_value(&self, chunk: &[u8]) -> Option<u32> {
        let mut pos = self.trie.root()?;
        for &b in chunk {
            if b == 0 {
                return None;
            }
            let (next, is_key) = self.trie.step(pos, b)?;
            pos = next;
            if is_key {
                return Some(*self.trie.units.get(pos)? & ((1 << 31) - 1));
            }
        }
        None
    }

    /// The replacement of the one-byte key `b` (< 0x80), if it is one.
    #[inline]
    pub(crate) fn ascii_rule(&self, b: u8) -> Option<&[u8]> {
        let (s, e) = self.ascii[b as usize]?;
        Some(&self.replacements[s as usize..e as usize])
    }

    /// Whether some rule starts with `key`.
    fn has_node(&self, key: &[u8]) -> bool {
        self.trie.has_node(key)
    }
}

const PLAIN: u8 = 1;
const PLAIN_BEFORE_ASCII: u8 = 2;
/// The lead byte of a two- or three-byte character: copied as it is when [`Normalizer::bmp`]
/// says so.
const LEAD2: u8 = 3;
const LEAD3: u8 = 4;
/// A space that no rule rewrites or extends: escaped (or dropped as an extra space) without
/// the general path.
const KEPT_SPACE: u8 = 5;

/// What the character map does to one ASCII byte that starts no longer rule.
#[derive(Clone, Copy)]
enum Ascii {
    /// Some rule may start with this byte and go on: take the general path.
    Walk,
    /// Copied as is.
    Keep,
    /// Copied as is when an ASCII byte (or nothing) follows: the longer rules that start with
    /// it go on with a non-ASCII character (NFKC's compositions with combining marks).
    KeepBeforePlainByte,
    /// Rewritten to `replacements[start..end]`.
    Rewrite(u32, u32),
}

/// SentencePiece's `Normalizer`, built from a model's `NormalizerSpec`.
pub struct Normalizer {
    map: Option<CharsMap>,
    ascii: [Ascii; 128],
    /// Per byte: [`PLAIN`] when an ASCII byte is copied as it is whatever follows (`Keep`,
    /// not a space), [`PLAIN_BEFORE_ASCII`] when it is if an ASCII byte follows, [`LEAD2`] or
    /// [`LEAD3`] for the lead byte of a character of the Basic Multilingual Plane,
    /// [`KEPT_SPACE`] for a space kept as a space, else 0.
    plain: [u8; 256],
    /// One bit per BMP code point: set when no rule and no user-defined symbol starts with
    /// the character, which is then copied as it is. Multilingual text is mostly such
    /// characters; a bit test is cheaper than a walk of the rules for each.
    bmp: Box<[u64]>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
    treat_whitespace_as_suffix: bool,
    /// User-defined symbols, copied through unnormalized (longest match).
    user_defined: Option<Trie>,
    /// Whether every printable ASCII character is copied as it is when ASCII follows (unless
    /// a user-defined symbol starts there), and the space is a [`KEPT_SPACE`]: then [`BLOCK`]
    /// bytes of such characters at a time are normalized without a branch per byte (see
    /// `normalize`).
    ascii_blocks: bool,
    /// 1 for the ASCII bytes some user-defined symbol starts with.
    user_starts: [u8; 128],
}

/// Bytes normalized at once by the ASCII fast path.
const BLOCK: usize = 16;

impl Normalizer {
    pub fn new(
        spec: &NormalizerSpec,
        treat_whitespace_as_suffix: bool,
        user_defined: Option<Trie>,
        origin: &str,
    ) -> Result<Self> {
        let blob = spec.precompiled_charsmap();
        let map = if blob.is_empty() {
            None
        } else {
            Some(CharsMap::parse(blob, origin)?)
        };
        let mut n = Normalizer {
            map,
            ascii: [Ascii::Keep; 128],
            plain: [0; 256],
            bmp: Box::default(),
            add_dummy_prefix: spec.add_dummy_prefix(),
            remove_extra_whitespaces: spec.remove_extra_whitespaces(),
            escape_whitespaces: spec.escape_whitespaces(),
            treat_whitespace_as_suffix,
            user_defined,
            ascii_blocks: false,
            user_starts: [0; 128],
        };
        n.ascii = std::array::from_fn(|b| n.classify_ascii(b as u8, true));
        n.plain = std::array::from_fn(|b| match n.ascii.get(b) {
            Some(Ascii::Keep) if b == b' ' as usize => KEPT_SPACE,
            _ if b == b' ' as usize => 0,
            Some(Ascii::Keep) => PLAIN,
            Some(Ascii::KeepBeforePlainByte) => PLAIN_BEFORE_ASCII,
            _ if (0xc2..0xe0).contains(&b) => LEAD2,
            _ if (0xe0..0xf0).contains(&b) => LEAD3,
            _ => 0,
        });
        let mut bmp = vec![0u64; 1 << 10].into_boxed_slice();
        for c in (0x80..=0xffff).filter_map(char::from_u32) {
            if n.copied_as_is(c) {
                bmp[c as usize >> 6] |= 1 << (c as u32 & 63);
            }
        }
        n.bmp = bmp;
        // (a byte that starts a user-defined symbol is checked where it stands)
        n.ascii_blocks = n.plain[b' ' as usize] == KEPT_SPACE
            && (0x21..0x7f).all(|b| {
                matches!(
                    n.classify_ascii(b, false),
                    Ascii::Keep | Ascii::KeepBeforePlainByte
                )
            });
        if let Some(t) = &n.user_defined {
            n.user_starts = std::array::from_fn(|b| t.step(Trie::ROOT, b as u8).is_some() as u8);
        }
        Ok(n)
    }

    /// Whether `c` is copied as it is wherever it stands: no rule and no user-defined symbol
    /// starts with it.
    fn copied_as_is(&self, c: char) -> bool {
        let mut buf = [0; 4];
        let bytes = c.encode_utf8(&mut buf).as_bytes();
        let user = |t: &Trie| t.walk(Trie::ROOT, bytes).is_some();
        !self.user_defined.as_ref().is_some_and(user)
            && !self.map.as_ref().is_some_and(|m| m.has_node(bytes))
    }

    /// The length of the character that starts `input` (at `at`) when it is a BMP character
    /// copied as it is; `lead` is its [`LEAD2`] or [`LEAD3`] class.
    #[inline(always)]
    fn plain_char(&self, input: &[u8], at: usize, lead: u8) -> Option<usize> {
        let (len, c) = if lead == LEAD2 {
            let &[a, b] = input.get(at..at + 2)? else {
                return None;
            };
            (2, (a as usize & 0x1f) << 6 | (b as usize & 0x3f))
        } else {
            let &[a, b, c] = input.get(at..at + 3)? else {
                return None;
            };
            let c = (a as usize & 0x0f) << 12 | (b as usize & 0x3f) << 6 | (c as usize & 0x3f);
            (3, c)
        };
        let plain = self.bmp[c >> 6] >> (c & 63) & 1 != 0;
        plain.then_some(len)
    }

    /// Precomputes the rule for an ASCII byte, unless a longer rule could start with it.
    /// `users`: whether to heed the user-defined symbols.
    fn classify_ascii(&self, b: u8, users: bool) -> Ascii {
        if let Some(t) = self.user_defined.as_ref().filter(|_| users) {
            if t.step(Trie::ROOT, b).is_some() {
                return Ascii::Walk;
            }
        }
        let Some(map) = &self.map else {
            return Ascii::Keep;
        };
        // Does any longer key start with `b`? Then the general path must look further, unless
        // all go on with a non-ASCII byte and the next byte is ASCII.
        let longer_ascii = (0..0x80u8).any(|c| map.has_node(&[b, c]));
        let longer_other = (0x80..=255u8).any(|c| map.has_node(&[b, c]));
        if longer_ascii {
            return Ascii::Walk;
        }
        match map.trie.longest_prefix(&[b]) {
            None if longer_other => Ascii::KeepBeforePlainByte,
            None => Ascii::Keep,
            Some(_) if longer_other => Ascii::Walk,
            Some((_, v)) => match map.replacement(v) {
                Some(r) => {
                    let start = v;
                    Ascii::Rewrite(start, start + r.len() as u32)
                }
                None => Ascii::Walk,
            },
        }
    }

    /// `NormalizePrefix`: the normalized form of the start of `input` and how many bytes it
    /// consumed. `input` is valid UTF-8 (it comes from a `str`).
    #[inline]
    fn prefix<'a>(&'a self, input: &'a [u8]) -> (&'a [u8], usize) {
        let b = input[0];
        if b < 0x80 {
            match self.ascii[b as usize] {
                Ascii::Keep => return (&input[..1], 1),
                Ascii::Rewrite(s, e) => {
                    // only built when the map exists
                    let map = self.map.as_ref().map_or(&[][..], |m| &m.replacements[..]);
                    return (&map[s as usize..e as usize], 1);
                }
                Ascii::Walk | Ascii::KeepBeforePlainByte => {}
            }
        }
        if let Some(t) = &self.user_defined {
            if let Some((len, _)) = t.longest_match(Trie::ROOT, input) {
                return (&input[..len], len);
            }
        }
        if let Some((len, r)) = self.map.as_ref().and_then(|m| m.longest(input)) {
            return (r, len);
        }
        // `input` comes from a `str`, so it is valid UTF-8 and sentencepiece's U+FFFD repair of
        // malformed bytes never applies
        let len = utf8_len(b).min(input.len());
        (&input[..len], len)
    }

    /// Whether a user-defined symbol starts in the first [`BLOCK`] bytes of `input` (which are
    /// ASCII).
    #[inline]
    fn user_symbol_in(&self, input: &[u8]) -> bool {
        let Some(t) = &self.user_defined else {
            return false;
        };
        let mut starts = input[..BLOCK].iter().enumerate().fold(0u32, |m, (i, &b)| {
            m | (self.user_starts[b as usize & 0x7f] as u32) << i
        });
        while starts != 0 {
            let at = starts.trailing_zeros() as usize;
            if t.longest_match(Trie::ROOT, &input[at..]).is_some() {
                return true;
            }
            starts &= starts - 1;
        }
        false
    }

    /// Normalizes the blocks of printable ASCII that start `input` (each followed by ASCII
    /// or nothing, no user-defined symbol starting in it) and returns the rest: each byte
    /// copied, each space written as `space` or dropped after another as the general path
    /// would, with no branch on the byte. Words of a few letters end every few bytes, and a
    /// branch per run mispredicts at each.
    fn ascii_blocks<'a>(
        &self,
        mut input: &'a [u8],
        space: &[u8],
        space_word: u32,
        out: &mut Vec<u8>,
        prev_space: &mut bool,
    ) -> &'a [u8] {
        while let Some(block) = input.get(..BLOCK) {
            let printable = block
                .iter()
                .fold(true, |ok, &b| ok & (b.wrapping_sub(b' ') < 0x5f));
            if !printable
                || input.get(BLOCK).is_some_and(|&b| b >= 0x80)
                || self.user_symbol_in(input)
            {
                break;
            }
            let mut buf = [0u8; 3 * BLOCK + 1];
            let mut n = 0;
            for &b in block {
                let is_space = b == b' ';
                let word = if is_space { space_word } else { b as u32 };
                buf[n..n + 4].copy_from_slice(&word.to_le_bytes());
                n += match (is_space, *prev_space) {
                    (false, _) => 1,
                    (true, false) => space.len(),
                    (true, true) => 0,
                };
                *prev_space = is_space & self.remove_extra_whitespaces;
            }
            out.extend_from_slice(&buf[..n]);
            input = &input[BLOCK..];
        }
        input
    }

    /// Normalizes `input` into `out` (cleared first), as `Normalizer::Normalize` does.
    pub fn normalize(&self, input: &str, out: &mut Vec<u8>) {
        out.clear();
        let mut input = input.as_bytes();
        if input.is_empty() {
            return;
        }
        if self.remove_extra_whitespaces {
            while !input.is_empty() {
                let (s, n) = self.prefix(input);
                if s != b" " {
                    break;
                }
                input = &input[n..];
            }
            if input.is_empty() {
                return;
            }
        }
        out.reserve(input.len() * 3 / 2 + 4);
        let space: &[u8] = if self.escape_whitespaces {
            SPACE.as_bytes()
        } else {
            b" "
        };
        if !self.treat_whitespace_as_suffix && self.add_dummy_prefix {
            out.extend_from_slice(space);
        }
        // the space's replacement as one little-endian word, for `ascii_blocks` (made here:
        // made at each call, from a copy of the bytes, it stalled every call on multilingual
        // text, which makes one at each ASCII run)
        let space_word = space.iter().rev().fold(0u32, |w, &b| w << 8 | b as u32);
        let mut prev_space = self.remove_extra_whitespaces;
        while !input.is_empty() {
            if self.ascii_blocks {
                input = self.ascii_blocks(input, space, space_word, out, &mut prev_space);
                if input.is_empty() {
                    break;
                }
            }
            // a run of characters kept as they are (not spaces): copied at once
            // (an ASCII byte at the end counts as followed by ASCII)
            let mut run = 0;
            while let Some(&b) = input.get(run) {
                match self.plain[b as usize] {
                    PLAIN => run += 1,
                    PLAIN_BEFORE_ASCII if input.get(run + 1).is_none_or(|&n| n < 0x80) => run += 1,
                    lead @ (LEAD2 | LEAD3) => match self.plain_char(input, run, lead) {
                        Some(n) => run += n,
                        None => break,
                    },
                    _ => break,
                }
            }
            if run > 0 {
                out.extend_from_slice(&input[..run]);
                input = &input[run..];
                prev_space = false;
                continue;
            }
            if self.plain[input[0] as usize] == KEPT_SPACE {
                // what the general path does with a space, one per word of most texts
                if !prev_space {
                    out.extend_from_slice(space);
                }
                prev_space = self.remove_extra_whitespaces;
                input = &input[1..];
                continue;
            }
            let (mut s, n) = self.prefix(input);
            if prev_space {
                while let [b' ', rest @ ..] = s {
                    s = rest;
                }
            }
            if !s.is_empty() {
                if self.escape_whitespaces && s.contains(&b' ') {
                    for &c in s {
                        if c == b' ' {
                            out.extend_from_slice(SPACE.as_bytes());
                        } else {
                            out.push(c);
                        }
                    }
                } else {
                    out.extend_from_slice(s);
                }
                prev_space = s.ends_with(b" ");
            }
            input = &input[n..];
            if !self.remove_extra_whitespaces {
                prev_space = false;
            }
        }
        if self.remove_extra_whitespaces {
            while out.ends_with(space) {
                out.truncate(out.len() - space.len());
            }
        }
        if self.treat_whitespace_as_suffix && self.add_dummy_prefix {
            out.extend_from_slice(space);
        }
    }

    /// The user-defined symbols (which BPE also keeps whole), if the model has any.
    pub fn user_defined(&self) -> Option<&Trie> {
        self.user_defined.as_ref()
    }

    /// Whether decoding should drop the `▁` that starts the text (the dummy prefix).
    pub fn strips_leading_space(&self) -> bool {
        self.add_dummy_prefix || self.remove_extra_whitespaces
    }

    pub fn remove_extra_whitespaces(&self) -> bool {
        self.remove_extra_whitespaces
    }
}

/// Length of the UTF-8 sequence a lead byte starts (SentencePiece's `OneCharLen` table).
#[inline]
pub fn utf8_len(b: u8) -> usize {
    const LEN: [u8; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
    LEN[(b >> 4) as usize] as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The nmt_nfkc normalizer of the test Unigram model, with a user-defined symbol that
    /// starts with a BMP character.
    fn nfkc(fast: bool) -> Normalizer {
        let data = include_bytes!("../../../tests/data/spm-unigram.model");
        let proto = super::super::proto::decode(data, "spm-unigram.model").unwrap();
        let spec = proto.normalizer_spec.unwrap_or_default();
        let user = Trie::new([
            ("中国".as_bytes(), 7),
            (b"<b>".as_slice(), 8),
            (b"http".as_slice(), 9),
        ]);
        let mut n = Normalizer::new(&spec, false, Some(user), "spm-unigram.model").unwrap();
        if !fast {
            // every BMP character and every space takes the general path
            n.bmp.fill(0);
            n.plain[b' ' as usize] = 0;
            n.ascii_blocks = false;
        }
        n
    }

    #[test]
    fn the_bitmap_knows_ruled_characters() {
        let n = nfkc(true);
        let plain = |c: char| n.bmp[c as usize >> 6] >> (c as u32 & 63) & 1 != 0;
        assert!(plain('é') && plain('ß') && plain('語'));
        assert_eq!(n.plain[b' ' as usize], KEPT_SPACE);
        // printable ASCII goes by blocks, the user-defined symbols' first bytes checked
        assert!(
            n.ascii_blocks
                && n.user_starts[b'<' as usize] == 1
                && n.user_starts[b'a' as usize] == 0
        );
        // NFKC rewrites these, composes ж with U+0306 into ӂ; 中 starts a user-defined symbol
        assert!(!plain('Ａ') && !plain('ﬁ') && !plain('\u{3000}') && !plain('ж') && !plain('中'));
    }

    proptest! {
        /// Copying runs of plain BMP characters at once, escaping spaces, and normalizing
        /// blocks of ASCII at once changes nothing (with and without
        /// `remove_extra_whitespaces`).
        #[test]
        fn plain_runs_equal_the_rule_walk(
            chars in prop::collection::vec(
                prop::sample::select(vec![
                    "a", " ", "  ", "é", "e\u{301}", "\u{301}", "\u{306}", "ж", "ß", "語", "中",
                    "国", "中国", "Ａ", "ﬁ", "\u{3000}", "①", "▁", "😀", "\u{ff9e}", "ｶ", "\n",
                    "~", "hello world", "<b>", "<b", "http", "ht", "a.b,c!", "       ",
                    "0123456789abcdef",
                ]),
                0..40,
            ),
            extra in any::<bool>(),
        ) {
            static BOTH: std::sync::LazyLock<[(Normalizer, Normalizer); 2]> =
                std::sync::LazyLock::new(|| {
                    [false, true].map(|extra| {
                        let (mut fast, mut slow) = (nfkc(true), nfkc(false));
                        fast.remove_extra_whitespaces = extra;
                        slow.remove_extra_whitespaces = extra;
                        (fast, slow)
                    })
                });
            let text = chars.concat();
            let (fast, slow) = &BOTH[extra as usize];
            let (mut a, mut b) = (Vec::new(), Vec::new());
            fast.normalize(&text, &mut a);
            slow.normalize(&text, &mut b);
            prop_assert_eq!(a, b);
        }
    }
}
