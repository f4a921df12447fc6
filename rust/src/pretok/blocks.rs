//! The official patterns' piece starts, 64 bytes at a time, from bit masks.
//!
//! The scalar scanners (`official.rs`) find one piece at a time: each piece's end is a chain
//! of loads and data-dependent branches that the next piece waits on. Here a window of 64
//! bytes from a known piece start is classified into bit masks (bit k = byte k) with SSE2,
//! and the starts of all its pieces come out of a few shifts, ands and ors: over ASCII
//! letters, digits, spaces, `\n`, `\r` and punctuation, whether a piece starts at byte j
//! depends only on the classes of bytes j-2..=j+1 (and on a contraction after an apostrophe),
//! by the rules of each pattern below.
//!
//! A window gives up at the first byte it cannot judge that way ("hard": non-ASCII, control
//! characters other than `\n` and `\r`, a newline after a space, a fourth digit in a row, a
//! `/` after a newline for o200k), or at the start of a whitespace run that reaches a hard
//! byte or the window's end, and judges only the bytes before the one before it; the scalar
//! scanner takes over from the last start it found. Byte 0 is known to start a piece, so the
//! bytes before the window are never read: they count as no class at all.
//!
//! Each rule is written beside the alternatives of the pattern that make it so; the
//! differential tests of `official.rs` (against the regex, on fuzzed text) and the corpus
//! parity tests hold the window and the scalar scanner to the same pieces.

#[cfg(target_arch = "x86_64")]
use super::classes::in_range;
use super::official::Official;

/// What a window found.
pub(super) struct Window {
    /// Bit k: a piece starts at byte k of the window (bit 0 always), among the bytes judged.
    pub starts: u64,
    /// The window reaches the end of the text and every byte in it was judged: the last
    /// start's piece ends at the text's end.
    pub to_end: bool,
    /// How many bytes from the window's start were judged (`starts` says nothing beyond).
    #[cfg(test)]
    pub judged: u32,
}

/// Class masks of a window (bit k = byte k; bytes past the text's end are in none).
#[derive(Default)]
struct Masks {
    lower: u64,
    upper: u64,
    digit: u64,
    space: u64,
    /// `\n` or `\r`
    nl: u64,
    /// ASCII punctuation and symbols (`[^\s\p{L}\p{N}]` over printable ASCII)
    other: u64,
    apostrophe: u64,
    slash: u64,
    /// non-ASCII and control bytes (other than `\n` and `\r`)
    hard: u64,
}

/// The class masks of `bytes`, of which only the bytes in `valid` are text.
fn classify(bytes: &[u8; 64], valid: u64) -> Masks {
    let mut m = raw_masks(bytes);
    m.other = !(m.lower | m.upper | m.digit | m.space | m.nl | m.hard);
    for x in [
        &mut m.lower,
        &mut m.upper,
        &mut m.digit,
        &mut m.space,
        &mut m.nl,
        &mut m.other,
        &mut m.apostrophe,
        &mut m.slash,
        &mut m.hard,
    ] {
        *x &= valid;
    }
    m
}

#[cfg(not(target_arch = "x86_64"))]
use raw_masks_scalar as raw_masks;

/// Every mask but `other`, of all 64 bytes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn raw_masks(bytes: &[u8; 64]) -> Masks {
    use std::arch::x86_64::*;
    let mut m = Masks::default();
    for (k, chunk) in bytes.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of x86_64; the load is unaligned and within `chunk`.
        unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            let within = |lo, hi| in_range(v, lo, hi);
            let eq = |b: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8));
            let bits = |x| (_mm_movemask_epi8(x) as u32 as u64) << (16 * k);
            let nl = _mm_or_si128(eq(b'\n'), eq(b'\r'));
            // below 0x20 (and so, signed, every non-ASCII byte) or DEL
            let bad = _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)), eq(0x7f));
            m.lower |= bits(within(b'a', b'z'));
            m.upper |= bits(within(b'A', b'Z'));
            m.digit |= bits(within(b'0', b'9'));
            m.space |= bits(eq(b' '));
            m.nl |= bits(nl);
            m.apostrophe |= bits(eq(b'\''));
            m.slash |= bits(eq(b'/'));
            m.hard |= bits(_mm_andnot_si128(nl, bad));
        }
    }
    m
}

/// [`raw_masks`] one byte at a time: the fallback elsewhere, and the x86 version's judge.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn raw_masks_scalar(bytes: &[u8; 64]) -> Masks {
    let mut m = Masks::default();
    for (k, &b) in bytes.iter().enumerate() {
        let bit = 1u64 << k;
        match b {
            b'a'..=b'z' => m.lower |= bit,
            b'A'..=b'Z' => m.upper |= bit,
            b'0'..=b'9' => m.digit |= bit,
            b' ' => m.space |= bit,
            b'\n' | b'\r' => m.nl |= bit,
            0x21..=0x7e => {}
            _ => m.hard |= bit,
        }
        if b == b'\'' {
            m.apostrophe |= bit;
        }
        if b == b'/' {
            m.slash |= bit;
        }
    }
    m
}

/// Bit j holds bit j-1 of `x` (the class of the byte before; none before the window).
#[inline(always)]
fn prev(x: u64) -> u64 {
    x << 1
}

/// Bit j holds bit j+1 of `x` (the class of the byte after).
#[inline(always)]
fn next(x: u64) -> u64 {
    x >> 1
}

/// The bits below `n` (all of them for 64).
#[inline(always)]
fn below(n: u32) -> u64 {
    if n >= 64 {
        !0
    } else {
        (1u64 << n) - 1
    }
}

/// The length of the contraction (`s`, `t`, `m`, `d`, `re`, `ve` or `ll`, ASCII case folded
/// when `fold`) after the apostrophe at `text[at]`, or 0.
#[inline]
fn contraction_len(text: &[u8], at: usize, fold: bool) -> usize {
    let letter = |k: usize| match text.get(k) {
        Some(&c) if c.is_ascii_alphabetic() => Some(if fold { c | 0x20 } else { c }),
        _ => None,
    };
    match letter(at + 1) {
        Some(b's' | b't' | b'm' | b'd') => 1,
        Some(c1 @ (b'r' | b'v' | b'l')) => {
            let want = if c1 == b'l' { b'l' } else { b'e' };
            usize::from(letter(at + 2) == Some(want)) * 2
        }
        _ => 0,
    }
}

/// The window of `text` from `i`, a piece start.
pub(super) fn window(pattern: Official, text: &[u8], i: usize) -> Window {
    let rest = text.len() - i;
    let (m, ends) = if rest >= 64 {
        let bytes: &[u8; 64] = text[i..i + 64].try_into().unwrap();
        (classify(bytes, !0), false)
    } else {
        let mut bytes = [0u8; 64];
        bytes[..rest].copy_from_slice(&text[i..]);
        (classify(&bytes, below(rest as u32)), true)
    };
    let letter = m.lower | m.upper;
    let ws = m.space | m.nl;
    let nonws = letter | m.digit | m.other | m.hard;
    let mut hard = m.hard;
    let mut starts = 1u64;
    match pattern {
        Official::Cl100k | Official::O200k => {
            // `\s*[\r\n]+` (o200k), `\s*[\r\n]` (cl100k): a whitespace run is cut after its
            // last newline; we judge runs whose newlines all come before their spaces.
            hard |= m.nl & prev(m.space);
            // `\p{N}{1,3}`: a fourth digit in a row starts a piece or not by its count.
            hard |= m.digit & prev(m.digit) & prev(prev(m.digit)) & prev(prev(prev(m.digit)));
            if pattern == Official::O200k {
                // ` ?[^\s\p{L}\p{N}]+[\r\n/]*`: after the newlines a `/` may still belong
                hard |= m.slash & prev(m.nl);
            }
            starts |=
                // A space starts a piece unless it continues a run of spaces: no piece but
                // whitespace takes a space after its first character. In a run of spaces
                // `\s+(?!\S)` leaves the last one for the next piece (which takes a letter or
                // punctuation after it), unless the text ends there.
                m.space & !prev(ws)
                | m.space & prev(m.nl)
                | m.space & prev(m.space) & next(nonws)
                // A newline ends a word or number; after punctuation `[\r\n]*` takes it; after
                // a newline it is the same run.
                | m.nl & prev(letter | m.digit)
                | m.digit & !prev(m.digit)
                // `[^\r\n\p{L}\p{N}]?\p{L}+`: a letter after a digit or newline starts a piece
                // (neither is a prefix); after punctuation, when that punctuation does not
                // start a piece itself (it continues one that began with punctuation or a
                // space), so that it could not be the letter's prefix.
                | letter & prev(m.digit | m.nl)
                | letter & prev(m.other) & prev(prev(m.other | m.space))
                // Punctuation after a word, number or newline starts ` ?[^\s\p{L}\p{N}]+`
                // (or a word with it as prefix); after a space or punctuation it is inside one.
                | m.other & prev(letter | m.digit | m.nl);
            if pattern == Official::O200k {
                // `[U]*[W]+|[U]+[W]*`: over ASCII a word is upper-case letters, then
                // lower-case ones; an upper-case letter after a lower-case one begins the next.
                starts |= m.upper & prev(m.lower);
            }
        }
        Official::R50k => {
            // `\s+$|\s+(?!\S)|\s`: a whitespace run starts a piece and its last character
            // starts the next when a non-space follows (` ?` may take it).
            starts |= ws & !prev(ws)
                | ws & prev(ws) & next(nonws)
                // ` ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++`: each class's run, a space before
                // it included.
                | letter & !prev(letter | m.space)
                | m.digit & !prev(m.digit | m.space)
                | m.other & !prev(m.other | m.space);
        }
    }
    // Contractions (the apostrophe is "other"; rules above treat it so).
    let mut aps = m.apostrophe & !hard;
    let mut after_contraction = u32::MAX;
    while aps != 0 {
        let j = aps.trailing_zeros();
        aps &= aps - 1;
        let k = match pattern {
            // `(?i:'s|'t|'re|'ve|'m|'ll|'d)?` ends a word: it follows a letter, not another
            // contraction.
            Official::O200k if j > 0 && letter >> (j - 1) & 1 == 1 && j != after_contraction => {
                contraction_len(text, i + j as usize, true) as u32
            }
            // `'(?i:[sdmt]|ll|ve|re)` (cl100k), `'(?:[sdmt]|ll|ve|re)` (r50k): the first
            // alternative, wherever a piece starts at the apostrophe.
            Official::Cl100k | Official::R50k if starts >> j & 1 == 1 => {
                contraction_len(text, i + j as usize, pattern == Official::Cl100k) as u32
            }
            _ => 0,
        };
        if k == 0 {
            continue;
        }
        // o200k: the apostrophe and letters join the word; the others: the letters join the
        // apostrophe's piece. A letter after them starts the next piece.
        let first = if pattern == Official::O200k { j } else { j + 1 };
        let end = j + k + 1;
        starts &= !(below(end) & !below(first));
        if end < 64 {
            starts |= letter & (1u64 << end);
        }
        after_contraction = end;
    }
    let to_end = ends && hard == 0;
    if to_end && pattern != Official::O200k && ws >> (rest - 1) & 1 == 1 {
        // `\s++$` (cl100k), `\s+$` (r50k): the run of whitespace that ends the text is one
        // piece from its first start on.
        let run = below(rest as u32) & !below(64 - (nonws & below(rest as u32)).leading_zeros());
        let run_starts = starts & run;
        if run_starts != 0 {
            let first = run_starts.trailing_zeros();
            starts &= !(run & !below(first + 1));
        }
    }
    let judged = if to_end {
        rest as u32
    } else {
        let mut first_hard = hard.trailing_zeros();
        if first_hard > 0 && ws >> (first_hard - 1) & 1 == 1 {
            // The pieces of a whitespace run depend on all of it (where its last newline is,
            // what follows it): a run that reaches a hard byte is not judged at all.
            first_hard = 64 - (nonws & below(first_hard)).leading_zeros();
        }
        // The byte after an apostrophe decides a contraction, and a hard one may be a letter
        // that case-folds into one (`'ſ` is `'s` to `(?i)`): the byte before a hard one is
        // not judged. (The rules' other look-ahead, `next`, is right about a hard byte.)
        first_hard.saturating_sub(1)
    };
    Window {
        starts: (starts & below(judged)) | 1,
        to_end,
        #[cfg(test)]
        judged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pretok::classes::Classifier;
    use proptest::prelude::*;

    /// Every window, from every piece start the scalar scanner finds, agrees with it on
    /// every byte it judged.
    fn check(text: &str) {
        let cl = Classifier::new(text);
        let n = text.len();
        for pattern in [Official::R50k, Official::Cl100k, Official::O200k] {
            let mut is_start = vec![false; n + 1];
            let mut i = 0;
            while i < n {
                is_start[i] = true;
                i = pattern.next_scalar(&cl, i);
            }
            is_start[n] = true;
            for i in (0..n).filter(|&i| is_start[i] && text.as_bytes()[i] < 0x80) {
                let w = window(pattern, text.as_bytes(), i);
                assert!(w.judged <= 64 && (w.judged as usize) <= n - i);
                assert!(!w.to_end || w.judged as usize == n - i);
                for k in 0..w.judged as usize {
                    assert_eq!(
                        w.starts >> k & 1 == 1,
                        is_start[i + k],
                        "{pattern:?} window at {i}, byte {k} of {:?}",
                        &text[i..(i + w.judged as usize + 2).min(n)]
                    );
                }
            }
        }
    }

    #[test]
    fn simd_masks_match_the_scalar_ones() {
        let mut bytes = [0u8; 64];
        // every byte value, at every position
        for round in 0..256u32 {
            for (k, b) in bytes.iter_mut().enumerate() {
                *b = (round + k as u32 * 4) as u8;
            }
            let (a, b) = (raw_masks(&bytes), raw_masks_scalar(&bytes));
            let fields = |m: &Masks| {
                [
                    m.lower,
                    m.upper,
                    m.digit,
                    m.space,
                    m.nl,
                    m.apostrophe,
                    m.slash,
                    m.hard,
                ]
            };
            assert_eq!(fields(&a), fields(&b), "{bytes:?}");
        }
    }

    #[test]
    fn windows_agree_with_the_scalar_scanner() {
        for text in [
            "Hello, World!  How's it going?\n\n   Indented text, a.b.c ..x /path//to\n./x",
            "it'sx don'tcha I'LL x'll've 1's ' s '' s'  'd end'",
            "camelCase HTTPServer aB.C 123 12345 1234567 a1b2 3rd 4.5.6",
            "foo  \nbar \n\n baz\r\n\r\nqux   \n\n",
            "trailing spaces   ",
            "trailing newlines\n\n",
            "trailing mix\n\n  ",
            "x.\n\n  y.\n/z .\n\n",
            "a'ſ b'Ss c'rE d'LL e'v",
        ] {
            check(text);
        }
    }

    fn ascii_heavy() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "a", "b", "s", "t", "e", "l", "v", "r", "d", "m", "S", "T", "L", "E", "R", "X", "Ab",
            "word", "Word", "WORD", "'", "'s", "'LL", "'ve", " ", " ", " ", "  ", "\n", "\n\n",
            "\r\n", "\r", "0", "1", "12", "123", ".", ",", "/", "(", ")", "-", "\"", "#", "é",
            "\t", "日", "\u{a0}", "\u{b}", "ſ", "  \t", "\n ",
        ]);
        prop::collection::vec(pieces, 0..200).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn windows_agree_on_ascii_heavy_text(text in ascii_heavy()) {
            check(&text);
        }
    }
}
