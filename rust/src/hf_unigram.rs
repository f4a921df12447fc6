//! Hugging Face's Unigram model, as `tokenizer.json` files of converted SentencePiece models
//! (T5, ALBERT, XLM-R, ...) hold it.
//!
//! This is not sentencepiece's encoder (`spm::unigram`), and the two can disagree on the same
//! model: HF runs its Viterbi on each pre-tokenized word separately, sums path scores in f64
//! from 0 at the word's start, ranks every vocabulary entry (control and byte pieces too, with
//! their scores as written), scores a character no entry covers `min_score - 10` as unknown,
//! fuses runs of unknown pieces, and only then looks each resulting string up again (byte
//! fallback to `<0xXX>` tokens, else the unknown id). Ties go to the first candidate: by
//! start position, then length, a later one replacing the best only when strictly greater.

use crate::cache::with_span_cache;
use crate::error::{Error, Result};
use crate::pipeline::TokenTable;
use crate::trie::Trie;

const UNSET: u32 = u32::MAX;

/// HF's `K_UNK_PENALTY`.
const UNK_PENALTY: f64 = 10.0;

/// The best path ending at one byte position of the word.
#[derive(Clone, Copy)]
struct Best {
    score: f64,
    start: u32,
    id: u32,
}

thread_local! {
    /// Per-thread Viterbi table, reused across words.
    static SCRATCH: std::cell::RefCell<Vec<Best>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub struct HfUnigram {
    tokens: TokenTable,
    /// By id.
    scores: Vec<f64>,
    /// Every entry; a token given twice holds its last id (HF's token -> id map).
    trie: Trie,
    min_score: f64,
    unk: Option<u32>,
    /// The id of each `<0xXX>` token, when byte fallback is on.
    bytes: Option<Box<[Option<u32>; 256]>>,
    /// Identity of this model's per-thread word caches.
    cache_owner: u64,
}

impl HfUnigram {
    /// `vocab` is `(token, score)` by id.
    pub fn new(
        vocab: Vec<(String, f64)>,
        unk: Option<u32>,
        byte_fallback: bool,
        origin: &str,
    ) -> Result<Self> {
        if let Some(u) = unk {
            if u as usize >= vocab.len() {
                return Err(Error::invalid(
                    origin,
                    format!(
                        "Unigram unk_id {u} is not in the vocabulary ({} tokens)",
                        vocab.len()
                    ),
                ));
            }
        }
        let scores: Vec<f64> = vocab.iter().map(|(_, s)| *s).collect();
        let min_score = scores.iter().copied().fold(f64::INFINITY, f64::min);
        let pairs: Vec<(String, u32)> = vocab
            .into_iter()
            .enumerate()
            .map(|(id, (t, _))| (t, id as u32))
            .collect();
        let trie = Trie::new(pairs.iter().map(|(t, id)| (t.as_bytes(), *id)));
        let tokens = TokenTable::new(pairs);
        let bytes = byte_fallback.then(|| {
            Box::new(std::array::from_fn(|b| {
                tokens.token_to_id(&format!("<0x{b:02X}>"))
            }))
        });
        Ok(HfUnigram {
            tokens,
            scores,
            trie,
            min_score,
            unk,
            bytes,
            cache_owner: crate::cache::new_owner(),
        })
    }

    pub fn tokens(&self) -> &TokenTable {
        &self.tokens
    }

    pub fn unk_id(&self) -> Option<u32> {
        self.unk
    }

    fn missing_unk(word: &str) -> Error {
        Error::invalid(
            "Unigram model",
            format!("{word:?} has a character no token covers, and the model has no unk_id"),
        )
    }

    /// Appends `(id, start byte, end byte)` of each token of `word` (non-empty) to `out`.
    /// A word's tokens depend on it alone, so they come from the per-thread word cache.
    pub fn tokenize(&self, word: &str, out: &mut Vec<(u32, u32, u32)>) -> Result<()> {
        with_span_cache(self.cache_owner, |cache| {
            cache.get_or_make(word.as_bytes(), out, |out| {
                SCRATCH.with_borrow_mut(|best| {
                    self.viterbi(word, best)?;
                    self.backtrack(word, best, out);
                    Ok(())
                })
            })
        })
    }

    fn viterbi(&self, word: &str, best: &mut Vec<Best>) -> Result<()> {
        let bytes = word.as_bytes();
        best.clear();
        best.resize(
            bytes.len() + 1,
            Best {
                score: 0.0,
                start: UNSET,
                id: 0,
            },
        );
        let unk_score = self.min_score - UNK_PENALTY;
        for (start, c) in word.char_indices() {
            let here = best[start].score;
            let char_end = start + c.len_utf8();
            let mut single = false;
            let mut node = Trie::ROOT;
            for (end, &b) in bytes.iter().enumerate().skip(start) {
                let Some(next) = self.trie.step(node, b) else {
                    break;
                };
                node = next;
                let Some(id) = self.trie.value(node) else {
                    continue;
                };
                let candidate = self.scores[id as usize] + here;
                let target = &mut best[end + 1];
                if target.start == UNSET || candidate > target.score {
                    *target = Best {
                        score: candidate,
                        start: start as u32,
                        id,
                    };
                }
                single |= end + 1 == char_end;
            }
            if !single {
                let target = &mut best[char_end];
                let candidate = unk_score + here;
                if target.start == UNSET || candidate > target.score {
                    *target = Best {
                        score: candidate,
                        start: start as u32,
                        id: self.unk.ok_or_else(|| Self::missing_unk(word))?,
                    };
                }
            }
        }
        Ok(())
    }

    /// Walks the best path back, fusing runs of unknown pieces, and writes the tokens.
    fn backtrack(&self, word: &str, best: &[Best], out: &mut Vec<(u32, u32, u32)>) {
        let mark = out.len();
        let mut end = word.len();
        // the end of a run of unknown pieces being fused, if any
        let mut unk_end = None;
        while end > 0 {
            let node = best[end];
            let start = node.start as usize;
            if Some(node.id) == self.unk {
                unk_end.get_or_insert(end);
            } else {
                if let Some(e) = unk_end.take() {
                    self.push_string(word, end, e, out);
                }
                out.push((node.id, start as u32, end as u32));
            }
            end = start;
        }
        if let Some(e) = unk_end {
            self.push_string(word, 0, e, out);
        }
        out[mark..].reverse();
    }

    /// Pushes the token(s) of a fused run of unknown pieces, in reverse order (the caller
    /// reverses the whole word): the run's own entry if it is one, else its bytes' `<0xXX>`
    /// tokens (each spanning the run) if all exist, else the unknown id.
    fn push_string(&self, word: &str, start: usize, end: usize, out: &mut Vec<(u32, u32, u32)>) {
        let s = &word[start..end];
        let span = |id| (id, start as u32, end as u32);
        if let Some(id) = self.tokens.token_to_id(s) {
            out.push(span(id));
            return;
        }
        if let Some(bytes) = &self.bytes {
            if s.bytes().all(|b| bytes[b as usize].is_some()) {
                out.extend(s.bytes().rev().map(|b| span(bytes[b as usize].unwrap())));
                return;
            }
        }
        // only unknown pieces fuse, so the model has an unk id here
        out.push(span(self.unk.unwrap_or(0)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(byte_fallback: bool) -> HfUnigram {
        let mut vocab: Vec<(String, f64)> = [
            ("<unk>", 0.0),
            ("a", -1.0),
            ("b", -2.0),
            ("ab", -2.5),
            ("c", -1.0),
            ("abc", -4.0),
        ]
        .iter()
        .map(|(t, s)| (t.to_string(), *s))
        .collect();
        if byte_fallback {
            vocab.extend((0..=255u8).map(|b| (format!("<0x{b:02X}>"), 0.0)));
        }
        HfUnigram::new(vocab, Some(0), byte_fallback, "test").unwrap()
    }

    fn ids(m: &HfUnigram, word: &str) -> Vec<(u32, u32, u32)> {
        let mut out = Vec::new();
        m.tokenize(word, &mut out).unwrap();
        out
    }

    #[test]
    fn best_path_and_ties() {
        let m = model(false);
        // "ab" (-2.5) beats "a"+"b" (-3.0); "ab"+"c" (-3.5) beats "abc" (-4.0)
        assert_eq!(ids(&m, "abc"), vec![(3, 0, 2), (4, 2, 3)]);
    }

    #[test]
    fn unknown_runs_fuse_then_fall_back_to_bytes() {
        let m = model(false);
        assert_eq!(ids(&m, "axyb"), vec![(1, 0, 1), (0, 1, 3), (2, 3, 4)]);
        let m = model(true);
        let x = m.tokens().token_to_id("<0x78>").unwrap();
        let y = m.tokens().token_to_id("<0x79>").unwrap();
        assert_eq!(
            ids(&m, "axyb"),
            vec![(1, 0, 1), (x, 1, 3), (y, 1, 3), (2, 3, 4)]
        );
    }

    #[test]
    fn no_unk_id_is_an_error() {
        let m = HfUnigram::new(vec![("a".into(), -1.0)], None, false, "t").unwrap();
        let mut out = Vec::new();
        assert!(m.tokenize("ax", &mut out).is_err());
        assert!(HfUnigram::new(vec![("a".into(), -1.0)], Some(3), false, "t").is_err());
    }
}
