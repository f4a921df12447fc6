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
use super::{Joins, SentencePiece, SpaceCuts, SPACE};
use crate::bpe::table::{self, Found, Inline, PieceTable};
use crate::cache::{Groups, PerThread, WordCache, MAX_CACHED_WORD};
use crate::huge::Zeroable;
use crate::trie::Trie;
use crate::vocab::hash_bytes;

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
    /// The score an edge of each piece adds (see `new`), by id.
    edge_scores: Box<[f32]>,
    min_score: f32,
    /// No candidate piece holds `▁` after its first byte, so no lattice edge crosses the start
    /// of a `▁`: the text can be solved word by word (see `encode`).
    word_cut: bool,
    /// Words are cut between ASCII characters no candidate joins, too: no edge crosses there.
    joins: Joins,
    /// The largest |score| any candidate edge can add (unknown and user-defined ones too).
    max_step: f32,
}

/// One token of a cached word: id, end byte in the word, the score its edge adds. A cached
/// entry starts with a header in the same shape (see [`Unigram::solve_local`]).
#[derive(Clone, Copy, Default)]
struct Seg {
    id: u32,
    end: u32,
    score: f32,
}

// SAFETY: integers and a float; all-zero bytes are a valid value.
unsafe impl Zeroable for Seg {}

impl Inline for Seg {
    fn spilled(at: u32, len: u32) -> [Self; 4] {
        let mut room = [Seg::default(); 4];
        (room[0].id, room[0].end) = (at, len);
        room
    }

    #[inline]
    fn spill_of(room: &[Self; 4]) -> (usize, usize) {
        (room[0].id as usize, room[0].end as usize)
    }
}

/// A node of [`Unigram::solve_local`]'s exact Viterbi: the best path's score and, to tell
/// how safely it won, the best score of the paths it beat.
#[derive(Clone, Copy)]
struct Exact {
    score: f64,
    runner_up: f64,
    start: u32,
    id: u32,
    step: f32,
}

/// A thread's cached word solutions for one model: words of up to 15 bytes in the inline
/// table of byte-level BPE (one line a lookup), longer ones in a word cache.
#[derive(Default)]
struct Words {
    short: PieceTable<Seg>,
    long: WordCache<Seg>,
}

thread_local! {
    static WORDS: std::cell::RefCell<PerThread<Words>> =
        const { std::cell::RefCell::new(PerThread::new()) };
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
        let candidates = || {
            index
                .values()
                .filter(|&&id| types[id as usize] != PieceType::Unused)
                .map(|&id| id as usize)
        };
        let word_cut = !candidates().any(|id| {
            memchr::memmem::find(&pieces[id].as_bytes()[1..], SPACE.as_bytes()).is_some()
        });
        let joins = Joins::new(candidates().map(|id| pieces[id].as_bytes()));
        let max_step = candidates()
            .map(|id| match types[id] {
                PieceType::UserDefined => 0.1 * pieces[id].len() as f32,
                _ => scores[id].abs(),
            })
            .fold((min_score - UNK_PENALTY).abs(), f32::max);
        // user-defined pieces get 0.1 per byte after the first, which makes them win over any
        // split (sentencepiece(-lite)'s rule)
        let edge_scores = pieces
            .iter()
            .zip(types.iter().zip(scores))
            .map(|(p, (t, &s))| match t {
                PieceType::UserDefined => 0.1f32 * (p.len() - 1) as f32,
                _ => s,
            })
            .collect();
        Unigram {
            trie,
            edge_scores,
            min_score,
            word_cut,
            joins,
            max_step,
        }
    }

    fn unk_score(&self) -> f32 {
        self.min_score - UNK_PENALTY
    }

    /// The lattice edges that start at byte `start` of `text`, in sentencepiece's order: each
    /// piece the trie finds there (shortest first) as `edge(end, id, score)`, then the
    /// unknown piece over the first character when no piece covers exactly that character.
    /// Returns the character's length.
    #[inline]
    fn edges(
        &self,
        sp: &SentencePiece,
        text: &[u8],
        start: usize,
        mut edge: impl FnMut(usize, u32, f32),
    ) -> usize {
        let char_len = utf8_len(text[start]).min(text.len() - start);
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
            edge(start + k + 1, id, self.edge_scores[id as usize]);
            has_char |= k + 1 == char_len;
        }
        if !has_char {
            edge(start + char_len, sp.unk_id, self.unk_score());
        }
        char_len
    }

    /// Appends the ids of the best segmentation of a normalized text (sentencepiece's
    /// `EncodeOptimized`, see the module notes).
    pub fn encode(&self, sp: &SentencePiece, text: &[u8], out: &mut Vec<u32>) {
        if !self.word_cut {
            self.viterbi(sp, text, 0.0, out);
            return;
        }
        // The best path passes through the start of every `▁` and every cut of `joins` (no
        // edge crosses them), so each word can be solved alone from the score the path has
        // there: exactly, by `viterbi`, or from a cached solution whose every decision won by
        // more than f32 rounding at that score could change (`replay`). Either way the score
        // carried on is the same f32 sum.
        WORDS.with_borrow_mut(|caches| {
            let cache = caches.get(sp.cache_owner);
            let mut score = 0.0f32;
            let (mut entry, mut nodes) = (Vec::new(), Vec::new());
            // Looked up a group at a time, their lines or slots prefetched first (and then a
            // long word's values): a warm pass waits on these reads (see `crate::cache`).
            // Words of up to 15 bytes, most of them, are one line of the short table; longer
            // ones go to the word cache; words too long to cache are not hashed.
            let mut groups = Groups::new(self.joins.parts(text, SpaceCuts::Each));
            while let Some(group) = groups.next(|w| {
                let len = w.len();
                if (1..=table::SHORT_MAX).contains(&len) {
                    let (key, h) = cache.short.start(text, w.start, len);
                    return (w.start, w.end, key, Some(h));
                }
                let h = (len <= MAX_CACHED_WORD).then(|| hash_bytes(&text[w.clone()]));
                if let Some(h) = h {
                    cache.long.prefetch_slot(h);
                }
                (w.start, w.end, 0, h)
            }) {
                for &(start, end, key, h) in group {
                    if let (0, Some(h)) = (key, h) {
                        cache.long.prefetch_values(&text[start..end], h);
                    }
                }
                for &(start, end, key, h) in group {
                    let word = &text[start..end];
                    if !(-RECENTER..=RECENTER).contains(&score) {
                        // the re-centering `viterbi` would do at this position
                        score = 0.0;
                    }
                    if let Some(h) = h {
                        let next = if key != 0 {
                            match cache.short.find(key, h) {
                                Found::Inline(segs, n) => {
                                    self.replay(sp, word, &segs[..n], score, out)
                                }
                                Found::Spilled(segs) => self.replay(sp, word, segs, score, out),
                                Found::Missing => {
                                    self.solve_local(sp, word, &mut nodes, &mut entry);
                                    cache.short.insert(key, &entry);
                                    self.replay(sp, word, &entry, score, out)
                                }
                            }
                        } else {
                            match cache.long.get_hashed(word, h) {
                                Some(e) => self.replay(sp, word, e, score, out),
                                None => {
                                    self.solve_local(sp, word, &mut nodes, &mut entry);
                                    cache.long.put_hashed(word, h, &entry);
                                    self.replay(sp, word, &entry, score, out)
                                }
                            }
                        };
                        if let Some(next) = next {
                            score = next;
                            continue;
                        }
                    }
                    score = self.viterbi(sp, word, score, out);
                }
            }
        });
    }

    /// Emits a cached solution of `word` if it holds when the path arrives with `score`, and
    /// returns the path's score after it (summed in f32 in path order, as `viterbi` would).
    ///
    /// Why it holds: every node's f32 value is within `chars · u` of its exact value, where u
    /// is half an ulp at the largest magnitude M any sum can reach (each of at most `chars`
    /// additions along a path rounds once, and max() does not add error). A decision whose
    /// exact margin exceeds `2 · (chars + 1) · u` therefore comes out the same in f32 for any
    /// starting score with that M; we ask for twice that. Re-centering must not happen inside
    /// the word either: M stays below its threshold.
    fn replay(
        &self,
        sp: &SentencePiece,
        word: &[u8],
        entry: &[Seg],
        mut score: f32,
        out: &mut Vec<u32>,
    ) -> Option<f32> {
        let (head, toks) = entry.split_first()?;
        let (chars, depth, margin) = (head.id as f32, f32::from_bits(head.end), head.score);
        let m = score.abs() + depth + self.max_step + 1.0;
        let u = m * f32::EPSILON / 2.0;
        if m >= RECENTER || margin <= 4.0 * (chars + 1.0) * u {
            return None;
        }
        let mut start = 0;
        for t in toks {
            sp.emit(&word[start..t.end as usize], t.id, out);
            score += t.score;
            start = t.end as usize;
        }
        Some(score)
    }

    /// The exact (f64) best path of `word` from score 0, as cache entry: a header
    /// `Seg { id: characters, end: bits of the largest |node score|, score: the smallest
    /// margin by which a decision on the path won }`, then the path's tokens.
    fn solve_local(
        &self,
        sp: &SentencePiece,
        word: &[u8],
        best: &mut Vec<Exact>,
        toks: &mut Vec<Seg>,
    ) {
        let n = word.len();
        let unset = Exact {
            score: 0.0,
            runner_up: f64::NEG_INFINITY,
            start: UNSET,
            id: 0,
            step: 0.0,
        };
        best.clear();
        best.resize(n + 1, unset);
        let offer = |node: &mut Exact, cand: f64, start: usize, id: u32, step: f32| {
            if node.start == UNSET || cand > node.score {
                let runner_up = if node.start == UNSET {
                    f64::NEG_INFINITY
                } else {
                    node.score
                };
                *node = Exact {
                    score: cand,
                    runner_up: runner_up.max(node.runner_up),
                    start: start as u32,
                    id,
                    step,
                };
            } else {
                node.runner_up = node.runner_up.max(cand);
            }
        };
        let mut chars = 0u32;
        let mut start = 0;
        while start < n {
            chars += 1;
            let here = best[start].score;
            start += self.edges(sp, word, start, |end, id, step| {
                offer(&mut best[end], step as f64 + here, start, id, step)
            });
        }
        let depth = best
            .iter()
            .filter(|b| b.start != UNSET)
            .fold(0.0f64, |d, b| d.max(-b.score).max(b.score));
        let mut margin = f64::INFINITY;
        toks.clear();
        let mut end = n;
        while end > 0 {
            let b = best[end];
            margin = margin.min(b.score - b.runner_up);
            toks.push(Seg {
                id: b.id,
                end: end as u32,
                score: b.step,
            });
            end = b.start as usize;
        }
        // rounded the safe way: depth up, margin down
        let depth = depth as f32 * (1.0 + 1e-6);
        let margin = (margin as f32 * (1.0 - 1e-6)).max(0.0);
        toks.push(Seg {
            id: chars,
            end: depth.to_bits(),
            score: margin,
        });
        toks.reverse();
    }

    /// sentencepiece's Viterbi over `text`, the path arriving at its start with `score`;
    /// appends the ids and returns the best path's score at the end.
    fn viterbi(&self, sp: &SentencePiece, text: &[u8], score: f32, out: &mut Vec<u32>) -> f32 {
        let n = text.len();
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
            best[0].score = score;
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
                start += self.edges(sp, text, start, |end, id, step| {
                    frontier = frontier.max(end);
                    let candidate = step + here;
                    let target = &mut best[end];
                    if target.start == UNSET || candidate > target.score {
                        *target = Best {
                            score: candidate,
                            start: start as u32,
                            id,
                        };
                    }
                });
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
            best[n].score
        })
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
            model.edges(sp, text, start, |end, id, score| {
                l.insert(node(pos, char_at[end] - pos, id, score))
            });
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
