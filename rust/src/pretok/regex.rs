//! The general pre-tokenizer: any split pattern through fancy-regex.

use crate::error::{Error, Result};

/// A compiled split pattern.
#[derive(Clone, Debug)]
pub struct RegexSplit {
    pattern: String,
    regex: fancy_regex::Regex,
}

impl RegexSplit {
    /// Compiles `pattern`. The backtracking limit is lifted: the official patterns backtrack
    /// once per character of a long whitespace run (`\s*[\r\n]` on a megabyte of spaces),
    /// which is linear, and the default limit would turn such input into an error. The
    /// engine's backtracking *stack* stays bounded (a million entries, fixed in fancy-regex),
    /// so a custom pattern can still fail on a run of about a million characters; that is an
    /// error naming the position, never a panic. The official patterns never come here.
    pub fn new(pattern: &str) -> Result<Self> {
        let regex = fancy_regex::RegexBuilder::new(pattern)
            .backtrack_limit(usize::MAX)
            .build()
            .map_err(|e| Error::Pattern(e.to_string()))?;
        Ok(RegexSplit {
            pattern: pattern.to_string(),
            regex,
        })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The non-empty matches of the pattern in `text` (an empty match carries no text and
    /// BPE has nothing to do with it).
    pub fn pieces<'r, 't>(&'r self, text: &'t str) -> impl Iterator<Item = Result<&'t str>> + 'r
    where
        't: 'r,
    {
        self.regex.find_iter(text).filter_map(|m| match m {
            Ok(m) if m.as_str().is_empty() => None,
            Ok(m) => Some(Ok(m.as_str())),
            Err(e) => Some(Err(Error::Split {
                pos: 0,
                msg: e.to_string(),
            })),
        })
    }
}
