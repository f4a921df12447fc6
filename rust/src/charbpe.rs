//! Hugging Face's BPE model over characters, as `tokenizer.json` files of SentencePiece
//! models hold it (Llama, Mistral: `"type": "BPE"` with `byte_fallback`): a word starts as
//! its characters (a character outside the vocabulary becomes its `<0xXX>` byte tokens, or
//! the unknown token, consecutive ones fused), then the adjacent pair with the lowest merge
//! rank merges, the leftmost on ties, until none is in the merge list.
//!
//! That is HF's `Word::merge_all`, not sentencepiece's own loop: the two differ (HF merges
//! over the whole pre-tokenized word, so `▁▁` can form), and the file's reference is HF.
//!
//! Speed: a word is cut before each `▁` that follows another character when no merge joins
//! a left part ending in another character to a right part starting with `▁` (true of every
//! converted SentencePiece model): merges never cross such a cut, so the pieces merge
//! separately with the same result, and short pieces merge with a flat scan. Pieces are cut
//! again between two ASCII characters that no token holds side by side (`spm::Joins`), for
//! the same reason: no merge can make a token across them. As on the `.model` path, a part
//! that is one token which merging gives back (most parts of text) is that token, found by
//! one probe of an inline-key table (`cache::WholeWords`); other parts go through the
//! per-thread cache, their slots prefetched a group at a time. Mistral's tokenizer.json, Rust
//! loop, MB/s cold / warm: en 43.7 / 60.5 -> 48.8 / 69.0, multi 31.4 / 64.2 -> 33.2 / 64.0.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use crate::cache::{with_span_cache, Whole, WholeWords};
use crate::error::{Error, Result};
use crate::pipeline::TokenTable;
use crate::spm::{Joins, SpaceCuts};
use crate::vocab::Vocab;

const NONE: u32 = u32::MAX;
const SPACE: &str = "\u{2581}";
/// Pieces of at most this many symbols merge with a flat scan; longer ones with a heap.
const SCAN_MAX: usize = 32;
/// The most symbols [`scan_merges`] takes.
pub(crate) const SCAN_CAP: usize = 64;
const _: () = assert!(SCAN_MAX <= SCAN_CAP);

/// The BPE model of a `tokenizer.json` (no continuing-subword prefix or end-of-word suffix).
pub struct CharBpe {
    tokens: TokenTable,
    /// `(left id, right id)` → `(rank, merged id)`.
    merges: FxHashMap<(u32, u32), (u32, u32)>,
    unk_token: Option<String>,
    unk: Option<u32>,
    fuse_unk: bool,
    /// The `<0xXX>` token of each byte when the model falls back to bytes (NONE if missing).
    byte_ids: Option<Box<[u32; 256]>>,
    ignore_merges: bool,
    /// The id of each ASCII character's token (NONE if it has none).
    ascii: Box<[u32; 128]>,
    /// Words may be cut before each `▁` that follows another character (see module doc).
    cut_at_space: bool,
    /// Identity of this model's per-thread part caches.
    cache_owner: u64,
    /// Parts are cut further between ASCII characters that no token holds side by side: no
    /// merge crosses there (see `spm::Joins`).
    joins: Joins,
    /// The parts that are one token which merging gives back: most parts of text, found by
    /// one probe of an inline-key table (see `cache::WholeWords`).
    whole: WholeWords,
}

#[derive(Clone, Copy)]
struct Sym {
    id: u32,
    start: u32,
    end: u32,
}

/// Drops the symbols a heap merge absorbed (`alive[i]` false), keeping the order.
pub(crate) fn keep_alive<S>(syms: &mut Vec<S>, alive: &[bool]) {
    let mut i = 0;
    syms.retain(|_| {
        i += 1;
        alive[i - 1]
    });
}

/// The flat merge loop of short words, shared by the BPEs over characters (this one and
/// sentencepiece's): repeatedly merges the best adjacent pair, the leftmost on ties, until no
/// pair merges. `pair(l, r)` gives the pair's priority and merged id (or `None`), `better`
/// says whether one priority beats another, and `join(l, r, id)` merges `r` into `l`.
/// O(n·m) for n symbols and m merges, which for short words beats a heap. At most
/// [`SCAN_CAP`] symbols: the pairs live on the stack (an allocation per word was a twentieth
/// of a first pass).
pub(crate) fn scan_merges<S, P: Copy>(
    syms: &mut Vec<S>,
    mut pair: impl FnMut(&S, &S) -> Option<(P, u32)>,
    better: impl Fn(P, P) -> bool,
    join: impl Fn(&mut S, &S, u32),
) {
    assert!(
        syms.len() <= SCAN_CAP,
        "scan_merges takes at most {SCAN_CAP} symbols"
    );
    if syms.len() < 2 {
        return;
    }
    let mut room = [None; SCAN_CAP - 1];
    for (p, w) in room.iter_mut().zip(syms.windows(2)) {
        *p = pair(&w[0], &w[1]);
    }
    let mut pairs = &mut room[..syms.len() - 1];
    loop {
        let mut best: Option<(usize, P, u32)> = None;
        for (k, p) in pairs.iter().enumerate() {
            if let Some((prio, id)) = *p {
                if best.is_none_or(|(_, b, _)| better(prio, b)) {
                    best = Some((k, prio, id));
                }
            }
        }
        let Some((k, _, id)) = best else { break };
        let right = syms.remove(k + 1);
        join(&mut syms[k], &right, id);
        pairs.copy_within(k + 1.., k);
        let n = pairs.len() - 1;
        pairs = &mut pairs[..n];
        if k + 1 < syms.len() {
            pairs[k] = pair(&syms[k], &syms[k + 1]);
        }
        if k > 0 {
            pairs[k - 1] = pair(&syms[k - 1], &syms[k]);
        }
    }
}

impl CharBpe {
    /// `merges` are `(left, right)` strings in rank order.
    pub fn new(
        vocab: Vec<(String, u32)>,
        merges: &[(String, String)],
        unk_token: Option<String>,
        fuse_unk: bool,
        byte_fallback: bool,
        ignore_merges: bool,
        origin: &str,
    ) -> Result<Self> {
        let tokens = TokenTable::new(vocab);
        let id_of = |s: &str, rank: usize| {
            tokens.token_to_id(s).ok_or_else(|| {
                Error::invalid(
                    origin,
                    format!("merge {rank} uses {s:?}, which is not in the vocabulary"),
                )
            })
        };
        let mut table = FxHashMap::with_capacity_and_hasher(merges.len(), Default::default());
        let mut cut_at_space = true;
        for (rank, (l, r)) in merges.iter().enumerate() {
            let merged = id_of(&format!("{l}{r}"), rank)?;
            let key = (id_of(l, rank)?, id_of(r, rank)?);
            // HF keeps the first rank of a pair listed twice
            table.entry(key).or_insert((rank as u32, merged));
            if r.starts_with(SPACE) && !l.ends_with(SPACE) {
                cut_at_space = false;
            }
        }
        let unk = match &unk_token {
            Some(t) => Some(tokens.token_to_id(t).ok_or_else(|| {
                Error::invalid(
                    origin,
                    format!("the unknown token {t:?} is not in the vocabulary"),
                )
            })?),
            None => None,
        };
        let byte_ids = byte_fallback.then(|| {
            Box::new(std::array::from_fn(|b| {
                tokens.token_to_id(&format!("<0x{b:02X}>")).unwrap_or(NONE)
            }))
        });
        let ascii = Box::new(std::array::from_fn(|b| {
            let c = [b as u8];
            tokens
                .token_to_id(std::str::from_utf8(&c).unwrap())
                .unwrap_or(NONE)
        }));
        // one string per id (two strings of one id would share what is learned of it)
        let pairs = (0..tokens.n_ids() as u32)
            .filter_map(|id| Some((tokens.id_to_token(id)?.as_bytes().to_vec(), id)))
            .filter(|(t, _)| !t.is_empty())
            .collect();
        let whole = WholeWords::new(Vocab::from_pieces(pairs, origin)?);
        let mut joins = Joins::new(tokens.iter().map(|(t, _)| t.as_bytes()));
        // consecutive unknown characters fuse into one unknown token: never cut between them
        if fuse_unk && unk.is_some() {
            for c in 0..0x80u8 {
                let byte_token = byte_ids.as_ref().is_some_and(|b| b[c as usize] != NONE);
                if ascii[c as usize] == NONE && !byte_token {
                    joins.join_all(c);
                }
            }
        }
        Ok(CharBpe {
            joins,
            tokens,
            merges: table,
            unk_token,
            unk,
            fuse_unk,
            byte_ids,
            ignore_merges,
            ascii,
            cut_at_space,
            cache_owner: crate::cache::new_owner(),
            whole,
        })
    }

    pub fn tokens(&self) -> &TokenTable {
        &self.tokens
    }

    pub fn unk_token(&self) -> Option<&str> {
        self.unk_token.as_deref()
    }

    /// Appends `(id, start byte, end byte)` of each token of `word` to `out`.
    pub fn tokenize(&self, word: &str, out: &mut Vec<(u32, u32, u32)>) {
        if self.ignore_merges {
            if let Some(id) = self.tokens.token_to_id(word) {
                out.push((id, 0, word.len() as u32));
                return;
            }
        }
        let bytes = word.as_bytes();
        let spaces = if self.cut_at_space {
            SpaceCuts::RunStarts
        } else {
            SpaceCuts::None
        };
        with_span_cache(self.cache_owner, |cache| {
            let mut syms = Vec::new();
            let parts = self.joins.parts(bytes, spaces);
            self.whole.for_each(
                bytes,
                parts,
                cache,
                |cache, h| cache.prefetch_slot(h),
                |cache, range, whole, h| {
                    let (at, part) = (range.start as u32, &bytes[range.clone()]);
                    let mark = out.len();
                    match whole {
                        Whole::Yes(id) => return out.push((id, at, range.end as u32)),
                        Whole::Unknown(id) => {
                            self.merge_word(&word[range], &mut syms, out);
                            let alone = out[mark..] == [(id, 0, part.len() as u32)];
                            self.whole.learn(id, alone);
                            if !alone {
                                cache.put_hashed(part, h, &out[mark..]);
                            }
                        }
                        Whole::No => {
                            // the cached spans, moved to where the part starts (one pass, no
                            // memcpy call for the one to three tokens of most parts)
                            if let Some(vals) = cache.get_hashed(part, h) {
                                out.extend(vals.iter().map(|&(id, s, e)| (id, s + at, e + at)));
                                return;
                            }
                            self.merge_word(&word[range], &mut syms, out);
                            cache.put_hashed(part, h, &out[mark..]);
                        }
                    }
                    for t in &mut out[mark..] {
                        t.1 += at;
                        t.2 += at;
                    }
                },
            );
        })
    }

    /// HF's `merge_word` on `word`.
    fn merge_word(&self, word: &str, syms: &mut Vec<Sym>, out: &mut Vec<(u32, u32, u32)>) {
        syms.clear();
        // a pending unknown run: (start, end); HF adds it before the next known character
        // (byte-fallback tokens do not flush it)
        let mut unk: Option<(u32, u32)> = None;
        for (i, c) in word.char_indices() {
            let (start, end) = (i as u32, (i + c.len_utf8()) as u32);
            let id = if c.is_ascii() {
                self.ascii[c as usize]
            } else {
                self.tokens
                    .token_to_id(&word[i..end as usize])
                    .unwrap_or(NONE)
            };
            if id != NONE {
                if let Some((s, e)) = unk.take() {
                    syms.push(Sym {
                        id: self.unk.unwrap_or(NONE),
                        start: s,
                        end: e,
                    });
                }
                syms.push(Sym { id, start, end });
                continue;
            }
            if let Some(bytes) = &self.byte_ids {
                let ids: Option<Vec<u32>> = word.as_bytes()[i..end as usize]
                    .iter()
                    .map(|&b| Some(bytes[b as usize]).filter(|&t| t != NONE))
                    .collect();
                if let Some(ids) = ids {
                    // each byte token spans its whole character, as HF's offsets do
                    syms.extend(ids.into_iter().map(|id| Sym { id, start, end }));
                    continue;
                }
            }
            if self.unk.is_some() {
                unk = match unk {
                    Some((s, _)) if self.fuse_unk => Some((s, end)),
                    Some((s, e)) => {
                        syms.push(Sym {
                            id: self.unk.unwrap_or(NONE),
                            start: s,
                            end: e,
                        });
                        Some((start, end))
                    }
                    None => Some((start, end)),
                };
            }
            // no unknown token: HF drops the character
        }
        if let Some((s, e)) = unk {
            syms.push(Sym {
                id: self.unk.unwrap_or(NONE),
                start: s,
                end: e,
            });
        }
        if syms.len() <= SCAN_MAX {
            self.merge_scan(syms);
        } else {
            self.merge_heap(syms);
        }
        out.extend(syms.iter().map(|s| (s.id, s.start, s.end)));
    }

    #[inline]
    fn rank(&self, l: &Sym, r: &Sym) -> Option<(u32, u32)> {
        self.merges.get(&(l.id, r.id)).copied()
    }

    /// Repeatedly merges the lowest-ranked adjacent pair, the leftmost on ties.
    fn merge_scan(&self, syms: &mut Vec<Sym>) {
        scan_merges(
            syms,
            |l, r| self.rank(l, r),
            |rank, best| rank < best,
            |l, r, id| {
                l.end = r.end;
                l.id = id;
            },
        );
    }

    /// The same order with a heap over linked symbols: O(n log n) for long words.
    fn merge_heap(&self, syms: &mut Vec<Sym>) {
        let n = syms.len();
        let mut next: Vec<u32> = (1..=n as u32).collect();
        let mut prev: Vec<u32> = (0..n as u32).map(|i| i.wrapping_sub(1)).collect();
        let mut alive = vec![true; n];
        // (rank, left position, merged id), smallest first
        let mut heap = BinaryHeap::with_capacity(n);
        for i in 1..n {
            if let Some((rank, id)) = self.rank(&syms[i - 1], &syms[i]) {
                heap.push(Reverse((rank, i as u32 - 1, id)));
            }
        }
        while let Some(Reverse((_, l, id))) = heap.pop() {
            let l = l as usize;
            let r = next[l] as usize;
            if !alive[l] || r >= n || self.rank(&syms[l], &syms[r]).map(|m| m.1) != Some(id) {
                continue; // out of date
            }
            syms[l].end = syms[r].end;
            syms[l].id = id;
            alive[r] = false;
            next[l] = next[r];
            if (next[r] as usize) < n {
                prev[next[r] as usize] = l as u32;
            }
            let p = prev[l] as usize;
            if p < n {
                if let Some((rank, id)) = self.rank(&syms[p], &syms[l]) {
                    heap.push(Reverse((rank, p as u32, id)));
                }
            }
            let q = next[l] as usize;
            if q < n {
                if let Some((rank, id)) = self.rank(&syms[l], &syms[q]) {
                    heap.push(Reverse((rank, l as u32, id)));
                }
            }
        }
        keep_alive(syms, &alive);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(extra: &[(&str, &str)]) -> CharBpe {
        let mut vocab: Vec<(String, u32)> =
            ["<unk>", "a", "b", "c", "ab", "bc", "abc", "▁", "▁▁", "▁a"]
                .iter()
                .enumerate()
                .map(|(i, t)| (t.to_string(), i as u32))
                .collect();
        vocab.extend((0..256).map(|b| (format!("<0x{b:02X}>"), 100 + b)));
        let mut merges: Vec<(String, String)> =
            [("b", "c"), ("a", "b"), ("a", "bc"), ("▁", "▁"), ("▁", "a")]
                .iter()
                .map(|(l, r)| (l.to_string(), r.to_string()))
                .collect();
        merges.extend(extra.iter().map(|(l, r)| (l.to_string(), r.to_string())));
        CharBpe::new(
            vocab,
            &merges,
            Some("<unk>".into()),
            true,
            true,
            false,
            "test",
        )
        .unwrap()
    }

    fn ids(m: &CharBpe, word: &str) -> Vec<(u32, u32, u32)> {
        let mut out = Vec::new();
        m.tokenize(word, &mut out);
        out
    }

    #[test]
    fn merges_by_rank_with_byte_fallback() {
        let m = model(&[]);
        // b+c (rank 0) before a+b (rank 1), then a+bc
        assert_eq!(ids(&m, "abc"), vec![(6, 0, 3)]);
        // é is two byte tokens spanning the character
        assert_eq!(
            ids(&m, "aé"),
            vec![(1, 0, 1), (100 + 0xC3, 1, 3), (100 + 0xA9, 1, 3)]
        );
        // ▁▁ merges across the cut point, which is only before a run of ▁
        assert_eq!(ids(&m, "a▁▁a"), vec![(1, 0, 1), (8, 1, 7), (1, 7, 8)]);
    }

    #[test]
    fn scan_and_heap_agree() {
        let m = model(&[]);
        // as long as the scan takes
        let word: String = "abcab▁a▁▁bca".repeat(SCAN_CAP / 12);
        let mut scan: Vec<Sym> = Vec::new();
        let mut heap: Vec<Sym> = Vec::new();
        for (i, c) in word.char_indices() {
            let s = Sym {
                id: m.tokens().token_to_id(&c.to_string()).unwrap(),
                start: i as u32,
                end: (i + c.len_utf8()) as u32,
            };
            scan.push(s);
            heap.push(s);
        }
        m.merge_scan(&mut scan);
        m.merge_heap(&mut heap);
        let key = |v: &[Sym]| v.iter().map(|s| (s.id, s.start, s.end)).collect::<Vec<_>>();
        assert_eq!(key(&scan), key(&heap));
    }

    #[test]
    fn a_merge_into_a_space_turns_cutting_off() {
        assert!(model(&[]).cut_at_space);
        let vocab = vec![("a".into(), 0), ("▁".into(), 1), ("a▁".into(), 2)];
        let m = CharBpe::new(
            vocab,
            &[("a".into(), "▁".into())],
            None,
            false,
            false,
            false,
            "t",
        )
        .unwrap();
        assert!(!m.cut_at_space);
        assert_eq!(ids(&m, "a▁"), vec![(2, 0, 4)]);
    }
}
