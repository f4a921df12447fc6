//! Per-thread, bounded caches from a word (or pre-tokenized piece) to what a model made of it,
//! so a word is tokenized once per thread rather than at every occurrence.
//!
//! Keys and values live in two flat arenas and the table holds only offsets, so an insert is
//! two appends and no allocation of its own. Memory is bounded: when the key arena passes
//! [`MAX_KEY_BYTES`] the cache is cleared and refills with what the text uses now.
//! Thread-local rather than shared: no lock, no contention, nothing to repair after fork.
//! Only for models whose output depends on the word alone.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use hashbrown::HashTable;

use crate::vocab::{hash_bytes, Probe, Vocab};

/// Key arena size at which a cache starts over (about 3x this in memory, per thread and
/// model).
const MAX_KEY_BYTES: usize = 4 << 20;
/// Caches kept per thread (one per model in use).
const PER_THREAD: usize = 4;
/// Words (or parts) up to this many bytes are cached; longer ones seldom repeat.
pub const MAX_CACHED_WORD: usize = 128;

#[derive(Clone, Copy)]
struct Entry {
    hash: u64,
    key: u32,
    key_len: u32,
    vals: u32,
    vals_len: u32,
}

pub struct WordCache<V> {
    table: HashTable<Entry>,
    keys: Vec<u8>,
    vals: Vec<V>,
}

impl<V> Default for WordCache<V> {
    fn default() -> Self {
        WordCache {
            table: HashTable::new(),
            keys: Vec::new(),
            vals: Vec::new(),
        }
    }
}

impl<V: Copy> WordCache<V> {
    /// The cached values of `key`. Keys longer than [`MAX_CACHED_WORD`] are never cached:
    /// they seldom repeat, and hashing and copying a megabyte-long one would cost more than
    /// tokenizing it.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&[V]> {
        self.get_hashed(key, hash_bytes(key))
    }

    /// [`WordCache::get`] with the key's [`hash_bytes`] known already.
    #[inline]
    pub fn get_hashed(&self, key: &[u8], h: u64) -> Option<&[V]> {
        if key.len() > MAX_CACHED_WORD {
            return None;
        }
        let e = self.table.find(h, |e| {
            e.hash == h && &self.keys[e.key as usize..(e.key + e.key_len) as usize] == key
        })?;
        Some(&self.vals[e.vals as usize..(e.vals + e.vals_len) as usize])
    }

    /// Appends the values of `key` to `out`: the cached ones, or those `make` appends, which
    /// are cached when `make` succeeds.
    #[inline]
    pub fn get_or_make<E>(
        &mut self,
        key: &[u8],
        out: &mut Vec<V>,
        make: impl FnOnce(&mut Vec<V>) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Some(vals) = self.get(key) {
            out.extend_from_slice(vals);
            return Ok(());
        }
        let mark = out.len();
        make(out)?;
        self.put(key, &out[mark..]);
        Ok(())
    }

    /// Remembers the values of `key` (which must not be cached yet); a key longer than
    /// [`MAX_CACHED_WORD`] is not kept.
    pub fn put(&mut self, key: &[u8], vals: &[V]) {
        self.put_hashed(key, hash_bytes(key), vals)
    }

    /// [`WordCache::put`] with the key's [`hash_bytes`] known already.
    pub fn put_hashed(&mut self, key: &[u8], h: u64, vals: &[V]) {
        if key.len() > MAX_CACHED_WORD {
            return;
        }
        if self.keys.len() + key.len() > MAX_KEY_BYTES {
            self.table.clear();
            self.keys.clear();
            self.vals.clear();
        }
        debug_assert_eq!(h, hash_bytes(key));
        let e = Entry {
            hash: h,
            key: self.keys.len() as u32,
            key_len: key.len() as u32,
            vals: self.vals.len() as u32,
            vals_len: vals.len() as u32,
        };
        self.keys.extend_from_slice(key);
        self.vals.extend_from_slice(vals);
        self.table.insert_unique(e.hash, e, |e| e.hash);
    }
}

/// A token of a word: (id, start byte, end byte) in the word.
pub type Span = (u32, u32, u32);

thread_local! {
    static SPAN_CACHES: RefCell<PerThread<WordCache<Span>>> = const { RefCell::new(PerThread::new()) };
}

/// Runs `f` with this thread's word -> tokens cache of the model whose identity is `owner`.
pub fn with_span_cache<R>(owner: u64, f: impl FnOnce(&mut WordCache<Span>) -> R) -> R {
    SPAN_CACHES.with_borrow_mut(|caches| f(caches.get(owner)))
}

static NEXT_OWNER: AtomicU64 = AtomicU64::new(0);

/// A fresh identity for a model's caches (clones of a model share it: same content, same
/// results).
pub fn new_owner() -> u64 {
    NEXT_OWNER.fetch_add(1, Ordering::Relaxed)
}

/// One thread's caches, by owner, the least recently created dropped first.
pub struct PerThread<C>(Vec<(u64, C)>);

impl<C: Default> PerThread<C> {
    pub const fn new() -> Self {
        PerThread(Vec::new())
    }

    /// The cache of `owner`, created if needed.
    pub fn get(&mut self, owner: u64) -> &mut C {
        let at = match self.0.iter().position(|(o, _)| *o == owner) {
            Some(at) => at,
            None => {
                if self.0.len() == PER_THREAD {
                    self.0.remove(0);
                }
                self.0.push((owner, C::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }
}

/// What [`WholeWords`] knows of a word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whole {
    /// The word is the token with this id, and the model encodes it to that token alone.
    Yes(u32),
    /// The word is this token, but whether the model encodes it to the token alone is not known
    /// yet: encode it and tell [`WholeWords::learn`].
    Unknown(u32),
    /// The word is not a token, or is one the model splits.
    No,
}

const UNKNOWN: u8 = 0;
const WHOLE: u8 = 1;
const SPLIT: u8 = 2;
/// Words are looked up in groups of this many, their slots prefetched as they are cut.
const GROUP: usize = 16;

/// The words that are one token of the vocabulary and that a merging model (SentencePiece's
/// BPE) gives back as that token alone: most occurrences of words in text. They skip the merge and the word cache: one probe of the inline-key token
/// table, as byte-level BPE's whole-piece hits.
///
/// Merges are not assumed to reach every token: a word that is a token is encoded once, and
/// the answer, one of three states per token, is kept. The states are shared by all threads
/// (relaxed atomics: every thread that learns a state stores the same one), so a batch learns
/// each token once.
pub struct WholeWords {
    tokens: Vocab,
    state: Box<[AtomicU8]>,
}

impl WholeWords {
    pub fn new(tokens: Vocab) -> Self {
        let state = (0..tokens.n_ids())
            .map(|_| AtomicU8::new(UNKNOWN))
            .collect();
        WholeWords { tokens, state }
    }

    /// The token table.
    pub fn tokens(&self) -> &Vocab {
        &self.tokens
    }

    /// Calls `f(range, whole)` for each word of `text` (given as ranges, in order). The
    /// lookups run in groups: each word's slot is prefetched as the word is cut and read once
    /// a group is cut, so that on a cold pass their cache misses overlap.
    #[inline]
    pub fn for_each(
        &self,
        text: &[u8],
        words: impl Iterator<Item = Range<usize>>,
        mut f: impl FnMut(Range<usize>, Whole),
    ) {
        let max = self.tokens.max_token_len();
        let mut group: [(usize, usize, Option<Probe>); GROUP] = [(0, 0, None); GROUP];
        let mut words = words.peekable();
        while words.peek().is_some() {
            let mut n = 0;
            for (slot, w) in group.iter_mut().zip(words.by_ref()) {
                let probe = (w.len() <= max).then(|| self.tokens.probe(&text[w.clone()]));
                *slot = (w.start, w.end, probe);
                n += 1;
            }
            for &(start, end, probe) in &group[..n] {
                let word = &text[start..end];
                let id = probe.and_then(|p| self.tokens.rank_probed(word, p));
                f(start..end, id.map_or(Whole::No, |id| self.state_of(id)));
            }
        }
    }

    #[inline]
    fn state_of(&self, id: u32) -> Whole {
        match self.state[id as usize].load(Ordering::Relaxed) {
            WHOLE => Whole::Yes(id),
            UNKNOWN => Whole::Unknown(id),
            _ => Whole::No,
        }
    }

    /// Records whether the model encodes the word that is token `id` to that token alone.
    pub fn learn(&self, id: u32, whole: bool) {
        let state = if whole { WHOLE } else { SPLIT };
        self.state[id as usize].store(state, Ordering::Relaxed);
    }
}
