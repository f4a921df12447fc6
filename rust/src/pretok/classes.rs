//! Character classes for the hand-written pre-tokenizers.
//!
//! The tables are built once per process from regex-syntax's own Unicode tables (the crate
//! behind the regex engine that tiktoken uses), so a character is a letter here exactly
//! when `\p{L}` matches it there. Lookup is a two-level table: `BLOCKS[cp >> 8]` picks a
//! deduplicated 256-entry block of class bits; ASCII has its own flat table.

use std::sync::OnceLock;

use regex_syntax::hir::{Class, HirKind};

/// `\p{L}`
pub const L: u8 = 1;
/// `\p{N}`
pub const N: u8 = 2;
/// `\s` (Unicode White_Space)
pub const S: u8 = 4;
/// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]` (o200k's "upper" letters)
pub const U: u8 = 8;
/// `[\p{Ll}\p{Lm}\p{Lo}\p{M}]` (o200k's "lower" letters)
pub const W: u8 = 16;
/// `\r` or `\n`
pub const NL: u8 = 32;

const CLASSES: [(&str, u8); 5] = [
    (r"\p{L}", L),
    (r"\p{N}", N),
    (r"\s", S),
    (r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", U),
    (r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]", W),
];

struct Tables {
    ascii: [u8; 128],
    /// `stage1[cp >> 8]` is the index of the block holding `cp`'s bits.
    stage1: Vec<u16>,
    blocks: Vec<[u8; 256]>,
}

fn class_ranges(pattern: &str) -> Vec<(u32, u32)> {
    let hir = regex_syntax::parse(pattern).expect("built-in class pattern");
    match hir.kind() {
        HirKind::Class(Class::Unicode(cls)) => cls
            .ranges()
            .iter()
            .map(|r| (r.start() as u32, r.end() as u32))
            .collect(),
        _ => unreachable!("{pattern} is a Unicode class"),
    }
}

fn build() -> Tables {
    const N_CP: usize = 0x110000;
    // Only the 256-code-point blocks that some class touches are filled in and deduplicated;
    // the others (three quarters of the range) are the zero block. This first-use build was
    // 1 ms when it went through all of them, as much as loading o200k's vocabulary.
    let mut dense = vec![0u8; N_CP];
    let mut touched = vec![false; N_CP / 256];
    for (pattern, bit) in CLASSES {
        for (lo, hi) in class_ranges(pattern) {
            touched[lo as usize / 256..=hi as usize / 256].fill(true);
            for b in &mut dense[lo as usize..=hi as usize] {
                *b |= bit;
            }
        }
    }
    dense[b'\r' as usize] |= NL;
    dense[b'\n' as usize] |= NL;
    touched[0] = true;
    let mut ascii = [0u8; 128];
    ascii.copy_from_slice(&dense[..128]);
    let mut blocks: Vec<[u8; 256]> = Vec::new();
    let mut seen = rustc_hash::FxHashMap::default();
    let mut intern = |block: [u8; 256]| {
        *seen.entry(block).or_insert_with(|| {
            blocks.push(block);
            (blocks.len() - 1) as u16
        })
    };
    let zero = intern([0; 256]);
    let stage1 = dense
        .chunks_exact(256)
        .zip(&touched)
        .map(|(chunk, &t)| {
            if t {
                intern(chunk.try_into().unwrap())
            } else {
                zero
            }
        })
        .collect();
    Tables {
        ascii,
        stage1,
        blocks,
    }
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(build)
}

/// Class bits of code point `cp`.
#[cfg(test)]
fn of_char(cp: u32) -> u8 {
    let t = tables();
    if cp < 128 {
        t.ascii[cp as usize]
    } else {
        t.blocks[t.stage1[(cp >> 8) as usize] as usize][(cp & 0xff) as usize]
    }
}

/// The bytes of `v` in `lo..=hi` (ASCII bounds), as a byte mask. The compares are signed, so
/// bytes >= 0x80 are negative and fall outside every such range.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn in_range(
    v: std::arch::x86_64::__m128i,
    lo: u8,
    hi: u8,
) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86_64.
    unsafe {
        _mm_and_si128(
            _mm_cmpgt_epi8(v, _mm_set1_epi8(lo as i8 - 1)),
            _mm_cmplt_epi8(v, _mm_set1_epi8(hi as i8 + 1)),
        )
    }
}

/// How many of the leading bytes of `chunk` are ASCII with a class that has a bit of `mask`
/// (no bit, when `invert`). `mask` is a constant at every call, so only its classes' compares
/// remain after inlining. A test holds these compares to the ASCII table.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn ascii_run(chunk: &[u8; 16], mask: u8, invert: bool) -> usize {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86_64; the load is unaligned and within `chunk`.
    let (hits, non_ascii) = unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        // Signed compares: bytes >= 0x80 are negative and fall outside every range below.
        let within = in_range;
        let mut m = _mm_setzero_si128();
        if mask & (L | W) != 0 {
            // lower-case letters, and upper-case ones folded onto them for L
            let lower = if mask & L != 0 {
                _mm_or_si128(v, _mm_set1_epi8(0x20))
            } else {
                v
            };
            m = _mm_or_si128(m, within(lower, b'a', b'z'));
        }
        if mask & U != 0 && mask & L == 0 {
            m = _mm_or_si128(m, within(v, b'A', b'Z'));
        }
        if mask & N != 0 {
            m = _mm_or_si128(m, within(v, b'0', b'9'));
        }
        if mask & S != 0 {
            m = _mm_or_si128(m, within(v, b'\t', b'\r'));
            m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8(b' ' as i8)));
        }
        if mask & NL != 0 {
            m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8)));
            m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\r' as i8)));
        }
        (_mm_movemask_epi8(m) as u32, _mm_movemask_epi8(v) as u32)
    };
    let wanted = if invert { !hits & !non_ascii } else { hits };
    (!wanted & 0xffff).trailing_zeros().min(16) as usize
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(super) fn ascii_run(chunk: &[u8; 16], mask: u8, invert: bool) -> usize {
    let ascii = &tables().ascii;
    chunk
        .iter()
        .take_while(|&&c| c < 0x80 && (ascii[c as usize] & mask != 0) != invert)
        .count()
}

/// Bit masks (bit k for byte k) of the ASCII upper-case and the lower-case letters in `chunk`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn letter_masks(chunk: &[u8; 16]) -> (u32, u32) {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86_64; the load is unaligned and within `chunk`.
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let within = |lo, hi| _mm_movemask_epi8(in_range(v, lo, hi)) as u32;
        (within(b'A', b'Z'), within(b'a', b'z'))
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn letter_masks(chunk: &[u8; 16]) -> (u32, u32) {
    let mask = |f: fn(&u8) -> bool| {
        (chunk.iter().enumerate())
            .filter(|(_, c)| f(c))
            .fold(0, |m, (k, _)| m | 1 << k)
    };
    (mask(u8::is_ascii_uppercase), mask(u8::is_ascii_lowercase))
}

/// A cursor over UTF-8 text that classifies characters. `text` must be valid UTF-8 (it
/// comes from a `&str`), so decoding needs no checks beyond the lead byte.
pub struct Classifier<'t> {
    pub bytes: &'t [u8],
    ascii: &'static [u8; 128],
    tables: &'static Tables,
}

impl<'t> Classifier<'t> {
    #[inline]
    pub fn new(text: &'t str) -> Self {
        let tables = tables();
        Classifier {
            bytes: text.as_bytes(),
            ascii: &tables.ascii,
            tables,
        }
    }

    /// The class bits and UTF-8 length of the character at byte `i` (`i` < len).
    #[inline(always)]
    pub fn at(&self, i: usize) -> (u8, usize) {
        let b0 = self.bytes[i];
        if b0 < 0x80 {
            return (self.ascii[b0 as usize], 1);
        }
        let (cp, len) = self.decode(i);
        let t = self.tables;
        (
            t.blocks[t.stage1[(cp >> 8) as usize] as usize][(cp & 0xff) as usize],
            len,
        )
    }

    /// The code point and UTF-8 length of the non-ASCII character at byte `i`.
    #[inline(always)]
    pub fn decode(&self, i: usize) -> (u32, usize) {
        let b = self.bytes;
        let b0 = b[i] as u32;
        let cont = |k: usize| (b[i + k] & 0x3f) as u32;
        if b0 < 0xe0 {
            (((b0 & 0x1f) << 6) | cont(1), 2)
        } else if b0 < 0xf0 {
            (((b0 & 0x0f) << 12) | (cont(1) << 6) | cont(2), 3)
        } else {
            (
                ((b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3),
                4,
            )
        }
    }

    /// The class bits of the byte at `i` when it is ASCII, else 0.
    #[inline(always)]
    pub fn ascii_at(&self, i: usize) -> u8 {
        match self.bytes.get(i) {
            Some(&c) if c < 0x80 => self.ascii[c as usize],
            _ => 0,
        }
    }

    /// Bit masks of the ASCII upper-case and lower-case letters among the 16 bytes from `i`
    /// (`i + 16 <= len`), or `None` nearer the end of the text.
    #[inline(always)]
    pub fn letters16(&self, i: usize) -> Option<(u32, u32)> {
        Some(letter_masks(self.bytes.get(i..i + 16)?.try_into().unwrap()))
    }

    /// The end of the run of characters, starting at `i`, whose class has any bit of `mask`.
    #[inline(always)]
    pub fn run_end(&self, i: usize, mask: u8) -> usize {
        self.run(i, mask, false)
    }

    /// The end of the run of characters, starting at `i`, whose class has no bit of `mask`.
    #[inline(always)]
    pub fn run_end_not(&self, i: usize, mask: u8) -> usize {
        self.run(i, mask, true)
    }

    /// The end of the run from `i` of characters whose class has a bit of `mask` (none, when
    /// `invert`). ASCII goes 16 bytes at a time: the branch that ends a run then mispredicts
    /// once per run rather than once per character (pieces are ~4 characters on average).
    #[inline(always)]
    fn run(&self, mut i: usize, mask: u8, invert: bool) -> usize {
        let b = self.bytes;
        let n = b.len();
        loop {
            if let Some(chunk) = b.get(i..i + 16) {
                let run = ascii_run(chunk.try_into().unwrap(), mask, invert);
                i += run;
                if run == 16 {
                    continue;
                }
                if b[i] < 0x80 {
                    return i;
                }
            } else if i == n {
                return n;
            } else if b[i] < 0x80 {
                if (self.ascii[b[i] as usize] & mask != 0) == invert {
                    return i;
                }
                i += 1;
                continue;
            }
            let (c, len) = self.at(i);
            if (c & mask != 0) == invert {
                return i;
            }
            i += len;
        }
    }

    /// The lower-case ASCII letter that the character at byte `i` matches case-insensitively
    /// in the contraction alternatives, with its UTF-8 length: Unicode simple case folding
    /// maps U+017F (long s) to `s`; every other letter of "sdmtlvre" folds only from ASCII.
    #[inline]
    pub fn folded_ascii(&self, i: usize) -> Option<(u8, usize)> {
        let b0 = *self.bytes.get(i)?;
        if b0 < 0x80 {
            return Some((b0.to_ascii_lowercase(), 1));
        }
        (self.bytes[i..].starts_with("\u{17f}".as_bytes())).then_some((b's', 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_match_the_regex_engine() {
        let re = |p: &str| regex::Regex::new(&format!("^{p}$")).unwrap();
        let checks = CLASSES.map(|(p, bit)| (re(p), bit));
        for cp in (0..0x110000u32)
            .step_by(7)
            .chain([0x17f, 0x212a, 0xa0, 0x3000, 0x301, 0x1f600])
        {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let s = c.to_string();
            for (r, bit) in &checks {
                assert_eq!(
                    r.is_match(&s),
                    of_char(cp) & bit != 0,
                    "U+{cp:04X} class bit {bit}"
                );
            }
        }
    }

    #[test]
    fn ascii_runs_match_the_table() {
        for mask in [L, N, S, U, W, NL, S | L | N, L | N, U | W] {
            for invert in [false, true] {
                for (fill, stop) in (0..=255u8).flat_map(|a| (0..=255u8).map(move |c| (a, c))) {
                    let mut chunk = [fill; 16];
                    chunk[9] = stop;
                    let want = chunk
                        .iter()
                        .take_while(|&&x| x < 0x80 && (of_char(x as u32) & mask != 0) != invert)
                        .count();
                    assert_eq!(
                        ascii_run(&chunk, mask, invert),
                        want,
                        "{mask} {invert} {chunk:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn contraction_folding_matches_the_regex_engine() {
        let re = regex::Regex::new("^(?i:[sdmtlvre])$").unwrap();
        for cp in 0..0x110000u32 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let s = c.to_string();
            let cl = Classifier::new(&s);
            let ours = cl
                .folded_ascii(0)
                .is_some_and(|(f, _)| b"sdmtlvre".contains(&f));
            assert_eq!(re.is_match(&s), ours, "U+{cp:04X}");
        }
    }
}
