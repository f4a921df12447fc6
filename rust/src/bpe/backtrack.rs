//! Long pieces in linear time: a backtracking search over the vocabulary that gives exactly
//! tiktoken's merge.
//!
//! # Why it is exact
//!
//! Write P(s) for tiktoken's merge of the bytes `s` (lowest-ranked adjacent pair first, the
//! leftmost on ties). Call a token `t` *reachable* when P(bytes(t)) = [t], and an adjacent
//! pair `(a, b)` *valid* when P(bytes(a) ++ bytes(b)) = [a, b]. Then for every `s`:
//!
//! > P(s) = [t1, …, tk] exactly when every ti is reachable and every (ti, ti+1) is valid.
//!
//! Only if: merges inside the spans of ti and ti+1 never see anything outside them but the
//! pairs across their outer edges, which never merge, so the merges inside the two spans are
//! those of P(bytes(ti) ++ bytes(ti+1)) in the same order. If: take the first merge across a
//! boundary of the ti; until then the two spans at that boundary went through the same states
//! as P of their concatenation alone, which would make that merge too, so (ti, ti+1) is not
//! valid. Hence no merge crosses a boundary, and each span ends as its own token.
//! (No property of the ranks is assumed: tiktoken's ranks are not monotone in merge order,
//! e.g. `" the"` ranks below `"the"`, so the split-tree shortcut of other backtracking
//! encoders is not used; validity is P itself, memoized per pair.)
//!
//! So a sequence of reachable tokens with valid neighbours that spells the piece is THE
//! answer, and a depth-first search for one (longest token first) finds it. The search is
//! linear: every prefix of a valid sequence is P of that prefix of the text (the theorem
//! again), so the token that ends at a position is the same whichever way the search got
//! there, and a position from which the search once failed to go on can be marked dead for
//! good. Every backtrack kills a position, so a piece of n bytes has at most n backtracks
//! and 2n visits, each trying at most `max_token_len` candidates: O(n · max_token_len)
//! checks, mostly memo hits. The candidates at a position come from a walk of a small bit filter
//! of all token prefixes, so only lengths that may be tokens are looked up.
//!
//! Measured in Rust, one call each, the filter's first build included (2.8 ms for cl100k,
//! 4.9 ms for o200k), ms with the heap merge → with the search, cl100k / o200k:
//!
//! | input | heap | search |
//! |---|---|---|
//! | 1 MB of spaces, then a letter | 268 / 270 | 9.1 / 10.0 |
//! | 200 KB of "é" | 10.9 / 9.5 | 3.4 / 2.7 |
//! | 210 KB of "中" | 11.8 / 11.0 | 1.9 / 1.7 |
//! | 1 MB of random lowercase letters (one piece) | 278 / 322 | 167 / 206 |
//!
//! The last is bound by the validity checks of pairs never seen before (about half the
//! time, each a merge of the two tokens' bytes).

use super::merge::{self, PairMemo, Part};
use crate::vocab::{Rank, Vocab};

/// Pieces from this length on are encoded by the search. Shorter ones merge faster, and
/// ordinary text (no piece of the shared corpora is this long) never pays for the filter.
pub const LONG_PIECE_MIN: usize = 256;

/// log2 of the filter's size in bits (2 MiB; about 10% false positives for o200k's 1.4M
/// prefixes, which cost one wasted vocabulary probe each).
const FILTER_BITS: u32 = 24;
const SEED: u64 = 0xcbf2_9ce4_8422_2325;

/// A Bloom-style filter of the vocabulary: one bit for every prefix of every token, one for
/// every whole token. Built on first use (a few ms for o200k), only for text with long pieces.
pub struct PrefixFilter {
    bits: Box<[u64]>,
}

#[inline(always)]
fn extend(h: u64, b: u8) -> u64 {
    (h ^ b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[inline(always)]
fn prefix_bit(h: u64) -> usize {
    (h >> (64 - FILTER_BITS)) as usize
}

#[inline(always)]
fn token_bit(h: u64) -> usize {
    (h.wrapping_mul(0xff51_afd7_ed55_8ccd) >> (64 - FILTER_BITS)) as usize
}

impl PrefixFilter {
    pub fn new(vocab: &Vocab) -> Self {
        let mut filter = PrefixFilter {
            bits: vec![0u64; 1 << (FILTER_BITS - 6)].into_boxed_slice(),
        };
        for (_, token) in vocab.iter() {
            let mut h = SEED;
            for &b in token {
                h = extend(h, b);
                filter.set(prefix_bit(h));
            }
            filter.set(token_bit(h));
        }
        filter
    }

    #[inline(always)]
    fn set(&mut self, bit: usize) {
        self.bits[bit >> 6] |= 1 << (bit & 63);
    }

    #[inline(always)]
    fn has(&self, bit: usize) -> bool {
        self.bits[bit >> 6] >> (bit & 63) & 1 != 0
    }

    /// Replaces `lens` with the lengths (ascending) at which `text` may start with a token:
    /// a superset of the true ones.
    fn candidates(&self, text: &[u8], max_len: usize, lens: &mut Vec<u32>) {
        lens.clear();
        let mut h = SEED;
        for (i, &b) in text.iter().take(max_len).enumerate() {
            h = extend(h, b);
            if !self.has(prefix_bit(h)) {
                break;
            }
            if self.has(token_bit(h)) {
                lens.push(i as u32 + 1);
            }
        }
    }
}

/// Per-thread memo and scratch space of the search (allocated when a thread first meets a
/// long piece).
#[derive(Default)]
pub struct LongMemo {
    /// (left id, right id) -> 1 if the pair is valid, 0 if not
    valid: PairMemo,
    bytes: Vec<u8>,
    ids: Vec<Rank>,
    parts: Vec<Part>,
    /// one bit per position of the piece: the search failed to go on from there
    dead: Vec<u64>,
    lens: Vec<u32>,
}

/// Whether tiktoken's merge of `bytes` gives exactly `want` (`parts` and `ids`: scratch).
fn merges_to(
    vocab: &Vocab,
    bytes: &[u8],
    want: &[Rank],
    pairs: &mut PairMemo,
    parts: &mut Vec<Part>,
    ids: &mut Vec<Rank>,
) -> bool {
    ids.clear();
    merge::merge(vocab, bytes, parts, pairs, ids);
    ids == want
}

impl LongMemo {
    fn valid(&mut self, vocab: &Vocab, pairs: &mut PairMemo, a: Rank, b: Rank) -> bool {
        let LongMemo {
            valid,
            bytes,
            ids,
            parts,
            ..
        } = self;
        let ok = valid.get_or(a, b, || {
            bytes.clear();
            bytes.extend_from_slice(vocab.token(a).expect("a token"));
            bytes.extend_from_slice(vocab.token(b).expect("a token"));
            merges_to(vocab, bytes, &[a, b], pairs, parts, ids).into()
        });
        ok != 0
    }

    fn reachable(&mut self, vocab: &Vocab, pairs: &mut PairMemo, t: Rank) -> bool {
        let bytes = vocab.token(t).expect("a token");
        merges_to(vocab, bytes, &[t], pairs, &mut self.parts, &mut self.ids)
    }

    fn is_dead(&self, pos: usize) -> bool {
        self.dead[pos >> 6] >> (pos & 63) & 1 != 0
    }

    fn kill(&mut self, pos: usize) {
        self.dead[pos >> 6] |= 1 << (pos & 63);
    }
}

/// Appends tiktoken's merge of `piece` to `out`, in time linear in its length.
pub fn encode_long(
    vocab: &Vocab,
    filter: &PrefixFilter,
    piece: &[u8],
    pairs: &mut PairMemo,
    memo: &mut LongMemo,
    out: &mut Vec<Rank>,
) {
    let n = piece.len();
    let base = out.len();
    memo.dead.clear();
    memo.dead.resize(n / 64 + 1, 0);
    let mut lens = std::mem::take(&mut memo.lens);
    let mut pos = 0;
    // after backtracking to `pos`: only tokens shorter than the one that failed
    let mut below = usize::MAX;
    while pos < n {
        filter.candidates(&piece[pos..], vocab.max_token_len(), &mut lens);
        let mut chosen = None;
        for &len in lens.iter().rev() {
            let end = pos + len as usize;
            if len as usize >= below || (end < n && memo.is_dead(end)) {
                continue;
            }
            let t = if len == 1 {
                vocab.byte_rank(piece[pos])
            } else {
                match vocab.rank(&piece[pos..end]) {
                    Some(t) => t,
                    None => continue, // a false positive of the filter
                }
            };
            // A valid pair's tokens are reachable (by the theorem, for the string they
            // spell), so only the first token needs its own check.
            let ok = match out.last() {
                Some(&prev) if out.len() > base => memo.valid(vocab, pairs, prev, t),
                _ => memo.reachable(vocab, pairs, t),
            };
            if ok {
                chosen = Some((end, t));
                break;
            }
        }
        match chosen {
            Some((end, t)) => {
                out.push(t);
                pos = end;
                below = usize::MAX;
            }
            None if out.len() > base => {
                memo.kill(pos);
                let last = out
                    .pop()
                    .and_then(|t| vocab.token(t))
                    .map_or(1, <[u8]>::len);
                below = last;
                pos -= last;
            }
            None => {
                // Unreachable (the merge itself is such a sequence), but never a wrong answer.
                debug_assert!(false, "no valid sequence for a piece of {n} bytes");
                merge::merge_large(vocab, piece, pairs, out);
                break;
            }
        }
    }
    memo.lens = lens;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(vocab: &Vocab, filter: &PrefixFilter, piece: &[u8]) {
        let (mut pairs, mut memo) = (PairMemo::default(), LongMemo::default());
        let mut want = Vec::new();
        merge::merge_large(vocab, piece, &mut pairs, &mut want);
        let mut got = vec![7];
        encode_long(vocab, filter, piece, &mut pairs, &mut memo, &mut got);
        assert_eq!(&got[1..], &want[..], "{:?}", String::from_utf8_lossy(piece));
    }

    fn encodings() -> Vec<(Vocab, PrefixFilter)> {
        ["gpt2", "cl100k_base", "o200k_base"]
            .iter()
            .map(|name| {
                let vocab = crate::registry::load(name).unwrap().vocab().clone();
                let filter = PrefixFilter::new(&vocab);
                (vocab, filter)
            })
            .collect()
    }

    #[test]
    fn equals_the_heap_merge_on_degenerate_runs() {
        let mut texts: Vec<Vec<u8>> = Vec::new();
        for unit in [
            " ", "\n", " \n", "  \n", "\t ", "é", "ж", "中", "ab", "=", "-", "😀",
        ] {
            for n in [1, 2, 3, 63, 64, 65, 127, 128, 129, 130, 257, 5000] {
                texts.push(unit.repeat(n).into_bytes());
            }
        }
        texts.push(
            b"x".repeat(100)
                .into_iter()
                .chain(b" ".repeat(300))
                .collect(),
        );
        texts.push((0..=255u8).cycle().take(3000).collect());
        for (vocab, filter) in &encodings() {
            for text in &texts {
                check(vocab, filter, text);
            }
        }
    }

    /// A vocabulary with unreachable tokens ("bc" merges before "ab" and "cd", so "abcd" and
    /// "abcdx" never come out of the merge), which the official ones do not have.
    fn tangled() -> (Vocab, PrefixFilter) {
        let mut pairs: Vec<(Vec<u8>, Rank)> = (0..=255u8).map(|b| (vec![b], b as Rank)).collect();
        for (i, t) in [
            "bc", "ab", "cd", "abcd", "da", "abcdx", "xa", "dab", "aa", "cda",
        ]
        .iter()
        .enumerate()
        {
            pairs.push((t.as_bytes().to_vec(), 256 + i as Rank));
        }
        let vocab = Vocab::from_pairs(pairs, "test").unwrap();
        let filter = PrefixFilter::new(&vocab);
        (vocab, filter)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        #[test]
        fn equals_the_heap_merge_around_unreachable_tokens(
            head in prop::sample::select(vec!["", "abcd", "abcdx", "xabcd"]),
            tail in "[abcdx]{0,100}",
        ) {
            let (vocab, filter) = tangled();
            check(&vocab, &filter, format!("{head}{tail}").as_bytes());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn equals_the_heap_merge(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just(" ".to_string()), Just("  ".to_string()), Just("\n".to_string()),
                    Just("e".to_string()), Just("th".to_string()), Just("é".to_string()),
                    Just("中".to_string()), Just("=".to_string()), Just("in".to_string()),
                    "[a-zA-Z0-9+/ ]{1,8}", "\\PC{1,3}",
                ],
                1..120,
            ),
        ) {
            thread_local! {
                static ENCODINGS: Vec<(Vocab, PrefixFilter)> = encodings();
            }
            let text = parts.concat();
            ENCODINGS.with(|encs| {
                for (vocab, filter) in encs {
                    check(vocab, filter, text.as_bytes());
                }
            });
        }
    }
}
