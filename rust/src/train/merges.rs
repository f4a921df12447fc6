//! The merge loop shared by the BPE and WordPiece trainers.
//!
//! Words are sequences of symbol ids with an occurrence count. Each step merges the most
//! frequent adjacent pair everywhere it occurs, left to right, as Sennrich et al. and Hugging
//! Face's `BpeTrainer` do. Work per step is proportional to the words that contain the pair,
//! not to the corpus:
//! - `pairs` holds the weighted count of every adjacent pair;
//! - `index` maps a pair to the words it was ever seen in (stale entries are harmless: a word
//!   that no longer holds the pair is left unchanged), so a step visits only those words;
//! - `heap` orders candidate pairs by (count, then the smaller pair) with lazy deletion: an
//!   entry whose count is out of date is re-queued with the current count when it surfaces.
//!   A pair whose count grows is pushed again, so the top entry, once current, is the best.
//!
//! Ties go to the pair `(a, b)` with the smallest `a`, then the smallest `b`: deterministic,
//! and the rule of Hugging Face's trainer, so both pick the same merges when their symbol ids
//! are ordered alike.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

/// Two adjacent symbols, packed as `a << 32 | b` so that integer order is pair order.
type Pair = u64;

fn pair(a: u32, b: u32) -> Pair {
    (u64::from(a) << 32) | u64::from(b)
}

fn halves(p: Pair) -> (u32, u32) {
    ((p >> 32) as u32, p as u32)
}

/// Words, their pair counts and the queue of candidate merges.
pub struct Merger {
    words: Vec<Vec<u32>>,
    counts: Vec<u64>,
    pairs: FxHashMap<Pair, i64>,
    index: FxHashMap<Pair, Vec<u32>>,
    heap: BinaryHeap<(u64, Reverse<Pair>)>,
}

impl Merger {
    /// Builds the pair counts of `words` (symbol ids, occurrence count).
    ///
    /// Complexity: O(total symbols).
    pub fn new(words: impl IntoIterator<Item = (Vec<u32>, u64)>) -> Self {
        let mut m = Merger {
            words: Vec::new(),
            counts: Vec::new(),
            pairs: FxHashMap::default(),
            index: FxHashMap::default(),
            heap: BinaryHeap::new(),
        };
        for (syms, n) in words {
            if syms.len() < 2 {
                continue; // no pair to count, nothing to merge
            }
            let w = m.words.len() as u32;
            for win in syms.windows(2) {
                let p = pair(win[0], win[1]);
                *m.pairs.entry(p).or_insert(0) += n as i64;
                let at = m.index.entry(p).or_default();
                if at.last() != Some(&w) {
                    at.push(w);
                }
            }
            m.words.push(syms);
            m.counts.push(n);
        }
        m.heap = m
            .pairs
            .iter()
            .map(|(&p, &c)| (c as u64, Reverse(p)))
            .collect();
        m
    }

    /// The most frequent pair and its count, or `None` when no pair is left.
    pub fn best(&mut self) -> Option<((u32, u32), u64)> {
        while let Some(&(count, Reverse(p))) = self.heap.peek() {
            let now = self.pairs.get(&p).copied().unwrap_or(0).max(0) as u64;
            if now == count {
                return Some((halves(p), count));
            }
            self.heap.pop();
            if now > 0 {
                self.heap.push((now, Reverse(p)));
            }
        }
        None
    }

    /// Replaces every occurrence of `(a, b)`, left to right, by `merged`.
    ///
    /// Complexity: O(symbols of the words that hold the pair).
    pub fn merge(&mut self, (a, b): (u32, u32), merged: u32) {
        let target = pair(a, b);
        let Some(mut at) = self.index.remove(&target) else {
            return;
        };
        at.sort_unstable();
        at.dedup();
        let mut grown: Vec<Pair> = Vec::new();
        let Merger {
            words,
            counts,
            pairs,
            index,
            ..
        } = self;
        let mut change = |p: Pair, by: i64, w: u32| {
            *pairs.entry(p).or_insert(0) += by;
            if by > 0 {
                let list = index.entry(p).or_default();
                if list.last() != Some(&w) {
                    list.push(w);
                }
                grown.push(p);
            }
        };
        for &w in &at {
            let syms = &mut words[w as usize];
            let n = counts[w as usize] as i64;
            let len = syms.len();
            let (mut r, mut out) = (0, 0);
            while r < len {
                if r + 1 < len && syms[r] == a && syms[r + 1] == b {
                    if out > 0 {
                        let prev = syms[out - 1];
                        change(pair(prev, a), -n, w);
                        change(pair(prev, merged), n, w);
                    }
                    change(target, -n, w);
                    if r + 2 < len {
                        let next = syms[r + 2];
                        change(pair(b, next), -n, w);
                        change(pair(merged, next), n, w);
                    }
                    syms[out] = merged;
                    r += 2;
                } else {
                    syms[out] = syms[r];
                    r += 1;
                }
                out += 1;
            }
            syms.truncate(out);
        }
        self.pairs.remove(&target);
        grown.sort_unstable();
        grown.dedup();
        for p in grown {
            let c = self.pairs[&p];
            if c > 0 {
                self.heap.push((c as u64, Reverse(p)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recounts every pair from scratch: the obviously correct version of `pairs`.
    fn recount(m: &Merger) -> FxHashMap<Pair, i64> {
        let mut c = FxHashMap::default();
        for (syms, &n) in m.words.iter().zip(&m.counts) {
            for win in syms.windows(2) {
                *c.entry(pair(win[0], win[1])).or_insert(0) += n as i64;
            }
        }
        c
    }

    #[test]
    fn incremental_counts_equal_a_recount() {
        // Runs of equal symbols and repeated pairs are where in-place updates go wrong.
        let words = vec![
            (vec![0, 0, 0, 0, 0], 3),
            (vec![0, 1, 0, 1, 0, 1], 2),
            (vec![1, 0, 0, 1, 1, 1, 0], 5),
            (vec![2, 0, 1, 2], 1),
        ];
        let mut m = Merger::new(words);
        let mut next = 3;
        while let Some((p, _)) = m.best() {
            m.merge(p, next);
            next += 1;
            let mut live = m.pairs.clone();
            live.retain(|_, c| *c != 0);
            assert_eq!(live, recount(&m));
        }
        assert!(m.words.iter().all(|w| w.len() == 1));
    }

    #[test]
    fn best_is_the_most_frequent_then_the_smallest_pair() {
        let mut m = Merger::new(vec![(vec![5, 6], 2), (vec![3, 4], 2), (vec![1, 2], 1)]);
        assert_eq!(m.best(), Some(((3, 4), 2)));
        m.merge((3, 4), 7);
        assert_eq!(m.best(), Some(((5, 6), 2)));
    }
}
