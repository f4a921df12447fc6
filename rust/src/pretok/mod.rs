//! Pre-tokenizers: split text into the pieces that BPE encodes one at a time.
//!
//! [`Pretokenizer::new`] takes any split pattern. The general path is a backtracking regex
//! engine (fancy-regex, the engine tiktoken uses), so lookahead and possessive forms behave
//! exactly as in tiktoken.

mod regex;

pub use self::regex::RegexSplit;

use crate::error::Result;

/// A split pattern, compiled.
#[derive(Clone, Debug)]
pub enum Pretokenizer {
    /// Any pattern, through the regex engine.
    Regex(RegexSplit),
}

impl Pretokenizer {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Self> {
        Ok(Pretokenizer::Regex(RegexSplit::new(pattern)?))
    }

    /// The pattern this pre-tokenizer implements.
    pub fn pattern(&self) -> &str {
        match self {
            Pretokenizer::Regex(r) => r.pattern(),
        }
    }

    /// Calls `f` with each piece of `text`, in order; the pieces cover the matched parts of
    /// `text` (for the official patterns, all of it).
    #[inline]
    pub fn for_each_piece(&self, text: &str, f: impl FnMut(&str)) -> Result<()> {
        match self {
            Pretokenizer::Regex(r) => r.for_each_piece(text, f),
        }
    }

    /// The pieces of `text` as a vector (for tests and tools; the encoder uses
    /// [`Pretokenizer::for_each_piece`]).
    pub fn pieces<'t>(&self, text: &'t str) -> Result<Vec<&'t str>> {
        let mut out = Vec::new();
        let base = text.as_ptr() as usize;
        self.for_each_piece(text, |p| {
            let start = p.as_ptr() as usize - base;
            out.push(&text[start..start + p.len()]);
        })?;
        Ok(out)
    }
}
