//! SentencePiece models (`.model` files): BPE with byte fallback and Unigram, with the
//! sentencepiece library's exact semantics: normalizer, segmentation, byte fallback, decoding.
//!
//! # Performance notes
//!
//! - BPE: sentencepiece merges over the whole normalized text with a heap. When no piece of
//!   the vocabulary holds a `▁` right after another character (true of every model trained
//!   with `split_by_whitespace`, Llama's and Mistral's included), no merge can cross the
//!   start of a `▁` run, so the text is cut there into words and each word is merged alone:
//!   the ids are the same, and a per-thread word cache (as for byte-level BPE) skips repeats.
//!   Short words merge with a flat scan, long ones with a heap, so the worst case stays
//!   O(n log n). A model with UNUSED pieces (whose resegmentation depends on the order of
//!   the whole text's heap) takes sentencepiece's own whole-text path.
//! - BPE lookups: the pieces sit in byte-level BPE's inline-key token table, and a merge
//!   looks up its bytes there (behind the per-thread pair memo) instead of a pair table built
//!   at load. A word that is itself a piece, about two thirds of the words of English text, is
//!   one probe of that table, prefetched in groups of 16 as the words are cut; it skips the
//!   merge and the word cache once a first encoding has shown that merging gives the piece
//!   back (`cache::WholeWords`; not every piece is reachable). Mistral, en, Rust loop, MB/s
//!   cold / warm: 11.9 / 38 -> 19.4 / 62; load 39 -> 19 ms.
//! - Words are cut further between two ASCII characters that no piece holds side by side
//!   (`Joins`; 7228 of the 9025 printable pairs for Mistral): no merge and no lattice edge
//!   crosses there, so the parts are solved alone, exactly as the words between `▁`s are. A
//!   new word is mostly a known word and its punctuation: on en, 128k distinct words become
//!   42k distinct parts, and the share of occurrences that are whole pieces goes from 56% to
//!   74%. Mistral BPE, MB/s cold / warm: en 19 / 58 -> 40 / 52, multi 20 / 22 -> 24 / 40
//!   (the word cache no longer overflows); Unigram test model en cold 31 -> 41.
//! - BPE: the parts of a group of 16 that are not whole pieces get their word-cache slot
//!   prefetched before any part of the group is encoded (`WholeWords::for_each`), and each is
//!   hashed once. Mistral multi, MB/s cold / warm: 21 / 38 -> 24 / 43 (en unchanged).
//! - Words and their parts are cut in one pass over the bytes (`Joins::parts`), not
//!   by a search for `▁` and then a loop over each word. Rust loop, MB/s cold / warm: Unigram
//!   test model en 40.8 / 48.6 -> 44.0 / 54.5, multi 30.1 / 48.2 -> 33.4 / 58.7; Mistral en
//!   41.8 / 57.6 -> 45.1 / 63.6, multi 28.2 / 49.9 -> 28.2 / 54.1.
//! - Tried and dropped: cutting words beside characters that are not ASCII too (no piece
//!   joins most pairs of CJK characters; 106k distinct parts of multi become 48k): multi cold
//!   +3-13%, but warm -15-20% and en -8% from the extra parts and the pair lookups, also
//!   when only words of more than 24 or 48 bytes were cut.
//! - Unigram: sentencepiece's optimized Viterbi (one pass, best path per byte position) over
//!   the vocabulary trie, with its float arithmetic and tie order, so equal-score paths break
//!   the same way. When no piece holds `▁` after its first byte, no lattice edge crosses the
//!   start of a `▁`, and the text is solved word by word. A word's best path depends on the
//!   f32 score the path arrives with (rounding decides near-ties), so the per-thread word
//!   cache keeps, with each word's exact (f64) best path, the smallest margin by which any
//!   decision on it won; the cached path is reused only when that margin exceeds what f32
//!   rounding at the arriving score could change, and the word is solved again otherwise.
//!   The score carried to the next word is the same f32 sum either way. Shared corpora, test
//!   model, MB/s cold / warm: en 21 -> 28 / 45, multi 26 -> 30 / 54 (then 36 / 67 and
//!   33 / 64 with the normalizer's ASCII runs below).
//! - The normalizer precomputes the character map's answer for ASCII bytes, and copies runs
//!   of ASCII that no rule rewrites at once (a letter that NFKC would compose with a
//!   following combining mark counts when an ASCII byte follows it).
//! - Runs of BMP characters that no rule and no user-defined symbol starts with are copied at
//!   once too, told by a bitmap built at load (+1.3 ms); a space that no rule rewrites is
//!   escaped without the rule lookup. Rust loop, interleaved A/B, 12 rounds, cold / warm:
//!   Unigram multi +6% / +8%, then Unigram en +5% / +7%; Mistral multi +4%, en unchanged.
//!   Tried and dropped: alphanumeric runs found 16 bytes at a time (Unigram en warm x1.006),
//!   and a per-thread buffer for the normalized text (no gain).
//! - The normalizer takes 16 bytes of printable ASCII at a time when an ASCII byte follows
//!   them: each byte is copied and each space escaped (or dropped after another) by
//!   arithmetic, with no branch per byte or per word; bytes that start a user-defined
//!   symbol (the test model has `http://`, `<mask>`, `[SEP]`) are checked where they stand.
//!   `Joins::parts` finds the cuts of 64 positions at a time as bit masks (one load per byte
//!   pair from a 64 KB table) and walks them with `trailing_zeros`. Unigram test model, en,
//!   Rust loop: normalize alone 174 -> 332 MB/s, normalize and parts 91 -> 182, whole
//!   encode 49 -> 67 warm. bench_spm (one run, MB/s cold / warm): Mistral en 42 / 62 ->
//!   47 / 77, multi 25 / 56 -> 29 / 63; Unigram en 43 / 56 -> 46 / 63, multi unchanged.
//! - BPE: words of up to 15 bytes come from the byte-level BPE's per-thread piece table
//!   (`bpe/table.rs`: the word's bytes as one key, up to four ids beside it, one cache line
//!   per probe, whole pieces and merged words alike); a longer word asks the word cache
//!   first (pieces cached too), its slot prefetched as the group of 32 fills. The cut scan
//!   finds the ASCII bytes and `▁` leads 16 bytes at a time (SSE2) and looks up only pairs of
//!   ASCII bytes (a 2 KB bitmap instead of the byte table measured 10% slower). Mistral, Rust
//!   loop, MB/s cold / warm: en 55 / 82 -> 68 / 119 (the table) -> 71 / 132 (long words) ->
//!   71 / 134 (the scan); multi 34 / 71 -> 36.5 / 81 -> 38 / 103 -> 39 / 115.
//! - Unigram: a word of up to 15 bytes keeps its cached solution (the header and up to three
//!   tokens, 48 bytes) beside its key in the same per-thread table, instead of a word-cache
//!   slot and then its values elsewhere. Unigram test model, Rust loop, MB/s cold / warm: en
//!   56 / 68 -> 74 / 93, multi 51 / 78 -> 58 / 92.
//! - BPE: a word met for the first time that is not a piece is cut further between two
//!   characters, not both ASCII, that no piece holds side by side (`WideJoins`: a bitmap of
//!   the characters that start or end such a pair, then a set of the pairs), and its parts
//!   come from the piece table and the word cache like words. Cutting every word so was
//!   dropped before (see above); asked only on a miss, it leaves the warm pass alone. On
//!   multi's first pass it merges 1.5 MB of text instead of 4.3; Mistral, Rust loop, MB/s:
//!   multi cold 43 -> 47, en and warm unchanged. A character's first symbol comes from a
//!   table by code point, not a hash probe, and the scan merge keeps its pairs on the stack:
//!   multi 37.5 -> 43, en 69 -> 74 before that. Tried and dropped: the same for Unigram
//!   (a new word's entry joined from its parts' cached or solved ones): multi cold 58 -> 53,
//!   the parts' lookups costing more than the Viterbi they save.
//! - Tried and dropped: Unigram words looked up whole (one lookup for `▁word,` rather than
//!   one per part, a new word joined from its parts' cached solutions): warm en +10%, but
//!   cold en -20% (twice the entries, parts looked up without prefetch) and more replays
//!   failing on the longer words' summed margins.

mod bpe;
mod normalizer;
pub mod proto;
mod unigram;

use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::trie::Trie;
use crate::{Error, Result};
pub use normalizer::CharsMap;
use normalizer::Normalizer;
pub use normalizer::{SPACE, SPACE_CHAR};
use proto::{ModelType, PieceType};

/// Which pairs of ASCII characters some piece holds side by side. Between two neighbouring
/// ASCII characters that no piece so joins, no merge (BPE) and no lattice edge (Unigram)
/// crosses, so a word can be cut there and its parts solved alone, like the words between
/// `▁`s: a word and its punctuation ("▁running" and ",") become parts already known.
pub(crate) struct Joins {
    /// 1 at `a << 8 | b` when `a` and `b` are ASCII and no piece holds them side by side:
    /// one load per byte pair, whatever the bytes.
    cut: Box<[u8; 1 << 16]>,
}

impl Joins {
    pub(crate) fn new<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> Self {
        let mut cut: Box<[u8; 1 << 16]> = vec![0; 1 << 16].into_boxed_slice().try_into().unwrap();
        for a in 0..0x80 {
            cut[a << 8..a << 8 | 0x80].fill(1);
        }
        for p in pieces {
            for w in p.windows(2) {
                cut[(w[0] as usize) << 8 | w[1] as usize] = 0;
            }
        }
        Joins { cut }
    }

    /// Never cut beside the ASCII character `c`.
    pub(crate) fn join_all(&mut self, c: u8) {
        for x in 0..=0xff {
            self.cut[(c as usize) << 8 | x] = 0;
            self.cut[x << 8 | c as usize] = 0;
        }
    }

    /// The parts of `text`: cut between the ASCII characters no piece joins, and before `▁`
    /// as `spaces` says (never at the start), in one pass over the bytes.
    pub(crate) fn parts<'a>(
        &'a self,
        text: &'a [u8],
        spaces: SpaceCuts,
    ) -> impl Iterator<Item = std::ops::Range<usize>> + 'a {
        // The cuts of 64 positions at a time, as a bit mask made without a branch per byte:
        // in words of a few bytes, a branch per byte is mispredicted at every word.
        let (mut start, end) = (0, text.len());
        let (mut base, mut next, mut mask, mut spaces_before) = (0, 0, 0u64, 0u64);
        std::iter::from_fn(move || loop {
            if mask != 0 {
                let at = base + mask.trailing_zeros() as usize;
                mask &= mask - 1;
                return Some(std::mem::replace(&mut start, at)..at);
            }
            if start >= end {
                return None;
            }
            if next >= end {
                return Some(std::mem::replace(&mut start, end)..end);
            }
            base = next;
            next += 64;
            let (cuts, at_spaces) = self.cuts(text, base);
            mask = match spaces {
                SpaceCuts::None => cuts,
                SpaceCuts::Each => cuts | at_spaces,
                // not where a `▁` ends 3 bytes before (in this window or the one before)
                SpaceCuts::RunStarts => cuts | at_spaces & !(at_spaces << 3 | spaces_before >> 61),
            };
            spaces_before = at_spaces;
            // never at the start
            mask &= !((base == 0) as u64);
        })
    }

    /// For the 64 positions from `base`: bit `i` set in the first mask when `text[base + i]`
    /// and the byte before are ASCII that no piece joins, in the second when a `▁` starts
    /// there.
    #[inline]
    fn cuts(&self, text: &[u8], base: usize) -> (u64, u64) {
        let lead = SPACE.as_bytes()[0];
        let window = &text[base..(base + 64).min(text.len())];
        let (ascii, mut leads) = ascii_and_byte(window, lead);
        // only pairs of ASCII characters are looked up: in multilingual text fewer than half
        let before = base > 0 && text[base - 1] < 0x80;
        let mut pairs = ascii & (ascii << 1 | before as u64);
        let mut cuts = 0u64;
        while pairs != 0 {
            let i = pairs.trailing_zeros() as usize;
            pairs &= pairs - 1;
            let at = base + i;
            cuts |= (self.cut[(text[at - 1] as usize) << 8 | text[at] as usize] as u64) << i;
        }
        // most lead bytes 0xE2 start a `▁` in text that has spaces: check each
        let mut spaces = leads;
        while leads != 0 {
            let at = base + leads.trailing_zeros() as usize;
            if text.get(at + 1..at + 3) != Some(&SPACE.as_bytes()[1..]) {
                spaces &= !(1 << (at - base));
            }
            leads &= leads - 1;
        }
        (cuts, spaces)
    }
}

/// Bit masks (bit `i` for `window[i]`, at most 64 bytes) of the ASCII bytes and of the bytes
/// equal to `b`: 16 bytes at a time with SSE2.
#[inline]
fn ascii_and_byte(window: &[u8], b: u8) -> (u64, u64) {
    let (mut ascii, mut hits) = (0u64, 0u64);
    let mut chunks = window.chunks_exact(16);
    let mut at = 0;
    for chunk in &mut chunks {
        let (a, h) = chunk_masks(chunk.try_into().unwrap(), b);
        ascii |= (a as u64) << at;
        hits |= (h as u64) << at;
        at += 16;
    }
    for (i, &c) in chunks.remainder().iter().enumerate() {
        ascii |= ((c < 0x80) as u64) << (at + i);
        hits |= ((c == b) as u64) << (at + i);
    }
    (ascii, hits)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn chunk_masks(chunk: &[u8; 16], b: u8) -> (u16, u16) {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86_64; the load is unaligned and within `chunk`.
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let high = _mm_movemask_epi8(v) as u16;
        let hits = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8))) as u16;
        (!high, hits)
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn chunk_masks(chunk: &[u8; 16], b: u8) -> (u16, u16) {
    let (mut ascii, mut hits) = (0u16, 0u16);
    for (i, &c) in chunk.iter().enumerate() {
        ascii |= ((c < 0x80) as u16) << i;
        hits |= ((c == b) as u16) << i;
    }
    (ascii, hits)
}

/// Which pairs of characters, not both ASCII, some piece holds side by side: the rest of the
/// rule of [`Joins`], asked only of a word met for the first time. A new word of
/// multilingual text is often a run of CJK characters that no piece joins, and its parts
/// are characters and short pieces already known; cutting every word so (the parts of the
/// scan) made the warm pass slower than it made the first one faster.
pub(crate) struct WideJoins {
    pairs: FxHashSet<u64>,
    /// Per code point of the Basic Multilingual Plane, bit 0: the character starts some pair
    /// of `pairs`; bit 1: it ends one. Most CJK characters do neither, and a cut beside them
    /// needs no probe of the set.
    sides: Box<[u8]>,
}

impl WideJoins {
    pub(crate) fn new<'a>(pieces: impl Iterator<Item = &'a str>) -> Self {
        let (mut pairs, mut sides) = (FxHashSet::default(), vec![0u8; 0x10000]);
        for p in pieces {
            let mut chars = p.chars();
            let Some(mut prev) = chars.next() else {
                continue;
            };
            for c in chars {
                if !(prev.is_ascii() && c.is_ascii()) {
                    pairs.insert(Self::key(prev as u32, c as u32));
                    for (x, side) in [(prev, 1), (c, 2)] {
                        if let Some(s) = sides.get_mut(x as usize) {
                            *s |= side;
                        }
                    }
                }
                prev = c;
            }
        }
        WideJoins {
            pairs,
            sides: sides.into_boxed_slice(),
        }
    }

    fn key(a: u32, b: u32) -> u64 {
        (a as u64) << 32 | b as u64
    }

    fn joined(&self, a: u32, b: u32) -> bool {
        if a < 0x80 && b < 0x80 {
            return true;
        }
        let side = |c: u32, bit: u8| self.sides.get(c as usize).is_none_or(|s| s & bit != 0);
        side(a, 1) && side(b, 2) && self.pairs.contains(&Self::key(a, b))
    }

    /// Calls `cut(at)` at each place inside `word` (UTF-8, as every normalized text is) between
    /// two characters, not both ASCII, that no piece holds side by side, in order.
    pub(crate) fn cuts(&self, word: &[u8], mut cut: impl FnMut(usize)) {
        if word.is_ascii() {
            return;
        }
        let mut at = 0;
        let mut prev = None;
        while at < word.len() {
            let (c, len) = decode(word, at);
            if prev.is_some_and(|p| !self.joined(p, c)) {
                cut(at);
            }
            prev = Some(c);
            at += len;
        }
    }
}

/// The code point of the UTF-8 character at `word[at]` and its length (the bytes are not
/// checked: a normalized text is UTF-8).
#[inline]
fn decode(word: &[u8], at: usize) -> (u32, usize) {
    let len = normalizer::utf8_len(word[at]).min(word.len() - at);
    let lead = word[at] as u32 & (0x7f >> (len - 1 + (len > 1) as usize));
    let c = word[at + 1..at + len]
        .iter()
        .fold(lead, |c, &b| c << 6 | (b as u32 & 0x3f));
    (c, len)
}

/// Where [`Joins::parts`] cuts before a `▁`, besides the cuts between ASCII characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SpaceCuts {
    None,
    /// Before every `▁` (Unigram: no lattice edge crosses there).
    Each,
    /// Before the first `▁` of each run (BPE: a piece may hold `▁▁`, never `x▁`).
    RunStarts,
}

/// A loaded SentencePiece model. Immutable: one value serves any number of threads.
pub struct SentencePiece {
    pieces: Vec<String>,
    scores: Vec<f32>,
    types: Vec<PieceType>,
    /// sentencepiece's `pieces_`: normal, user-defined and unused pieces.
    index: FxHashMap<Box<[u8]>, u32>,
    /// sentencepiece's `reserved_id_map_`: control, unknown and byte pieces.
    reserved: FxHashMap<Box<[u8]>, u32>,
    unk_id: u32,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    pad_id: Option<u32>,
    /// The `<0xXX>` piece of each byte, when the model falls back to bytes.
    byte_ids: Option<Box<[u32; 256]>>,
    unk_surface: String,
    normalizer: Normalizer,
    model: Model,
    /// Identity for the per-thread word caches.
    cache_owner: u64,
}

enum Model {
    Bpe(Box<bpe::Bpe>),
    Unigram(unigram::Unigram),
}

/// The model type, as the `.model` file's trainer spec names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bpe,
    Unigram,
}

/// Subword regularization for [`SentencePiece::encode_into`].
#[derive(Clone, Copy, Debug)]
pub enum Sampling {
    /// The best segmentation (what [`SentencePiece::encode`] gives).
    None,
    /// Unigram: a segmentation drawn with probability ∝ P(x)^alpha from the `nbest_size`
    /// best ones (`nbest_size` < 0: from all of them, by forward-filtering backward-sampling).
    /// BPE: BPE-dropout, each merge skipped with probability `alpha` (`nbest_size` unused).
    Sample {
        alpha: f32,
        nbest_size: i32,
        seed: u64,
    },
}

static NEXT_OWNER: AtomicU64 = AtomicU64::new(1 << 40);

impl SentencePiece {
    /// Reads a `.model` file.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let (data, origin) = crate::error::read_file(path)?;
        Self::from_bytes(&data, &origin)
    }

    /// Parses the bytes of a `.model` file (a serialized `ModelProto`); `origin` names it in
    /// errors.
    pub fn from_bytes(data: &[u8], origin: &str) -> Result<Self> {
        let mut proto = proto::decode(data, origin)?;
        let bad = |msg: String| Error::invalid(origin, msg);
        let trainer = proto.trainer_spec.take().unwrap_or_default();
        let normalizer_spec = proto.normalizer_spec.take().unwrap_or_default();
        if proto.pieces.is_empty() {
            return Err(bad("the model has no pieces".into()));
        }
        let kind = match ModelType::try_from(trainer.model_type.unwrap_or(1)) {
            Ok(ModelType::Unigram) => Kind::Unigram,
            Ok(ModelType::Bpe) => Kind::Bpe,
            Ok(other) => {
                return Err(Error::unsupported(
                    origin,
                    "SentencePiece model type",
                    &format!("{other:?}").to_uppercase(),
                    "ferrotok reads UNIGRAM and BPE models",
                ))
            }
            Err(_) => return Err(bad(format!("unknown model_type {:?}", trainer.model_type))),
        };
        let byte_fallback = trainer.byte_fallback();
        let n = proto.pieces.len();
        let mut pieces = Vec::with_capacity(n);
        let mut scores = Vec::with_capacity(n);
        let mut types = Vec::with_capacity(n);
        let mut index = FxHashMap::default();
        let mut reserved = FxHashMap::default();
        let mut unk_id = None;
        let mut byte_ids: Option<Box<[u32; 256]>> = None;
        for (i, p) in proto.pieces.iter().enumerate() {
            let id = i as u32;
            let piece = p.piece().to_string();
            let kind = PieceType::try_from(p.r#type.unwrap_or(1)).map_err(|_| {
                bad(format!(
                    "piece {i} ({piece:?}) has an unknown type {:?}",
                    p.r#type
                ))
            })?;
            if piece.is_empty() {
                return Err(bad(format!("piece {i} is empty")));
            }
            if !p.score().is_finite() {
                // NaN would make every comparison of scores false: no order to merge or solve by
                return Err(bad(format!(
                    "piece {i} ({piece:?}) has score {}",
                    p.score()
                )));
            }
            let normal = matches!(
                kind,
                PieceType::Normal | PieceType::UserDefined | PieceType::Unused
            );
            let map = if normal { &mut index } else { &mut reserved };
            if let Some(first) = map.insert(piece.as_bytes().into(), id) {
                return Err(bad(format!(
                    "piece {piece:?} is defined twice (ids {first} and {i})"
                )));
            }
            match kind {
                PieceType::Unknown => {
                    if let Some(u) = unk_id {
                        return Err(bad(format!("two unknown pieces (ids {u} and {i})")));
                    }
                    unk_id = Some(id);
                }
                PieceType::Byte => {
                    if !byte_fallback {
                        return Err(bad(format!(
                            "byte piece {piece:?} (id {i}) in a model without byte_fallback"
                        )));
                    }
                    let b = byte_of_piece(&piece).ok_or_else(|| {
                        bad(format!("byte piece {piece:?} (id {i}) is not <0xXX>"))
                    })?;
                    byte_ids.get_or_insert_with(|| Box::new([u32::MAX; 256]))[b as usize] = id;
                }
                _ => {}
            }
            pieces.push(piece);
            scores.push(p.score());
            types.push(kind);
        }
        let unk_id = unk_id.ok_or_else(|| bad("the model has no unknown piece".into()))?;
        // a byte without its piece falls back to unk, as sentencepiece's PieceToId does
        let byte_ids = if byte_fallback {
            let mut ids = byte_ids.unwrap_or_else(|| Box::new([u32::MAX; 256]));
            for id in ids.iter_mut().filter(|id| **id == u32::MAX) {
                *id = unk_id;
            }
            Some(ids)
        } else {
            None
        };
        let special = |v: i32| (v >= 0 && (v as usize) < n).then_some(v as u32);
        let user_defined: Vec<(&[u8], u32)> = types
            .iter()
            .enumerate()
            .filter(|(_, t)| **t == PieceType::UserDefined)
            .map(|(i, _)| (pieces[i].as_bytes(), i as u32))
            .collect();
        let user_trie = (!user_defined.is_empty()).then(|| Trie::new(user_defined.iter().copied()));
        let normalizer = Normalizer::new(
            &normalizer_spec,
            trainer.treat_whitespace_as_suffix(),
            user_trie,
            origin,
        )?;
        let model = match kind {
            Kind::Bpe => Model::Bpe(Box::new(bpe::Bpe::new(&pieces, &types, &index))),
            Kind::Unigram => {
                Model::Unigram(unigram::Unigram::new(&pieces, &scores, &types, &index))
            }
        };
        Ok(SentencePiece {
            pieces,
            scores,
            types,
            index,
            reserved,
            unk_id,
            bos_id: special(trainer.bos_id()),
            eos_id: special(trainer.eos_id()),
            pad_id: special(trainer.pad_id()),
            byte_ids,
            unk_surface: trainer
                .unk_surface
                .clone()
                .unwrap_or_else(|| " \u{2047} ".to_string()),
            normalizer,
            model,
            cache_owner: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
        })
    }

    pub fn kind(&self) -> Kind {
        match self.model {
            Model::Bpe(_) => Kind::Bpe,
            Model::Unigram(_) => Kind::Unigram,
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    pub fn pad_id(&self) -> Option<u32> {
        self.pad_id
    }

    pub fn byte_fallback(&self) -> bool {
        self.byte_ids.is_some()
    }

    /// The piece of `id`.
    pub fn piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(String::as_str)
    }

    pub fn score(&self, id: u32) -> Option<f32> {
        self.scores.get(id as usize).copied()
    }

    pub fn piece_type(&self, id: u32) -> Option<PieceType> {
        self.types.get(id as usize).copied()
    }

    /// sentencepiece's `PieceToId`: reserved pieces first, then the others; unk if neither.
    pub fn piece_to_id(&self, piece: &str) -> u32 {
        let p = piece.as_bytes();
        self.reserved
            .get(p)
            .or_else(|| self.index.get(p))
            .copied()
            .unwrap_or(self.unk_id)
    }

    /// The normalized form of `text` (what the model segments).
    pub fn normalize(&self, text: &str) -> String {
        let mut out = Vec::new();
        self.normalizer.normalize(text, &mut out);
        String::from_utf8(out).expect("the normalizer writes UTF-8")
    }

    /// The ids of `text`, as sentencepiece's `EncodeAsIds`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        self.encode_into(text, Sampling::None, &mut out);
        out
    }

    /// Appends the ids of `text` to `out`, with optional subword regularization.
    pub fn encode_into(&self, text: &str, sampling: Sampling, out: &mut Vec<u32>) {
        let mut normalized = Vec::new();
        self.normalizer.normalize(text, &mut normalized);
        if normalized.is_empty() {
            return;
        }
        let at = out.len();
        self.segment(&normalized, sampling, out);
        if self.byte_ids.is_none() {
            self.merge_unknown_runs(out, at);
        }
    }

    /// Without byte fallback sentencepiece reports a run of unknown pieces as one unk.
    fn merge_unknown_runs(&self, out: &mut Vec<u32>, from: usize) {
        let unk = self.unk_id;
        if !out[from..].windows(2).any(|w| w[0] == unk && w[1] == unk) {
            return;
        }
        let mut k = from;
        for i in from..out.len() {
            if out[i] == unk && k > from && out[k - 1] == unk {
                continue;
            }
            out[k] = out[i];
            k += 1;
        }
        out.truncate(k);
    }

    fn segment(&self, normalized: &[u8], sampling: Sampling, out: &mut Vec<u32>) {
        match (&self.model, sampling) {
            (Model::Bpe(m), Sampling::None) => m.encode(self, normalized, out),
            (Model::Bpe(m), Sampling::Sample { alpha, seed, .. }) => {
                m.encode_dropout(self, normalized, alpha, seed, out)
            }
            (Model::Unigram(m), Sampling::None) => m.encode(self, normalized, out),
            (
                Model::Unigram(m),
                Sampling::Sample {
                    alpha,
                    nbest_size,
                    seed,
                },
            ) => m.sample(self, normalized, alpha, nbest_size, seed, out),
        }
    }

    /// The `n` best segmentations of `text` with their scores (Unigram only; BPE has one).
    pub fn nbest(&self, text: &str, n: usize) -> Vec<(Vec<u32>, f32)> {
        let Model::Unigram(m) = &self.model else {
            return vec![(self.encode(text), 0.0)];
        };
        let mut normalized = Vec::new();
        self.normalizer.normalize(text, &mut normalized);
        let mut results = m.nbest(self, &normalized, n);
        if self.byte_ids.is_none() {
            for (ids, _) in &mut results {
                self.merge_unknown_runs(ids, 0);
            }
        }
        results
    }

    /// Appends the output ids of one segment: its id, or its bytes' pieces when it is unknown
    /// and the model falls back to bytes (sentencepiece's `PopulateSentencePieceText`).
    #[inline]
    fn emit(&self, segment: &[u8], id: u32, out: &mut Vec<u32>) {
        if id == self.unk_id {
            if let Some(bytes) = &self.byte_ids {
                out.extend(segment.iter().map(|&b| bytes[b as usize]));
                return;
            }
        }
        out.push(id);
    }

    /// The text of `ids`, as sentencepiece's `DecodeIds`: control pieces vanish, unknown ones
    /// show as the model's unk surface, runs of byte pieces are read as UTF-8 (each malformed
    /// byte becomes U+FFFD) and `▁` becomes a space, the first one dropped when the
    /// normalizer added it.
    /// An id outside the vocabulary is an error naming the first one.
    pub fn decode(&self, ids: &[i64]) -> Result<String> {
        let mut text = String::new();
        let mut bytes = Vec::new();
        let mut expect_bos_space = true;
        let mut bos_space_seen = false;
        for &raw in ids {
            let piece = usize::try_from(raw).ok().and_then(|i| self.pieces.get(i));
            let Some(piece) = piece else {
                return Err(Error::UnknownId {
                    id: raw,
                    n_vocab: self.pieces.len(),
                });
            };
            let id = raw as u32; // in range: it names a piece
            let kind = self.types[id as usize];
            if kind == PieceType::Byte {
                bytes.push(byte_of_piece(piece).expect("checked at load"));
                continue;
            }
            flush_bytes(&mut bytes, &mut text);
            if bos_space_seen || !text.is_empty() {
                expect_bos_space = false;
            }
            bos_space_seen = false;
            match kind {
                PieceType::Control => {}
                PieceType::Unknown => text.push_str(&self.unk_surface),
                _ => {
                    let mut p = piece.as_str();
                    if expect_bos_space && self.normalizer.strips_leading_space() {
                        if let Some(rest) = p.strip_prefix(SPACE) {
                            p = rest;
                            bos_space_seen = !self.normalizer.remove_extra_whitespaces();
                        }
                    }
                    for (i, part) in p.split(SPACE).enumerate() {
                        if i > 0 {
                            text.push(' ');
                        }
                        text.push_str(part);
                    }
                }
            }
        }
        flush_bytes(&mut bytes, &mut text);
        Ok(text)
    }
}

/// Appends a run of byte pieces to `text` as sentencepiece does: UTF-8 characters where the
/// bytes form them, one U+FFFD per byte where they do not.
fn flush_bytes(bytes: &mut Vec<u8>, text: &mut String) {
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                text.push_str(s);
                break;
            }
            Err(e) => {
                let good = e.valid_up_to();
                text.push_str(std::str::from_utf8(&rest[..good]).unwrap());
                text.push('\u{FFFD}');
                rest = &rest[good + 1..];
            }
        }
    }
    bytes.clear();
}

/// The byte of a `<0xXX>` piece.
fn byte_of_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Cuts a text into words before each `▁` that follows another character (the words of a
    /// model none of whose merges joins such a `▁` to what precedes it), as byte ranges.
    fn words_at_spaces(text: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        const SPACE: &[u8] = "\u{2581}".as_bytes();
        let mut spaces = memchr::memmem::find_iter(text, SPACE);
        let mut start = 0;
        std::iter::from_fn(move || {
            if start >= text.len() {
                return None;
            }
            let end = spaces
                .by_ref()
                .find(|&p| p > start && !text[..p].ends_with(SPACE))
                .unwrap_or(text.len());
            Some(std::mem::replace(&mut start, end)..end)
        })
    }

    /// The parts of `text[word]`, cut between the ASCII characters no piece joins.
    fn word_parts<'a>(
        pieces: &'a [String],
        text: &'a [u8],
        word: std::ops::Range<usize>,
    ) -> impl Iterator<Item = std::ops::Range<usize>> + 'a {
        let mut cuts: Vec<usize> = (word.start + 1..word.end)
            .filter(|&at| {
                let pair = &text[at - 1..=at];
                pair.is_ascii()
                    && !pieces
                        .iter()
                        .any(|p| p.as_bytes().windows(2).any(|w| w == pair))
            })
            .collect();
        cuts.insert(0, word.start);
        cuts.push(word.end);
        let n = if word.is_empty() { 0 } else { cuts.len() - 1 };
        (0..n).map(move |k| cuts[k]..cuts[k + 1])
    }

    proptest! {
        /// One pass equals cutting the words first (at each `▁`, or at the start of each `▁`
        /// run, or not at all) and then each word's parts.
        #[test]
        fn parts_equal_words_then_parts(
            chars in prop::collection::vec(
                prop::sample::select(vec!["▁", "a", "b", ",", ".", " ", "é", "中", "▂", "\u{2580}"]),
                0..200,
            ),
            pieces in prop::collection::vec(
                prop::collection::vec(prop::sample::select(vec!["▁", "a", "b", ",", "é"]), 1..4)
                    .prop_map(|p| p.concat()),
                0..12,
            ),
        ) {
            let string = chars.concat();
            let text = string.as_bytes();
            let joins = Joins::new(pieces.iter().map(|p| p.as_bytes()));
            let whole: Vec<_> = word_parts(&pieces, text, 0..text.len()).collect();
            prop_assert_eq!(joins.parts(text, SpaceCuts::None).collect::<Vec<_>>(), whole);
            let runs: Vec<_> = words_at_spaces(text)
                .flat_map(|w| word_parts(&pieces, text, w))
                .collect();
            prop_assert_eq!(joins.parts(text, SpaceCuts::RunStarts).collect::<Vec<_>>(), runs);
            // the words: a new one at each `▁` but the first character
            let mut each: Vec<std::ops::Range<usize>> = Vec::new();
            for (at, c) in string.char_indices() {
                match each.last_mut() {
                    Some(w) if c != SPACE_CHAR => w.end = at + c.len_utf8(),
                    _ => each.push(at..at + c.len_utf8()),
                }
            }
            let each: Vec<_> = each.into_iter().flat_map(|w| word_parts(&pieces, text, w)).collect();
            prop_assert_eq!(joins.parts(text, SpaceCuts::Each).collect::<Vec<_>>(), each);
        }

        /// `decode` reads the characters `chars` reads.
        #[test]
        fn decode_reads_chars(text in "\\PC{0,40}") {
            let mut at = 0;
            for c in text.chars() {
                prop_assert_eq!(decode(text.as_bytes(), at), (c as u32, c.len_utf8()));
                at += c.len_utf8();
            }
        }

        /// The wide cuts are the places between two characters, not both ASCII, that no piece
        /// holds side by side.
        #[test]
        fn wide_cuts_are_where_no_piece_joins(
            chars in prop::collection::vec(
                prop::sample::select(vec!["▁", "a", "b", "é", "中", "文", "😀", "\u{ffff}"]),
                0..40,
            ),
            pieces in prop::collection::vec(
                prop::collection::vec(prop::sample::select(vec!["▁", "a", "é", "中", "文", "😀"]), 1..4)
                    .prop_map(|p| p.concat()),
                0..12,
            ),
        ) {
            let word = chars.concat();
            let wide = WideJoins::new(pieces.iter().map(String::as_str));
            let mut cuts = Vec::new();
            wide.cuts(word.as_bytes(), |at| cuts.push(at));
            let expected: Vec<usize> = word
                .char_indices()
                .zip(word.chars().skip(1))
                .filter(|&((_, a), b)| {
                    let pair = format!("{a}{b}");
                    let joined = a.is_ascii() && b.is_ascii() || pieces.iter().any(|p| p.contains(&pair));
                    !joined
                })
                .map(|((at, a), _)| at + a.len_utf8())
                .collect();
            prop_assert_eq!(cuts, expected);
        }
    }
}
