//! The whole pipeline Hugging Face tokenizers runs for a `tokenizer.json`: added (special)
//! tokens split out of the original text, a [`Splitter`] (BERT's normalizer + pre-tokenizer, or
//! the normalizers and `Metaspace` of converted SentencePiece models), the [`Model`] (greedy
//! longest-match-first WordPiece, defined here; BPE over characters; Unigram), truncation, the
//! template, padding, and the decoder.
//!
//! Offsets are CHARACTER offsets into the original text (of the sequence they belong to), as
//! HF's Python `encode` gives them. Loading `tokenizer.json` / `vocab.txt` is in `hf.rs`.
//!
//! Complexity: linear in the text. WordPiece finds each piece with one walk down a byte trie
//! (no hashing, no allocation); words over `max_input_chars_per_word` characters are `[UNK]`
//! at once.

use aho_corasick::{AhoCorasick, MatchKind};
use hashbrown::HashMap;
use rustc_hash::FxBuildHasher;

use crate::batch;
use crate::bert::{BertSplitter, WordBuf};
use crate::charbpe::CharBpe;
use crate::error::{Error, Result};
use crate::hf_unigram::HfUnigram;
use crate::metaspace::MetaspaceSplitter;
use crate::trie::Trie;

type Map = HashMap<Box<str>, u32, FxBuildHasher>;

/// A model's vocabulary both ways: token → id, and id → token.
pub struct TokenTable {
    ids: Map,
    tokens: Vec<Option<Box<str>>>,
}

impl TokenTable {
    /// `vocab` is `(token, id)` pairs; a token given twice keeps its last id (as HF's
    /// readers do).
    pub fn new(vocab: Vec<(String, u32)>) -> Self {
        let mut ids = Map::with_capacity_and_hasher(vocab.len(), FxBuildHasher);
        for (t, id) in vocab {
            ids.insert(t.into_boxed_str(), id);
        }
        let n = ids.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        let mut tokens = vec![None; n];
        for (t, &id) in &ids {
            let slot = &mut tokens[id as usize];
            // deterministic when two tokens share an id: keep the smaller string
            if slot.as_deref().is_none_or(|s: &str| t.as_ref() < s) {
                *slot = Some(t.clone());
            }
        }
        TokenTable { ids, tokens }
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize)?.as_deref()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.ids.iter().map(|(t, &id)| (t.as_ref(), id))
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// One more than the largest id.
    pub fn n_ids(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// The WordPiece model: vocabulary, `[UNK]`, continuation prefix, word length limit.
pub struct WordPieceModel {
    /// Every vocabulary entry.
    tokens: TokenTable,
    /// The same entries as a trie: word-initial pieces are matched from its root,
    /// continuations from the node after the prefix (`##`).
    trie: Trie,
    cont_root: Option<u32>,
    /// Short entries with their bytes inline, for the whole-word fast path.
    words: WordTable,
    unk_token: String,
    unk: Option<u32>,
    prefix: String,
    max_input_chars_per_word: usize,
}

impl WordPieceModel {
    /// `vocab` is `(token, id)` pairs; a token given twice keeps its last id (as HF's
    /// vocab.txt reader does).
    pub fn new(
        vocab: Vec<(String, u32)>,
        unk_token: String,
        prefix: String,
        max_input_chars_per_word: usize,
    ) -> Self {
        let tokens = TokenTable::new(vocab);
        let unk = tokens.token_to_id(&unk_token);
        let trie = Trie::new(tokens.iter().map(|(t, id)| (t.as_bytes(), id)));
        let cont_root = trie.walk(Trie::ROOT, prefix.as_bytes());
        let words = WordTable::new(tokens.iter().map(|(t, id)| (t.as_bytes(), id)));
        WordPieceModel {
            tokens,
            trie,
            cont_root,
            words,
            unk_token,
            unk,
            prefix,
            max_input_chars_per_word,
        }
    }

    pub fn tokens(&self) -> &TokenTable {
        &self.tokens
    }

    pub fn unk_token(&self) -> &str {
        &self.unk_token
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn unk(&self, word: &str, out: &mut Vec<(u32, u32, u32)>) -> Result<()> {
        let id = self.unk.ok_or_else(|| {
            Error::invalid(
                "WordPiece",
                format!(
                    "the unknown token {:?} is not in the vocabulary (needed for {word:?})",
                    self.unk_token
                ),
            )
        })?;
        out.push((id, 0, word.len() as u32));
        Ok(())
    }

    /// Appends `(id, start byte, end byte)` of each piece of `word` (non-empty) to `out`.
    pub fn tokenize(&self, word: &str, out: &mut Vec<(u32, u32, u32)>) -> Result<()> {
        if word.len() > self.max_input_chars_per_word
            && word.chars().count() > self.max_input_chars_per_word
        {
            return self.unk(word, out);
        }
        // most words are whole vocabulary entries: one hash probe beats a trie walk there
        if let Some(id) = self.words.get(word.as_bytes()) {
            out.push((id, 0, word.len() as u32));
            return Ok(());
        }
        let bytes = word.as_bytes();
        let mark = out.len();
        let mut start = 0;
        while start < bytes.len() {
            let root = if start == 0 {
                Some(Trie::ROOT)
            } else {
                self.cont_root
            };
            // greedy longest-match-first: the longest vocabulary piece at `start` (pieces are
            // whole UTF-8 strings, so matches end on character boundaries)
            match root.and_then(|r| self.trie.longest_match(r, &bytes[start..])) {
                Some((n, id)) => {
                    out.push((id, start as u32, (start + n) as u32));
                    start += n;
                }
                None => {
                    out.truncate(mark);
                    return self.unk(word, out);
                }
            }
        }
        Ok(())
    }
}

/// The model of a pipeline: WordPiece (BERT files) or BPE over characters (files converted
/// from SentencePiece models).
pub enum Model {
    WordPiece(WordPieceModel),
    Bpe(Box<CharBpe>),
    Unigram(HfUnigram),
}

impl Model {
    /// The vocabulary, both ways.
    pub fn tokens(&self) -> &TokenTable {
        match self {
            Model::WordPiece(m) => m.tokens(),
            Model::Bpe(m) => m.tokens(),
            Model::Unigram(m) => m.tokens(),
        }
    }

    /// Appends `(id, start byte, end byte)` of each token of `word` (non-empty) to `out`.
    #[inline]
    fn tokenize(&self, word: &str, out: &mut Vec<(u32, u32, u32)>) -> Result<()> {
        match self {
            Model::WordPiece(m) => m.tokenize(word, out),
            Model::Bpe(m) => {
                m.tokenize(word, out);
                Ok(())
            }
            Model::Unigram(m) => m.tokenize(word, out),
        }
    }
}

/// How a pipeline cuts a section of text (between added tokens) into normalized words.
pub enum Splitter {
    /// BertNormalizer + BertPreTokenizer.
    Bert(Box<BertSplitter>),
    /// Prepend / Replace normalizers and the Metaspace pre-tokenizer.
    Metaspace(MetaspaceSplitter),
}

impl Splitter {
    #[inline]
    fn split<E: From<crate::Error>>(
        &self,
        text: &str,
        char_base: u32,
        buf: &mut WordBuf,
        on_word: &mut dyn FnMut(&WordBuf) -> std::result::Result<(), E>,
    ) -> std::result::Result<u32, E> {
        match self {
            Splitter::Bert(s) => s.split(text, char_base, buf, on_word),
            Splitter::Metaspace(s) => s.split(text, char_base, buf, on_word),
        }
    }
}

/// Keys up to this many bytes live in the [`WordTable`] (longer words go to the trie, which
/// finds them too).
const INLINE: usize = 11;

/// An open-addressing table of short keys stored inline, for exact whole-word lookups. A
/// slot is one `u128`: the key's bytes (zero-padded to [`INLINE`]), its length + 1 in byte 11
/// and the value in the top 32 bits; 0 is an empty slot. A probe is one 96-bit compare (no
/// pointer to chase, no memcmp), and four slots share a cache line.
struct WordTable {
    slots: Vec<u128>,
    shift: u32,
}

const KEY_BITS: u128 = (1 << 96) - 1;

impl WordTable {
    fn new<'a>(keys: impl Iterator<Item = (&'a [u8], u32)>) -> Self {
        let keys: Vec<(&[u8], u32)> = keys.filter(|(k, _)| k.len() <= INLINE).collect();
        let size = (keys.len() * 2).next_power_of_two().max(16);
        let mut table = WordTable {
            slots: vec![0; size],
            shift: 64 - size.trailing_zeros(),
        };
        let mask = size - 1;
        for (k, v) in keys {
            let key = Self::key(k);
            let mut i = table.home(key);
            while table.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            table.slots[i] = key | (v as u128) << 96;
        }
        table
    }

    /// `k` (at most [`INLINE`] bytes) packed as a slot's key, with overlapping loads.
    #[inline(always)]
    fn key(k: &[u8]) -> u128 {
        let n = k.len();
        debug_assert!(n <= INLINE);
        let (lo, hi) = match n {
            0 => (0, 0),
            1..=8 => (crate::vocab::pack_short(k), 0),
            // bytes 8..n are the top n - 8 bytes of the last four
            _ => (
                u64::from_le_bytes(k[..8].try_into().unwrap()),
                u32::from_le_bytes(k[n - 4..].try_into().unwrap()) as u64 >> (8 * (12 - n)),
            ),
        };
        lo as u128 | (hi as u128) << 64 | ((n + 1) as u128) << 88
    }

    #[inline(always)]
    fn home(&self, key: u128) -> usize {
        let h =
            (key as u64 ^ ((key >> 64) as u64).rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> self.shift) as usize
    }

    #[inline]
    fn get(&self, k: &[u8]) -> Option<u32> {
        if k.len() > INLINE {
            return None;
        }
        let key = Self::key(k);
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let slot = self.slots[i];
            if slot & KEY_BITS == key {
                return Some((slot >> 96) as u32);
            }
            if slot == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }
}

/// Tokens split out of the original text before normalization (HF's added tokens).
pub struct AddedToken {
    pub content: String,
    pub id: u32,
    pub special: bool,
}

/// One piece of a post-processing template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Sequence A (false) or B (true), with its type id.
    Sequence { b: bool, type_id: u32 },
    /// Special token ids (with their tokens) and their type id.
    Special { ids: Vec<u32>, type_id: u32 },
}

/// `TemplateProcessing` (or `BertProcessing`, which is one): single and pair templates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub single: Vec<Piece>,
    pub pair: Vec<Piece>,
}

impl Template {
    /// BERT's: `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]`, B and its `[SEP]` of type 1.
    pub fn bert(cls: u32, sep: u32) -> Self {
        let sp = |id, type_id| Piece::Special {
            ids: vec![id],
            type_id,
        };
        Template {
            single: vec![
                sp(cls, 0),
                Piece::Sequence {
                    b: false,
                    type_id: 0,
                },
                sp(sep, 0),
            ],
            pair: vec![
                sp(cls, 0),
                Piece::Sequence {
                    b: false,
                    type_id: 0,
                },
                sp(sep, 0),
                Piece::Sequence {
                    b: true,
                    type_id: 1,
                },
                sp(sep, 1),
            ],
        }
    }

    fn pieces(&self, pair: bool) -> &[Piece] {
        if pair {
            &self.pair
        } else {
            &self.single
        }
    }

    /// The number of ids the template adds.
    pub fn added(&self, pair: bool) -> usize {
        self.pieces(pair)
            .iter()
            .map(|p| match p {
                Piece::Special { ids, .. } => ids.len(),
                Piece::Sequence { .. } => 0,
            })
            .sum()
    }
}

/// How ids become text again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoder {
    /// WordPiece: a token with the continuation prefix joins the previous one, any other
    /// follows a space; `cleanup` removes the spaces before punctuation and contractions.
    WordPiece { prefix: String, cleanup: bool },
    /// Hugging Face's decoder chain over the tokens, which are then joined.
    Chain(Vec<DecodeStep>),
}

/// One decoder of a chain (HF's `decode_chain`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeStep {
    /// Replaces a string with another in each token.
    Replace(String, String),
    /// Runs of `<0xXX>` tokens become their bytes' text (one `�` per token when not UTF-8).
    ByteFallback,
    /// Joins all tokens into one.
    Fuse,
    /// Removes up to `start` leading and `stop` trailing `content` characters of each token.
    Strip {
        content: char,
        start: usize,
        stop: usize,
    },
    /// The Metaspace decoder: the replacement becomes a space, except in the first token when
    /// a space was prepended, where it is removed.
    Metaspace { replacement: char, prepended: bool },
}

impl DecodeStep {
    fn apply(&self, tokens: Vec<String>) -> Vec<String> {
        match self {
            DecodeStep::Replace(from, to) => {
                tokens.into_iter().map(|t| t.replace(from, to)).collect()
            }
            DecodeStep::Fuse => vec![tokens.concat()],
            DecodeStep::Strip {
                content,
                start,
                stop,
            } => tokens
                .into_iter()
                .map(|t| {
                    let chars: Vec<char> = t.chars().collect();
                    let a = chars
                        .iter()
                        .take(*start)
                        .take_while(|c| *c == content)
                        .count();
                    let rest = &chars[a..];
                    let b = rest
                        .iter()
                        .rev()
                        .take(*stop)
                        .take_while(|c| *c == content)
                        .count();
                    rest[..rest.len() - b].iter().collect()
                })
                .collect(),
            DecodeStep::Metaspace {
                replacement,
                prepended,
            } => tokens
                .into_iter()
                .enumerate()
                .map(|(i, t)| {
                    t.chars()
                        .filter_map(|c| match c {
                            c if c != *replacement => Some(c),
                            _ if i == 0 && *prepended => None,
                            _ => Some(' '),
                        })
                        .collect()
                })
                .collect(),
            DecodeStep::ByteFallback => {
                let mut out = Vec::with_capacity(tokens.len());
                let mut bytes: Vec<u8> = Vec::new();
                let flush = |bytes: &mut Vec<u8>, out: &mut Vec<String>| {
                    if bytes.is_empty() {
                        return;
                    }
                    match std::str::from_utf8(bytes) {
                        Ok(s) => out.push(s.to_string()),
                        Err(_) => {
                            out.extend(std::iter::repeat_n("\u{fffd}".to_string(), bytes.len()))
                        }
                    }
                    bytes.clear();
                };
                for t in tokens {
                    match byte_token(&t) {
                        Some(b) => bytes.push(b),
                        None => {
                            flush(&mut bytes, &mut out);
                            out.push(t);
                        }
                    }
                }
                flush(&mut bytes, &mut out);
                out
            }
        }
    }
}

/// The byte of a `<0xXX>` token.
fn byte_token(t: &str) -> Option<u8> {
    let hex = t.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TruncationStrategy {
    LongestFirst,
    OnlyFirst,
    OnlySecond,
}

/// Truncation as HF applies it (stride only shapes HF's overflow, which is not returned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    pub max_length: usize,
    pub strategy: TruncationStrategy,
    pub stride: usize,
    /// Drop from the start (true) instead of the end.
    pub left: bool,
}

/// Padding as HF applies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Padding {
    /// `Some(n)`: pad to n (`Fixed`); `None`: to the longest of the batch (`BatchLongest`).
    pub length: Option<usize>,
    pub left: bool,
    pub pad_to_multiple_of: Option<usize>,
    pub pad_id: u32,
    pub pad_type_id: u32,
    pub pad_token: String,
}

impl Padding {
    /// The longest a row may be padded to (16M tokens, past any model's context): each padded
    /// row is memory, so a length of 10^15 in a file must fail at load, not at the first encode.
    pub const MAX_LENGTH: usize = 1 << 24;

    /// Refuses a fixed length or a multiple beyond [`Padding::MAX_LENGTH`].
    pub fn check(&self) -> std::result::Result<(), String> {
        for (what, n) in [
            ("length", self.length),
            ("pad_to_multiple_of", self.pad_to_multiple_of),
        ] {
            if let Some(n) = n.filter(|&n| n > Self::MAX_LENGTH) {
                return Err(format!(
                    "padding {what} {n} is more than {} tokens",
                    Self::MAX_LENGTH
                ));
            }
        }
        Ok(())
    }
}

/// The truncation and padding in force: the file's, or those a caller set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub truncation: Option<Truncation>,
    pub padding: Option<Padding>,
}

/// One encoded input (a text or a pair). Offsets are character offsets into the text the
/// token came from; `words[i]` is -1 for tokens the template or padding added.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encoding {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    pub offsets: Vec<[i64; 2]>,
    pub words: Vec<i64>,
    pub special: Vec<u32>,
    pub attention: Vec<u32>,
}

impl Encoding {
    /// An empty encoding with room for `n` tokens in every column.
    pub fn with_capacity(n: usize) -> Self {
        Encoding {
            ids: Vec::with_capacity(n),
            type_ids: Vec::with_capacity(n),
            offsets: Vec::with_capacity(n),
            words: Vec::with_capacity(n),
            special: Vec::with_capacity(n),
            attention: Vec::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Keeps `n` tokens: the first ones, or the last ones when `left`. (Fields a sequence
    /// has not filled yet stay empty.)
    fn keep(&mut self, n: usize, left: bool) {
        fn cut<T>(v: &mut Vec<T>, n: usize, left: bool) {
            if v.len() > n {
                if left {
                    v.drain(..v.len() - n);
                } else {
                    v.truncate(n);
                }
            }
        }
        cut(&mut self.ids, n, left);
        cut(&mut self.type_ids, n, left);
        cut(&mut self.offsets, n, left);
        cut(&mut self.words, n, left);
        cut(&mut self.special, n, left);
        cut(&mut self.attention, n, left);
    }

    fn append(&mut self, other: &Encoding) {
        self.ids.extend_from_slice(&other.ids);
        self.type_ids.extend_from_slice(&other.type_ids);
        self.offsets.extend_from_slice(&other.offsets);
        self.words.extend_from_slice(&other.words);
        self.special.extend_from_slice(&other.special);
        self.attention.extend_from_slice(&other.attention);
    }

    fn push_special(&mut self, id: u32, type_id: u32, attention: u32) {
        self.ids.push(id);
        self.type_ids.push(type_id);
        self.offsets.push([0, 0]);
        self.words.push(-1);
        self.special.push(1);
        self.attention.push(attention);
    }

    fn pad(&mut self, target: usize, p: &Padding) {
        let n = target.saturating_sub(self.len());
        if n == 0 {
            return;
        }
        if p.left {
            let mut padded = Encoding::default();
            for _ in 0..n {
                padded.push_special(p.pad_id, p.pad_type_id, 0);
            }
            padded.append(self);
            *self = padded;
        } else {
            for _ in 0..n {
                self.push_special(p.pad_id, p.pad_type_id, 0);
            }
        }
    }
}

/// Many encodings in flat buffers: row `i` is `[row_offsets[i], row_offsets[i + 1])`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncodingBatch {
    pub rows: Encoding,
    pub row_offsets: Vec<i64>,
}

#[derive(Default)]
struct Sink {
    enc: Encoding,
    word_idx: i64,
    pieces: Vec<(u32, u32, u32)>,
}

impl Sink {
    /// Appends `pieces` (tokens of the word in `b`) with their original offsets.
    #[inline]
    fn push_word(&mut self, b: &WordBuf) {
        for &(id, s, e) in &self.pieces {
            self.enc.ids.push(id);
            self.enc.offsets.push([
                b.align[s as usize] as i64,
                b.align[e as usize - 1] as i64 + 1,
            ]);
            self.enc.words.push(self.word_idx);
        }
        self.word_idx += 1;
    }
}

/// A `tokenizer.json` tokenizer: the whole pipeline, immutable, shareable between threads.
pub struct Pipeline {
    splitter: Splitter,
    model: Model,
    added: Vec<AddedToken>,
    /// Character length of each added token's content.
    added_chars: Vec<u32>,
    automaton: Option<AhoCorasick>,
    template: Option<Template>,
    decoder: Option<Decoder>,
    /// The truncation and padding the file asks for.
    pub settings: Settings,
}

impl Pipeline {
    pub fn new(
        splitter: Splitter,
        model: Model,
        added: Vec<AddedToken>,
        template: Option<Template>,
        decoder: Option<Decoder>,
        settings: Settings,
    ) -> Result<Self> {
        let automaton = if added.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(added.iter().map(|a| a.content.as_str()))
                    .map_err(|e| Error::invalid("added tokens", e.to_string()))?,
            )
        };
        let added_chars = added
            .iter()
            .map(|a| a.content.chars().count() as u32)
            .collect();
        Ok(Pipeline {
            splitter,
            model,
            added,
            added_chars,
            automaton,
            template,
            decoder,
            settings,
        })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn added_tokens(&self) -> &[AddedToken] {
        &self.added
    }

    pub fn template(&self) -> Option<&Template> {
        self.template.as_ref()
    }

    /// The number of ids: model vocabulary plus added tokens it lacks (HF's
    /// `get_vocab_size(with_added_tokens=True)`).
    pub fn vocab_size(&self) -> usize {
        self.model.tokens().len()
            + self
                .added
                .iter()
                .filter(|a| self.model.tokens().token_to_id(&a.content).is_none())
                .count()
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.added
            .iter()
            .find(|a| a.content == token)
            .map(|a| a.id)
            .or_else(|| self.model.tokens().token_to_id(token))
    }

    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        self.added
            .iter()
            .find(|a| a.id == id)
            .map(|a| a.content.as_str())
            .or_else(|| self.model.tokens().id_to_token(id))
    }

    fn is_special_id(&self, id: u32) -> bool {
        self.added.iter().any(|a| a.id == id && a.special)
    }

    /// Words of `text` (original characters from `ci` on) into `sink`; returns the number
    /// of characters of `text`.
    fn split_into(&self, text: &str, ci: u32, buf: &mut WordBuf, sink: &mut Sink) -> Result<u32> {
        self.splitter.split(text, ci, buf, &mut |b: &WordBuf| {
            sink.pieces.clear();
            self.model.tokenize(&b.word, &mut sink.pieces)?;
            sink.push_word(b);
            Ok(())
        })
    }

    /// One sequence, before truncation and post-processing: only `ids`, `offsets` and
    /// `words` are filled (the rest is constant for a sequence and added by `post_process`).
    fn encode_sequence(&self, text: &str) -> Result<Encoding> {
        let mut sink = Sink::default();
        self.encode_into(text, &mut sink)?;
        Ok(sink.enc)
    }

    /// Appends the `ids`, `offsets` and `words` of `text` to the sink's encoding.
    fn encode_into(&self, text: &str, sink: &mut Sink) -> Result<()> {
        // about one token per 4 bytes of English: fewer reallocations
        let guess = text.len() / 4 + 8;
        sink.enc.ids.reserve(guess);
        sink.enc.offsets.reserve(guess);
        sink.enc.words.reserve(guess);
        let mut buf = WordBuf::default();
        match &self.automaton {
            None => {
                self.split_into(text, 0, &mut buf, sink)?;
            }
            Some(ac) => {
                let mut at = 0;
                let mut ci = 0u32;
                for m in ac.find_iter(text) {
                    ci += self.split_into(&text[at..m.start()], ci, &mut buf, sink)?;
                    let k = m.pattern().as_usize();
                    sink.enc.ids.push(self.added[k].id);
                    sink.enc
                        .offsets
                        .push([ci as i64, (ci + self.added_chars[k]) as i64]);
                    sink.enc.words.push(sink.word_idx);
                    sink.word_idx += 1;
                    ci += self.added_chars[k];
                    at = m.end();
                }
                self.split_into(&text[at..], ci, &mut buf, sink)?;
            }
        }
        Ok(())
    }

    /// One text with no truncation (the common case): the template's tokens are written
    /// around the text's in one buffer, where `post_process` would copy the text's tokens
    /// once more.
    fn encode_single(&self, text: &str, add_special_tokens: bool) -> Result<Encoding> {
        let plain = [Piece::Sequence {
            b: false,
            type_id: 0,
        }];
        let pieces = match &self.template {
            Some(t) => t.pieces(false),
            None => &plain[..],
        };
        let mut sink = Sink::default();
        for piece in pieces {
            match piece {
                Piece::Sequence { b: false, type_id } => {
                    let start = sink.enc.ids.len();
                    self.encode_into(text, &mut sink)?;
                    let enc = &mut sink.enc;
                    let n = enc.ids.len() - start;
                    enc.type_ids.extend(std::iter::repeat_n(*type_id, n));
                    enc.special.extend(std::iter::repeat_n(0, n));
                    enc.attention.extend(std::iter::repeat_n(1, n));
                }
                Piece::Sequence { b: true, .. } => {}
                Piece::Special { ids, type_id } => {
                    if add_special_tokens {
                        for &id in ids {
                            sink.enc.push_special(id, *type_id, 1);
                        }
                    }
                }
            }
        }
        Ok(sink.enc)
    }

    /// Encodes a text or a pair as HF's `Tokenizer.encode` does: truncation, then the
    /// template (when `add_special_tokens`), then padding, as `settings` says.
    pub fn encode(
        &self,
        a: &str,
        b: Option<&str>,
        add_special_tokens: bool,
        settings: &Settings,
    ) -> Result<Encoding> {
        let mut enc = if b.is_none() && settings.truncation.is_none() {
            self.encode_single(a, add_special_tokens)?
        } else {
            let ea = self.encode_sequence(a)?;
            let eb = b.map(|b| self.encode_sequence(b)).transpose()?;
            self.post_process(ea, eb, add_special_tokens, settings)?
        };
        if let Some(p) = &settings.padding {
            let target = pad_target(p, enc.len());
            enc.pad(target, p);
        }
        Ok(enc)
    }

    fn post_process(
        &self,
        mut ea: Encoding,
        mut eb: Option<Encoding>,
        add_special_tokens: bool,
        settings: &Settings,
    ) -> Result<Encoding> {
        let pair = eb.is_some();
        if let Some(t) = &settings.truncation {
            let n_added = match (&self.template, add_special_tokens) {
                (Some(tpl), true) => tpl.added(pair),
                _ => 0,
            };
            // HF subtracts in usize: below the template's size it wraps (no truncation)
            let max_length = if n_added > 0 {
                t.max_length.wrapping_sub(n_added)
            } else {
                t.max_length
            };
            truncate(&mut ea, eb.as_mut(), max_length, t)?;
        }
        let mut out = Encoding::with_capacity(ea.len() + eb.as_ref().map_or(0, Encoding::len) + 8);
        let default_template;
        let pieces = match &self.template {
            Some(t) => t.pieces(pair),
            None => {
                default_template = Template {
                    single: vec![Piece::Sequence {
                        b: false,
                        type_id: 0,
                    }],
                    pair: vec![
                        Piece::Sequence {
                            b: false,
                            type_id: 0,
                        },
                        Piece::Sequence {
                            b: true,
                            type_id: 1,
                        },
                    ],
                };
                default_template.pieces(pair)
            }
        };
        for piece in pieces {
            match piece {
                Piece::Sequence { b, type_id } => {
                    let e = if *b {
                        match &mut eb {
                            Some(e) => e,
                            None => continue,
                        }
                    } else {
                        &mut ea
                    };
                    let n = e.ids.len();
                    out.ids.extend_from_slice(&e.ids);
                    out.offsets.extend_from_slice(&e.offsets);
                    out.words.extend_from_slice(&e.words);
                    out.type_ids.extend(std::iter::repeat_n(*type_id, n));
                    out.special.extend(std::iter::repeat_n(0, n));
                    out.attention.extend(std::iter::repeat_n(1, n));
                }
                Piece::Special { ids, type_id } => {
                    if add_special_tokens {
                        for &id in ids {
                            out.push_special(id, *type_id, 1);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Encodes many inputs on `threads` threads; padding (the longest of the batch, or fixed)
    /// applies across the batch as in HF's `encode_batch`.
    pub fn encode_batch(
        &self,
        inputs: &[(&str, Option<&str>)],
        add_special_tokens: bool,
        settings: &Settings,
        threads: usize,
    ) -> Result<EncodingBatch> {
        let unpadded = Settings {
            truncation: settings.truncation.clone(),
            padding: None,
        };
        let mut encs = batch::map_all(inputs, threads, |(a, b)| {
            self.encode(a, *b, add_special_tokens, &unpadded)
        })?;
        if let Some(p) = &settings.padding {
            let longest = encs.iter().map(Encoding::len).max().unwrap_or(0);
            let target = pad_target(p, longest);
            for e in &mut encs {
                e.pad(target, p);
            }
        }
        let total = encs.iter().map(Encoding::len).sum();
        let mut out = EncodingBatch {
            rows: Encoding::with_capacity(total),
            row_offsets: Vec::with_capacity(encs.len() + 1),
        };
        out.row_offsets.push(0);
        for e in &encs {
            out.rows.append(e);
            out.row_offsets.push(out.rows.len() as i64);
        }
        Ok(out)
    }

    /// Text of `ids` as HF's `decode`: tokens (special ones dropped when asked), then the
    /// decoder (WordPiece: `##` pieces glued, others space-separated, cleanup of spaces before
    /// punctuation and contractions; or the file's chain), or, with none, the tokens joined by
    /// spaces. Unlike HF, an id outside the vocabulary is an error.
    pub fn decode(&self, ids: &[i64], skip_special_tokens: bool) -> Result<String> {
        let n_vocab = self.vocab_size();
        let mut tokens: Vec<&str> = Vec::with_capacity(ids.len());
        for &id in ids {
            let tok = u32::try_from(id)
                .ok()
                .and_then(|i| self.id_to_token(i).map(|t| (i, t)));
            let Some((id, tok)) = tok else {
                return Err(Error::UnknownId { id, n_vocab });
            };
            if !(skip_special_tokens && self.is_special_id(id)) {
                tokens.push(tok);
            }
        }
        Ok(match &self.decoder {
            Some(Decoder::WordPiece {
                prefix,
                cleanup: tidy,
            }) => {
                let mut out = String::new();
                for (i, tok) in tokens.iter().enumerate() {
                    let piece = if i == 0 {
                        tok.to_string()
                    } else if let Some(rest) = tok.strip_prefix(prefix.as_str()) {
                        rest.to_string()
                    } else {
                        format!(" {tok}")
                    };
                    if *tidy {
                        out.push_str(&cleanup(&piece));
                    } else {
                        out.push_str(&piece);
                    }
                }
                out
            }
            Some(Decoder::Chain(steps)) => {
                let mut tokens: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
                for step in steps {
                    tokens = step.apply(tokens);
                }
                tokens.concat()
            }
            None => tokens.join(" "),
        })
    }
}

fn pad_target(p: &Padding, longest: usize) -> usize {
    let mut target = p.length.unwrap_or(longest);
    if let Some(m) = p.pad_to_multiple_of {
        if m > 0 && target % m > 0 {
            target += m - target % m;
        }
    }
    target
}

/// HF's `truncate_encodings`.
fn truncate(
    a: &mut Encoding,
    b: Option<&mut Encoding>,
    max_length: usize,
    t: &Truncation,
) -> Result<()> {
    let left = t.left;
    if max_length == 0 {
        a.keep(0, left);
        if let Some(b) = b {
            b.keep(0, left);
        }
        return Ok(());
    }
    let total = a.len() + b.as_ref().map_or(0, |b| b.len());
    if total <= max_length {
        return Ok(());
    }
    let to_remove = total - max_length;
    match t.strategy {
        TruncationStrategy::LongestFirst => match b {
            Some(b) => {
                let (mut n1, mut n2) = (a.len(), b.len());
                let swap = n1 > n2;
                if swap {
                    std::mem::swap(&mut n1, &mut n2);
                }
                n2 = if n1 > max_length {
                    n1
                } else {
                    n1.max(max_length - n1)
                };
                if n1 + n2 > max_length {
                    n1 = max_length / 2;
                    n2 = n1 + max_length % 2;
                }
                if swap {
                    std::mem::swap(&mut n1, &mut n2);
                }
                a.keep(n1, left);
                b.keep(n2, left);
            }
            None => a.keep(total - to_remove, left),
        },
        TruncationStrategy::OnlyFirst | TruncationStrategy::OnlySecond => {
            let target = if t.strategy == TruncationStrategy::OnlyFirst {
                a
            } else {
                b.ok_or_else(|| Error::Truncation("Second sequence not provided".into()))?
            };
            let n = target.len();
            if n > to_remove {
                target.keep(n - to_remove, left);
            } else {
                return Err(Error::Truncation(
                    "Sequence to truncate too short to respect the provided max_length".into(),
                ));
            }
        }
    }
    Ok(())
}

/// HF's WordPiece decoder cleanup, applied to each piece (with its leading space).
fn cleanup(s: &str) -> String {
    s.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" do not", " don't")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bert::BertNormalizer;

    #[test]
    fn word_table_keys_are_the_zero_padded_bytes() {
        let words: Vec<Vec<u8>> = (0..=INLINE)
            .map(|n| (0..n as u32).map(|b| (b * 37 + 1) as u8).collect())
            .collect();
        for w in &words {
            let mut want = [0u8; 16];
            want[..w.len()].copy_from_slice(w);
            want[11] = w.len() as u8 + 1;
            assert_eq!(WordTable::key(w), u128::from_le_bytes(want), "{w:?}");
        }
        let table = WordTable::new(words.iter().enumerate().map(|(i, w)| (&w[..], i as u32)));
        for (i, w) in words.iter().enumerate() {
            assert_eq!(table.get(w), Some(i as u32));
            // the same bytes and a zero: told apart by the length byte
            let mut longer = w.clone();
            longer.push(0);
            assert_eq!(table.get(&longer), None);
        }
    }

    fn toy() -> Pipeline {
        let words = [
            "[PAD]",
            "[UNK]",
            "[CLS]",
            "[SEP]",
            "hello",
            "world",
            "un",
            "##believ",
            "##able",
            "!",
            ",",
            "a",
            "##a",
            "token",
            "##ization",
        ];
        let vocab = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.to_string(), i as u32))
            .collect();
        let model = Model::WordPiece(WordPieceModel::new(vocab, "[UNK]".into(), "##".into(), 100));
        let added = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
            .iter()
            .enumerate()
            .map(|(i, t)| AddedToken {
                content: t.to_string(),
                id: i as u32,
                special: true,
            })
            .collect();
        Pipeline::new(
            Splitter::Bert(Box::new(BertSplitter::new(BertNormalizer::default()))),
            model,
            added,
            Some(Template::bert(2, 3)),
            Some(Decoder::WordPiece {
                prefix: "##".into(),
                cleanup: true,
            }),
            Settings::default(),
        )
        .unwrap()
    }

    #[test]
    fn greedy_longest_match_first() {
        let wp = toy();
        let e = wp.encode("Hello, unbelievable xyz!", None, true, &Settings::default());
        let e = e.unwrap();
        assert_eq!(e.ids, vec![2, 4, 10, 6, 7, 8, 1, 9, 3]);
        assert_eq!(
            e.offsets,
            vec![
                [0, 0],
                [0, 5],
                [5, 6],
                [7, 9],
                [9, 15],
                [15, 19],
                [20, 23],
                [23, 24],
                [0, 0]
            ]
        );
        assert_eq!(e.words, vec![-1, 0, 1, 2, 2, 2, 3, 4, -1]);
    }

    #[test]
    fn long_words_are_unknown() {
        let wp = toy();
        let s = Settings::default();
        let e = wp.encode(&"a".repeat(100), None, false, &s).unwrap();
        assert_eq!(e.ids.len(), 100);
        let e = wp.encode(&"a".repeat(101), None, false, &s).unwrap();
        assert_eq!(e.ids, vec![1]);
        assert_eq!(e.offsets, vec![[0, 101]]);
    }

    #[test]
    fn added_tokens_split_the_original_text() {
        let wp = toy();
        let e = wp
            .encode("hello[SEP]world", None, false, &Settings::default())
            .unwrap();
        assert_eq!(e.ids, vec![4, 3, 5]);
        assert_eq!(e.offsets, vec![[0, 5], [5, 10], [10, 15]]);
        assert_eq!(e.words, vec![0, 1, 2]);
    }

    #[test]
    fn pairs_truncation_and_padding() {
        let wp = toy();
        let settings = Settings {
            truncation: Some(Truncation {
                max_length: 6,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                left: false,
            }),
            padding: Some(Padding {
                length: Some(8),
                left: false,
                pad_to_multiple_of: None,
                pad_id: 0,
                pad_type_id: 0,
                pad_token: "[PAD]".into(),
            }),
        };
        let e = wp
            .encode("hello world hello", Some("a a"), true, &settings)
            .unwrap();
        let left = Settings {
            truncation: Some(Truncation {
                left: true,
                ..settings.truncation.clone().unwrap()
            }),
            padding: None,
        };
        let l = wp
            .encode("hello world hello", Some("a a"), true, &left)
            .unwrap();
        assert_eq!(l.ids, vec![2, 5, 4, 3, 11, 3]);
        // 6 - 3 added = 3 ids for the texts: HF's longest-first gives 2 + 1
        assert_eq!(e.ids, vec![2, 4, 5, 3, 11, 3, 0, 0]);
        assert_eq!(e.type_ids, vec![0, 0, 0, 0, 1, 1, 0, 0]);
        assert_eq!(e.attention, vec![1, 1, 1, 1, 1, 1, 0, 0]);
    }

    #[test]
    fn decode_glues_pieces() {
        let wp = toy();
        assert_eq!(
            wp.decode(&[2, 6, 7, 8, 10, 13, 14, 9, 3], true).unwrap(),
            "unbelievable, tokenization!"
        );
        assert!(wp.decode(&[99], true).is_err());
    }
}
