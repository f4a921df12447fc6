//! Training a WordPiece vocabulary (BERT style), as Hugging Face's `WordPieceTrainer` does:
//! BPE merges over the characters of each word, where every character after the first carries
//! the continuation prefix (`##`), and a merge joins `a` and `##b` into `ab`.

use rustc_hash::FxHashMap;

use super::count::PieceCounts;
use super::merges::Merger;
use crate::error::{Error, Result};

/// Trains on word counts. The vocabulary is the special tokens, then the alphabet (the
/// `limit_alphabet` most frequent characters, by code point), then each alphabet character
/// with the prefix (by code point), then the learned tokens, until `vocab_size` tokens or no
/// pair occurs `min_frequency` times. Characters outside the alphabet are left out of the
/// words, as Hugging Face does. `progress` is told the number of tokens now and then.
///
/// A `vocab_size` too small for the special tokens and the alphabet (with and without the
/// prefix) is an error, found before any merge.
pub fn train(
    counts: &PieceCounts,
    vocab_size: usize,
    min_frequency: u64,
    specials: &[String],
    prefix: &str,
    limit_alphabet: Option<usize>,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<String>> {
    let mut freq: FxHashMap<char, u64> = FxHashMap::default();
    for (word, n) in counts.iter() {
        for c in word.chars() {
            *freq.entry(c).or_insert(0) += n;
        }
    }
    let mut alphabet: Vec<(char, u64)> = freq.into_iter().collect();
    if let Some(limit) = limit_alphabet.filter(|&l| l < alphabet.len()) {
        alphabet.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        alphabet.truncate(limit);
    }
    let mut alphabet: Vec<char> = alphabet.into_iter().map(|(c, _)| c).collect();
    alphabet.sort_unstable();
    if specials.len() + 2 * alphabet.len() > vocab_size {
        return Err(Error::invalid(
            "train_wordpiece",
            format!(
                "vocab_size {vocab_size} is below the base alphabet: {} special tokens and {} \
                 characters, each with and without {prefix:?}; raise vocab_size or lower \
                 limit_alphabet",
                specials.len(),
                alphabet.len()
            ),
        ));
    }

    let mut tokens: Vec<String> = Vec::new();
    let mut ids: FxHashMap<String, u32> = FxHashMap::default();
    let mut add = |t: String, tokens: &mut Vec<String>| -> u32 {
        *ids.entry(t).or_insert_with_key(|k| {
            tokens.push(k.clone());
            tokens.len() as u32 - 1
        })
    };
    for s in specials {
        add(s.clone(), &mut tokens);
    }
    let mut first = FxHashMap::default();
    let mut rest = FxHashMap::default();
    for &c in &alphabet {
        first.insert(c, add(c.to_string(), &mut tokens));
    }
    for &c in &alphabet {
        rest.insert(c, add(format!("{prefix}{c}"), &mut tokens));
    }
    let words = counts.iter().map(|(word, n)| {
        let syms = word
            .chars()
            .enumerate()
            .filter_map(|(i, c)| if i == 0 { first.get(&c) } else { rest.get(&c) }.copied())
            .collect();
        (syms, n)
    });
    let mut merger = Merger::new(words);
    let mut n_merges = 0usize;
    while tokens.len() < vocab_size {
        let Some(((a, b), count)) = merger.best() else {
            break;
        };
        if count < min_frequency.max(1) {
            break;
        }
        let right = &tokens[b as usize];
        let joined = format!(
            "{}{}",
            tokens[a as usize],
            right.strip_prefix(prefix).unwrap_or(right)
        );
        let merged = add(joined, &mut tokens);
        merger.merge((a, b), merged);
        n_merges += 1;
        if n_merges % 256 == 0 {
            progress(tokens.len());
        }
    }
    progress(tokens.len());
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_pieces_join_without_their_prefix() {
        let mut counts = PieceCounts::new();
        counts.add("hug", 10);
        counts.add("hugs", 5);
        counts.add("bug", 3);
        let specials = vec!["[UNK]".to_string()];
        let v = train(&counts, 100, 1, &specials, "##", None, &mut |_| {}).unwrap();
        assert_eq!(&v[..6], ["[UNK]", "b", "g", "h", "s", "u"]);
        assert_eq!(&v[6..11], ["##b", "##g", "##h", "##s", "##u"]);
        // (##u, ##g) occurs 18 times, then (h, ##ug) 15, (hug, ##s) 5, (b, ##ug) 3
        assert_eq!(&v[11..], ["##ug", "hug", "hugs", "bug"]);
    }

    #[test]
    fn limit_alphabet_keeps_the_most_frequent_characters() {
        let mut counts = PieceCounts::new();
        counts.add("aab", 5);
        counts.add("z", 1);
        let v = train(&counts, 5, 1, &[], "##", Some(2), &mut |_| {}).unwrap();
        assert_eq!(v, ["a", "b", "##a", "##b", "aa"]); // no "z": it is outside the alphabet
    }
}
