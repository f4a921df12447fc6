//! The byte-pair merge of one piece, with tiktoken's semantics: start from single bytes and
//! repeatedly merge the adjacent pair whose concatenation has the lowest rank, the leftmost
//! pair on ties, until no adjacent pair is a token.
//!
//! Two implementations of the same rule:
//! - [`merge_small`]: a flat array scanned for the minimum on each step, O(n·m) for n bytes
//!   and m merges. For the short pieces that make up almost all text it beats anything with
//!   a heap, and it allocates nothing (the scratch vector is reused).
//! - [`merge_large`]: a linked list of parts plus a binary heap of candidate pairs ordered
//!   by (rank, start), so each merge costs O(log n) and a piece of n bytes O(n log n). Stale
//!   heap entries are skipped by checking them against the part's current pair rank.
//!
//! Both ask pair ranks of the per-thread [`PairMemo`] before hashing bytes into the
//! vocabulary (CJK runs, which take the heap path, repeat the same pairs many times).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::huge::HugeSlice;
use crate::vocab::{Rank, Vocab};

/// Pieces longer than this take the heap path.
pub const SMALL_PIECE_MAX: usize = 64;

const NONE: Rank = Rank::MAX;

/// One part of a piece during the merge: where it starts, its token id, and the rank of the
/// token that merging it with the next part would make (`NONE` if that is not a token).
#[derive(Clone, Copy)]
pub struct Part {
    start: u32,
    id: Rank,
    pair: Rank,
}

#[inline]
fn pair_rank(vocab: &Vocab, piece: &[u8], start: usize, end: usize) -> Rank {
    if end - start > vocab.max_token_len() {
        return NONE;
    }
    vocab.rank(&piece[start..end]).unwrap_or(NONE)
}

/// A direct-mapped memo of `(left id, right id) -> rank of their concatenation`, kept per
/// thread: the same pairs come up again and again while merging, and this table, sized to
/// stay in L2, answers them instead of hashing bytes into the vocabulary's index. Exact: a
/// slot holds the full pair, and the rank of a concatenation depends on nothing else.
/// (The long-piece search keeps a second one for another fact of a pair alone: whether it
/// is valid.)
pub struct PairMemo {
    slots: HugeSlice<(u64, Rank)>,
    shift: u32,
}

impl Default for PairMemo {
    fn default() -> Self {
        Self::with_slots(1 << 14)
    }
}

impl PairMemo {
    fn with_slots(n: usize) -> Self {
        PairMemo {
            // written, not calloc'd: see `HugeSlice::zeroed`
            slots: HugeSlice::zeroed(n),
            shift: 64 - n.trailing_zeros(),
        }
    }

    /// Sizes the memo for a vocabulary of `n_tokens` (a no-op once it is): a larger vocabulary
    /// meets more distinct pairs. Measured, first pass over the multilingual corpus: o200k
    /// gains 8% from 16k slots (256 KiB) to 64k (1 MiB), and 256k slots lose; gpt2 (50k
    /// tokens, 32k slots) loses 12% at 64k, and Mistral's 32k pieces (SentencePiece BPE,
    /// which keeps the default 16k) 13%.
    pub fn fit(&mut self, n_tokens: usize) {
        let n = (n_tokens / 2).next_power_of_two().clamp(1 << 14, 1 << 16);
        if self.slots.len() != n {
            *self = Self::with_slots(n);
        }
    }

    /// The memoized value of the pair `(left, right)`, computed by `f` on a miss. (One memo
    /// serves one vocabulary: the per-thread caches are per encoding.)
    #[inline(always)]
    pub fn get_or(&mut self, left: Rank, right: Rank, f: impl FnOnce() -> Rank) -> Rank {
        let key = Self::key(left, right);
        let slot = self.slot(key);
        let (k, r) = self.slots[slot];
        if k == key {
            return r;
        }
        let r = f();
        self.slots[slot] = (key, r);
        r
    }

    /// The pair's key, complemented so that no pair has the empty slot's key 0 (ids are
    /// below `NONE`).
    #[inline(always)]
    fn key(left: Rank, right: Rank) -> u64 {
        !((left as u64) << 32 | right as u64)
    }

    #[inline(always)]
    fn slot(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    #[inline(always)]
    fn rank(
        &mut self,
        vocab: &Vocab,
        piece: &[u8],
        start: usize,
        end: usize,
        left: Rank,
        right: Rank,
    ) -> Rank {
        self.get_or(left, right, || pair_rank(vocab, piece, start, end))
    }
}

/// Merges `piece` (not empty) with whichever of the two suits its length.
pub fn merge(
    vocab: &Vocab,
    piece: &[u8],
    parts: &mut Vec<Part>,
    memo: &mut PairMemo,
    out: &mut Vec<Rank>,
) {
    if piece.len() <= SMALL_PIECE_MAX {
        merge_small(vocab, piece, parts, memo, out);
    } else {
        merge_large(vocab, piece, memo, out);
    }
}

/// Merges `piece` (not empty) and appends its ids to `out`. `parts` is scratch space.
pub fn merge_small(
    vocab: &Vocab,
    piece: &[u8],
    parts: &mut Vec<Part>,
    memo: &mut PairMemo,
    out: &mut Vec<Rank>,
) {
    let n = piece.len();
    parts.clear();
    parts.extend((0..n).map(|i| Part {
        start: i as u32,
        id: vocab.byte_rank(piece[i]),
        pair: NONE,
    }));
    let byte_pairs = vocab.byte_pair_ranks();
    for i in 0..n - 1 {
        parts[i].pair = byte_pairs[(piece[i] as usize) << 8 | piece[i + 1] as usize];
    }
    // end of part k (the start of the next one, or the end of the piece)
    let end = |parts: &[Part], k: usize| parts.get(k + 1).map_or(n, |p| p.start as usize);
    loop {
        let mut best = NONE;
        let mut at = 0;
        for (k, p) in parts.iter().enumerate() {
            if p.pair < best {
                best = p.pair;
                at = k;
            }
        }
        if best == NONE {
            break;
        }
        parts[at].id = best;
        parts.remove(at + 1);
        let start = parts[at].start as usize;
        parts[at].pair = if at + 1 < parts.len() {
            memo.rank(
                vocab,
                piece,
                start,
                end(parts, at + 1),
                best,
                parts[at + 1].id,
            )
        } else {
            NONE
        };
        if at > 0 {
            let prev = parts[at - 1].start as usize;
            parts[at - 1].pair =
                memo.rank(vocab, piece, prev, end(parts, at), parts[at - 1].id, best);
        }
    }
    out.extend(parts.iter().map(|p| p.id));
}

/// Merges `piece` in O(n log n) and appends its ids to `out`.
pub fn merge_large(vocab: &Vocab, piece: &[u8], memo: &mut PairMemo, out: &mut Vec<Rank>) {
    let n = piece.len();
    // Parts are identified by their start byte; `next[s]` is the start of the following part
    // (n at the end), `prev[s]` the start of the preceding one (NONE at the beginning).
    let mut next: Vec<u32> = (1..=n as u32).collect();
    let mut prev: Vec<u32> = (0..n as u32).map(|i| i.wrapping_sub(1)).collect();
    let mut id: Vec<Rank> = piece.iter().map(|&b| vocab.byte_rank(b)).collect();
    let mut pair: Vec<Rank> = (0..n)
        .map(|i| {
            if i + 1 < n {
                memo.rank(vocab, piece, i, i + 2, id[i], id[i + 1])
            } else {
                NONE
            }
        })
        .collect();
    let mut heap: BinaryHeap<Reverse<(Rank, u32)>> = pair
        .iter()
        .enumerate()
        .filter(|(_, &r)| r != NONE)
        .map(|(i, &r)| Reverse((r, i as u32)))
        .collect();

    while let Some(Reverse((rank, s))) = heap.pop() {
        let s = s as usize;
        if pair[s] != rank {
            continue; // stale: the part changed or was absorbed since this entry was pushed
        }
        let right = next[s] as usize;
        id[s] = rank;
        pair[right] = NONE;
        next[s] = next[right];
        let after = next[s] as usize;
        if after < n {
            prev[after] = s as u32;
            pair[s] = memo.rank(vocab, piece, s, next[after] as usize, rank, id[after]);
            if pair[s] != NONE {
                heap.push(Reverse((pair[s], s as u32)));
            }
        } else {
            pair[s] = NONE;
        }
        let p = prev[s];
        if p != NONE {
            let p = p as usize;
            pair[p] = memo.rank(vocab, piece, p, after, id[p], rank);
            if pair[p] != NONE {
                heap.push(Reverse((pair[p], p as u32)));
            }
        }
    }
    let mut s = 0;
    while s < n {
        out.push(id[s]);
        s = next[s] as usize;
    }
}
