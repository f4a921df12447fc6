//! Training a byte-level BPE vocabulary (tiktoken style: tokens are byte strings, a token's
//! id is its rank).

use rustc_hash::FxHashMap;

use super::count::PieceCounts;
use super::merges::Merger;
use crate::vocab::{gpt2_byte_order, Rank};

/// A trained vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainedBpe {
    /// The tokens in rank order: `tokens[id]`.
    pub tokens: Vec<Vec<u8>>,
    /// Every merge made, in order: the two ids merged. A merge whose bytes already were a
    /// token (two different splits of the same string) adds no token.
    pub merges: Vec<(Rank, Rank)>,
}

/// Merges until there are `n_tokens` tokens (256 bytes included), or until the most frequent
/// pair occurs fewer than `min_frequency` times, or no pair is left. `progress` is told the
/// number of tokens every few hundred merges.
///
/// Complexity: O(symbols in the distinct pieces) to start, then each merge costs in proportion
/// to the pieces that contain its pair (plus a heap operation per changed pair).
pub fn train(
    counts: &PieceCounts,
    n_tokens: usize,
    min_frequency: u64,
    progress: &mut dyn FnMut(usize),
) -> TrainedBpe {
    // One-byte tokens get ids 0..=255 in GPT-2's order: the order of the official vocabularies
    // and of Hugging Face's byte-level alphabet, so ties between equally frequent pairs go the
    // same way in both.
    let order = gpt2_byte_order();
    let mut id_of = [0u32; 256];
    for (id, &b) in order.iter().enumerate() {
        id_of[b as usize] = id as u32;
    }
    let mut tokens: Vec<Vec<u8>> = order.iter().map(|&b| vec![b]).collect();
    let mut ids: FxHashMap<Vec<u8>, Rank> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as Rank))
        .collect();
    let mut merger = Merger::new(
        counts
            .iter()
            .map(|(piece, n)| (piece.bytes().map(|b| id_of[b as usize]).collect(), n)),
    );
    let mut merges = Vec::new();
    while tokens.len() < n_tokens {
        let Some(((a, b), count)) = merger.best() else {
            break;
        };
        if count < min_frequency.max(1) {
            break;
        }
        let mut bytes = tokens[a as usize].clone();
        bytes.extend_from_slice(&tokens[b as usize]);
        let next = tokens.len() as Rank;
        let merged = *ids.entry(bytes).or_insert_with_key(|k| {
            tokens.push(k.clone());
            next
        });
        merger.merge((a, b), merged);
        merges.push((a, b));
        if merges.len() % 256 == 0 {
            progress(tokens.len());
        }
    }
    progress(tokens.len());
    TrainedBpe { tokens, merges }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_starts_printable_and_covers_every_byte() {
        let order = gpt2_byte_order();
        assert_eq!(&order[..3], b"!\"#");
        assert_eq!(order[188], 0); // 94 + 12 + 82 printable bytes come first
        let mut seen = order.to_vec();
        seen.sort_unstable();
        assert_eq!(seen, (0..=255).collect::<Vec<u8>>());
    }

    #[test]
    fn merges_the_most_frequent_pair_first() {
        let mut counts = PieceCounts::new();
        counts.add("hug", 10);
        counts.add("pug", 5);
        counts.add("pun", 12);
        counts.add("bun", 4);
        counts.add("hugs", 5);
        let t = train(&counts, 259, 1, &mut |_| {});
        let learned: Vec<&[u8]> = t.tokens[256..].iter().map(Vec::as_slice).collect();
        // "ug" occurs 20 times, "un" 16, then "hug" 15
        assert_eq!(learned, [b"ug".as_slice(), b"un", b"hug"]);
    }

    #[test]
    fn min_frequency_stops_training() {
        let mut counts = PieceCounts::new();
        counts.add("ab", 3);
        counts.add("cd", 1);
        let t = train(&counts, 1000, 2, &mut |_| {});
        assert_eq!(t.tokens.len(), 257);
        assert_eq!(t.tokens[256], b"ab");
    }
}
