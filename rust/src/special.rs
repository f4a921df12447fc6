//! Special tokens (`<|endoftext|>`, ...): matched in raw text by an Aho-Corasick automaton,
//! not a regex, so finding them costs one linear scan whatever their number.

use aho_corasick::{AhoCorasick, Input, MatchKind};
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::vocab::Rank;

/// The special tokens of an encoding: strings with ids outside the mergeable vocabulary.
#[derive(Clone, Debug, Default)]
pub struct SpecialTokens {
    tokens: Vec<(String, Rank)>,
    by_id: FxHashMap<Rank, usize>,
    by_text: FxHashMap<String, usize>,
    automaton: Option<AhoCorasick>,
}

/// A subset of an encoding's special tokens (by index into [`SpecialTokens::tokens`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialSet(Vec<bool>);

impl SpecialSet {
    #[inline]
    pub fn contains(&self, index: usize) -> bool {
        self.0.get(index).copied().unwrap_or(false)
    }

    pub fn is_empty(&self) -> bool {
        !self.0.iter().any(|&b| b)
    }
}

/// Where a special token was found: byte range and index into [`SpecialTokens::tokens`].
#[derive(Clone, Copy, Debug)]
pub struct SpecialMatch {
    pub start: usize,
    pub end: usize,
    pub index: usize,
}

impl SpecialTokens {
    /// Builds the set; `origin` names the encoding in errors.
    pub fn new(tokens: Vec<(String, Rank)>, origin: &str) -> Result<Self> {
        let mut by_id = FxHashMap::default();
        let mut by_text = FxHashMap::default();
        for (i, (text, id)) in tokens.iter().enumerate() {
            if text.is_empty() {
                return Err(Error::invalid(
                    origin,
                    "a special token is the empty string".into(),
                ));
            }
            if by_text.insert(text.clone(), i).is_some() {
                return Err(Error::invalid(
                    origin,
                    format!("special token {text:?} is listed twice"),
                ));
            }
            if let Some(j) = by_id.insert(*id, i) {
                return Err(Error::invalid(
                    origin,
                    format!(
                        "special tokens {:?} and {text:?} share id {id}",
                        tokens[j].0
                    ),
                ));
            }
        }
        // Leftmost-longest: where one special token is a prefix of another, the longer wins.
        let automaton = if tokens.is_empty() {
            None
        } else {
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(tokens.iter().map(|(t, _)| t.as_bytes()))
                .map_err(|e| Error::invalid(origin, format!("special tokens: {e}")))?;
            Some(ac)
        };
        Ok(SpecialTokens {
            tokens,
            by_id,
            by_text,
            automaton,
        })
    }

    /// `(text, id)` of every special token, in the order given.
    pub fn tokens(&self) -> &[(String, Rank)] {
        &self.tokens
    }

    /// The special token with this id, as bytes.
    #[inline]
    pub fn bytes_of(&self, id: Rank) -> Option<&[u8]> {
        self.by_id.get(&id).map(|&i| self.tokens[i].0.as_bytes())
    }

    /// The largest id, if any.
    pub fn max_id(&self) -> Option<Rank> {
        self.tokens.iter().map(|&(_, id)| id).max()
    }

    /// The set of the named tokens; names that are not special tokens are ignored, as in
    /// tiktoken.
    pub fn set<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> SpecialSet {
        let mut set = vec![false; self.tokens.len()];
        for name in names {
            if let Some(&i) = self.by_text.get(name) {
                set[i] = true;
            }
        }
        SpecialSet(set)
    }

    /// The leftmost(-longest) special token starting at or after byte `from`.
    #[inline]
    pub fn find(&self, text: &str, from: usize) -> Option<SpecialMatch> {
        let ac = self.automaton.as_ref()?;
        let m = ac.find(Input::new(text).span(from..text.len()))?;
        Some(SpecialMatch {
            start: m.start(),
            end: m.end(),
            index: m.pattern().as_usize(),
        })
    }
}
