//! SentencePiece Unigram: the most probable segmentation under the piece scores (Viterbi over
//! the vocabulary trie), n-best segmentations (A* over the lattice) and sampling.
//!
//! `encode` gives the sentencepiece wheel's ids (its "lite" unigram encoder): one pass over
//! byte positions keeping the best path ending at each, path scores summed in f32 and
//! re-centered to 0 when they pass ±1e5, a later candidate replacing the best only when
//! strictly greater (candidates come by start position, then length), user-defined pieces
//! scoring 0.1 per byte after the first, and a character no piece covers becoming unk with
//! score `min_score - 10`. Each of these decides near-ties on long texts.
//! The n-best and sampling paths follow its `Lattice`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use super::normalizer::utf8_len;
use super::proto::PieceType;
use super::SentencePiece;
use crate::trie::Trie;

const UNSET: u32 = u32::MAX;

/// The best path ending at one byte position: its score, where its last piece starts, and
/// that piece's id.
#[derive(Clone, Copy)]
struct Best {
    score: f32,
    start: u32,
    id: u32,
}

thread_local! {
    /// Per-thread table of the Viterbi pass, reused across texts.
    static SCRATCH: std::cell::RefCell<Vec<Best>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Path scores beyond ±this are re-centered to 0 (see `encode`).
const RECENTER: f32 = 100_000.0;

/// sentencepiece's `kUnkPenalty`.
const UNK_PENALTY: f32 = 10.0;

pub struct Unigram {
    /// normal and user-defined pieces (unused ones are never candidates)
    trie: Trie,
    user_defined: Vec<bool>,
    min_score: f32,
}

impl Unigram {
    pub fn new(
        pieces: &[String],
        scores: &[f32],
        types: &[PieceType],
        index: &FxHashMap<Box<[u8]>, u32>,
    ) -> Self {
        let mut min_score = f32::MAX;
        for (t, &s) in types.iter().zip(scores) {
            if *t == PieceType::Normal {
                min_score = min_score.min(s);
            }
        }
        let trie = Trie::new(
            index
                .values()
                .filter(|&&id| types[id as usize] != PieceType::Unused)
                .map(|&id| (pieces[id as usize].as_bytes(), id)),
        );
        Unigram {
            trie,
            user_defined: types.iter().map(|t| *t == PieceType::UserDefined).collect(),
            min_score,
        }
    }

    /// A piece's score; user-defined pieces get 0.1 per byte after the first, which makes
    /// them win over any split (sentencepiece(-lite)'s rule).
    #[inline]
    fn score(&self, sp: &SentencePiece, id: u32, len: usize) -> f32 {
        if self.user_defined[id as usize] {
            0.1f32 * (len - 1) as f32
        } else {
            sp.scores[id as usize]
        }
    }

    fn unk_score(&self) -> f32 {
        self.min_score - UNK_PENALTY
    }

    /// Appends the ids of the best segmentation of a normalized text (sentencepiece's
    /// `EncodeOptimized`, see the module notes).
    pub fn encode(&self, sp: &SentencePiece, text: &[u8], out: &mut Vec<u32>) {
        let n = text.len();
        let unk_score = self.unk_score();
        SCRATCH.with(|scratch| {
            let mut best = scratch.borrow_mut();
            best.clear();
            best.resize(
                n + 1,
                Best {
                    score: 0.0,
                    start: UNSET,
                    id: 0,
                },
            );
            let mut start = 0;
            // the furthest position any candidate has reached
            let mut frontier = 0;
            while start < n {
                let mut here = best[start].score;
                // Re-centering, as sentencepiece(-lite) does: once the path score leaves
                // ±1e5, subtract it from every node reached so far from here on, so that f32
                // keeps its resolution (and near-ties break as they do there).
                if !(-RECENTER..=RECENTER).contains(&here) {
                    let offset = here;
                    for (i, b) in best[start..=frontier.max(start)].iter_mut().enumerate() {
                        if i == 0 || b.start != UNSET {
                            b.score -= offset;
                        }
                    }
                    here = 0.0;
                }
                let char_len = utf8_len(text[start]).min(n - start);
                let mut has_char = false;
                let mut node = Trie::ROOT;
                for (k, &b) in text[start..].iter().enumerate() {
                    let Some(next) = self.trie.step(node, b) else {
                        break;
                    };
                    node = next;
                    let Some(id) = self.trie.value(node) else {
                        continue;
                    };
                    let len = k + 1;
                    frontier = frontier.max(start + len);
                    let candidate = self.score(sp, id, len) + here;
                    let target = &mut best[start + len];
                    if target.start == UNSET || candidate > target.score {
                        *target = Best {
                            score: candidate,
                            start: start as u32,
                            id,
                        };
                    }
                    has_char |= len == char_len;
                }
                if !has_char {
                    frontier = frontier.max(start + char_len);
                    let candidate = unk_score + here;
                    let target = &mut best[start + char_len];
                    if target.start == UNSET || candidate > target.score {
                        *target = Best {
                            score: candidate,
                            start: start as u32,
                            id: sp.unk_id,
                        };
                    }
                }
                start += char_len;
            }
            // backtrack from the end, then emit front to back
            let mut path = Vec::new();
            let mut end = n;
            while end > 0 {
                let b = best[end];
                path.push((b.start as usize, end, b.id));
                end = b.start as usize;
            }
            for &(start, end, id) in path.iter().rev() {
                sp.emit(&text[start..end], id, out);
            }
        });
    }

    /// The `n` best segmentations with their scores, best first (sentencepiece's
    /// `NBestEncode`: A* from the end of the lattice with the Viterbi scores as heuristic).
    pub fn nbest(&self, sp: &SentencePiece, text: &[u8], n: usize) -> Vec<(Vec<u32>, f32)> {
        if text.is_empty() {
            return vec![(Vec::new(), 0.0)];
        }
        let n = n.min(1024);
        if n <= 1 {
            let mut ids = Vec::new();
            self.encode(sp, text, &mut ids);
            return vec![(ids, 0.0)];
        }
        let mut lattice = Lattice::new(self, sp, text);
        lattice.viterbi();
        lattice
            .nbest(n)
            .into_iter()
            .map(|(path, score)| (lattice.ids(sp, text, &path), score))
            .collect()
    }

    /// Appends the ids of a sampled segmentation (see [`super::Sampling`]).
    pub fn sample(
        &self,
        sp: &SentencePiece,
        text: &[u8],
        alpha: f32,
        nbest_size: i32,
        seed: u64,
        out: &mut Vec<u32>,
    ) {
        if nbest_size == 0 || nbest_size == 1 || alpha == 0.0 {
            return self.encode(sp, text, out);
        }
        let mut rng = SplitMix64::new(seed);
        if nbest_size > 1 {
            let nbests = self.nbest(sp, text, nbest_size as usize);
            let weights: Vec<f64> = nbests
                .iter()
                .map(|(_, s)| ((alpha * s) as f64).exp())
                .collect();
            let k = rng.choose(&weights);
            out.extend_from_slice(&nbests[k].0);
            return;
        }
        let lattice = Lattice::new(self, sp, text);
        let path = lattice.sample(alpha as f64, &mut rng);
        out.extend(lattice.ids(sp, text, &path));
    }
}

struct Node {
    /// position and length in characters
    pos: usize,
    len: usize,
    /// byte range of the piece
    start: usize,
    end: usize,
    id: u32,
    score: f32,
    backtrace: f32,
}

/// The lattice of every piece at every character position (sentencepiece's `Lattice`).
/// Node 0 is BOS, node 1 EOS.
struct Lattice {
    nodes: Vec<Node>,
    begins: Vec<Vec<usize>>,
    ends: Vec<Vec<usize>>,
}

const BOS: usize = 0;
const EOS: usize = 1;

impl Lattice {
    fn new(model: &Unigram, sp: &SentencePiece, text: &[u8]) -> Self {
        // byte offset of each character, and the character index of each byte offset
        let mut offsets = Vec::with_capacity(text.len() + 1);
        let mut at = 0;
        while at < text.len() {
            offsets.push(at);
            at += utf8_len(text[at]).min(text.len() - at);
        }
        let chars = offsets.len();
        offsets.push(text.len());
        let mut char_at = vec![usize::MAX; text.len() + 1];
        for (c, &b) in offsets.iter().enumerate() {
            char_at[b] = c;
        }
        let node = |pos, len, id, score| Node {
            pos,
            len,
            start: offsets[pos],
            end: offsets[pos + len],
            id,
            score,
            backtrace: 0.0,
        };
        let mut l = Lattice {
            nodes: vec![node(0, 0, u32::MAX, 0.0), node(chars, 0, u32::MAX, 0.0)],
            begins: vec![Vec::new(); chars + 1],
            ends: vec![Vec::new(); chars + 1],
        };
        l.ends[0].push(BOS);
        l.begins[chars].push(EOS);
        for (pos, &start) in offsets[..chars].iter().enumerate() {
            let mut has_char = false;
            let mut trie_node = Trie::ROOT;
            for (k, &b) in text[start..].iter().enumerate() {
                let Some(next) = model.trie.step(trie_node, b) else {
                    break;
                };
                trie_node = next;
                let (Some(id), end) = (model.trie.value(trie_node), start + k + 1) else {
                    continue;
                };
                let len = char_at[end] - pos;
                let score = model.score(sp, id, end - start);
                l.insert(node(pos, len, id, score));
                has_char |= len == 1;
            }
            if !has_char {
                l.insert(node(pos, 1, sp.unk_id, model.unk_score()));
            }
        }
        l
    }

    fn insert(&mut self, node: Node) {
        let k = self.nodes.len();
        self.begins[node.pos].push(k);
        self.ends[node.pos + node.len].push(k);
        self.nodes.push(node);
    }

    fn viterbi(&mut self) {
        for pos in 0..self.begins.len() {
            for &r in &self.begins[pos] {
                let mut best: Option<f32> = None;
                for &l in &self.ends[pos] {
                    let s = self.nodes[l].backtrace + self.nodes[r].score;
                    if best.is_none_or(|b| s > b) {
                        best = Some(s);
                    }
                }
                self.nodes[r].backtrace = best.unwrap_or(0.0);
            }
        }
    }

    /// A* from EOS: each hypothesis is a suffix of a path; its priority is the exact best
    /// score of any path that completes it.
    fn nbest(&self, n: usize) -> Vec<(Vec<usize>, f32)> {
        struct Hyp {
            fx: f32,
            gx: f32,
            node: usize,
            next: usize,
        }
        #[derive(PartialEq)]
        struct Top(f32, usize);
        impl Eq for Top {}
        impl PartialOrd for Top {
            fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
                Some(self.cmp(o))
            }
        }
        impl Ord for Top {
            fn cmp(&self, o: &Self) -> Ordering {
                self.0.total_cmp(&o.0).then(o.1.cmp(&self.1))
            }
        }
        const MAX_AGENDA: usize = 10_000;
        let mut hyps = vec![Hyp {
            fx: self.nodes[EOS].backtrace,
            gx: 0.0,
            node: EOS,
            next: usize::MAX,
        }];
        let mut agenda = BinaryHeap::from([Top(hyps[0].fx, 0)]);
        let mut results = Vec::new();
        while let Some(Top(_, h)) = agenda.pop() {
            let (node, gx) = (hyps[h].node, hyps[h].gx);
            if node == BOS {
                let mut path = Vec::new();
                let mut k = hyps[h].next;
                while hyps[k].next != usize::MAX {
                    path.push(hyps[k].node);
                    k = hyps[k].next;
                }
                results.push((path, hyps[h].fx));
                if results.len() == n {
                    break;
                }
                continue;
            }
            for &l in &self.ends[self.nodes[node].pos] {
                let fx = self.nodes[l].backtrace + gx;
                hyps.push(Hyp {
                    fx,
                    gx: self.nodes[l].score + gx,
                    node: l,
                    next: h,
                });
                agenda.push(Top(fx, hyps.len() - 1));
            }
            // keep memory bounded on long texts, as sentencepiece does
            if agenda.len() >= MAX_AGENDA {
                let keep = 512.min(n * 10);
                let mut kept = BinaryHeap::with_capacity(keep);
                for _ in 0..keep {
                    kept.extend(agenda.pop());
                }
                agenda = kept;
            }
        }
        results
    }

    /// Forward-filtering backward-sampling: a path drawn with probability ∝ exp(alpha·score).
    fn sample(&self, alpha: f64, rng: &mut SplitMix64) -> Vec<usize> {
        let mut fwd = vec![0f64; self.nodes.len()];
        for pos in 0..self.begins.len() {
            for &r in &self.begins[pos] {
                fwd[r] = log_sum_exp(&self.ends[pos], |l| {
                    alpha * self.nodes[l].score as f64 + fwd[l]
                });
            }
        }
        let mut path = Vec::new();
        let mut node = EOS;
        loop {
            let ends = &self.ends[self.nodes[node].pos];
            let weights: Vec<f64> = ends
                .iter()
                .map(|&l| (fwd[l] + alpha * self.nodes[l].score as f64 - fwd[node]).exp())
                .collect();
            node = ends[rng.choose(&weights)];
            if node == BOS {
                break;
            }
            path.push(node);
        }
        path.reverse();
        path
    }

    /// The output ids of a path (unknown pieces fall back to bytes where the model does).
    fn ids(&self, sp: &SentencePiece, text: &[u8], path: &[usize]) -> Vec<u32> {
        let mut out = Vec::with_capacity(path.len());
        for &k in path {
            let n = &self.nodes[k];
            sp.emit(&text[n.start..n.end], n.id, &mut out);
        }
        out
    }
}

/// `ln Σ exp(x(i))` over `items`, computed without overflow (two passes, no allocation).
fn log_sum_exp(items: &[usize], x: impl Fn(usize) -> f64) -> f64 {
    let max = items
        .iter()
        .map(|&i| x(i))
        .fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + items.iter().map(|&i| (x(i) - max).exp()).sum::<f64>().ln()
}

/// A small seeded generator (SplitMix64) for reproducible sampling; not cryptographic.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An index drawn with probability proportional to `weights`.
    fn choose(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.next_f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}
