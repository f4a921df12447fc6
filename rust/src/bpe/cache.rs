//! A per-thread cache of piece -> ids for pieces that need merging, so a word that is not a
//! single token is merged once per thread rather than at every occurrence. (Whole-token
//! pieces skip it: they cost one vocabulary probe, and caching them would evict the merges.)
//!
//! Direct-mapped, one 64-byte line per entry, 8192 entries (512 KiB) per encoding and thread:
//! small enough to stay in L2, so a hit costs less than a lookup in the vocabulary's big table.
//! Pieces of up to 24 bytes that encode to at most 7 ids are cached; the key holds the whole
//! piece (zero-padded words plus its length), so a hit is exact, never a hash match.
//! Thread-local rather than shared: no lock, no contention, and nothing to repair after fork.

use std::cell::RefCell;

use crate::vocab::{pack_short, Rank, MUL};

const ENTRIES: usize = 1 << 13;
/// Longest piece cached, in bytes.
pub const MAX_PIECE: usize = 24;
const MAX_IDS: usize = 7;
/// Caches kept per thread (one per encoding in use).
const PER_THREAD: usize = 4;

#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Entry {
    key: [u64; 3],
    len: u8,
    n: u8,
    ids: [Rank; MAX_IDS],
}

pub struct PieceCache {
    entries: Box<[Entry]>,
}

/// The piece as three zero-padded little-endian words (the same piece always packs the same).
#[inline(always)]
fn pack(piece: &[u8]) -> [u64; 3] {
    let word = |b: &[u8]| {
        if b.is_empty() {
            0
        } else if b.len() >= 8 {
            u64::from_le_bytes(b[..8].try_into().unwrap())
        } else {
            pack_short(b)
        }
    };
    let n = piece.len();
    [
        word(&piece[..n.min(8)]),
        word(&piece[n.min(8)..n.min(16)]),
        word(&piece[n.min(16)..]),
    ]
}

impl PieceCache {
    fn new() -> Self {
        PieceCache {
            entries: vec![Entry::default(); ENTRIES].into_boxed_slice(),
        }
    }

    #[inline(always)]
    fn slot(key: &[u64; 3], len: usize) -> usize {
        let h = (key[0] ^ key[1].rotate_left(21) ^ key[2].rotate_left(42) ^ len as u64)
            .wrapping_mul(MUL);
        (h >> (64 - ENTRIES.trailing_zeros())) as usize
    }

    /// Appends the cached ids of `piece` to `out`; false on a miss (or an uncacheable piece).
    #[inline(always)]
    pub fn get(&self, piece: &[u8], out: &mut Vec<Rank>) -> bool {
        if piece.len() > MAX_PIECE {
            return false;
        }
        let key = pack(piece);
        let e = &self.entries[Self::slot(&key, piece.len())];
        if e.len as usize == piece.len() && e.key == key {
            out.extend_from_slice(&e.ids[..e.n as usize]);
            true
        } else {
            false
        }
    }

    /// Remembers the ids of `piece`, replacing whatever shared its slot.
    #[inline(always)]
    pub fn put(&mut self, piece: &[u8], ids: &[Rank]) {
        if piece.len() > MAX_PIECE || ids.len() > MAX_IDS {
            return;
        }
        let key = pack(piece);
        let e = &mut self.entries[Self::slot(&key, piece.len())];
        e.key = key;
        e.len = piece.len() as u8;
        e.n = ids.len() as u8;
        e.ids[..ids.len()].copy_from_slice(ids);
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
                caches.push((owner, PieceCache::new()));
                caches.len() - 1
            }
        };
        f(&mut caches[at].1)
    })
}
