//! A per-thread cache of piece -> ids for pieces that need merging, so a word that is not a
//! single token is merged once per thread rather than at every occurrence. (Whole-token
//! pieces skip it: they cost one vocabulary probe already.)
//!
//! The cache itself is a [`crate::cache::WordCache`] (bounded, per thread). On the
//! multilingual corpus half of the bytes that need merging are repeats, so even a first pass
//! gains; a second pass over the same text does no merging at all.

use std::cell::RefCell;

use super::backtrack::LongMemo;
use super::merge::PairMemo;
use super::table::PieceTable;
use crate::cache::{PerThread, WordCache};
use crate::vocab::Rank;

#[derive(Default)]
pub struct PieceCache {
    /// Pieces of up to 15 bytes, tokens or not (the byte-level BPE's; see `table.rs`).
    pub table: PieceTable,
    /// Longer pieces that need merging, and the SentencePiece BPE's words.
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

    /// Starts loading the cache slot where `get` of a piece with this hash begins.
    #[inline(always)]
    pub fn prefetch_slot(&self, hash: u64) {
        self.words.prefetch_slot(hash)
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
