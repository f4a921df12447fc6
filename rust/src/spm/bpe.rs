//! SentencePiece BPE: characters (and user-defined symbols, which never merge) are merged
//! pairwise, the pair whose merged piece has the highest score first, the leftmost on ties —
//! `bpe_model.cc`'s order, so the ids are sentencepiece's.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Range;

use rustc_hash::{FxHashMap, FxHashSet};

use super::normalizer::utf8_len;
use super::proto::PieceType;
use super::unigram::SplitMix64;
use super::{decode, Joins, SentencePiece, SpaceCuts, WideJoins, SPACE_CHAR};
use crate::bpe::cache::{with_cache, PieceCache};
use crate::bpe::merge::PairMemo;
use crate::bpe::table::{self, Found};
use crate::cache::{Whole, WholeWords};
use crate::charbpe::{keep_alive, scan_merges, SCAN_CAP};
use crate::trie::Trie;
use crate::vocab::Vocab;

const NONE: u32 = u32::MAX;

/// For each UNUSED piece that a merge proposed: the length of its left part.
type Splits = FxHashMap<Box<[u8]>, u32>;
/// Words looked up together (their table lines prefetched while the group fills).
const GROUP: usize = 32;
/// Words of at most this many symbols merge with a flat scan; longer ones with a heap.
const SCAN_MAX: usize = 48;
const _: () = assert!(SCAN_MAX <= SCAN_CAP);

pub struct Bpe {
    /// No piece holds `▁` right after another character: a text can be cut before each
    /// `▁` run and its words merged separately.
    split_words: bool,
    /// Where words are cut further: no merge makes a symbol across ASCII characters that no
    /// piece holds side by side, so the parts merge (and are cached) alone.
    joins: Joins,
    /// And where a new word is cut further, beside characters that are not ASCII.
    wide: WideJoins,
    /// The model has UNUSED pieces: merged ones are split back the way the whole text's heap
    /// last proposed them, so only sentencepiece's own whole-text procedure is exact.
    has_unused: bool,
    /// Ids of the normal pieces whose string is also a control/unknown/byte piece (which
    /// `PieceToId` prefers): almost always empty.
    shadowed: FxHashSet<u32>,
    /// The id of each character's piece of the Basic Multilingual Plane, by code point (NONE
    /// if it has none): every symbol starts as one character, and multilingual words are
    /// mostly new ones on a first pass, so a hash probe per character was a fifth of it.
    bmp: Box<[u32]>,
    /// sentencepiece's `pieces_` (normal, user-defined and unused pieces) in the inline-key
    /// table of byte-level BPE: what a merge makes, and whole words, are looked up there.
    whole: WholeWords,
}

#[derive(Clone, Copy)]
struct Sym {
    start: u32,
    end: u32,
    /// The piece's id in `pieces_`, or NONE (an unknown character).
    id: u32,
    frozen: bool,
}

impl Bpe {
    pub fn new(pieces: &[String], types: &[PieceType], index: &FxHashMap<Box<[u8]>, u32>) -> Self {
        let split_words = index.keys().all(|p| {
            let s = std::str::from_utf8(p).unwrap_or("");
            let mut prev: Option<char> = None;
            s.chars().all(|c| {
                let ok = !(c == SPACE_CHAR && prev.is_some_and(|p| p != SPACE_CHAR));
                prev = Some(c);
                ok
            })
        });
        let joins = Joins::new(index.keys().map(|p| &p[..]));
        let wide = WideJoins::new(index.keys().filter_map(|p| std::str::from_utf8(p).ok()));
        let mut shadowed = FxHashSet::default();
        for (i, t) in types.iter().enumerate() {
            let reserved = matches!(t, PieceType::Control | PieceType::Unknown | PieceType::Byte);
            if reserved {
                if let Some(&id) = index.get(pieces[i].as_bytes()) {
                    shadowed.insert(id);
                }
            }
        }
        // sentencepiece rejects empty pieces, and no merge makes one
        let pairs = index
            .iter()
            .filter(|(p, _)| !p.is_empty())
            .map(|(p, &id)| (p.to_vec(), id))
            .collect();
        let pieces = Vocab::from_pieces(pairs, "sentencepiece pieces")
            .expect("the pieces are distinct and not empty");
        Bpe {
            split_words,
            joins,
            wide,
            has_unused: types.contains(&PieceType::Unused),
            shadowed,
            bmp: bmp_ids(&pieces),
            whole: WholeWords::new(pieces),
        }
    }

    /// Appends the ids of a normalized text.
    pub fn encode(&self, sp: &SentencePiece, text: &[u8], out: &mut Vec<u32>) {
        with_cache(sp.cache_owner, |cache: &mut PieceCache| {
            let mut syms = Vec::new();
            if self.has_unused || !self.split_words {
                self.symbols(sp, text, &mut syms);
                let mut rev = FxHashMap::default();
                let track = self.has_unused.then_some(&mut rev);
                self.merge_heap(sp, text, &mut syms, &mut cache.pairs, track, None);
                self.emit_all(sp, text, &syms, &rev, out);
                return;
            }
            // The words, and their parts (see `joins`), looked up in groups: their table lines
            // (or, for long ones, word-cache slots) are prefetched as the group fills.
            let mut group = Vec::with_capacity(GROUP);
            let mut flush = |group: &mut Vec<(Range<usize>, u128, u64)>, cache: &mut PieceCache| {
                cache.emit_group(
                    group,
                    |g| (g.1, g.2),
                    out,
                    |cache, g, out| {
                        let word = &text[g.0.clone()];
                        self.encode_word(sp, word, g.2, cache, &mut syms, true, out)
                    },
                );
                group.clear();
            };
            for part in self.joins.parts(text, SpaceCuts::RunStarts) {
                let (key, hash) = if (1..=table::SHORT_MAX).contains(&part.len()) {
                    cache.table.start(text, part.start, part.len())
                } else {
                    (0, cache.prefetch_word(&text[part.clone()]))
                };
                group.push((part, key, hash));
                if group.len() == GROUP {
                    flush(&mut group, cache);
                }
            }
            flush(&mut group, cache);
        })
    }

    /// Appends the ids of one word (or part) that the piece table does not hold: a long one
    /// from the word cache (`hash`: its `hash_bytes`, or 0 if too long to be cached) if it is
    /// there; else a word that is a piece which merging gives back is that piece, with no
    /// merge, and others merge, cut first (if `cut`) where [`WideJoins`] allows.
    #[allow(clippy::too_many_arguments)]
    fn encode_word(
        &self,
        sp: &SentencePiece,
        word: &[u8],
        hash: u64,
        cache: &mut PieceCache,
        syms: &mut Vec<Sym>,
        cut: bool,
        out: &mut Vec<u32>,
    ) {
        let long = word.len() > table::SHORT_MAX;
        if long && cache.get(word, hash, out) {
            return;
        }
        let at = out.len();
        match self.whole.whole(word) {
            Whole::Yes(id) => out.push(id),
            Whole::Unknown(id) => {
                self.merge_word(sp, word, cache, syms, out);
                self.whole.learn(id, out[at..] == [id]);
            }
            Whole::No if cut => self.merge_parts(sp, word, cache, syms, out),
            Whole::No => self.merge_word(sp, word, cache, syms, out),
        }
        if long {
            // pieces too: a long word is then one probe of the cache, not two
            cache.put(word, hash, &out[at..]);
        }
    }

    /// Appends the ids of a word that is not a piece, cut where no piece joins two characters
    /// that are not both ASCII: no merge crosses there, so each part is merged alone, or found
    /// in the caches.
    fn merge_parts(
        &self,
        sp: &SentencePiece,
        word: &[u8],
        cache: &mut PieceCache,
        syms: &mut Vec<Sym>,
        out: &mut Vec<u32>,
    ) {
        // the parts' table lines (or word-cache slots) prefetched a group at a time
        let mut group = [(0, 0, 0u128, 0u64); 16];
        let (mut n, mut start) = (0, 0);
        let mut add = |end: usize, cache: &mut PieceCache, out: &mut Vec<u32>| {
            let part = &word[start..end];
            let (key, hash) = if part.len() <= table::SHORT_MAX {
                cache.table.start(part, 0, part.len())
            } else {
                (0, cache.prefetch_word(part))
            };
            group[n] = (start, end, key, hash);
            (n, start) = (n + 1, end);
            if n == group.len() || end == word.len() {
                for &(s, e, key, hash) in &group[..n] {
                    self.encode_part(sp, &word[s..e], key, hash, cache, syms, out);
                }
                n = 0;
            }
        };
        let mut cuts = 0;
        self.wide.cuts(word, |at| {
            cuts += 1;
            add(at, cache, out)
        });
        if cuts == 0 {
            self.merge_word(sp, word, cache, syms, out);
        } else {
            add(word.len(), cache, out);
        }
    }

    /// Appends the ids of a part of a word cut by [`Bpe::merge_parts`] (its table `key` and
    /// `hash` from `PieceTable::start`, or key 0 and its word-cache hash), from the piece
    /// table or the word cache when they hold it.
    #[allow(clippy::too_many_arguments)]
    fn encode_part(
        &self,
        sp: &SentencePiece,
        part: &[u8],
        key: u128,
        hash: u64,
        cache: &mut PieceCache,
        syms: &mut Vec<Sym>,
        out: &mut Vec<u32>,
    ) {
        if key == 0 {
            return self.encode_word(sp, part, hash, cache, syms, false, out);
        }
        match cache.table.find(key, hash) {
            Found::Inline(ids, n) => out.extend_from_slice(&ids[..n]),
            Found::Spilled(ids) => out.extend_from_slice(ids),
            Found::Missing => {
                let at = out.len();
                self.encode_word(sp, part, hash, cache, syms, false, out);
                cache.table.insert(key, &out[at..]);
            }
        }
    }

    /// Merges one word and appends its ids.
    fn merge_word(
        &self,
        sp: &SentencePiece,
        word: &[u8],
        cache: &mut PieceCache,
        syms: &mut Vec<Sym>,
        out: &mut Vec<u32>,
    ) {
        self.symbols(sp, word, syms);
        if syms.len() <= SCAN_MAX {
            // the highest score first, the leftmost on ties
            scan_merges(
                syms,
                |l, r| {
                    let (id, score) = self.pair(sp, word, l, r, &mut cache.pairs)?;
                    Some((score, id))
                },
                |score, best| score > best,
                |l, r, id| {
                    l.end = r.end;
                    l.id = id;
                },
            );
        } else {
            self.merge_heap(sp, word, syms, &mut cache.pairs, None, None);
        }
        self.emit_all(sp, word, syms, &FxHashMap::default(), out);
    }

    /// BPE-dropout: each merge is skipped with probability `alpha`.
    pub fn encode_dropout(
        &self,
        sp: &SentencePiece,
        text: &[u8],
        alpha: f32,
        seed: u64,
        out: &mut Vec<u32>,
    ) {
        let mut rng = SplitMix64::new(seed);
        let mut syms = Vec::new();
        self.symbols(sp, text, &mut syms);
        let mut rev = FxHashMap::default();
        let track = self.has_unused.then_some(&mut rev);
        with_cache(sp.cache_owner, |cache: &mut PieceCache| {
            let dropout = Some((alpha, &mut rng));
            self.merge_heap(sp, text, &mut syms, &mut cache.pairs, track, dropout)
        });
        self.emit_all(sp, text, &syms, &rev, out);
    }

    /// The initial symbols: one per character, or per user-defined symbol (longest match).
    fn symbols(&self, sp: &SentencePiece, text: &[u8], syms: &mut Vec<Sym>) {
        syms.clear();
        let mut at = 0;
        while at < text.len() {
            let rest = &text[at..];
            let (len, frozen) = match sp
                .normalizer
                .user_defined()
                .and_then(|t| t.longest_match(Trie::ROOT, rest))
            {
                Some((len, _)) => (len, true),
                None => (utf8_len(rest[0]).min(rest.len()), false),
            };
            let id = if frozen {
                self.piece_id(&rest[..len])
            } else {
                // one character: by code point, when that is in the table
                let (c, _) = decode(rest, 0);
                (self.bmp.get(c as usize).copied()).unwrap_or_else(|| self.piece_id(&rest[..len]))
            };
            syms.push(Sym {
                start: at as u32,
                end: (at + len) as u32,
                id,
                frozen,
            });
            at += len;
        }
    }

    /// Appends the ids of the final symbols, split back where they are UNUSED pieces.
    fn emit_all(
        &self,
        sp: &SentencePiece,
        text: &[u8],
        syms: &[Sym],
        rev: &Splits,
        out: &mut Vec<u32>,
    ) {
        for s in syms {
            self.emit(sp, text, s.start, s.end, s.id, rev, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        sp: &SentencePiece,
        text: &[u8],
        start: u32,
        end: u32,
        id: u32,
        rev: &Splits,
        out: &mut Vec<u32>,
    ) {
        let segment = &text[start as usize..end as usize];
        let id = if id == NONE || self.shadowed.contains(&id) {
            sp.piece_to_id(std::str::from_utf8(segment).expect("symbols are whole characters"))
        } else {
            id
        };
        if self.has_unused && sp.types[id as usize] == PieceType::Unused {
            if let Some(&left_len) = rev.get(segment) {
                let mid = start + left_len;
                let left = self.piece_id(&text[start as usize..mid as usize]);
                let right = self.piece_id(&text[mid as usize..end as usize]);
                self.emit(sp, text, start, mid, left, rev, out);
                self.emit(sp, text, mid, end, right, rev, out);
                return;
            }
        }
        sp.emit(segment, id, out);
    }
}

/// The id of each one-character piece of the Basic Multilingual Plane, by code point.
fn bmp_ids(pieces: &Vocab) -> Box<[u32]> {
    let mut ids = vec![NONE; 0x10000].into_boxed_slice();
    for (id, piece) in pieces.iter() {
        let mut chars = std::str::from_utf8(piece).into_iter().flat_map(str::chars);
        if let (Some(c), None) = (chars.next(), chars.next()) {
            if let Some(slot) = ids.get_mut(c as usize) {
                *slot = id;
            }
        }
    }
    ids
}

impl Bpe {
    /// The id of the piece with exactly these bytes, or NONE.
    #[inline]
    fn piece_id(&self, bytes: &[u8]) -> u32 {
        self.whole.tokens().rank(bytes).unwrap_or(NONE)
    }

    /// The id and score of the piece that merging `l` and `r` would make. Pairs of known
    /// pieces go through the per-thread memo first (the concatenation of two pieces is the
    /// same string wherever they meet).
    #[inline]
    fn pair(
        &self,
        sp: &SentencePiece,
        text: &[u8],
        l: &Sym,
        r: &Sym,
        memo: &mut PairMemo,
    ) -> Option<(u32, f32)> {
        if l.frozen || r.frozen {
            return None;
        }
        let lookup = || self.piece_id(&text[l.start as usize..r.end as usize]);
        let id = if l.id != NONE && r.id != NONE {
            memo.get_or(l.id, r.id, lookup)
        } else {
            lookup()
        };
        (id != NONE).then(|| (id, sp.scores[id as usize]))
    }
}

struct Candidate {
    score: f32,
    left: u32,
    right: u32,
    size: u32,
    id: u32,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    /// The heap's top: the highest score, then the leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.left.cmp(&self.left))
    }
}

impl Bpe {
    /// sentencepiece's heap procedure over linked symbols, O(n log n). With `rev`, records for
    /// each proposed merge of an UNUSED piece how it splits (the last proposal wins, as in
    /// sentencepiece); with `dropout`, skips each merge with probability alpha.
    fn merge_heap(
        &self,
        sp: &SentencePiece,
        text: &[u8],
        syms: &mut Vec<Sym>,
        memo: &mut PairMemo,
        mut rev: Option<&mut Splits>,
        mut dropout: Option<(f32, &mut SplitMix64)>,
    ) {
        let n = syms.len();
        if n < 2 {
            return;
        }
        let mut prev: Vec<u32> = (0..n as u32).map(|i| i.wrapping_sub(1)).collect();
        let mut next: Vec<u32> = (1..=n as u32).collect();
        next[n - 1] = NONE;
        let mut alive = vec![true; n];
        let mut heap = BinaryHeap::with_capacity(n);
        let mut push = |syms: &[Sym], heap: &mut BinaryHeap<Candidate>, l: u32, r: u32| {
            if l == NONE || r == NONE {
                return;
            }
            let (a, b) = (&syms[l as usize], &syms[r as usize]);
            if let Some((id, score)) = self.pair(sp, text, a, b, memo) {
                heap.push(Candidate {
                    score,
                    left: l,
                    right: r,
                    size: b.end - a.start,
                    id,
                });
                if let Some(rev) = rev.as_deref_mut() {
                    if sp.types[id as usize] == PieceType::Unused {
                        let piece = &text[a.start as usize..b.end as usize];
                        rev.insert(piece.into(), a.end - a.start);
                    }
                }
            }
        };
        for i in 1..n as u32 {
            push(syms, &mut heap, i - 1, i);
        }
        while let Some(top) = heap.pop() {
            let (l, r) = (top.left as usize, top.right as usize);
            if !alive[l] || !alive[r] || next[l] != top.right {
                continue;
            }
            let (a, b) = (syms[l], syms[r]);
            if b.end - a.start != top.size {
                continue;
            }
            if let Some((alpha, rng)) = dropout.as_mut() {
                if *alpha >= 1.0 || (*alpha > 0.0 && rng.next_f64() < *alpha as f64) {
                    continue;
                }
            }
            syms[l].end = b.end;
            syms[l].id = top.id;
            alive[r] = false;
            next[l] = next[r];
            if next[r] != NONE {
                prev[next[r] as usize] = l as u32;
            }
            push(syms, &mut heap, prev[l], l as u32);
            push(syms, &mut heap, l as u32, next[l]);
        }
        keep_alive(syms, &alive);
    }
}
