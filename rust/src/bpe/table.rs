//! A per-thread table of short pieces (1 to 15 bytes) -> their ids, whole tokens and merged
//! pieces alike, so that a piece seen before costs one probe of one cache line.
//!
//! Why a table of its own, beside the vocabulary index and the word cache: in a second pass
//! over English a quarter of the pieces are not single tokens, and their lookup was a miss in
//! the index (a walk to an empty slot), then a word-cache slot, then its ids in another array
//! and a `memcpy`: three or four dependent loads and branches that varied with the piece.
//! Here the piece's bytes and length are the key (16 bytes, compared at once), and up to four
//! ids sit beside it, copied out by one 16-byte store whatever their number. Entries are 32
//! bytes, two to a 64-byte line, and the probe reads both: at a load of at most one half,
//! almost every piece is found in its home line.
//!
//! The table is generic over what it keeps (`Inline`): SentencePiece Unigram keeps each
//! short word's cached solution in it, a header and up to three tokens (`spm/unigram.rs`).
//!
//! Entries are made on the first sight of a piece (after a probe of the shared vocabulary
//! index, or a merge), so a thread's first pass pays one miss per distinct piece. Memory is
//! bounded: at [`MAX_ENTRIES`] pieces, or when the spilled ids of pieces of more than four
//! tokens pass [`MAX_SPILL`], the table is emptied and refills with what the text uses now.

use crate::huge::{HugeSlice, Zeroable};
use crate::vocab::{prefetch, Rank};

/// The longest piece the table keys (its length takes the key's sixteenth byte).
pub const SHORT_MAX: usize = 15;
/// Ids kept beside the key; a piece of more tokens keeps them in the spill vector.
const INLINE: usize = 4;
const MAX_ENTRIES: usize = 1 << 18;
const MAX_SPILL: usize = 1 << 20;
const MIN_LINES: usize = 1 << 10;

/// Bits 120..124 of a key hold the piece's length; bits 124..128 of a stored key hold how
/// many of `ids` are its ids (0: they are in the spill vector, at `ids[0]`, `ids[1]` long).
const COUNT_SHIFT: u32 = 124;
const KEY_BITS: u128 = !(0xF << COUNT_SHIFT);

/// What the table keeps for a piece: up to four values beside the key; more go to the spill
/// vector, and the inline room then holds where.
pub trait Inline: Copy + Default + Zeroable {
    /// The inline room of an entry whose values are `spill[at..at + len]`.
    fn spilled(at: u32, len: u32) -> [Self; INLINE];
    /// `(at, len)` back from such room.
    fn spill_of(room: &[Self; INLINE]) -> (usize, usize);
}

impl Inline for Rank {
    fn spilled(at: u32, len: u32) -> [Self; INLINE] {
        [at, len, 0, 0]
    }

    #[inline]
    fn spill_of(room: &[Self; INLINE]) -> (usize, usize) {
        (room[0] as usize, room[1] as usize)
    }
}

#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Entry<V> {
    key: u128,
    ids: [V; INLINE],
}

#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Line<V>([Entry<V>; 2]);

// SAFETY: a key and zeroable values; the zeroed entry (key 0, which no piece has) is the
// empty one.
unsafe impl<V: Inline> Zeroable for Line<V> {}

/// The key of the piece `text[start..start + len]`, `len` in `1..=SHORT_MAX`: its bytes
/// little-endian with the length above them. One 16-byte load and a mask where the text
/// has 16 bytes from `start` (no branch on the length, which varies at random).
#[inline(always)]
fn key_within(text: &[u8], start: usize, len: usize) -> u128 {
    debug_assert!((1..=SHORT_MAX).contains(&len));
    let raw = match text.get(start..start + 16) {
        Some(w) => u128::from_le_bytes(w.try_into().unwrap()),
        None => {
            let mut w = [0u8; 16];
            w[..len].copy_from_slice(&text[start..start + len]);
            u128::from_le_bytes(w)
        }
    };
    (raw & ((1u128 << (8 * len)) - 1)) | ((len as u128) << 120)
}

/// A hash of a key whose high bits are spread (the table indexes by them).
#[inline(always)]
fn hash(key: u128) -> u64 {
    const K1: u64 = 0x9E37_79B9_7F4A_7C15;
    const K2: u64 = 0xD6E8_FEB8_6659_FD93;
    ((key as u64).wrapping_mul(K1) ^ (key >> 64) as u64).wrapping_mul(K2)
}

/// What a probe found.
pub enum Found<'t, V = Rank> {
    /// The piece's values: the first `n` of these four.
    Inline([V; INLINE], usize),
    /// The piece's values, more than four.
    Spilled(&'t [V]),
    Missing,
}

pub struct PieceTable<V: Inline = Rank> {
    lines: HugeSlice<Line<V>>,
    /// `64 - log2(lines.len())`: a hash's top bits pick the home line.
    shift: u32,
    len: usize,
    spill: Vec<V>,
}

impl<V: Inline> Default for PieceTable<V> {
    fn default() -> Self {
        let mut table = PieceTable {
            lines: HugeSlice::default(),
            shift: 0,
            len: 0,
            spill: Vec::new(),
        };
        table.resize(MIN_LINES);
        table
    }
}

impl<V: Inline> PieceTable<V> {
    fn resize(&mut self, lines: usize) {
        let old = std::mem::replace(&mut self.lines, HugeSlice::zeroed(lines));
        self.shift = 64 - lines.trailing_zeros();
        for e in old.iter().flat_map(|l| l.0).filter(|e| e.key != 0) {
            self.place(e);
        }
    }

    #[inline(always)]
    fn home(&self, h: u64) -> usize {
        (h >> self.shift) as usize
    }

    /// Starts the lookup of the piece `text[start..start + len]` (`len` in `1..=SHORT_MAX`):
    /// its key and hash for [`PieceTable::find`], its line prefetched.
    #[inline(always)]
    pub fn start(&self, text: &[u8], start: usize, len: usize) -> (u128, u64) {
        let key = key_within(text, start, len);
        let h = hash(key);
        // SAFETY: `home` is below the number of lines, a power of two (never none).
        prefetch(unsafe { self.lines.get_unchecked(self.home(h)) });
        (key, h)
    }

    /// The ids of the piece whose key is `key` and hash `h`.
    #[inline(always)]
    pub fn find(&self, key: u128, h: u64) -> Found<'_, V> {
        let mask = self.lines.len() - 1;
        let mut i = self.home(h);
        loop {
            // SAFETY: `i` is masked to the number of lines.
            let line = unsafe { self.lines.get_unchecked(i) };
            // Entries fill a line in order and are never removed one by one, so a line with
            // an empty second entry ends the walk.
            let e = if line.0[0].key & KEY_BITS == key {
                &line.0[0]
            } else if line.0[1].key & KEY_BITS == key {
                &line.0[1]
            } else if line.0[1].key == 0 {
                return Found::Missing;
            } else {
                i = (i + 1) & mask;
                continue;
            };
            let n = (e.key >> COUNT_SHIFT) as usize;
            return if n != 0 {
                Found::Inline(e.ids, n)
            } else {
                let (at, len) = V::spill_of(&e.ids);
                Found::Spilled(&self.spill[at..at + len])
            };
        }
    }

    /// Remembers `ids` (at least one) for a key not in the table.
    pub fn insert(&mut self, key: u128, ids: &[V]) {
        debug_assert!(!ids.is_empty());
        if self.len == MAX_ENTRIES || self.spill.len() + ids.len() > MAX_SPILL {
            self.lines.fill(Line::default());
            self.len = 0;
            self.spill.clear();
        }
        if self.len + 1 > self.lines.len() {
            // by four: a thread's first pass over text grows the table several times, and
            // each time rehashes it into fresh memory (first pass gpt2 en +8% against doubling)
            self.resize(4 * self.lines.len());
        }
        let mut e = Entry {
            key,
            ids: [V::default(); INLINE],
        };
        if ids.len() <= INLINE {
            e.ids[..ids.len()].copy_from_slice(ids);
            e.key |= (ids.len() as u128) << COUNT_SHIFT;
        } else {
            e.ids = V::spilled(self.spill.len() as u32, ids.len() as u32);
            self.spill.extend_from_slice(ids);
        }
        self.place(e);
        self.len += 1;
    }

    fn place(&mut self, e: Entry<V>) {
        let mask = self.lines.len() - 1;
        let mut i = self.home(hash(e.key & KEY_BITS));
        loop {
            let line = &mut self.lines[i];
            if let Some(slot) = line.0.iter_mut().find(|s| s.key == 0) {
                *slot = e;
                return;
            }
            i = (i + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &[u8]) -> u128 {
        key_within(s, 0, s.len())
    }

    fn ids(t: &PieceTable, k: u128) -> Option<Vec<Rank>> {
        match t.find(k, hash(k)) {
            Found::Inline(ids, n) => Some(ids[..n].to_vec()),
            Found::Spilled(ids) => Some(ids.to_vec()),
            Found::Missing => None,
        }
    }

    #[test]
    fn keys_tell_pieces_apart_by_bytes_and_length() {
        let text = b"ab\0\0cd and more text after it";
        assert_ne!(key(b"a"), key(b"a\0"));
        assert_eq!(key_within(text, 0, 2), key(b"ab"));
        assert_ne!(key_within(text, 0, 3), key(b"ab"));
        // near the end of a text, where no 16 bytes follow
        assert_eq!(key_within(text, text.len() - 2, 2), key(b"it"));
        assert_eq!(
            key_within(text, text.len() - 15, 15),
            key(b" more text after it"[4..].as_ref())
        );
    }

    #[test]
    fn finds_what_it_holds_through_growth_and_clearing() {
        let mut t = PieceTable::default();
        let pieces: Vec<Vec<u8>> = (0..20_000u32)
            .map(|i| format!("w{i}").into_bytes())
            .collect();
        for (i, p) in pieces.iter().enumerate() {
            let k = key(p);
            assert!(ids(&t, k).is_none());
            let v: Vec<Rank> = (0..(i % 7 + 1) as Rank)
                .map(|j| j * 1000 + i as Rank)
                .collect();
            t.insert(k, &v);
        }
        for (i, p) in pieces.iter().enumerate() {
            let v: Vec<Rank> = (0..(i % 7 + 1) as Rank)
                .map(|j| j * 1000 + i as Rank)
                .collect();
            assert_eq!(ids(&t, key(p)), Some(v), "{i}");
        }
        assert!(t.lines.len() * 2 >= t.len);
        // a full table starts over
        let mut t = PieceTable::default();
        t.insert(key(b"w1"), &[1]);
        for i in 1..MAX_ENTRIES as u32 + 1 {
            t.insert(key(format!("x{i}").as_bytes()), &[i]);
        }
        assert_eq!(t.len, 1);
        assert_eq!(
            ids(&t, key(format!("x{}", MAX_ENTRIES).as_bytes())),
            Some(vec![MAX_ENTRIES as Rank])
        );
        assert!(ids(&t, key(b"w1")).is_none());
    }
}
