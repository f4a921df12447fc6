//! Pre-tokenizers: split text into the pieces that BPE encodes one at a time.
//!
//! [`Pretokenizer::new`] takes any split pattern. The three official patterns get
//! hand-written linear scanners (`official.rs`, several times faster than the regex); any
//! other pattern goes through a backtracking regex engine (fancy-regex, the engine tiktoken
//! uses), so lookahead and possessive forms behave exactly as in tiktoken.

mod classes;
mod official;
mod regex;

pub use self::official::Official;
pub use self::regex::RegexSplit;

use crate::error::Result;
use crate::registry::{CL100K_PATTERN, O200K_PATTERN, R50K_PATTERN};

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
    pub fn for_each_piece<'t>(&self, text: &'t str, f: impl FnMut(&'t str)) -> Result<()> {
        match self {
            Pretokenizer::Official(scanner, _) => {
                scanner.for_each_piece(text, f);
                Ok(())
            }
            Pretokenizer::Regex(r) => r.for_each_piece(text, f),
        }
    }

    /// The pieces of `text` as a vector (for tests and tools; the encoder uses
    /// [`Pretokenizer::for_each_piece`]).
    pub fn pieces<'t>(&self, text: &'t str) -> Result<Vec<&'t str>> {
        let mut out = Vec::new();
        self.for_each_piece(text, |p| out.push(p))?;
        Ok(out)
    }
}
