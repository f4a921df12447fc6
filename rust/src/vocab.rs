//! The vocabulary: token id <-> token bytes.
//!
//! All token byte strings live in one buffer, in id order; `starts[id]..starts[id + 1]` is the
//! token with that id (an empty range marks an id that has no token, which `.tiktoken` files
//! may leave).
//!
//! The reverse index (bytes -> id) is `TokenMap`, an open-addressing table tuned for the
//! encoder's hot loop: a token of up to 8 bytes is stored *inline* in its slot as a packed
//! `u64`, so looking it up costs one multiply and, usually, one cache line, with no memcmp
//! and no trip to the token buffer. A token of 9 to 16 bytes keeps its first 8 bytes in the
//! slot and its last 8 in a parallel array, prefetched with the slot. Longer tokens store a
//! 64-bit hash and are confirmed against the buffer. (Replacing a general hash map with this
//! table halved the time of the whole encoder on English text.) The table sits in 2 MB pages
//! (`huge.rs`).
//!
//! Two on-disk forms are read:
//! - `.tiktoken` rank files (`base64 rank` per line), with errors naming the file and line;
//! - the compact form (`FTOKV1`), written by [`Vocab::to_compact`]: a header, one LEB128
//!   length per id, then the concatenated token bytes. It is what the package embeds, since
//!   loading it is a single pass over memory with no base64 or text parsing.

use std::borrow::Cow;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;

use crate::error::{Error, Result};
use crate::huge::{HugeSlice, Zeroable};

/// A token id (tiktoken calls it a rank: lower ids merge first).
pub type Rank = u32;

const COMPACT_MAGIC: &[u8; 8] = b"FTOKV1\0\0";

/// GPT-2's byte order (`bytes_to_unicode`): the 188 printable bytes (`!`..`~`, `¡`..`¬`,
/// `®`..`ÿ`) first, then the others. The official vocabularies rank their one-byte tokens in
/// this order, and Hugging Face's byte-level alphabet follows it.
pub fn gpt2_byte_order() -> [u8; 256] {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut order = [0u8; 256];
    let all = (0..=255u8)
        .filter(|&b| printable(b))
        .chain((0..=255u8).filter(|&b| !printable(b)));
    for (slot, b) in order.iter_mut().zip(all) {
        *slot = b;
    }
    order
}

/// GPT-2's byte -> character table, as Hugging Face's byte-level files spell tokens: a
/// printable byte stands for itself, the others get U+0100, U+0101, ... in byte order.
pub fn gpt2_byte_chars() -> [char; 256] {
    const PRINTABLE: usize = 188;
    let mut table = ['\0'; 256];
    for (i, &b) in gpt2_byte_order().iter().enumerate() {
        table[b as usize] = if i < PRINTABLE {
            char::from(b)
        } else {
            char::from_u32((0x100 + i - PRINTABLE) as u32).expect("U+0100..U+0143 are characters")
        };
    }
    table
}

/// How far past the number of tokens ids may reach. Tables by id (this vocabulary's, the
/// decoders', `Tokenizer.tokens`) take memory for every id below the largest, so a file whose
/// ids leave huge gaps is refused at load rather than asking for gigabytes.
pub fn max_id_span(tokens: usize) -> usize {
    2 * tokens + (1 << 16)
}

/// An id past [`max_id_span`] of the tokens it came with.
#[derive(Debug)]
pub struct IdTooFar {
    pub id: Rank,
    pub tokens: usize,
    what: &'static str,
}

impl std::fmt::Display for IdTooFar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} is far past the {} tokens: ids must count up from 0 with few gaps \
             (at most {} here)",
            self.what,
            self.id,
            self.tokens,
            max_id_span(self.tokens) - 1
        )
    }
}

/// Checks that `ids`, of `tokens` tokens, stay below [`max_id_span`]; `what` names an id in
/// the error ("id", "rank").
pub fn check_id_span(
    ids: impl Iterator<Item = Rank>,
    tokens: usize,
    what: &'static str,
) -> Result<(), IdTooFar> {
    match ids.max() {
        Some(id) if id as usize >= max_id_span(tokens) => Err(IdTooFar { id, tokens, what }),
        _ => Ok(()),
    }
}

/// Token id <-> bytes tables. Immutable once built.
#[derive(Clone)]
pub struct Vocab {
    /// Every token's bytes, in id order: borrowed from the binary for an embedded encoding.
    bytes: Cow<'static, [u8]>,
    starts: Vec<u32>,
    index: TokenMap,
    /// `byte_ids[b]` is the id of the one-byte token `b` (every byte-level vocabulary has all
    /// 256; a [`Vocab::from_pieces`] one need not, and its missing bytes hold `Rank::MAX`).
    byte_ids: [Rank; 256],
    max_token_len: usize,
    /// The rank of each two-byte token at `first << 8 | second` (`Rank::MAX` where none),
    /// made at the first merge: the first pairs of every merge are bytes.
    byte_pairs: Arc<OnceLock<Box<[Rank]>>>,
}

impl Vocab {
    /// Builds a vocabulary from `(bytes, id)` pairs; `origin` names the source in errors.
    ///
    /// Complexity: O(total token bytes + number of ids).
    pub fn from_pairs(pairs: Vec<(Vec<u8>, Rank)>, origin: &str) -> Result<Self> {
        Self::build(pairs, origin, true)
    }

    /// A vocabulary of any byte strings, such as a SentencePiece model's pieces: like
    /// [`Vocab::from_pairs`] without requiring a token for each single byte (so
    /// [`Vocab::byte_rank`] is `Rank::MAX` for the bytes that have none).
    pub fn from_pieces(pairs: Vec<(Vec<u8>, Rank)>, origin: &str) -> Result<Self> {
        Self::build(pairs, origin, false)
    }

    fn build(pairs: Vec<(Vec<u8>, Rank)>, origin: &str, byte_level: bool) -> Result<Self> {
        check_id_span(pairs.iter().map(|p| p.1), pairs.len(), "id")
            .map_err(|far| Error::invalid(origin, far.to_string()))?;
        let n_ids = pairs
            .iter()
            .map(|&(_, r)| r as usize + 1)
            .max()
            .unwrap_or(0);
        let mut slot: Vec<Option<usize>> = vec![None; n_ids];
        for (i, (tok, rank)) in pairs.iter().enumerate() {
            if tok.is_empty() {
                return Err(Error::invalid(origin, format!("token {rank} is empty")));
            }
            if slot[*rank as usize].replace(i).is_some() {
                return Err(Error::invalid(origin, format!("duplicate rank {rank}")));
            }
        }
        let mut bytes = Vec::with_capacity(pairs.iter().map(|(t, _)| t.len()).sum());
        let mut starts = Vec::with_capacity(n_ids + 1);
        for s in &slot {
            starts.push(bytes.len() as u32);
            if let Some(i) = s {
                bytes.extend_from_slice(&pairs[*i].0);
            }
        }
        starts.push(bytes.len() as u32);
        Self::from_parts(bytes.into(), starts, origin, byte_level)
    }

    fn from_parts(
        bytes: Cow<'static, [u8]>,
        starts: Vec<u32>,
        origin: &str,
        byte_level: bool,
    ) -> Result<Self> {
        let n_ids = starts.len() - 1;
        let token = |id: usize| &bytes[starts[id] as usize..starts[id + 1] as usize];
        let mut index =
            TokenMap::with_capacity((0..n_ids).filter(|&id| !token(id).is_empty()).count());
        let mut max_token_len = 0;
        for id in 0..n_ids {
            // Each insert's first read is a cache miss somewhere in megabytes of table; asked
            // for this far ahead, the misses overlap. (o200k: 8.9 ms to build -> 5.4. Inserting in
            // the order of the home slots instead, counting-sorted into stretches of a few KB,
            // took longer: 3 ms to sort, and no faster inserts.)
            if let Some(ahead) = (id + INSERT_AHEAD < n_ids).then(|| token(id + INSERT_AHEAD)) {
                if !ahead.is_empty() {
                    index.probe(ahead);
                }
            }
            let tok = token(id);
            if tok.is_empty() {
                continue;
            }
            max_token_len = max_token_len.max(tok.len());
            if let Err(other) = index.insert(tok, id as Rank, |r| token(r as usize)) {
                return Err(Error::invalid(
                    origin,
                    format!(
                        "duplicate token {:?} (ids {other} and {id})",
                        tok.escape_ascii().to_string()
                    ),
                ));
            }
        }
        let mut vocab = Vocab {
            bytes,
            starts,
            index,
            byte_ids: [0; 256],
            max_token_len,
            byte_pairs: Arc::default(),
        };
        for b in 0..=255u8 {
            let id = vocab.rank(&[b]);
            if !byte_level {
                vocab.byte_ids[b as usize] = id.unwrap_or(Rank::MAX);
                continue;
            }
            vocab.byte_ids[b as usize] = id.ok_or_else(|| {
                Error::invalid(
                    origin,
                    format!("the vocabulary has no token for the single byte 0x{b:02x}; byte-level BPE needs all 256"),
                )
            })?;
        }
        Ok(vocab)
    }

    /// Parses a `.tiktoken` rank file's contents (`base64 rank` per line; blank lines skipped).
    /// Every error names the line: bad base64, a bad rank, a token or rank seen before.
    pub fn from_tiktoken_bytes(data: &[u8], origin: &str) -> Result<Self> {
        let mut pairs = Vec::new();
        let mut rank_line = rustc_hash::FxHashMap::default();
        let mut token_line = rustc_hash::FxHashMap::default();
        for (lineno, line) in data.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let lineno = lineno + 1;
            let at = |msg: String| Error::Parse {
                origin: origin.to_string(),
                line: lineno,
                msg,
            };
            let mut fields = line.split(|&b| b == b' ');
            let (Some(tok_b64), Some(rank), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(at("expected `<base64 token> <rank>`".into()));
            };
            let tok = base64::engine::general_purpose::STANDARD
                .decode(tok_b64)
                .map_err(|e| at(format!("bad base64 token: {e}")))?;
            if tok.is_empty() {
                return Err(at("empty token".into()));
            }
            let rank = std::str::from_utf8(rank)
                .ok()
                .and_then(|r| r.parse::<Rank>().ok())
                .filter(|&r| r < Rank::MAX)
                .ok_or_else(|| at(format!("bad rank {:?}", String::from_utf8_lossy(rank))))?;
            if let Some(first) = rank_line.insert(rank, lineno) {
                return Err(at(format!("duplicate rank {rank} (first on line {first})")));
            }
            if let Some(first) = token_line.insert(tok_b64, lineno) {
                return Err(at(format!(
                    "duplicate token {:?} (first on line {first})",
                    tok.escape_ascii().to_string()
                )));
            }
            pairs.push((tok, rank));
        }
        if pairs.is_empty() {
            return Err(Error::invalid(origin, "no tokens".into()));
        }
        if let Err(far) = check_id_span(pairs.iter().map(|p| p.1), pairs.len(), "rank") {
            let line = rank_line[&far.id];
            return Err(Error::Parse {
                origin: origin.to_string(),
                line,
                msg: far.to_string(),
            });
        }
        Self::from_pairs(pairs, origin)
    }

    /// Reads a `.tiktoken` rank file.
    pub fn from_tiktoken_file(path: &Path) -> Result<Self> {
        let (data, origin) = crate::error::read_file(path)?;
        Self::from_tiktoken_bytes(&data, &origin)
    }

    /// Reads the compact form written by [`Vocab::to_compact`].
    ///
    /// Complexity: one pass over the data plus one hash insert per token.
    pub fn from_compact(data: &[u8], origin: &str) -> Result<Self> {
        let (starts, bytes) = Self::parse_compact(data, origin)?;
        Self::from_parts(bytes.to_vec().into(), starts, origin, true)
    }

    /// [`Vocab::from_compact`] of data that lives as long as the program (an embedded
    /// encoding), whose token bytes are used in place rather than copied.
    pub fn from_static_compact(data: &'static [u8], origin: &str) -> Result<Self> {
        let (starts, bytes) = Self::parse_compact(data, origin)?;
        Self::from_parts(bytes.into(), starts, origin, true)
    }

    /// The compact form's token starts and token bytes.
    fn parse_compact<'a>(data: &'a [u8], origin: &str) -> Result<(Vec<u32>, &'a [u8])> {
        let bad =
            |what: &str| Error::invalid(origin, format!("corrupt compact vocabulary: {what}"));
        let rest = data
            .strip_prefix(COMPACT_MAGIC)
            .ok_or_else(|| bad("wrong magic"))?;
        let (n, mut rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("truncated header"))?;
        let n_ids = u32::from_le_bytes(*n) as usize;
        if n_ids > rest.len() {
            // each id has a length of one byte at least: the count is corrupt, not an allocation
            return Err(bad("more ids than bytes"));
        }
        let mut starts = Vec::with_capacity(n_ids + 1);
        let mut total = 0u32;
        for _ in 0..n_ids {
            let (len, tail) = read_leb128(rest).ok_or_else(|| bad("truncated lengths"))?;
            rest = tail;
            starts.push(total);
            total = total
                .checked_add(len)
                .ok_or_else(|| bad("lengths overflow"))?;
        }
        starts.push(total);
        if rest.len() != total as usize {
            return Err(bad("token bytes do not match the lengths"));
        }
        Ok((starts, rest))
    }

    /// The `.tiktoken` form: `base64(token) id` per line, in id order.
    pub fn to_tiktoken(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut out = String::with_capacity(self.bytes.len() * 2 + self.len() * 8);
        for (id, token) in self.iter() {
            out.push_str(&b64.encode(token));
            out.push(' ');
            out.push_str(&id.to_string());
            out.push('\n');
        }
        out
    }

    /// The compact binary form (see the module docs).
    pub fn to_compact(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.starts.len() * 2 + self.bytes.len());
        out.extend_from_slice(COMPACT_MAGIC);
        out.extend_from_slice(&(self.n_ids() as u32).to_le_bytes());
        for w in self.starts.windows(2) {
            let mut len = w[1] - w[0];
            loop {
                let b = (len & 0x7f) as u8;
                len >>= 7;
                if len == 0 {
                    out.push(b);
                    break;
                }
                out.push(b | 0x80);
            }
        }
        out.extend_from_slice(&self.bytes);
        out
    }

    /// Number of ids (one past the largest id), holes included.
    #[inline]
    pub fn n_ids(&self) -> usize {
        self.starts.len() - 1
    }

    /// Number of tokens (ids that have bytes).
    pub fn len(&self) -> usize {
        self.index.len
    }

    /// Whether the vocabulary has no tokens (never true for a loaded vocabulary).
    pub fn is_empty(&self) -> bool {
        self.index.len == 0
    }

    /// The longest token, in bytes.
    #[inline]
    pub fn max_token_len(&self) -> usize {
        self.max_token_len
    }

    /// The id of the token with exactly these bytes.
    #[inline]
    pub fn rank(&self, tok: &[u8]) -> Option<Rank> {
        self.index.get(tok, |r| self.token_unchecked(r))
    }

    /// Starts the lookup of `tok`: hashes it once and prefetches its index slot. Finish it
    /// with [`Vocab::rank_probed`] a little later (`cache::WholeWords` probes a group of words
    /// as they are cut, and looks them up once the slots are in cache).
    #[inline(always)]
    pub fn probe(&self, tok: &[u8]) -> Probe {
        self.index.probe(tok)
    }

    /// [`Vocab::rank`] of `tok`, whose [`Vocab::probe`] is `probe`.
    #[inline(always)]
    pub fn rank_probed(&self, tok: &[u8], probe: Probe) -> Option<Rank> {
        self.index.get_from(tok, probe, |r| self.token_unchecked(r))
    }

    /// The rank of the two-byte token `[a, b]` (`Rank::MAX` if there is none), from a dense
    /// table of 64k ranks: no hash, no probe, and the same 256 KB for every thread.
    #[inline]
    pub fn byte_pair_ranks(&self) -> &[Rank] {
        self.byte_pairs.get_or_init(|| {
            let mut table = vec![Rank::MAX; 1 << 16].into_boxed_slice();
            for (id, tok) in self.iter() {
                if let [a, b] = *tok {
                    table[(a as usize) << 8 | b as usize] = id;
                }
            }
            table
        })
    }

    /// The id of the one-byte token `b`.
    #[inline]
    pub fn byte_rank(&self, b: u8) -> Rank {
        self.byte_ids[b as usize]
    }

    #[inline]
    fn token_unchecked(&self, id: Rank) -> &[u8] {
        let id = id as usize;
        &self.bytes[self.starts[id] as usize..self.starts[id + 1] as usize]
    }

    /// The bytes of token `id`, or `None` when there is no such token.
    #[inline]
    pub fn token(&self, id: Rank) -> Option<&[u8]> {
        if (id as usize) < self.n_ids() {
            Some(self.token_unchecked(id)).filter(|t| !t.is_empty())
        } else {
            None
        }
    }

    /// All `(id, bytes)` pairs in id order.
    pub fn iter(&self) -> impl Iterator<Item = (Rank, &[u8])> + '_ {
        (0..self.n_ids() as Rank).filter_map(|id| self.token(id).map(|t| (id, t)))
    }
}

/// Asks the CPU to start loading the cache line of `value` (a hint: no effect on memory).
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching reads nothing and the pointer comes from a reference.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast(),
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// A lookup begun by [`Vocab::probe`]: the key and home slot of a non-empty token.
#[derive(Clone, Copy)]
pub struct Probe {
    key: u64,
    home: u32,
}

/// One slot of [`TokenMap`]: `len == 0` marks an empty slot.
#[derive(Clone, Copy)]
struct Slot {
    /// The token's bytes packed little-endian (up to 8 bytes), its first 8 bytes (9 to 16
    /// bytes, the last 8 in [`TokenMap::tails`]), or a hash (longer tokens).
    key: u64,
    len: u32,
    id: Rank,
}

// SAFETY: integers only; the zeroed slot is the empty one.
unsafe impl Zeroable for Slot {}

/// Bytes -> id, open addressing with linear probing at a load factor of at most 1/2.
#[derive(Clone)]
struct TokenMap {
    slots: HugeSlice<Slot>,
    /// The last 8 bytes of the 9- to 16-byte token in the slot of the same index. With the
    /// slot's first 8 they confirm such a token (one piece in twelve, in English) without
    /// reading the token buffer: two dependent loads, often cache misses, and a memcmp.
    tails: HugeSlice<u64>,
    shift: u32,
    len: usize,
}

/// The first and the last 8 bytes of a 9- to 16-byte token (they overlap below 16).
#[inline(always)]
fn head_tail(tok: &[u8]) -> (u64, u64) {
    let n = tok.len();
    (
        u64::from_le_bytes(tok[..8].try_into().unwrap()),
        u64::from_le_bytes(tok[n - 8..].try_into().unwrap()),
    )
}

/// Packs 1..=8 bytes into a `u64` with a few overlapping loads (no loop, no memcpy call).
#[inline(always)]
pub(crate) fn pack_short(b: &[u8]) -> u64 {
    let n = b.len();
    debug_assert!((1..=8).contains(&n));
    if n >= 4 {
        let lo = u32::from_le_bytes(b[..4].try_into().unwrap()) as u64;
        let hi = u32::from_le_bytes(b[n - 4..].try_into().unwrap()) as u64;
        lo | (hi << ((n - 4) * 8))
    } else if n >= 2 {
        let lo = u16::from_le_bytes(b[..2].try_into().unwrap()) as u64;
        let hi = u16::from_le_bytes(b[n - 2..].try_into().unwrap()) as u64;
        lo | (hi << ((n - 2) * 8))
    } else {
        b[0] as u64
    }
}

const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

/// How many tokens ahead of its insert a token's home slot is prefetched while building.
const INSERT_AHEAD: usize = 16;

/// A 64-bit hash of a token longer than 8 bytes.
#[inline]
fn hash_long(b: &[u8]) -> u64 {
    let mut h = b.len() as u64;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        h = (h.rotate_left(23) ^ u64::from_le_bytes(c.try_into().unwrap())).wrapping_mul(MUL);
    }
    if !chunks.remainder().is_empty() {
        let tail = u64::from_le_bytes(b[b.len() - 8..].try_into().unwrap());
        h = (h.rotate_left(23) ^ tail).wrapping_mul(MUL);
    }
    h
}

#[inline(always)]
fn key_of(tok: &[u8]) -> u64 {
    if tok.len() <= 8 {
        pack_short(tok)
    } else {
        hash_long(tok)
    }
}

/// A fast 64-bit hash of a byte string for hash tables that index by the LOW bits
/// (hashbrown, the word caches): the product's high half is folded down, since the low bits
/// of a product depend only on the low bits of the key, i.e. on a piece's first bytes (a
/// space, or `▁`, in most).
#[inline(always)]
pub(crate) fn hash_bytes(b: &[u8]) -> u64 {
    if b.is_empty() {
        return 0;
    }
    fold(key_of(b), b.len())
}

#[inline(always)]
fn fold(key: u64, len: usize) -> u64 {
    let h = (key ^ ((len as u64) << 56)).wrapping_mul(MUL);
    h ^ (h >> 32)
}

impl TokenMap {
    fn with_capacity(n: usize) -> Self {
        let cap = (2 * n).next_power_of_two().max(16);
        TokenMap {
            slots: HugeSlice::zeroed(cap),
            tails: HugeSlice::zeroed(cap),
            shift: 64 - cap.trailing_zeros(),
            len: 0,
        }
    }

    #[inline(always)]
    fn home(&self, key: u64, len: usize) -> usize {
        ((key ^ ((len as u64) << 56)).wrapping_mul(MUL) >> self.shift) as usize
    }

    /// Inserts `tok`; if an equal token is there already, returns its id.
    fn insert<'a>(
        &mut self,
        tok: &[u8],
        id: Rank,
        token: impl Fn(Rank) -> &'a [u8],
    ) -> Result<(), Rank> {
        let probe = self.locate(tok);
        let mask = self.slots.len() - 1;
        let mut i = probe.home as usize;
        // One probe sequence both finds a duplicate and the free slot.
        while self.slots[i].len != 0 {
            if self.is_at(i, tok, probe, &token) {
                return Err(self.slots[i].id);
            }
            i = (i + 1) & mask;
        }
        let len = tok.len();
        let key = match len {
            9..=16 => {
                let (head, tail) = head_tail(tok);
                self.tails[i] = tail;
                head
            }
            _ => probe.key,
        };
        self.slots[i] = Slot {
            key,
            len: len as u32,
            id,
        };
        self.len += 1;
        Ok(())
    }

    /// Whether slot `i` holds `tok`, whose probe is `probe`.
    #[inline(always)]
    fn is_at<'a>(
        &self,
        i: usize,
        tok: &[u8],
        probe: Probe,
        token: impl Fn(Rank) -> &'a [u8],
    ) -> bool {
        let s = self.slots[i];
        if s.len as usize != tok.len() {
            return false;
        }
        match tok.len() {
            0..=8 => s.key == probe.key,
            9..=16 => (s.key, self.tails[i]) == head_tail(tok),
            _ => s.key == probe.key && token(s.id) == tok,
        }
    }

    /// The key and home slot of a non-empty `tok`.
    #[inline(always)]
    fn locate(&self, tok: &[u8]) -> Probe {
        let key = key_of(tok);
        Probe {
            key,
            home: self.home(key, tok.len()) as u32,
        }
    }

    /// Starts loading what the lookup of a `len`-byte token with this probe reads first: its
    /// home slot, and beside it the tail of a 9- to 16-byte token.
    #[inline(always)]
    fn prefetch_probe(&self, probe: Probe, len: usize) {
        prefetch(&self.slots[probe.home as usize]);
        if (9..=16).contains(&len) {
            prefetch(&self.tails[probe.home as usize]);
        }
    }

    #[inline(always)]
    fn probe(&self, tok: &[u8]) -> Probe {
        let probe = self.locate(tok);
        self.prefetch_probe(probe, tok.len());
        probe
    }

    /// The id of `tok`; `token(id)` gives a stored token's bytes to confirm long keys.
    #[inline(always)]
    fn get<'a>(&self, tok: &[u8], token: impl Fn(Rank) -> &'a [u8]) -> Option<Rank> {
        if tok.is_empty() {
            return None;
        }
        self.get_from(tok, self.locate(tok), token)
    }

    #[inline(always)]
    fn get_from<'a>(
        &self,
        tok: &[u8],
        probe: Probe,
        token: impl Fn(Rank) -> &'a [u8],
    ) -> Option<Rank> {
        let mask = self.slots.len() - 1;
        let mut i = probe.home as usize;
        loop {
            if self.slots[i].len == 0 {
                return None;
            }
            if self.is_at(i, tok, probe, &token) {
                return Some(self.slots[i].id);
            }
            i = (i + 1) & mask;
        }
    }
}

impl std::fmt::Debug for Vocab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vocab")
            .field("tokens", &self.len())
            .field("n_ids", &self.n_ids())
            .finish()
    }
}

fn read_leb128(data: &[u8]) -> Option<(u32, &[u8])> {
    let mut value = 0u32;
    for (i, &b) in data.iter().enumerate().take(5) {
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &data[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Vocab {
        let mut pairs: Vec<(Vec<u8>, Rank)> = (0..=255u8).map(|b| (vec![b], b as Rank)).collect();
        pairs.push((b"ab".to_vec(), 256));
        pairs.push((vec![b'x'; 300], 258));
        Vocab::from_pairs(pairs, "tiny").unwrap()
    }

    #[test]
    fn byte_pair_ranks_are_the_ranks_of_two_byte_tokens() {
        let v = crate::registry::load("cl100k_base")
            .unwrap()
            .vocab()
            .clone();
        let table = v.byte_pair_ranks();
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let want = v.rank(&[a, b]).unwrap_or(Rank::MAX);
                assert_eq!(table[(a as usize) << 8 | b as usize], want, "{a} {b}");
            }
        }
    }

    #[test]
    fn lookups() {
        let v = tiny();
        assert_eq!(v.rank(b"ab"), Some(256));
        assert_eq!(v.rank(b"abc"), None);
        assert_eq!(v.token(257), None);
        assert_eq!(v.token(258).unwrap().len(), 300);
        assert_eq!(v.n_ids(), 259);
        assert_eq!(v.len(), 258);
    }

    #[test]
    fn every_token_is_found_and_near_misses_are_not() {
        let v = crate::registry::load("o200k_base").unwrap().vocab().clone();
        for (id, tok) in v.iter() {
            assert_eq!(v.rank(tok), Some(id));
            assert_eq!(v.rank_probed(tok, v.probe(tok)), Some(id));
            // One byte changed anywhere (head, the overlap of head and tail, the tail, past
            // 16): whatever is found must be those bytes.
            if id % 7 == 0 {
                for k in 0..tok.len() {
                    let mut near = tok.to_vec();
                    near[k] ^= 0x20;
                    if let Some(other) = v.rank(&near) {
                        assert_eq!(v.token(other), Some(&near[..]));
                    }
                }
            }
        }
        // Thousands of 12-byte tokens with the same first 8 bytes: the probes of the absent
        // ones pass many slots whose head and length match theirs.
        let mut pairs: Vec<(Vec<u8>, Rank)> = (0..=255u8).map(|b| (vec![b], b as Rank)).collect();
        let numbered = |n: u32| format!("same8by{n:05}").into_bytes();
        pairs.extend((0..4000).map(|n| (numbered(2 * n), 256 + n)));
        let v = Vocab::from_pairs(pairs, "numbered").unwrap();
        for n in 0..4000 {
            assert_eq!(v.rank(&numbered(2 * n)), Some(256 + n));
            assert_eq!(v.rank(&numbered(2 * n + 1)), None);
        }
        let dup: Vec<(Vec<u8>, Rank)> = [b"fourteen bytes".to_vec(), b"fourteen bytes".to_vec()]
            .into_iter()
            .zip(0..)
            .collect();
        assert!(Vocab::from_pairs(dup, "dup").is_err());
    }

    #[test]
    fn compact_round_trip() {
        let v = tiny();
        let w = Vocab::from_compact(&v.to_compact(), "c").unwrap();
        assert_eq!(v.iter().collect::<Vec<_>>(), w.iter().collect::<Vec<_>>());
        assert!(Vocab::from_compact(&v.to_compact()[..40], "c").is_err());
        // a count of 4 billion ids in a header of a few bytes: an error, not a 16 GB allocation
        let mut huge = v.to_compact();
        let at = COMPACT_MAGIC.len();
        huge[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = Vocab::from_compact(&huge, "c").unwrap_err().to_string();
        assert!(err.contains("more ids than bytes"), "{err}");
    }

    #[test]
    fn ids_far_past_the_tokens_are_refused() {
        let mut pairs: Vec<(Vec<u8>, Rank)> = (0..=255u8).map(|b| (vec![b], b as Rank)).collect();
        pairs.push((b"ab".to_vec(), max_id_span(257) as Rank));
        let err = Vocab::from_pairs(pairs.clone(), "v")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is far past the 257 tokens"), "{err}");
        pairs.last_mut().unwrap().1 -= 1; // the last id allowed
        assert_eq!(
            Vocab::from_pairs(pairs, "v").unwrap().n_ids(),
            max_id_span(257)
        );
    }

    #[test]
    fn tiktoken_errors_name_the_line() {
        let mut text: String = (0..=255u8)
            .map(|b| {
                format!(
                    "{} {b}\n",
                    base64::engine::general_purpose::STANDARD.encode([b])
                )
            })
            .collect();
        assert!(Vocab::from_tiktoken_bytes(text.as_bytes(), "f").is_ok());
        text.push_str("!!! 256\n");
        let err = Vocab::from_tiktoken_bytes(text.as_bytes(), "f")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("f, line 257") && err.contains("base64"),
            "{err}"
        );
        let dup = "YQ== 1\nYQ== 2\n";
        let err = Vocab::from_tiktoken_bytes(dup.as_bytes(), "f")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2: duplicate token"), "{err}");
        let dup = "YQ== 1\nYg== 1\n";
        let err = Vocab::from_tiktoken_bytes(dup.as_bytes(), "f")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2: duplicate rank 1"), "{err}");
        let err = Vocab::from_tiktoken_bytes(b"YQ== x\n", "f")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1") && err.contains("bad rank"), "{err}");
    }
}
