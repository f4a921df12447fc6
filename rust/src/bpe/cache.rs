//! A per-thread cache of piece -> ids for pieces that need merging, so a word that is not a
//! single token is merged once per thread rather than at every occurrence. (Whole-token
//! pieces skip it: they cost one vocabulary probe already.)
//!
//! Keys and ids live in two flat arenas and the table holds only offsets, so an insert is two
//! appends and no allocation of its own. Memory is bounded: when the arenas pass
//! [`MAX_KEY_BYTES`] the cache is cleared and refills with what the text uses now.
//! Thread-local rather than shared: no lock, no contention, nothing to repair after fork.
//! On the multilingual corpus half of the bytes that need merging are repeats, so even a
//! first pass gains; a second pass over the same text does no merging at all.

use std::cell::RefCell;

use hashbrown::HashTable;

use super::merge::PairMemo;
use crate::vocab::{hash_bytes, Rank};

/// Arena size at which a cache starts over (about 3x this in memory, per thread and encoding).
const MAX_KEY_BYTES: usize = 4 << 20;
/// Caches kept per thread (one per encoding in use).
const PER_THREAD: usize = 4;

#[derive(Clone, Copy)]
struct Entry {
    hash: u64,
    key: u32,
    key_len: u32,
    ids: u32,
    ids_len: u32,
}

#[derive(Default)]
pub struct PieceCache {
    table: HashTable<Entry>,
    keys: Vec<u8>,
    ids: Vec<Rank>,
    /// Pair ranks seen while merging (same thread, same encoding).
    pub pairs: PairMemo,
}

impl PieceCache {
    /// Appends the cached ids of `piece` to `out`; false on a miss.
    #[inline]
    pub fn get(&self, piece: &[u8], out: &mut Vec<Rank>) -> bool {
        let h = hash_bytes(piece);
        let found = self.table.find(h, |e| {
            e.hash == h && &self.keys[e.key as usize..(e.key + e.key_len) as usize] == piece
        });
        match found {
            Some(e) => {
                out.extend_from_slice(&self.ids[e.ids as usize..(e.ids + e.ids_len) as usize]);
                true
            }
            None => false,
        }
    }

    /// Remembers the ids of `piece` (which must not be cached yet).
    pub fn put(&mut self, piece: &[u8], ids: &[Rank]) {
        if self.keys.len() + piece.len() > MAX_KEY_BYTES {
            self.table.clear();
            self.keys.clear();
            self.ids.clear();
        }
        let e = Entry {
            hash: hash_bytes(piece),
            key: self.keys.len() as u32,
            key_len: piece.len() as u32,
            ids: self.ids.len() as u32,
            ids_len: ids.len() as u32,
        };
        self.keys.extend_from_slice(piece);
        self.ids.extend_from_slice(ids);
        self.table.insert_unique(e.hash, e, |e| e.hash);
    }
}

thread_local! {
    static CACHES: RefCell<Vec<(u64, PieceCache)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's cache for the encoding whose identity is `owner`.
pub fn with_cache<R>(owner: u64, f: impl FnOnce(&mut PieceCache) -> R) -> R {
    CACHES.with(|caches| {
        let mut caches = caches.borrow_mut();
        let at = match caches.iter().position(|(o, _)| *o == owner) {
            Some(at) => at,
            None => {
                if caches.len() == PER_THREAD {
                    caches.remove(0);
                }
                caches.push((owner, PieceCache::default()));
                caches.len() - 1
            }
        };
        f(&mut caches[at].1)
    })
}
