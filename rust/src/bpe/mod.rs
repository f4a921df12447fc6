//! Byte-level BPE with tiktoken's semantics: special-token split, pre-tokenize, merge.
//!
//! # Performance notes
//!
//! The hot path is `encode_ordinary_into`: pre-tokenize, look each piece up as a whole
//! token, merge the rest. Measured single-threaded in Rust (`examples/encode_file.rs`) on
//! the shared corpora with o200k_base, first pass / second pass in MB/s; each step was kept
//! because the ids stayed identical to tiktoken's on every document and it paid for itself:
//!
//! | step | en | multi |
//! |---|---|---|
//! | regex split (fancy-regex, as tiktoken) + tiktoken's merge | 12 | 10 |
//! | hand-written scanners for the official patterns (`pretok/official.rs`) | 42–52 | 19–23 |
//! | vocabulary index with tokens of ≤ 8 bytes inline in the slot (`vocab.rs`) | 50–62 | 22–25 |
//! | per-thread cache of merged pieces, any length, bounded (`cache.rs`) | 70 / 93 | 30 / 73 |
//! | prefetch index slots a group of 32 pieces ahead of their lookups | 73 / 90 | 37 / 94 |
//! | per-thread memo of (left id, right id) -> pair rank for the merge loop | +10% | +20% |
//!
//! Later steps, measured with cl100k_base (first pass, one pinned CPU, MB/s en / code / multi):
//!
//! | step | en | code | multi |
//! |---|---|---|---|
//! | before | 83 | 90 | 37 |
//! | scanners skip ASCII runs 16 bytes at a time (SSE2 compares, `classes::ascii_run`; the split alone 220 -> 330 MB/s on en) | 100 | 103 | 45 |
//! | `merge_small` prefetches the memo and index slots of all first pairs before reading them | | +2-3% | +2% |
//! | `merge_large` asks the pair memo too | | | ~0 (noise) |
//! | (another day: the same code measured 103 / 109 / 48, second pass 142 / 141 / 113) | | | |
//! | each piece is hashed once: the group keeps the key and home slot computed for its prefetch (`Vocab::probe`) for the lookup | 115 | 122 | 50 |
//!
//! The last step gained more on the second pass (142 -> 166 on en, o200k 111 -> 124) than
//! on the first.
//!
//! Then, o200k_base, first / second pass, median of 8 interleaved runs (this machine's
//! figures drifted down by a third since the table above):
//!
//! | step | en | multi |
//! |---|---|---|
//! | before | 71.6 / 102.1 | 28.4 / 74.9 (mean of 5) |
//! | a non-token piece reaches the piece cache with its probe's hash (`Probe::hash`) | 75.1 / 106.8 | 29.7 / 81.2 (mean of 5) |
//! | own cache table (16 key bytes in the slot), slots of a group's non-token pieces prefetched | 53.7 / 84.6 -> 57.1 / 93.0 | 24.7 / 68.1 -> 26.2 / 75.5 |
//!
//! Then, o200k_base, first / second pass, median of 8 interleaved runs of the two builds:
//!
//! | step | en | multi |
//! |---|---|---|
//! | the o200k scanner tries its letter alternatives only where a U or W character starts them | split alone 191 -> 230 | split alone 206 -> 250 |
//! | the index and the word-cache tables in 2 MB pages (`huge.rs`; `MADV_HUGEPAGE`) | 76.9 / 120.0 -> 81.3 / 124.5 | 31.9 / 110.1 -> 32.4 / 114.7 |
//! | a 9- to 16-byte token is confirmed by 16 bytes kept in the index, not the token buffer | 79.1 / 117.3 -> 81.8 / 129.8 | 32.2 / 108.7 -> 34.2 / 116.2 |
//! | pair memo 16k -> 64k slots for vocabularies of 64k tokens and more (`PairMemo::fit`) | 87.1 / 123.0 -> 84.8 / 128.9 | 35.2 / 115.5 -> 38.2 / 118.8 |
//! | o200k words that start with an ASCII letter are cut with one 16-byte compare | 82.7 / 127.1 -> 85.7 / 139.0 (split alone 264 -> 316) | |
//! | a piece of up to 8 bytes is packed for its probe by one load from the text and a mask (`Vocab::probe_within`), not by loads picked by its length | 78.5 / 118.7 -> 82.6 / 140.3 | 31.8 / 109.8 -> 32.2 / 120.8 |
//!
//! Tried and dropped (no gain beyond this machine's ±10% noise, or a loss): an L2-sized
//! second index of the 16k lowest-ranked short tokens probed before the full one, prefetch
//! groups of 16 or 64 instead of 32, the 16-byte word compare for cl100k (no gain: its
//! scanner already finds a letter run with one compare) and r50k (14% slower split).
//! Huge pages, dropped once when the VM seemed to give none, do come with `MADV_HUGEPAGE` on
//! 2 MB-aligned memory (AnonHugePages shows the index's 8 MB).
//!
//! What that profile showed (o200k, second pass over en): the scanner about 32% and the
//! two lookup loops about 50%; branches taken at random by the varied pieces, more than
//! memory (removing one, the length switch of the key packing, gained 10-18% warm). Then:
//!
//! | step (median of 7 interleaved runs; best run in brackets) | o200k en | o200k code | cl100k code | gpt2 en |
//! |---|---|---|---|---|
//! | before | 66.6 / 129.4 | 76.8 / 127.4 | 66.7 / 116.5 | 77.4 / 132.8 |
//! | piece starts 64 bytes at a time from bit masks (`pretok/blocks.rs`: split alone 313 -> 709 MB/s on o200k en), the per-piece step inlined into the scan loop, the group lookup out of it (`Bpe::flush`) | 95.4 / 186.9 (103 / 199) | 103.0 / 172.1 (109 / 204) | 85.8 / 185.8 (118 / 208) | 97.6 / 164.5 (107 / 177) |
//!
//! The windows judge 98% of en's bytes and 99% of code's, but 44% of multi's (the rest is
//! non-ASCII, which the scalar scanner takes): multi is unchanged.
//!
//! Where the time goes now (perf, o200k, second pass over en): the group lookup (`flush`)
//! about 35%, most of it the load of the index slot that the prefetch issued 32 pieces
//! earlier; the per-piece step (probe and prefetch) about 30%; the windows about 12%. 10 KB
//! of en repeated to 6 MB (every token in cache) runs at 290 MB/s against the corpus's 210:
//! a quarter of the lookups' time is memory now. On a first pass over multi, merges are
//! about 45%, most of it reads of pair-memo slots that miss the cache (the pairs of a new
//! piece are mostly new), not the merge loop itself.
//!
//! Then one table for the lookups (`table.rs`), gpt2, Rust loop, first / second pass MB/s,
//! three interleaved runs each:
//!
//! | step | en | code | multi |
//! |---|---|---|---|
//! | before | 122 / 187 | | 63 / 136 (o200k) |
//! | a per-thread table of pieces of up to 15 bytes -> ids, tokens and merged pieces alike: the piece's bytes and length are one 16-byte key, up to four ids sit beside it and are copied by one 16-byte store, two entries to a cache line | 140 / 297 | | 63 / 159 (o200k) |
//! | a long piece asks the word cache first (long tokens cached too), its slot prefetched while the group fills; words of up to 256 bytes cached | 152 / 334 | 150 / 299 | 63 / 192 |
//! | the table grows by four, not two (fewer rehashes into fresh memory) | 167 / 333 | | |
//!
//! The table replaced, for a piece seen before, a probe of the vocabulary index and, for a
//! piece that is no token (a quarter of en's), a walk to an empty index slot, a word-cache
//! slot, its ids in another array and a `memcpy`: branches that the varied pieces took at
//! random. The same table serves the `.model` BPE's words (`spm/bpe.rs`: Mistral en 82 -> 119
//! MB/s second pass). 10 KB of en repeated to 6 MB runs at 359 MB/s against the corpus's 334,
//! so the table's memory is no longer much of the time; the scanner (770 MB/s alone on en) is
//! about 40% of a second pass.
//!
//! Long pieces (256 bytes and more: runs of whitespace, of one letter, of symbols) take a
//! backtracking search over the vocabulary that is exact for tiktoken's merge and linear in
//! the piece's length (`backtrack.rs`, with the argument and the figures): 1 MB of spaces then
//! a letter went from 0.27 s with the heap merge to 10 ms.
//!
//! Loading (`registry::load`; `examples/load_time.rs`, o200k, first load in a fresh process):
//! the index takes 200k inserts at random places in 12 MB, and in id order each waited on a
//! cache miss. Prefetching the home slot 16 tokens ahead overlaps them (first load 7.5 -> 5.3
//! ms, best of 20 loads 8.9 -> 5.0); the embedded token bytes are used in place, not copied.
//! Sorting the inserts by home slot instead (a counting sort into 1024 stretches of the
//! table) was slower: 3 ms to sort, and no faster inserts. The character tables, built at a
//! process's first encode, fill only the blocks that some class touches (0.25 ms less). A
//! thread's first encode with an encoding still costs about 0.7 ms, most of it faulting in
//! the 1.25 MB pair memo: left to fault lazily (calloc) it cost 0.15 ms, but a read of an
//! untouched page maps the zero page and the first write then faults again and interrupts
//! the other threads of a batch to flush their TLBs (see `huge::HugeSlice::zeroed`). From
//! Python, o200k is ready 12-14 ms after `import ferrotok` starts (16-24 before), the import
//! itself about 6 ms (`threading`, `difflib` and `random` are no longer imported with it).
//!
//! Output memory: on this project's VM each 4 KB page of fresh memory costs about 5 µs to
//! fault in, so the buffer for the ids of a text of 1 MB or more is marked for huge pages
//! before it is written (`ids_for`): one 6 MB text of en, second pass, 197 -> 210 MB/s (the
//! same text as 270 documents, whose buffers the allocator reuses: 226). Batches do the same
//! for their buffers (`batch.rs`).
//!
//! Design choices that keep it linear and allocation-light: no per-piece allocation (the
//! merge scratch vector is reused, ids are written straight into the output vector that
//! becomes the numpy array), short pieces merge with a flat scan (fastest for the pieces of
//! ordinary text), longer ones with a heap, long ones with the search, so that no input is
//! quadratic.

pub(crate) mod backtrack;
pub(crate) mod cache;
pub(crate) mod merge;
pub(crate) mod table;

use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};
use rayon::prelude::*;

use crate::pretok::{safe_cut, Pretokenizer};
use crate::special::{SpecialSet, SpecialTokens};
use crate::vocab::{Rank, Vocab};

/// A byte-level BPE encoding: mergeable vocabulary, split pattern and special tokens.
/// Immutable once built, so one value can serve any number of threads.
#[derive(Clone)]
pub struct Bpe {
    vocab: Vocab,
    pretok: Pretokenizer,
    specials: SpecialTokens,
    n_vocab: usize,
    /// Identity for the per-thread piece caches (clones share it: same content, same ids).
    id: u64,
    /// The long-piece search's filter, built when the first long piece comes.
    prefixes: Arc<OnceLock<backtrack::PrefixFilter>>,
}

/// Texts (or stretches between special tokens) of at least this many bytes are encoded in
/// parallel by the `*_parallel` methods.
pub const PARALLEL_MIN: usize = 1 << 20;
/// The smallest part a long text is cut into for parallel encoding.
pub const PARALLEL_SPAN: usize = 64 << 10;

/// An empty buffer for the ids of a text of `len` bytes. Room for a token per 4 bytes (about
/// English's rate) for a short text; a long one, whose buffer is fresh memory from the kernel,
/// gets more room in huge pages (`batch::fresh_ids`): faulted in 4 KB pages, the buffer of a
/// 6 MB text cost a seventh of its encoding on this project's VM.
fn ids_for(len: usize) -> Vec<Rank> {
    if len < PARALLEL_MIN {
        return Vec::with_capacity(len / 4 + 4);
    }
    crate::batch::fresh_ids(crate::batch::id_room(len))
}

/// Pieces pre-tokenized (and prefetched) ahead of their lookups.
const PREFETCH_GROUP: usize = 32;

/// A piece waiting in a group for its lookup: its table key and hash (for a piece too long
/// for the table: key 0, and the hash of the word cache).
struct Pending<'t> {
    piece: &'t str,
    key: u128,
    hash: u64,
}

impl Bpe {
    /// Builds an encoding. Special-token ids must not collide with mergeable ones.
    pub fn new(
        vocab: Vocab,
        pattern: &str,
        specials: Vec<(String, Rank)>,
        origin: &str,
    ) -> Result<Self> {
        for (text, id) in &specials {
            if vocab.token(*id).is_some() {
                return Err(Error::invalid(
                    origin,
                    format!(
                        "special token {text:?} has id {id}, which is already a mergeable token"
                    ),
                ));
            }
        }
        crate::vocab::check_id_span(
            specials.iter().map(|s| s.1),
            vocab.len() + specials.len(),
            "special token id",
        )
        .map_err(|far| Error::invalid(origin, far.to_string()))?;
        let specials = SpecialTokens::new(specials, origin)?;
        let n_vocab = vocab
            .n_ids()
            .max(specials.max_id().map_or(0, |m| m as usize + 1));
        Ok(Bpe {
            vocab,
            // the pattern may come from a file (a tokenizer.json's Split): name it
            pretok: Pretokenizer::new(pattern)
                .map_err(|e| Error::invalid(origin, e.to_string()))?,
            specials,
            n_vocab,
            id: crate::cache::new_owner(),
            prefixes: Arc::default(),
        })
    }

    /// The mergeable vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// The special tokens.
    pub fn specials(&self) -> &SpecialTokens {
        &self.specials
    }

    /// The split pattern.
    pub fn pattern(&self) -> &str {
        self.pretok.pattern()
    }

    /// The pre-tokenizer.
    pub fn pretokenizer(&self) -> &Pretokenizer {
        &self.pretok
    }

    /// One past the largest id, special tokens included.
    pub fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    /// Encodes `text` ignoring special tokens (they are encoded as ordinary text).
    pub fn encode_ordinary(&self, text: &str) -> Result<Vec<Rank>> {
        let mut out = ids_for(text.len());
        self.encode_ordinary_into(text, &mut out)?;
        Ok(out)
    }

    /// Appends the ids of `text` (no special tokens) to `out`.
    pub fn encode_ordinary_into(&self, text: &str, out: &mut Vec<Rank>) -> Result<()> {
        self.encode_pieces(text, text.len(), out)
    }

    /// Like [`Bpe::encode_ordinary`], but when called inside a rayon pool, a text of at least
    /// `min_len` bytes (say [`PARALLEL_MIN`]; less in a batch, to even out the work) is cut at
    /// [`safe_cut`] points and the parts are encoded in parallel on that pool.
    /// The ids are the same (each part is scanned with one character of look-ahead; see
    /// `safe_cut`). Other texts, and custom patterns, are encoded sequentially.
    pub fn encode_ordinary_parallel(&self, text: &str, min_len: usize) -> Result<Vec<Rank>> {
        let mut out = ids_for(text.len());
        self.encode_ordinary_parallel_into(text, min_len, &mut out)?;
        Ok(out)
    }

    /// [`Bpe::encode_ordinary_parallel`], appending to `out`.
    pub fn encode_ordinary_parallel_into(
        &self,
        text: &str,
        min_len: usize,
        out: &mut Vec<Rank>,
    ) -> Result<()> {
        self.encode_segment(text, min_len, out)
    }

    /// `min_len`: the length from which `text` is cut into parts (`usize::MAX`: never).
    fn encode_segment(&self, text: &str, min_len: usize, out: &mut Vec<Rank>) -> Result<()> {
        // Only inside a pool the caller chose (never rayon's global one, which a forked child
        // would find without threads).
        let threads = rayon::current_num_threads();
        let in_pool = rayon::current_thread_index().is_some();
        if !in_pool
            || text.len() < min_len.max(2 * PARALLEL_SPAN)
            || threads < 2
            || !self.pretok.cuts_are_safe()
        {
            return self.encode_ordinary_into(text, out);
        }
        // a few parts per thread, so that an uneven part does not leave a core idle
        let span = (text.len() / (threads * 4)).max(PARALLEL_SPAN);
        let bytes = text.as_bytes();
        let mut spans = Vec::new();
        let mut start = 0;
        while start + span < text.len() {
            match safe_cut(bytes, start + span) {
                Some(c) => {
                    spans.push((start, c));
                    start = c;
                }
                None => break,
            }
        }
        spans.push((start, text.len()));
        let parts: Vec<Vec<Rank>> = spans
            .par_iter()
            .map(|&(s, e)| {
                // `text[e]` is an ASCII letter: one byte of look-ahead, its piece dropped
                let mut ids = ids_for(e - s);
                let scan = &text[s..(e + 1).min(text.len())];
                self.encode_pieces(scan, e - s, &mut ids)?;
                Ok(ids)
            })
            .collect::<Result<_>>()?;
        out.reserve(parts.iter().map(Vec::len).sum());
        for ids in parts {
            out.extend_from_slice(&ids);
        }
        Ok(())
    }

    /// Appends the ids of the pieces of `text` that start before byte `limit`.
    fn encode_pieces(&self, text: &str, limit: usize, out: &mut Vec<Rank>) -> Result<()> {
        let mut parts = Vec::new();
        // Pieces are looked up in groups: the pre-tokenizer fills a group, prefetching each
        // piece's table line, and the lookups run once the group is full.
        let mut group: Vec<Pending> = Vec::with_capacity(PREFETCH_GROUP);
        let bytes = text.as_bytes();
        cache::with_cache(self.id, |cache| {
            cache.pairs.fit(self.vocab.len());
            self.pretok.for_each_piece(text, |piece| {
                let start = piece.as_ptr() as usize - text.as_ptr() as usize;
                if start >= limit {
                    return; // a look-ahead piece (see `encode_segment`)
                }
                let (key, hash) = if piece.len() <= table::SHORT_MAX {
                    cache.table.start(bytes, start, piece.len())
                } else {
                    (0, cache.prefetch_word(piece.as_bytes()))
                };
                group.push(Pending { piece, key, hash });
                if group.len() == PREFETCH_GROUP {
                    self.flush(&mut group, &mut parts, cache, out);
                }
            })?;
            self.flush(&mut group, &mut parts, cache, out);
            Ok(())
        })
    }

    /// Looks up (or merges) the pieces of a group and empties it. Not inlined: the per-piece
    /// step above then stays small enough to be inlined into the pre-tokenizer's loop.
    #[inline(never)]
    fn flush(
        &self,
        group: &mut Vec<Pending>,
        parts: &mut Vec<merge::Part>,
        cache: &mut cache::PieceCache,
        out: &mut Vec<Rank>,
    ) {
        cache.emit_group(
            group,
            |p| (p.key, p.hash),
            out,
            |cache, p, out| self.encode_piece(p.piece.as_bytes(), p.hash, parts, cache, out),
        );
        group.clear();
    }

    /// Appends the ids of a piece that the table does not hold: a short one seen for the
    /// first time, or a long one (`hash`: its `hash_bytes` if the word cache may hold it).
    #[inline(never)]
    fn encode_piece(
        &self,
        piece: &[u8],
        hash: u64,
        parts: &mut Vec<merge::Part>,
        cache: &mut cache::PieceCache,
        out: &mut Vec<Rank>,
    ) {
        let long = piece.len() > table::SHORT_MAX;
        if long && cache.get(piece, hash, out) {
            return;
        }
        let start = out.len();
        match self.vocab.rank(piece) {
            Some(id) => out.push(id),
            None => self.merge_piece(piece, parts, cache, out),
        }
        if long {
            // tokens too: a long piece is then one probe of the cache, not two
            cache.put(piece, hash, &out[start..]);
        }
    }

    /// Appends the ids of a piece that is not a single token to `out`.
    #[inline]
    fn merge_piece(
        &self,
        piece: &[u8],
        parts: &mut Vec<merge::Part>,
        cache: &mut cache::PieceCache,
        out: &mut Vec<Rank>,
    ) {
        if piece.len() < backtrack::LONG_PIECE_MIN {
            merge::merge(&self.vocab, piece, parts, &mut cache.pairs, out);
        } else {
            let filter = self
                .prefixes
                .get_or_init(|| backtrack::PrefixFilter::new(&self.vocab));
            let long = cache.long.get_or_insert_with(Box::default);
            backtrack::encode_long(&self.vocab, filter, piece, &mut cache.pairs, long, out);
        }
    }

    /// Encodes `text`, turning the special tokens in `allowed` into their ids and failing on
    /// the first special token in `disallowed` (tiktoken's `encode`: a token in both sets is
    /// an error; callers pass "all but the allowed" for tiktoken's default).
    pub fn encode(
        &self,
        text: &str,
        allowed: &SpecialSet,
        disallowed: &SpecialSet,
    ) -> Result<Vec<Rank>> {
        self.encode_parallel(text, allowed, disallowed, usize::MAX)
    }

    /// [`Bpe::encode`], with the stretches of ordinary text of at least `min_len` bytes
    /// encoded in parallel as in [`Bpe::encode_ordinary_parallel`].
    pub fn encode_parallel(
        &self,
        text: &str,
        allowed: &SpecialSet,
        disallowed: &SpecialSet,
        min_len: usize,
    ) -> Result<Vec<Rank>> {
        let mut out = ids_for(text.len());
        self.encode_parallel_into(text, allowed, disallowed, min_len, &mut out)?;
        Ok(out)
    }

    /// [`Bpe::encode_parallel`], appending to `out` (which holds part of the ids on an error).
    pub fn encode_parallel_into(
        &self,
        text: &str,
        allowed: &SpecialSet,
        disallowed: &SpecialSet,
        min_len: usize,
        out: &mut Vec<Rank>,
    ) -> Result<()> {
        let mut start = 0;
        let mut from = 0;
        loop {
            // The next allowed special token; matches that are not allowed are skipped one
            // byte at a time so that an allowed token overlapping them is still found.
            let mut next = None;
            while let Some(m) = self.specials.find(text, from) {
                if disallowed.contains(m.index) {
                    let token = self.specials.tokens()[m.index].0.clone();
                    return Err(Error::DisallowedSpecial {
                        token,
                        pos: text[..m.start].chars().count(),
                    });
                }
                if allowed.contains(m.index) {
                    next = Some(m);
                    break;
                }
                from = m.start + 1;
            }
            let end = next.map_or(text.len(), |m| m.start);
            self.encode_segment(&text[start..end], min_len, out)?;
            match next {
                Some(m) => {
                    out.push(self.specials.tokens()[m.index].1);
                    start = m.end;
                    from = m.end;
                }
                None => return Ok(()),
            }
        }
    }

    /// The bytes of token `id` (mergeable or special).
    #[inline]
    pub fn token_bytes(&self, id: Rank) -> Option<&[u8]> {
        self.vocab.token(id).or_else(|| self.specials.bytes_of(id))
    }

    /// Concatenated bytes of `ids`; an unknown id is an error naming it.
    pub fn decode_bytes(&self, ids: impl IntoIterator<Item = i64>) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for id in ids {
            let tok = u32::try_from(id).ok().and_then(|i| self.token_bytes(i));
            out.extend_from_slice(tok.ok_or(Error::UnknownId {
                id,
                n_vocab: self.n_vocab,
            })?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A text of about `n` bytes whose lines end in every way the look-aheads care about:
    /// trailing spaces, blank lines, CRLF, lines that are only spaces, digits and symbols.
    fn long_text(n: usize) -> String {
        let lines = [
            "The quick brown fox   \n",
            "\n\n",
            "  indented line\r\n",
            "Ünïcode ends with a space \n \n",
            "x\n",
            "1234567 and 89!!\n",
            "    \nwords after spaces\n",
            "<|endoftext|>Special\n",
            "tail\t\n",
        ];
        let mut text = String::new();
        let mut i = 0;
        while text.len() < n {
            text.push_str(lines[i % lines.len()]);
            i += 7;
        }
        text
    }

    #[test]
    fn parallel_parts_look_one_character_ahead() {
        // gpt2 encodes " \n\n" before a letter as [" ", "\n", "\n"] but at the end of a text
        // as [" ", "\n\n"]: every cut here follows one, so a part scanned without the next
        // character would differ.
        let text = "a gap \n\n".repeat(3 * PARALLEL_MIN / 8);
        let bpe = crate::registry::load("gpt2").unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let got = pool.install(|| bpe.encode_ordinary_parallel(&text, PARALLEL_MIN).unwrap());
        assert_eq!(got, bpe.encode_ordinary(&text).unwrap());
    }

    #[test]
    fn parallel_encoding_equals_sequential() {
        let text = long_text(3 * PARALLEL_MIN);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        for name in ["gpt2", "cl100k_base", "o200k_base"] {
            let bpe = crate::registry::load(name).unwrap();
            let want = bpe.encode_ordinary(&text).unwrap();
            let got = pool.install(|| bpe.encode_ordinary_parallel(&text, PARALLEL_MIN).unwrap());
            assert_eq!(got, want, "{name}");
            let all = bpe.specials().set(["<|endoftext|>"]);
            let none = bpe.specials().set([]);
            let want = bpe.encode(&text, &all, &none).unwrap();
            let got = pool.install(|| {
                bpe.encode_parallel(&text, &all, &none, PARALLEL_MIN)
                    .unwrap()
            });
            assert_eq!(got, want, "{name} with special tokens");
        }
    }
}
