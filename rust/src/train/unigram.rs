//! Training a Unigram language-model vocabulary, the algorithm of SentencePiece's trainer
//! (Kudo 2018), written from its description:
//!
//! 1. **Seed**: every substring of the words (up to `max_piece_len` characters, never across
//!    a script, digit or `▁` boundary) that occurs at least twice, found level by level (a
//!    substring of k characters is counted only when both of its (k-1)-character parts are
//!    frequent, so memory holds one level of candidates, not every substring), ranked by
//!    frequency × length; the top `seed_size`, plus every character of the alphabet.
//! 2. **EM**: the forward-backward pass over each word's lattice gives every piece's expected
//!    count; pieces expected fewer than 0.5 times are dropped and the rest scored
//!    `digamma(count) - digamma(total)` (SentencePiece's Bayesian estimate).
//! 3. **Prune**: each piece's loss is how much the corpus likelihood drops when the piece
//!    is replaced by its best segmentation without it; the pieces that cost least are removed
//!    (a quarter at a time) until 1.1 × the target size is reached; then the best-scored
//!    pieces are kept, characters always.
//!
//! Lattices are walked over a byte trie of the current pieces; words are processed in
//! parallel on the rayon pool, each word once with its count.

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use super::count::PieceCounts;
use crate::trie::Trie;

/// SentencePiece's whitespace mark.
pub const SPACE: char = '\u{2581}';

/// Trainer options (SentencePiece's defaults).
#[derive(Clone, Debug)]
pub struct UnigramOptions {
    /// Normal pieces to keep (meta pieces not included).
    pub n_pieces: usize,
    pub character_coverage: f64,
    pub max_piece_len: usize,
    pub seed_size: usize,
    pub split_by_number: bool,
    pub split_by_script: bool,
    pub shrinking_factor: f64,
    pub em_iterations: usize,
}

impl Default for UnigramOptions {
    fn default() -> Self {
        UnigramOptions {
            n_pieces: 8000,
            character_coverage: 0.9995,
            max_piece_len: 16,
            seed_size: 1_000_000,
            split_by_number: true,
            split_by_script: true,
            shrinking_factor: 0.75,
            em_iterations: 2,
        }
    }
}

/// Calls `f` with each word of a line as SentencePiece's trainer sees it: runs of spaces
/// collapsed, each word prefixed with `▁`. Each line of `text` is a sentence.
pub fn words(text: &str, f: &mut dyn FnMut(&str)) {
    let mut buf = String::new();
    for line in text.split('\n') {
        for w in line.split(' ').filter(|w| !w.is_empty()) {
            buf.clear();
            buf.push(SPACE);
            buf.push_str(w);
            f(&buf);
        }
    }
}

/// A coarse script class: pieces do not mix classes (SentencePiece's `split_by_unicode_script`
/// and `split_by_number`). Hiragana, katakana and Han are one class, as in SentencePiece.
fn class(c: char, opts: &UnigramOptions) -> u8 {
    if c == SPACE {
        return 0;
    }
    if opts.split_by_number && c.is_numeric() {
        return 1;
    }
    if !opts.split_by_script {
        return 2;
    }
    match c as u32 {
        0x41..=0x5A | 0x61..=0x7A | 0xC0..=0x24F | 0x1E00..=0x1EFF => 2, // Latin
        0x370..=0x3FF | 0x1F00..=0x1FFF => 3,                            // Greek
        0x400..=0x52F => 4,                                              // Cyrillic
        0x590..=0x5FF => 5,                                              // Hebrew
        0x600..=0x6FF | 0x750..=0x77F => 6,                              // Arabic
        0x900..=0x97F => 7,                                              // Devanagari
        0xE00..=0xE7F => 8,                                              // Thai
        0x1100..=0x11FF | 0x3130..=0x318F | 0xAC00..=0xD7AF => 9,        // Hangul
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000.. => 10,
        _ if c.is_alphabetic() => 11, // other letters
        _ => 12,                      // punctuation, symbols: their own class
    }
}

/// Whether a piece made of these characters may exist: `▁` only first, one class after it.
fn valid(chars: &[char], opts: &UnigramOptions) -> bool {
    let body = match chars.split_first() {
        Some((&SPACE, rest)) => rest,
        _ => chars,
    };
    match body.split_first() {
        None => true,
        Some((&c, rest)) => {
            let k = class(c, opts);
            k != 0 && rest.iter().all(|&d| class(d, opts) == k)
        }
    }
}

fn digamma(mut x: f64) -> f64 {
    let mut r = 0.0;
    while x < 7.0 {
        r -= 1.0 / x;
        x += 1.0;
    }
    let f = 1.0 / (x * x);
    let t = f
        * (-1.0 / 12.0
            + f * (1.0 / 120.0 + f * (-1.0 / 252.0 + f * (1.0 / 240.0 + f * (-1.0 / 132.0)))));
    r + x.ln() - 0.5 / x + t
}

fn log_add(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

/// The current pieces, their scores and a trie over them.
struct Model {
    pieces: Vec<String>,
    scores: Vec<f64>,
    trie: Trie,
    /// Pieces that are never pruned (the alphabet).
    required: Vec<bool>,
    unk_score: f64,
}

impl Model {
    fn new(pieces: Vec<(String, f64)>, required: &FxHashSet<String>) -> Self {
        let trie = Trie::new(
            pieces
                .iter()
                .enumerate()
                .map(|(i, (p, _))| (p.as_bytes(), i as u32)),
        );
        let min = pieces.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        Model {
            required: pieces.iter().map(|(p, _)| required.contains(p)).collect(),
            scores: pieces.iter().map(|p| p.1).collect(),
            pieces: pieces.into_iter().map(|p| p.0).collect(),
            trie,
            unk_score: min - 10.0,
        }
    }

    /// The lattice of `word`: `(start, end, piece)` nodes by start, `u32::MAX` for an unknown
    /// character; `skip` is left out (to segment a piece without itself).
    fn lattice(&self, word: &str, skip: Option<u32>, nodes: &mut Vec<(u32, u32, u32)>) {
        nodes.clear();
        let bytes = word.as_bytes();
        for (start, c) in word.char_indices() {
            let mut node = Trie::ROOT;
            let mut has_char = false;
            for (i, &b) in bytes[start..].iter().enumerate() {
                match self.trie.step(node, b) {
                    Some(n) => node = n,
                    None => break,
                }
                if let Some(id) = self.trie.value(node) {
                    let end = start + i + 1;
                    has_char |= end == start + c.len_utf8();
                    if Some(id) != skip {
                        nodes.push((start as u32, end as u32, id));
                    }
                }
            }
            if !has_char {
                nodes.push((start as u32, (start + c.len_utf8()) as u32, u32::MAX));
            }
        }
    }

    fn score(&self, id: u32) -> f64 {
        if id == u32::MAX {
            self.unk_score
        } else {
            self.scores[id as usize]
        }
    }

    /// Adds `count` × each piece's expected count in `word` to `expected`; returns log Z.
    fn expect(
        &self,
        word: &str,
        count: f64,
        nodes: &mut Vec<(u32, u32, u32)>,
        expected: &mut [f64],
    ) -> f64 {
        self.lattice(word, None, nodes);
        let n = word.len();
        let mut alpha = vec![f64::NEG_INFINITY; n + 1];
        let mut beta = vec![f64::NEG_INFINITY; n + 1];
        alpha[0] = 0.0;
        beta[n] = 0.0;
        for &(s, e, id) in nodes.iter() {
            let a = alpha[s as usize] + self.score(id);
            alpha[e as usize] = log_add(alpha[e as usize], a);
        }
        for &(s, e, id) in nodes.iter().rev() {
            let b = beta[e as usize] + self.score(id);
            beta[s as usize] = log_add(beta[s as usize], b);
        }
        let z = alpha[n];
        for &(s, e, id) in nodes.iter() {
            if id != u32::MAX {
                let p = (alpha[s as usize] + self.score(id) + beta[e as usize] - z).exp();
                expected[id as usize] += count * p;
            }
        }
        z
    }

    /// The best segmentation of `word` (without piece `skip`): the pieces, in order.
    fn viterbi(&self, word: &str, skip: Option<u32>, nodes: &mut Vec<(u32, u32, u32)>) -> Vec<u32> {
        self.lattice(word, skip, nodes);
        let n = word.len();
        let mut best = vec![(f64::NEG_INFINITY, u32::MAX, 0u32); n + 1];
        best[0].0 = 0.0;
        for &(s, e, id) in nodes.iter() {
            let v = best[s as usize].0 + self.score(id);
            if v > best[e as usize].0 {
                best[e as usize] = (v, id, s);
            }
        }
        let mut out = Vec::new();
        let mut at = n;
        while at > 0 {
            let (_, id, s) = best[at];
            out.push(id);
            at = s as usize;
        }
        out.reverse();
        out
    }
}

/// Expected counts of every piece over all words (in parallel); and the log-likelihood.
fn e_step(model: &Model, words: &[(&str, u64)]) -> (Vec<f64>, f64) {
    let chunk = words.len() / (rayon::current_num_threads() * 4) + 1;
    words
        .par_chunks(chunk)
        .map(|part| {
            let mut expected = vec![0.0; model.pieces.len()];
            let mut nodes = Vec::new();
            let mut ll = 0.0;
            for &(w, n) in part {
                ll += n as f64 * model.expect(w, n as f64, &mut nodes, &mut expected);
            }
            (expected, ll)
        })
        .reduce(
            || (vec![0.0; model.pieces.len()], 0.0),
            |(mut a, la), (b, lb)| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
                (a, la + lb)
            },
        )
}

/// Re-scores the pieces from their expected counts; drops those expected < 0.5 times.
fn m_step(model: &Model, expected: &[f64]) -> Vec<(String, f64)> {
    let kept: Vec<usize> = (0..model.pieces.len())
        .filter(|&i| expected[i] >= 0.5 || model.required[i])
        .collect();
    let total: f64 = kept.iter().map(|&i| expected[i].max(0.5)).sum();
    let log_total = digamma(total);
    kept.into_iter()
        .map(|i| {
            (
                model.pieces[i].clone(),
                digamma(expected[i].max(0.5)) - log_total,
            )
        })
        .collect()
}

/// Keeps the `keep` pieces whose removal would cost the corpus likelihood most.
fn prune(model: &Model, words: &[(&str, u64)], keep: usize) -> Vec<(String, f64)> {
    let n = model.pieces.len();
    // Each piece's best segmentation without itself.
    let alternatives: Vec<Vec<u32>> = (0..n)
        .into_par_iter()
        .map_init(Vec::new, |nodes, i| {
            if model.required[i] {
                Vec::new()
            } else {
                model.viterbi(&model.pieces[i], Some(i as u32), nodes)
            }
        })
        .collect();
    // How often each piece is on the best paths, and in how many words (weighted).
    let chunk = words.len() / (rayon::current_num_threads() * 4) + 1;
    let (freq, in_words) = words
        .par_chunks(chunk)
        .map(|part| {
            let (mut freq, mut in_words) = (vec![0.0; n], vec![0.0; n]);
            let mut nodes = Vec::new();
            for &(w, c) in part {
                let mut path = model.viterbi(w, None, &mut nodes);
                for &id in &path {
                    if id != u32::MAX {
                        freq[id as usize] += c as f64;
                    }
                }
                path.sort_unstable();
                path.dedup();
                for id in path.into_iter().filter(|&id| id != u32::MAX) {
                    in_words[id as usize] += c as f64;
                }
            }
            (freq, in_words)
        })
        .reduce(
            || (vec![0.0; n], vec![0.0; n]),
            |(mut f, mut w), (f2, w2)| {
                f.iter_mut().zip(f2).for_each(|(a, b)| *a += b);
                w.iter_mut().zip(w2).for_each(|(a, b)| *a += b);
                (f, w)
            },
        );
    let sum: f64 = freq.iter().sum();
    let n_words: f64 = words.iter().map(|&(_, c)| c as f64).sum();
    let log_sum = sum.ln();
    let mut candidates: Vec<(f64, usize)> = Vec::new();
    let mut out: Vec<usize> = Vec::new();
    for i in 0..n {
        if model.required[i] {
            out.push(i);
            continue;
        }
        if freq[i] == 0.0 {
            continue; // on no best path: nothing lost without it
        }
        let alt = &alternatives[i];
        let logprob = freq[i].ln() - log_sum;
        let new_log_sum = (sum + freq[i] * (alt.len() as f64 - 1.0)).ln();
        let alt_logprob: f64 = alt
            .iter()
            .map(|&a| {
                let fa = if a == u32::MAX { 0.0 } else { freq[a as usize] };
                (fa + freq[i]).ln() - new_log_sum
            })
            .sum();
        let loss = in_words[i] / n_words * (logprob - alt_logprob);
        candidates.push((loss, i));
    }
    candidates.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let room = keep.saturating_sub(out.len());
    out.extend(candidates.into_iter().take(room).map(|(_, i)| i));
    out.sort_unstable();
    out.into_iter()
        .map(|i| (model.pieces[i].clone(), model.scores[i]))
        .collect()
}

/// Seed pieces with their frequencies, and the alphabet.
fn seed(words: &[(&str, u64)], opts: &UnigramOptions) -> (Vec<(String, f64)>, FxHashSet<String>) {
    let mut char_freq: FxHashMap<char, u64> = FxHashMap::default();
    for &(w, n) in words {
        for c in w.chars() {
            *char_freq.entry(c).or_insert(0) += n;
        }
    }
    let mut chars: Vec<(char, u64)> = char_freq.into_iter().collect();
    chars.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let total: u64 = chars.iter().map(|c| c.1).sum();
    let mut covered = 0u64;
    let mut alphabet: Vec<(String, u64)> = Vec::new();
    for (c, f) in chars {
        if !alphabet.is_empty() && covered as f64 / total as f64 >= opts.character_coverage {
            break;
        }
        covered += f;
        alphabet.push((c.to_string(), f));
    }
    let in_alphabet: FxHashSet<char> = alphabet.iter().flat_map(|(s, _)| s.chars()).collect();
    // Substrings level by level: k characters, counted when both (k-1)-parts are frequent.
    let char_words: Vec<(Vec<char>, u64)> = words
        .iter()
        .map(|&(w, n)| (w.chars().collect(), n))
        .collect();
    let mut frequent: FxHashSet<Vec<char>> = FxHashSet::default();
    let mut found: Vec<(String, u64)> = Vec::new();
    for k in 2..=opts.max_piece_len {
        let level: FxHashMap<&[char], u64> = char_words
            .par_iter()
            .fold(FxHashMap::default, |mut m, (cs, n)| {
                for s in cs.windows(k) {
                    let ok = s.iter().all(|c| *c == SPACE || in_alphabet.contains(c))
                        && valid(s, opts)
                        && (k == 2 || frequent.contains(&s[..k - 1]) && frequent.contains(&s[1..]));
                    if ok {
                        *m.entry(s).or_insert(0) += n;
                    }
                }
                m
            })
            .reduce(FxHashMap::default, |mut a, b| {
                for (s, n) in b {
                    *a.entry(s).or_insert(0) += n;
                }
                a
            });
        let next: FxHashSet<Vec<char>> = level
            .iter()
            .filter(|&(_, &n)| n >= 2)
            .map(|(s, _)| s.to_vec())
            .collect();
        for (s, n) in level.into_iter().filter(|&(_, n)| n >= 2) {
            found.push((s.iter().collect(), n));
        }
        if next.is_empty() {
            break;
        }
        frequent = next;
    }
    found.sort_unstable_by(|a, b| {
        (b.1 * b.0.chars().count() as u64)
            .cmp(&(a.1 * a.0.chars().count() as u64))
            .then_with(|| a.0.cmp(&b.0))
    });
    found.truncate(opts.seed_size.saturating_sub(alphabet.len()));
    let required: FxHashSet<String> = alphabet.iter().map(|(s, _)| s.clone()).collect();
    let all: Vec<(String, u64)> = alphabet.into_iter().chain(found).collect();
    let sum: f64 = all.iter().map(|p| p.1 as f64).sum();
    let log_sum = sum.ln();
    let pieces = all
        .into_iter()
        .map(|(s, n)| (s, (n as f64).ln() - log_sum))
        .collect();
    (pieces, required)
}

/// Trains on word counts (words as [`words`] makes them). Returns the normal pieces with
/// their scores, best first. `progress(pieces now)` after each EM round.
pub fn train(
    counts: &PieceCounts,
    opts: &UnigramOptions,
    progress: &mut dyn FnMut(usize),
) -> Vec<(String, f32)> {
    let mut words: Vec<(&str, u64)> = counts.iter().collect();
    words.sort_unstable(); // deterministic sums, whatever the hash order
    let (pieces, required) = seed(&words, opts);
    let desired = (opts.n_pieces as f64 * 1.1) as usize;
    let mut model = Model::new(pieces, &required);
    loop {
        for _ in 0..opts.em_iterations {
            let (expected, _) = e_step(&model, &words);
            model = Model::new(m_step(&model, &expected), &required);
        }
        progress(model.pieces.len());
        if model.pieces.len() <= desired {
            break;
        }
        let keep = desired.max((model.pieces.len() as f64 * opts.shrinking_factor) as usize);
        model = Model::new(prune(&model, &words, keep), &required);
    }
    // Final: the alphabet, then the best-scored pieces.
    let mut order: Vec<usize> = (0..model.pieces.len()).collect();
    order.sort_by(|&a, &b| {
        (!model.required[a], -model.scores[a])
            .partial_cmp(&(!model.required[b], -model.scores[b]))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    order.truncate(opts.n_pieces.max(required.len()));
    let mut out: Vec<(String, f32)> = order
        .into_iter()
        .map(|i| (model.pieces[i].clone(), model.scores[i] as f32))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    progress(out.len());
    out
}

/// A SentencePiece `.model` (serialized `ModelProto`) for trained pieces: `<unk>`, `<s>`,
/// `</s>`, the user-defined symbols, then `pieces`; an identity normalizer that collapses
/// whitespace and adds the dummy `▁` prefix, as the words were made for training.
pub fn model_bytes(
    pieces: &[(String, f32)],
    user_defined: &[String],
    max_piece_len: usize,
) -> Vec<u8> {
    use crate::spm::proto::{ModelProto, ModelType, NormalizerSpec, Piece, PieceType, TrainerSpec};
    use prost::Message;

    let piece = |s: &str, score: f32, t: PieceType| Piece {
        piece: Some(s.to_string()),
        score: Some(score),
        r#type: Some(t as i32),
    };
    let mut all = vec![
        piece("<unk>", 0.0, PieceType::Unknown),
        piece("<s>", 0.0, PieceType::Control),
        piece("</s>", 0.0, PieceType::Control),
    ];
    all.extend(
        user_defined
            .iter()
            .map(|s| piece(s, 0.0, PieceType::UserDefined)),
    );
    all.extend(
        pieces
            .iter()
            .map(|(s, score)| piece(s, *score, PieceType::Normal)),
    );
    ModelProto {
        pieces: all,
        trainer_spec: Some(TrainerSpec {
            model_type: Some(ModelType::Unigram as i32),
            max_sentencepiece_length: Some(max_piece_len as i32),
            treat_whitespace_as_suffix: Some(false),
            byte_fallback: Some(false),
            unk_id: Some(0),
            bos_id: Some(1),
            eos_id: Some(2),
            pad_id: Some(-1),
            unk_surface: None,
        }),
        normalizer_spec: Some(NormalizerSpec {
            name: Some("identity".into()),
            precompiled_charsmap: None,
            add_dummy_prefix: Some(true),
            remove_extra_whitespaces: Some(true),
            escape_whitespaces: Some(true),
        }),
        denormalizer_spec: None,
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digamma_matches_known_values() {
        assert!((digamma(1.0) + 0.577_215_664_9).abs() < 1e-9);
        assert!((digamma(10.0) - 2.251_752_589_07).abs() < 1e-9);
    }

    #[test]
    fn pieces_do_not_cross_classes() {
        let o = UnigramOptions::default();
        let v = |s: &str| valid(&s.chars().collect::<Vec<_>>(), &o);
        assert!(v("▁hello") && v("hello") && v("▁") && v("東京") && v("ひら東"));
        assert!(!v("a▁") && !v("ab1") && !v("hello,") && !v("мир1") && !v("aд"));
        assert!(v("▁123") && v(",,"));
    }

    #[test]
    fn trains_a_vocabulary_that_keeps_frequent_words() {
        let mut counts = PieceCounts::new();
        let text = "the cat sat on the mat\nthe dog sat on the log\nthe cat ate the rat\n";
        for _ in 0..50 {
            words(text, &mut |w| counts.add(w, 1));
        }
        let opts = UnigramOptions {
            n_pieces: 20,
            ..UnigramOptions::default()
        };
        let pieces = train(&counts, &opts, &mut |_| {});
        assert_eq!(pieces.len(), 20);
        let names: Vec<&str> = pieces.iter().map(|p| p.0.as_str()).collect();
        assert!(names.contains(&"▁the"), "{names:?}");
        for c in "thecasonmdglr".chars() {
            assert!(names.contains(&c.to_string().as_str()), "{c} missing");
        }
        assert!(pieces.windows(2).all(|w| w[0].1 >= w[1].1));
    }
}
