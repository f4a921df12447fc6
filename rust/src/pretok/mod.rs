//! Pre-tokenizers: split text into the pieces that BPE encodes one at a time.
//!
//! [`Pretokenizer::new`] takes any split pattern. The three official patterns get
//! hand-written linear scanners (`official.rs`, several times faster than the regex), which
//! over ASCII find the piece starts of 64 bytes at a time from bit masks (`blocks.rs`); any
//! other pattern goes through a backtracking regex engine (fancy-regex, the engine tiktoken
//! uses), so lookahead and possessive forms behave exactly as in tiktoken.

mod blocks;
mod classes;
mod official;
mod regex;

pub use self::official::Official;
pub use self::regex::RegexSplit;

use crate::error::Result;
use crate::registry::{CL100K_PATTERN, O200K_PATTERN, R50K_PATTERN};

/// How many leading bytes of `text` are ASCII letters or digits (16 at a time).
#[inline]
pub fn ascii_alnum_run(text: &[u8]) -> usize {
    let mut i = 0;
    while let Some(chunk) = text.get(i..i + 16) {
        let run = classes::ascii_run(chunk.try_into().unwrap(), classes::L | classes::N, false);
        i += run;
        if run < 16 {
            return i;
        }
    }
    i + text[i..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric())
        .count()
}

/// One of two iterators of the same items.
enum Either<A, B> {
    Left(A),
    Right(B),
}

impl<T, A: Iterator<Item = T>, B: Iterator<Item = T>> Iterator for Either<A, B> {
    type Item = T;

    #[inline(always)]
    fn next(&mut self) -> Option<T> {
        match self {
            Either::Left(a) => a.next(),
            Either::Right(b) => b.next(),
        }
    }
}

/// A split pattern, compiled.
#[derive(Clone, Debug)]
pub enum Pretokenizer {
    /// One of the official patterns, by a hand-written scanner.
    Official(Official, &'static str),
    /// Any pattern, through the regex engine.
    Regex(RegexSplit),
}

impl Pretokenizer {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Self> {
        let official = [
            (Official::R50k, R50K_PATTERN),
            (Official::Cl100k, CL100K_PATTERN),
            (Official::O200k, O200K_PATTERN),
        ];
        Ok(match official.into_iter().find(|&(_, p)| p == pattern) {
            Some((scanner, p)) => Pretokenizer::Official(scanner, p),
            None => Pretokenizer::Regex(RegexSplit::new(pattern)?),
        })
    }

    /// The pattern this pre-tokenizer implements.
    pub fn pattern(&self) -> &str {
        match self {
            Pretokenizer::Official(_, p) => p,
            Pretokenizer::Regex(r) => r.pattern(),
        }
    }

    /// Calls `f` with each piece of `text`, in order; the pieces cover the matched parts of
    /// `text` (for the official patterns, all of it).
    #[inline]
    pub fn for_each_piece<'t>(&self, text: &'t str, mut f: impl FnMut(&'t str)) -> Result<()> {
        // One loop and one call of `f` for both kinds, so that `f` (the encoder's step for
        // each piece) is inlined into it.
        let pieces = match self {
            Pretokenizer::Official(scanner, _) => Either::Left(scanner.pieces(text).map(Ok)),
            Pretokenizer::Regex(r) => Either::Right(r.pieces(text)),
        };
        for piece in pieces {
            f(piece?);
        }
        Ok(())
    }

    /// Whether [`safe_cut`] points are piece boundaries for this pre-tokenizer (true for the
    /// official patterns).
    pub fn cuts_are_safe(&self) -> bool {
        matches!(self, Pretokenizer::Official(..))
    }

    /// The pieces of `text` as a vector (for tests and tools; the encoder uses
    /// [`Pretokenizer::for_each_piece`]).
    pub fn pieces<'t>(&self, text: &'t str) -> Result<Vec<&'t str>> {
        let mut out = Vec::new();
        self.for_each_piece(text, |p| out.push(p))?;
        Ok(out)
    }
}

/// The first position at or after `from` that follows a `\n` and holds an ASCII letter: a
/// place where the official patterns can cut a text into parts scanned separately.
///
/// No piece of the three official patterns contains `\n` followed by a letter (the letter
/// alternatives never take `\r`/`\n` as their prefix, the whitespace and punctuation ones
/// never continue past a newline into a letter), and none looks behind, so a piece starts at
/// such a position and the pieces after it do not depend on the text before. The pieces
/// before it may look one character ahead (`(?!\S)`, `$`), so a part must be scanned together
/// with the first character after it and the piece that starts there dropped; then its pieces
/// are exactly those of the whole text. The training counts and the parallel encoder rely on
/// this, and their tests hold it to the sequential result on the corpora.
pub fn safe_cut(text: &[u8], from: usize) -> Option<usize> {
    let mut i = from.checked_sub(1)?;
    while let Some(j) = memchr::memchr(b'\n', &text[i..]) {
        let at = i + j + 1;
        match text.get(at) {
            Some(b) if b.is_ascii_alphabetic() => return Some(at),
            Some(_) => i = at,
            None => return None,
        }
    }
    None
}
