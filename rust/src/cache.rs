//! Per-thread, bounded caches from a word (or pre-tokenized piece) to what a model made of it,
//! so a word is tokenized once per thread rather than at every occurrence.
//!
//! Keys and values live in two flat arenas and the table holds offsets, so an insert is two
//! appends and no allocation of its own. A slot also holds the key's first 16 bytes: most
//! words are that short, and then a lookup reads the slot and the values and nothing else.
//! Warm passes are bound by those memory reads (the table of a corpus's words is larger than
//! L2), so callers that look up many words prefetch them a group ahead
//! ([`WordCache::prefetch_slot`], [`WordCache::prefetch_values`]).
//! Memory is bounded: when the key arena passes [`MAX_KEY_BYTES`] or the table holds
//! [`MAX_ENTRIES`] words, the cache is cleared and refills with what the text uses now.
//! Thread-local rather than shared: no lock, no contention, nothing to repair after fork.
//! Only for models whose output depends on the word alone.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use crate::huge::{HugeSlice, Zeroable};
use crate::vocab::{hash_bytes, pack_short, prefetch, Vocab};

/// Key arena size at which a cache starts over.
const MAX_KEY_BYTES: usize = 4 << 20;
/// Words at which a cache starts over: the table then has 2^19 slots of 32 bytes.
const MAX_ENTRIES: usize = 1 << 18;
/// Caches kept per thread (one per model in use).
const PER_THREAD: usize = 4;
/// Words (or parts) up to this many bytes are cached; longer ones seldom repeat.
pub const MAX_CACHED_WORD: usize = 256;

/// One slot of the open-addressing table; `len == 0` marks an empty one (keys are not empty).
#[derive(Clone, Copy, Default)]
struct Slot {
    /// The key's first 16 bytes, little-endian, zero-padded.
    head: [u64; 2],
    len: u32,
    /// Offset of the key in the key arena (read only for keys over 16 bytes, and to rehash).
    key: u32,
    vals: u32,
    vals_len: u32,
}

// SAFETY: integers only; the zeroed slot is the empty one.
unsafe impl Zeroable for Slot {}

/// The first 16 bytes of a non-empty key, as [`Slot::head`] holds them.
#[inline(always)]
fn head_of(key: &[u8]) -> [u64; 2] {
    let n = key.len();
    if n <= 8 {
        [pack_short(key), 0]
    } else {
        let first = u64::from_le_bytes(key[..8].try_into().unwrap());
        [first, pack_short(&key[8..n.min(16)])]
    }
}

pub struct WordCache<V> {
    /// Power-of-two length, at most half full, linear probing; empty until the first insert.
    slots: HugeSlice<Slot>,
    len: usize,
    keys: Vec<u8>,
    vals: Vec<V>,
}

impl<V> Default for WordCache<V> {
    fn default() -> Self {
        WordCache {
            slots: HugeSlice::default(),
            len: 0,
            keys: Vec::new(),
            vals: Vec::new(),
        }
    }
}

impl<V: Copy> WordCache<V> {
    /// The cached values of `key`, whose [`hash_bytes`] is `h`. Keys longer than
    /// [`MAX_CACHED_WORD`] are never cached: they seldom repeat, and hashing and copying a
    /// megabyte-long one would cost more than tokenizing it.
    #[inline]
    pub fn get_hashed(&self, key: &[u8], h: u64) -> Option<&[V]> {
        let s = self.find(key, h)?;
        Some(&self.vals[s.vals as usize..(s.vals + s.vals_len) as usize])
    }

    #[inline(always)]
    fn find(&self, key: &[u8], h: u64) -> Option<&Slot> {
        if key.is_empty() || key.len() > MAX_CACHED_WORD || self.slots.is_empty() {
            return None;
        }
        debug_assert_eq!(h, hash_bytes(key));
        let head = head_of(key);
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let s = &self.slots[i];
            if s.len == 0 {
                return None;
            }
            if s.head == head
                && s.len as usize == key.len()
                && (key.len() <= 16
                    || self.keys[s.key as usize + 16..s.key as usize + key.len()] == key[16..])
            {
                return Some(s);
            }
            i = (i + 1) & mask;
        }
    }

    /// Starts loading the slot where a lookup of a key whose [`hash_bytes`] is `h` begins.
    #[inline(always)]
    pub fn prefetch_slot(&self, h: u64) {
        if let Some(s) = self
            .slots
            .get(h as usize & self.slots.len().wrapping_sub(1))
        {
            prefetch(s);
        }
    }

    /// Starts loading the cached values of `key`, if it is cached (its slot should be loaded
    /// already, by [`WordCache::prefetch_slot`]).
    #[inline(always)]
    pub fn prefetch_values(&self, key: &[u8], h: u64) {
        if let Some(v) = self
            .find(key, h)
            .and_then(|s| self.vals.get(s.vals as usize))
        {
            prefetch(v);
        }
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
        let h = hash_bytes(key);
        if let Some(vals) = self.get_hashed(key, h) {
            out.extend_from_slice(vals);
            return Ok(());
        }
        let mark = out.len();
        make(out)?;
        self.put_hashed(key, h, &out[mark..]);
        Ok(())
    }

    /// Remembers the values of `key` (which must not be cached yet; `h` as for
    /// [`WordCache::get_hashed`]); a key longer than [`MAX_CACHED_WORD`] is not kept.
    pub fn put_hashed(&mut self, key: &[u8], h: u64, vals: &[V]) {
        if key.is_empty() || key.len() > MAX_CACHED_WORD {
            return;
        }
        debug_assert_eq!(h, hash_bytes(key));
        if self.keys.len() + key.len() > MAX_KEY_BYTES || self.len == MAX_ENTRIES {
            self.slots.iter_mut().for_each(|s| *s = Slot::default());
            self.len = 0;
            self.keys.clear();
            self.vals.clear();
        }
        if 2 * (self.len + 1) > self.slots.len() {
            self.grow();
        }
        let slot = Slot {
            head: head_of(key),
            len: key.len() as u32,
            key: self.keys.len() as u32,
            vals: self.vals.len() as u32,
            vals_len: vals.len() as u32,
        };
        self.keys.extend_from_slice(key);
        self.vals.extend_from_slice(vals);
        self.place(slot, h);
        self.len += 1;
    }

    fn place(&mut self, slot: Slot, h: u64) {
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        while self.slots[i].len != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
    }

    /// Doubles the table (1024 slots at first) and places every word again.
    fn grow(&mut self) {
        let size = (2 * self.slots.len()).max(1024);
        let old = std::mem::replace(&mut self.slots, HugeSlice::zeroed(size));
        for &s in old.iter().filter(|s| s.len != 0) {
            let h = hash_bytes(&self.keys[s.key as usize..(s.key + s.len) as usize]);
            self.place(s, h);
        }
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

/// Items drawn a group at a time, so that the lookups begun as each is drawn (prefetches)
/// overlap their cache misses before any is read.
pub struct Groups<I: Iterator, T> {
    items: std::iter::Peekable<I>,
    group: [T; GROUP],
}

impl<I: Iterator, T: Copy + Default> Groups<I, T> {
    pub fn new(items: I) -> Self {
        Groups {
            items: items.peekable(),
            group: [T::default(); GROUP],
        }
    }

    /// The next group: up to [`GROUP`] items, each as `start` made it when drawn.
    #[inline]
    pub fn next(&mut self, mut start: impl FnMut(I::Item) -> T) -> Option<&[T]> {
        self.items.peek()?;
        let mut n = 0;
        for (slot, item) in self.group.iter_mut().zip(self.items.by_ref()) {
            *slot = start(item);
            n += 1;
        }
        Some(&self.group[..n])
    }
}

/// The words that are one token of the vocabulary and that a merging model (SentencePiece's
/// BPE) gives back as that token alone: most occurrences of words in text. They skip the
/// merge and the word cache: one probe of the inline-key token table, as byte-level BPE's
/// whole-piece hits.
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

    /// Calls `f(cx, range, whole, hash)` for each word of `text` (given as ranges, in order),
    /// `hash` being the word's [`hash_bytes`] unless it is `Whole::Yes` (0 then). The lookups
    /// run in groups: each word's slot is prefetched as the word is cut and read once a group
    /// is cut; then `prefetch(cx, hash)` is called for each word that is not whole (to start
    /// loading its slot in a word cache) before `f` sees any, so that on a cold pass the cache
    /// misses of a group overlap (Mistral, multi: +15% first and second pass).
    pub fn for_each<C>(
        &self,
        text: &[u8],
        words: impl Iterator<Item = Range<usize>>,
        cx: &mut C,
        prefetch: impl Fn(&C, u64),
        mut f: impl FnMut(&mut C, Range<usize>, Whole, u64),
    ) {
        let max = self.tokens.max_token_len();
        let mut groups = Groups::new(words);
        let mut resolved = [(0, 0, Whole::No, 0); GROUP];
        while let Some(group) = groups.next(|w| {
            let probe = (w.len() <= max).then(|| self.tokens.probe(&text[w.clone()]));
            (w.start, w.end, probe)
        }) {
            for (r, &(start, end, probe)) in resolved.iter_mut().zip(group) {
                let word = &text[start..end];
                let id = probe.and_then(|p| self.tokens.rank_probed(word, p));
                let whole = id.map_or(Whole::No, |id| self.state_of(id));
                let hash = match whole {
                    Whole::Yes(_) => 0,
                    _ => {
                        let h = hash_bytes(word);
                        prefetch(cx, h);
                        h
                    }
                };
                *r = (start, end, whole, hash);
            }
            for &(start, end, whole, hash) in &resolved[..group.len()] {
                f(cx, start..end, whole, hash);
            }
        }
    }

    /// What is known of `word` (one probe of the index, not prefetched: for a word met for
    /// the first time, after a miss elsewhere).
    pub fn whole(&self, word: &[u8]) -> Whole {
        (word.len() <= self.tokens.max_token_len())
            .then(|| self.tokens.rank(word))
            .flatten()
            .map_or(Whole::No, |id| self.state_of(id))
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Against a HashMap: keys are a run of one byte then a short tail, so that many
        /// share their first 8 or 16 bytes (what a slot holds) and differ after, around the
        /// inline and cacheable lengths.
        #[test]
        fn word_cache_is_a_map(
            keys in prop::collection::vec(
                (
                    prop::sample::select(vec![0usize, 6, 7, 8, 9, 14, 15, 16, 17, 30, 125, 128]),
                    prop::collection::vec(prop::sample::select(vec![b'a', b'b', 0xe2, 0]), 0..4),
                ).prop_map(|(run, tail)| [vec![b'x'; run], tail].concat()),
                1..400,
            )
        ) {
            let mut cache = WordCache::<u32>::default();
            let mut model: HashMap<Vec<u8>, Vec<u32>> = HashMap::new();
            for (i, k) in keys.iter().enumerate() {
                let vals: Vec<u32> = (0..k.len() as u32 % 5).map(|v| v + i as u32).collect();
                let cacheable = !k.is_empty() && k.len() <= MAX_CACHED_WORD;
                let h = hash_bytes(k);
                match cache.get_hashed(k, h) {
                    Some(got) => prop_assert_eq!(Some(&got.to_vec()), model.get(k)),
                    None => {
                        prop_assert!(!model.contains_key(k));
                        cache.put_hashed(k, h, &vals);
                        if cacheable {
                            model.insert(k.clone(), vals);
                        }
                    }
                }
            }
            for (k, v) in &model {
                prop_assert_eq!(cache.get_hashed(k, hash_bytes(k)), Some(&v[..]));
            }
        }
    }

    #[test]
    fn a_full_cache_starts_over() {
        let mut cache = WordCache::<u32>::default();
        let key = |i: u32| i.to_le_bytes();
        let get = |c: &WordCache<u32>, i: u32| {
            c.get_hashed(&key(i), hash_bytes(&key(i)))
                .map(<[u32]>::to_vec)
        };
        for i in 0..=MAX_ENTRIES as u32 {
            cache.put_hashed(&key(i), hash_bytes(&key(i)), &[i]);
        }
        // the last put found the table full: it cleared it and holds only itself
        let last = MAX_ENTRIES as u32;
        assert_eq!(get(&cache, last), Some(vec![last]));
        assert_eq!(get(&cache, 0), None);
        assert_eq!(cache.len, 1);
        assert!(cache.slots.len() <= 2 * MAX_ENTRIES);
    }
}
