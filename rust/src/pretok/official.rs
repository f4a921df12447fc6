//! Hand-written scanners for the three official split patterns.
//!
//! Each `next_*` function returns the end of the piece that starts at byte `i`, the same
//! piece that the backtracking regex engine finds there: the alternatives are tried in the
//! pattern's order and, where the pattern backtracks, the first success in the engine's
//! backtracking order is the one taken (comments show the alternative each step stands
//! for). Each step looks at a character once, so a scanner is linear in the text. The
//! differential tests below and in `tests/` hold them to the regex on corpora and fuzzed
//! text.

use super::blocks;
use super::classes::{Classifier, L, N, NL, S, U, W};

/// Which official pattern a scanner implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Official {
    R50k,
    Cl100k,
    O200k,
}

impl Official {
    /// The pieces of `text`, in order.
    #[inline]
    pub fn pieces(self, text: &str) -> Pieces<'_> {
        Pieces {
            pattern: self,
            text,
            cl: Classifier::new(text),
            i: 0,
            ends: 0,
            base: 0,
            misses: 0,
            wait: 0,
        }
    }

    /// The end of the piece that starts at byte `i`, found by the scalar scanner. Not inlined:
    /// kept out of [`Pieces::next`], the large scanners leave room for the caller's step for
    /// each piece to be inlined into its loop.
    #[inline(never)]
    pub(super) fn next_scalar(self, cl: &Classifier, i: usize) -> usize {
        match self {
            Official::R50k => next_r50k(cl, i),
            Official::Cl100k => next_cl100k(cl, i),
            Official::O200k => next_o200k(cl, i),
        }
    }
}

/// The pieces of a text by an official pattern (see [`Official::pieces`]): a window's
/// starts where it judged them (`blocks.rs`), the scalar scanner elsewhere.
pub struct Pieces<'t> {
    pattern: Official,
    text: &'t str,
    cl: Classifier<'t>,
    /// where the next piece starts
    i: usize,
    /// the piece ends the last window found (bit k: byte `base + k`), not yet returned
    ends: u64,
    base: usize,
    /// Windows that judged nothing in a row, and pieces left to cut one at a time before
    /// the next window: text that is mostly non-ASCII tries a window ever more rarely.
    misses: u32,
    wait: u32,
}

impl<'t> Iterator for Pieces<'t> {
    type Item = &'t str;

    #[inline(always)]
    fn next(&mut self) -> Option<&'t str> {
        let i = self.i;
        let end = if self.ends != 0 || self.window(i) {
            let k = self.ends.trailing_zeros() as usize;
            self.ends &= self.ends - 1;
            self.base + k
        } else if i < self.text.len() {
            self.pattern.next_scalar(&self.cl, i)
        } else {
            return None;
        };
        debug_assert!(end > i && self.text.is_char_boundary(end));
        self.i = end;
        Some(&self.text[i..end])
    }
}

impl Pieces<'_> {
    /// Tries a window from `i`: true when it found the ends of pieces (now in `ends`).
    #[inline]
    fn window(&mut self, i: usize) -> bool {
        let (bytes, n) = (self.text.as_bytes(), self.text.len());
        if i >= n || self.wait > 0 || bytes[i] >= 0x80 {
            self.wait = self.wait.saturating_sub(1);
            return false;
        }
        let w = blocks::window(self.pattern, bytes, i);
        self.ends = w.starts & !1;
        if w.to_end {
            self.ends |= 1 << (n - i);
        }
        if self.ends == 0 {
            self.misses = (self.misses + 1).min(6);
            self.wait = (1 << self.misses) - 1;
            return false;
        }
        self.base = i;
        self.misses = 0;
        true
    }
}

/// "Other": neither whitespace, letter nor number.
#[inline(always)]
fn is_other(c: u8) -> bool {
    c & (S | L | N) == 0
}

/// `\p{N}{1,3}` with its first character ending at `end`: up to two more numbers.
#[inline]
fn up_to_three_numbers(cl: &Classifier, mut end: usize) -> usize {
    for _ in 0..2 {
        match cl.bytes.get(end).map(|_| cl.at(end)) {
            Some((c, len)) if c & N != 0 => end += len,
            _ => break,
        }
    }
    end
}

/// ` ?[^\s\p{L}\p{N}]+` followed by any run of the ASCII bytes `tail` accepts: the optional
/// space only helps when an "other" character follows it (a space is not one).
#[inline]
fn space_then_others(cl: &Classifier, i: usize, tail: impl Fn(u8) -> bool) -> Option<usize> {
    let b = cl.bytes;
    let s = if b[i] == b' ' { i + 1 } else { i };
    if s < b.len() && is_other(cl.at(s).0) {
        let end = cl.run_end_not(s, S | L | N);
        Some(end + b[end..].iter().take_while(|&&c| tail(c)).count())
    } else {
        None
    }
}

/// The whitespace alternatives shared by the patterns, for a run starting at `i`:
/// `\s+(?!\S)` keeps the run's last character for the next piece when the run is followed by
/// a non-space, and a run of one character is a piece by itself (`\s` / `\s+`).
#[inline]
fn whitespace_tail(cl: &Classifier, i: usize, run_end: usize, first_len: usize) -> usize {
    if run_end == cl.bytes.len() {
        return run_end;
    }
    if run_end - i > first_len {
        // back off one character (the run's last)
        let mut k = run_end - 1;
        while cl.bytes[k] & 0xc0 == 0x80 {
            k -= 1;
        }
        if k > i {
            return k;
        }
    }
    i + first_len
}

/// The end of `\s*[\r\n]` (or `\s*[\r\n]+`) over the whitespace run `i..run_end`: just past
/// the run's last `\r` or `\n`, if it has one.
#[inline]
fn last_newline_end(cl: &Classifier, i: usize, run_end: usize) -> Option<usize> {
    cl.bytes[i..run_end]
        .iter()
        .rposition(|&b| b == b'\r' || b == b'\n')
        .map(|k| i + k + 1)
}

/// `'(?:[sdmt]|ll|ve|re)` (case-sensitive) or `'(?i:[sdmt]|ll|ve|re)`, `i` just past the `'`.
#[inline]
fn contraction(cl: &Classifier, i: usize, fold: bool) -> Option<usize> {
    let letter = |k: usize| -> Option<(u8, usize)> {
        if fold {
            cl.folded_ascii(k)
        } else {
            cl.bytes.get(k).map(|&b| (b, 1))
        }
    };
    let (c1, l1) = letter(i)?;
    if matches!(c1, b's' | b'd' | b'm' | b't') {
        return Some(i + l1);
    }
    let (c2, l2) = letter(i + l1)?;
    matches!((c1, c2), (b'l', b'l') | (b'v', b'e') | (b'r', b'e')).then_some(i + l1 + l2)
}

/// r50k / gpt2: `'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s`
fn next_r50k(cl: &Classifier, i: usize) -> usize {
    let b = cl.bytes;
    if b[i] == b'\'' {
        if let Some(end) = contraction(cl, i + 1, false) {
            return end;
        }
    }
    // ` ?X++` for X in letters, numbers, other: the optional space only helps when a
    // character of X follows it (a space is none of them).
    let s = if b[i] == b' ' { i + 1 } else { i };
    if s < b.len() {
        let (c, _) = cl.at(s);
        if c & L != 0 {
            return cl.run_end(s, L);
        }
        if c & N != 0 {
            return cl.run_end(s, N);
        }
        if is_other(c) {
            return cl.run_end_not(s, S | L | N);
        }
    }
    let (_, len) = cl.at(i);
    let run_end = cl.run_end(i, S);
    whitespace_tail(cl, i, run_end, len)
}

/// cl100k_base: `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|
/// ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s`
fn next_cl100k(cl: &Classifier, i: usize) -> usize {
    let b = cl.bytes;
    let n = b.len();
    if b[i] == b'\'' {
        if let Some(end) = contraction(cl, i + 1, true) {
            return end;
        }
    }
    let (c0, l0) = cl.at(i);
    // [^\r\n\p{L}\p{N}]?+\p{L}++
    if c0 & L != 0 {
        return cl.run_end(i, L);
    }
    if c0 & (N | NL) == 0 && i + l0 < n && cl.at(i + l0).0 & L != 0 {
        return cl.run_end(i + l0, L);
    }
    // \p{N}{1,3}+
    if c0 & N != 0 {
        return up_to_three_numbers(cl, i + l0);
    }
    // ` ?[^\s\p{L}\p{N}]++[\r\n]*+`
    if let Some(end) = space_then_others(cl, i, |c| c == b'\r' || c == b'\n') {
        return end;
    }
    // \s++$ | \s*[\r\n] | \s+(?!\S) | \s
    let run_end = cl.run_end(i, S);
    if run_end == n {
        return n;
    }
    if let Some(end) = last_newline_end(cl, i, run_end) {
        return end;
    }
    whitespace_tail(cl, i, run_end, l0)
}

/// o200k_base's letter alternatives, from `s`, after the optional prefix character:
/// `[U]*[W]+C?` when `upper_first` is false and `[U]+[W]*C?` when it is true, where U is
/// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`, W is `[\p{Ll}\p{Lm}\p{Lo}\p{M}]` and C the optional
/// case-insensitive contraction. U and W overlap (Lm, Lo, M), which is where the engine
/// backtracks: `[U]*` first takes the whole U run, and if no W follows it gives characters
/// back until one it gave back is a W, so the match ends just past the run's last W.
#[inline]
fn o200k_word(cl: &Classifier, s: usize, upper_first: bool) -> Option<usize> {
    let n = cl.bytes.len();
    let mut i = s;
    let mut after_last_w = None;
    while i < n {
        let (c, len) = cl.at(i);
        if c & U == 0 {
            break;
        }
        i += len;
        if c & W != 0 {
            after_last_w = Some(i);
        }
    }
    let end = if i < n && cl.at(i).0 & W != 0 {
        cl.run_end(i, W)
    } else if upper_first {
        (i > s).then_some(i)?
    } else {
        after_last_w?
    };
    Some(o200k_contraction(cl, end))
}

/// o200k's letter alternatives from `s`, where an ASCII letter is: `[U]*[W]+C?`, or else
/// `[U]+[W]*C?`. Over ASCII (no letter both U and W) that is the upper-case run, then the
/// lower-case run, found with one 16-byte compare; a run that reaches a non-ASCII character
/// (which may be U or W) or the end of the compare goes to `o200k_word`.
#[inline(always)]
fn o200k_ascii_word(cl: &Classifier, s: usize) -> usize {
    if let Some((upper, lower)) = cl.letters16(s) {
        let u = (!upper).trailing_zeros();
        let end = s + (u + (!(lower >> u)).trailing_zeros()) as usize;
        if end < s + 16 && cl.bytes[end] < 0x80 {
            return o200k_contraction(cl, end);
        }
    }
    o200k_word(cl, s, false)
        .or_else(|| o200k_word(cl, s, true))
        .expect("an upper-case letter matches [U]+")
}

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)?` at `i`.
#[inline]
fn o200k_contraction(cl: &Classifier, i: usize) -> usize {
    if cl.bytes.get(i) != Some(&b'\'') {
        return i;
    }
    let Some((c1, l1)) = cl.folded_ascii(i + 1) else {
        return i;
    };
    if matches!(c1, b's' | b't' | b'm' | b'd') {
        return i + 1 + l1;
    }
    match cl.folded_ascii(i + 1 + l1) {
        Some((c2, l2)) if matches!((c1, c2), (b'r', b'e') | (b'v', b'e') | (b'l', b'l')) => {
            i + 1 + l1 + l2
        }
        _ => i,
    }
}

/// o200k_base (see `registry::O200K_PATTERN`).
fn next_o200k(cl: &Classifier, i: usize) -> usize {
    let b = cl.bytes;
    let n = b.len();
    // An ASCII letter here, or after an ASCII prefix: the letter alternatives match (see
    // `o200k_ascii_word`), and the unprefixed ones, which start at an ASCII non-letter, fail.
    let k0 = cl.ascii_at(i);
    let s = if k0 & (U | W) != 0 {
        Some(i)
    } else if b[i] < 0x80 && k0 & (L | N | NL) == 0 && cl.ascii_at(i + 1) & (U | W) != 0 {
        Some(i + 1)
    } else {
        None
    };
    if let Some(s) = s {
        return o200k_ascii_word(cl, s);
    }
    let (c0, l0) = cl.at(i);
    // [^\r\n\p{L}\p{N}]?  then the two letter alternatives; the engine tries each
    // alternative with the prefix character taken first, then without it.
    // Both need a U or W character where they start, after the prefix or at `i`: most
    // punctuation and whitespace pieces skip them with one look at the next character.
    let prefixed =
        (c0 & (L | N | NL) == 0 && i + l0 < n && cl.at(i + l0).0 & (U | W) != 0).then_some(i + l0);
    if c0 & (U | W) != 0 || prefixed.is_some() {
        for upper_first in [false, true] {
            if let Some(end) = prefixed.and_then(|s| o200k_word(cl, s, upper_first)) {
                return end;
            }
            if let Some(end) = o200k_word(cl, i, upper_first) {
                return end;
            }
        }
    }
    // \p{N}{1,3}
    if c0 & N != 0 {
        return up_to_three_numbers(cl, i + l0);
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n/]*`
    if let Some(end) = space_then_others(cl, i, |c| matches!(c, b'\r' | b'\n' | b'/')) {
        return end;
    }
    // \s*[\r\n]+ | \s+(?!\S) | \s+
    let run_end = cl.run_end(i, S);
    if let Some(end) = last_newline_end(cl, i, run_end) {
        return end;
    }
    whitespace_tail(cl, i, run_end, l0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pretok::RegexSplit;
    use crate::registry::{CL100K_PATTERN, O200K_PATTERN, R50K_PATTERN};
    use proptest::prelude::*;

    const ALL: [(Official, &str); 3] = [
        (Official::R50k, R50K_PATTERN),
        (Official::Cl100k, CL100K_PATTERN),
        (Official::O200k, O200K_PATTERN),
    ];

    fn check(text: &str) {
        for (scanner, pattern) in ALL {
            let ours: Vec<&str> = scanner.pieces(text).collect();
            let theirs: Vec<&str> = RegexSplit::new(pattern)
                .unwrap()
                .pieces(text)
                .collect::<crate::error::Result<_>>()
                .unwrap();
            assert_eq!(ours, theirs, "{scanner:?} on {text:?}");
        }
    }

    #[test]
    fn tricky_cases() {
        for text in [
            "",
            "a",
            " ",
            "hello world",
            "Hello, World!  How's it going?\n\n  ",
            "I'LL SEE YOU'RE 'S 'ſ 'ſt 'K 'KELVIN 'Ll don'T",
            "  \t\n \r\n\r\n   x  \u{a0}\u{a0}y\u{3000}z \u{2028}",
            "e\u{301}t\u{301} \u{301}\u{301}a \u{301}",
            "1234567 12 a1b2 ٣٤٥ ½¾ Ⅻ",
            "👨‍👩‍👧 emoji 🙂🙂 ✓",
            "日本語のテキスト 中文 한국어 Привет мир ΑΒΓ αβγ",
            "ǅungla ǈ ǋ ʰʱ DŽ ﬁ",
            "def f(x):\n    return x**2  # comment\n\t\tpass\n",
            "a//b\n//c!!\r\n/x  ?!\n",
            "trailing   ",
            "\n",
            " \n",
            "   a",
            "x'",
            "'",
            "''s",
            "HTTPServer XMLHttpRequest iPhone McDonald's",
        ] {
            check(text);
        }
    }

    fn tricky_char() -> impl Strategy<Value = char> {
        prop::sample::select(vec![
            'a', 'B', 'z', 'S', 's', 'T', 'l', 'L', 'v', 'e', 'r', 'd', 'm', 'k', '\'', ' ', ' ',
            '\t', '\n', '\r', '\u{a0}', '\u{3000}', '\u{2028}', '\u{85}', '\u{b}', '\u{c}', '0',
            '7', '٣', '½', 'Ⅻ', '!', '.', '/', '-', '_', '#', '\u{301}', '\u{308}', '\u{17f}',
            '\u{212a}', 'é', 'É', 'ǅ', 'ʰ', '日', 'の', 'Ж', 'ж', '🙂', '\u{200d}', '\u{fe0f}',
            'ﬁ', '\u{e000}',
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn scanners_match_regex(chars in prop::collection::vec(tricky_char(), 0..40)) {
            check(&chars.into_iter().collect::<String>());
        }

        /// Words of every length around the 16-byte compares, in both cases, glued to
        /// prefixes, contractions, marks and non-ASCII letters.
        #[test]
        fn scanners_match_regex_on_words(parts in prop::collection::vec(prop::sample::select(vec![
            "a", "Ab", "hello", "WORLD", "HTTPServer", "abcdefghijklmno", "abcdefghijklmnop",
            "ABCDEFGHIJKLMNOPQ", "Abcdefghijklmnopqr", "'s", "'LL", "'ſ", " ", "  ", "\t", "\n",
            "\r\n", ",", "(", "...", "/", "1", "2024", "é", "É", "\u{301}", "ǅ", "ʰ", "日", "_",
        ]), 0..24)) {
            check(&parts.concat());
        }

        #[test]
        fn scanners_match_regex_on_any_text(text in "\\PC{0,60}") {
            check(&text);
        }
    }
}
