//! A per-thread cache of piece -> ids, so that a piece is looked up in the vocabulary or
//! merged once per thread rather than at every occurrence: pieces of up to 15 bytes in the
//! [`PieceTable`] (tokens too: one probe of it is cheaper than one of the vocabulary index),
//! longer ones (up to `MAX_CACHED_WORD` bytes, tokens too) in a [`crate::cache::WordCache`].
//! Both are bounded. On the
//! multilingual corpus half of the bytes that need merging are repeats, so even a first pass
//! gains; a second pass over the same text does no merging at all.

use std::cell::RefCell;

use super::backtrack::LongMemo;
use super::merge::PairMemo;
use super::table::{Found, PieceTable};
use crate::cache::{PerThread, WordCache, MAX_CACHED_WORD};
use crate::vocab::{hash_bytes, Rank};

#[derive(Default)]
pub struct PieceCache {
    /// Pieces (or SentencePiece BPE words) of up to 15 bytes, tokens or not (`table.rs`).
    pub table: PieceTable,
    /// Longer ones, tokens or not.
    words: WordCache<Rank>,
    /// Pair ranks seen while merging (same thread, same encoding).
    pub pairs: PairMemo,
    /// The long-piece search's memos, made when this thread first meets a long piece.
    pub long: Option<Box<LongMemo>>,
}

impl PieceCache {
    /// Appends the cached ids of `piece`, whose [`crate::vocab::hash_bytes`] is `hash`, to
    /// `out`; false on a miss.
    #[inline]
    pub fn get(&self, piece: &[u8], hash: u64, out: &mut Vec<Rank>) -> bool {
        match self.words.get_hashed(piece, hash) {
            Some(ids) => {
                out.extend_from_slice(ids);
                true
            }
            None => false,
        }
    }

    /// Appends the ids of each item of `group`, in order: from the table when it has them,
    /// else made by `make` (and then remembered, for items whose table `key` is not 0; see
    /// `PieceTable::start`). The items' table lines should have been prefetched.
    #[inline(always)]
    pub fn emit_group<T>(
        &mut self,
        group: &[T],
        key: impl Fn(&T) -> (u128, u64),
        out: &mut Vec<Rank>,
        mut make: impl FnMut(&mut Self, &T, &mut Vec<Rank>),
    ) {
        out.reserve(4 * group.len());
        for (i, item) in group.iter().enumerate() {
            let (key, hash) = key(item);
            if key == 0 {
                make(self, item, out);
            } else {
                match self.table.find(key, hash) {
                    Found::Inline(ids, n) => {
                        // SAFETY: `out` has room for 4 ids more: reserved for each item left.
                        unsafe {
                            let end = out.as_mut_ptr().add(out.len());
                            std::ptr::write_unaligned(end.cast::<[Rank; 4]>(), ids);
                            out.set_len(out.len() + n);
                        }
                        continue;
                    }
                    Found::Spilled(ids) => out.extend_from_slice(ids),
                    Found::Missing => {
                        let at = out.len();
                        make(self, item, out);
                        self.table.insert(key, &out[at..]);
                    }
                }
            }
            out.reserve(4 * (group.len() - i));
        }
    }

    /// The [`crate::vocab::hash_bytes`] of a long `piece` (0 for one too long to be cached),
    /// its word-cache slot prefetched.
    #[inline]
    pub fn prefetch_word(&self, piece: &[u8]) -> u64 {
        if piece.len() > MAX_CACHED_WORD {
            return 0;
        }
        let hash = hash_bytes(piece);
        self.words.prefetch_slot(hash);
        hash
    }

    /// Remembers the ids of `piece` (which must not be cached yet; `hash` as for `get`).
    pub fn put(&mut self, piece: &[u8], hash: u64, ids: &[Rank]) {
        self.words.put_hashed(piece, hash, ids)
    }
}

thread_local! {
    static CACHES: RefCell<PerThread<PieceCache>> = const { RefCell::new(PerThread::new()) };
}

/// Runs `f` with this thread's cache for the encoding whose identity is `owner`.
pub fn with_cache<R>(owner: u64, f: impl FnOnce(&mut PieceCache) -> R) -> R {
    CACHES.with_borrow_mut(|caches| f(caches.get(owner)))
}
