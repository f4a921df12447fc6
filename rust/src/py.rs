//! The Python binding layer: the only module that knows PyO3. It converts arguments,
//! releases the GIL around every call that loops over text or ids, and maps core errors to
//! Python exceptions. The friendly API is `python/ferrotok/*.py`.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::batch;
use crate::bert::{BertNormalizer, BertSplitter, WordBuf};
use crate::bpe::Bpe;
use crate::error::Error;
use crate::hf;
use crate::hf_bpe;
use crate::pipeline::{
    Encoding, Model, Padding, Pipeline, Settings, Truncation, TruncationStrategy,
};
use crate::pretok::Pretokenizer;
use crate::registry;
use crate::spm::{self, SentencePiece};
use crate::train::{self, PieceCounts};
use crate::vocab::{Rank, Vocab};

fn to_py(err: Error) -> PyErr {
    match &err {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(err.to_string())
        }
        Error::Io { .. } => PyOSError::new_err(err.to_string()),
        _ => PyValueError::new_err(err.to_string()),
    }
}

/// `(ids, offsets)` of a ragged batch.
type RaggedArrays<'py> = (Bound<'py, PyArray1<Rank>>, Bound<'py, PyArray1<i64>>);

/// A ragged batch as numpy arrays (its vectors move in, no copy).
fn ragged_arrays(py: Python<'_>, ragged: batch::Ragged) -> RaggedArrays<'_> {
    (
        PyArray1::from_vec(py, ragged.ids),
        PyArray1::from_vec(py, ragged.offsets),
    )
}

/// A byte-level BPE encoding (wrapped by `ferrotok.Encoding`).
#[pyclass(frozen, module = "ferrotok._core", name = "CoreBPE")]
pub struct PyBpe {
    inner: Bpe,
}

#[pymethods]
impl PyBpe {
    /// Loads an embedded encoding by name.
    #[staticmethod]
    fn embedded(py: Python<'_>, name: &str) -> PyResult<Self> {
        let inner = py.detach(|| registry::load(name)).map_err(to_py)?;
        Ok(PyBpe { inner })
    }

    /// Loads a `.tiktoken` rank file.
    #[staticmethod]
    fn from_tiktoken(
        py: Python<'_>,
        path: PathBuf,
        pattern: &str,
        special_tokens: Vec<(String, Rank)>,
    ) -> PyResult<Self> {
        let origin = path.display().to_string();
        let inner = py
            .detach(|| {
                Vocab::from_tiktoken_file(&path)
                    .and_then(|v| Bpe::new(v, pattern, special_tokens, &origin))
            })
            .map_err(to_py)?;
        Ok(PyBpe { inner })
    }

    /// Rebuilds an encoding from `to_compact()` output (used by pickle).
    #[staticmethod]
    fn from_compact(
        py: Python<'_>,
        data: &[u8],
        pattern: &str,
        special_tokens: Vec<(String, Rank)>,
    ) -> PyResult<Self> {
        let inner = py
            .detach(|| {
                Vocab::from_compact(data, "pickled encoding")
                    .and_then(|v| Bpe::new(v, pattern, special_tokens, "pickled encoding"))
            })
            .map_err(to_py)?;
        Ok(PyBpe { inner })
    }

    /// Reads a byte-level BPE `tokenizer.json` (its text; `origin` names it in errors).
    #[staticmethod]
    fn from_json(py: Python<'_>, text: &str, origin: &str) -> PyResult<Self> {
        let inner = py
            .detach(|| hf_bpe::from_json(text, origin))
            .map_err(to_py)?;
        Ok(PyBpe { inner })
    }

    /// This encoding as a Hugging Face `tokenizer.json` (text).
    fn to_json(&self, py: Python<'_>) -> String {
        py.detach(|| hf_bpe::to_json(&self.inner))
    }

    /// The mergeable vocabulary as a `.tiktoken` rank file (text).
    fn to_tiktoken(&self, py: Python<'_>) -> String {
        py.detach(|| self.inner.vocab().to_tiktoken())
    }

    /// The mergeable vocabulary in ferrotok's compact binary form.
    fn to_compact<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.vocab().to_compact())
    }

    #[getter]
    fn pattern(&self) -> &str {
        self.inner.pattern()
    }

    #[getter]
    fn n_vocab(&self) -> usize {
        self.inner.n_vocab()
    }

    /// `(text, id)` of each special token.
    fn special_tokens(&self) -> Vec<(String, Rank)> {
        self.inner.specials().tokens().to_vec()
    }

    /// Ids of `text`, special tokens encoded as ordinary text.
    fn encode_ordinary<'py>(
        &self,
        py: Python<'py>,
        text: &str,
    ) -> PyResult<Bound<'py, PyArray1<Rank>>> {
        let ids = py
            .detach(|| {
                long_text(text, || {
                    self.inner
                        .encode_ordinary_parallel(text, crate::bpe::PARALLEL_MIN)
                })
                .unwrap_or_else(|| self.inner.encode_ordinary(text))
            })
            .map_err(to_py)?;
        Ok(PyArray1::from_vec(py, ids))
    }

    /// Ids of `text` with the `allowed` special tokens encoded as such; any special token in
    /// `disallowed` raises `ValueError`.
    fn encode<'py>(
        &self,
        py: Python<'py>,
        text: &str,
        allowed: Vec<String>,
        disallowed: Vec<String>,
    ) -> PyResult<Bound<'py, PyArray1<Rank>>> {
        let specials = self.inner.specials();
        let allowed = specials.set(allowed.iter().map(String::as_str));
        let disallowed = specials.set(disallowed.iter().map(String::as_str));
        let ids = py
            .detach(|| {
                long_text(text, || {
                    let min = crate::bpe::PARALLEL_MIN;
                    self.inner.encode_parallel(text, &allowed, &disallowed, min)
                })
                .unwrap_or_else(|| self.inner.encode(text, &allowed, &disallowed))
            })
            .map_err(to_py)?;
        Ok(PyArray1::from_vec(py, ids))
    }

    /// Encodes many texts on a thread pool; returns `(ids, offsets)`, the ragged batch.
    /// With no special tokens allowed or disallowed this is `encode_ordinary` per text.
    #[pyo3(signature = (texts, allowed, disallowed, num_threads=None))]
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        allowed: Vec<String>,
        disallowed: Vec<String>,
        num_threads: Option<usize>,
    ) -> PyResult<RaggedArrays<'py>> {
        let texts = Texts::new(texts, true)?;
        let specials = self.inner.specials();
        let allowed = specials.set(allowed.iter().map(String::as_str));
        let disallowed = specials.set(disallowed.iter().map(String::as_str));
        let threads = batch::thread_count(num_threads);
        if allowed.is_empty() && disallowed.is_empty() {
            texts.encode(py, threads, |_, t, min, out| {
                self.inner.encode_ordinary_parallel_into(t, min, out)
            })
        } else {
            texts.encode(py, threads, |_, t, min, out| {
                self.inner
                    .encode_parallel_into(t, &allowed, &disallowed, min, out)
            })
        }
    }

    /// Bytes of each row of a ragged batch.
    fn decode_ragged<'py>(
        &self,
        py: Python<'py>,
        ids: PyReadonlyArray1<'py, i64>,
        offsets: PyReadonlyArray1<'py, i64>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let (ids, offsets) = (ids.as_slice()?, offsets.as_slice()?);
        let rows = py
            .detach(|| {
                offsets
                    .windows(2)
                    .map(|w| {
                        let (a, b) = (
                            w[0].clamp(0, ids.len() as i64) as usize,
                            w[1].clamp(0, ids.len() as i64) as usize,
                        );
                        self.inner.decode_bytes(ids[a..b.max(a)].iter().copied())
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(to_py)?;
        Ok(rows.iter().map(|r| PyBytes::new(py, r)).collect())
    }

    /// The pieces the split pattern cuts `text` into.
    fn split<'t>(&self, text: &'t str) -> PyResult<Vec<&'t str>> {
        self.inner.pretokenizer().pieces(text).map_err(to_py)
    }

    /// Concatenated bytes of `ids`.
    fn decode_bytes<'py>(
        &self,
        py: Python<'py>,
        ids: PyReadonlyArray1<'py, i64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let ids = ids.as_slice()?;
        let bytes = py
            .detach(|| self.inner.decode_bytes(ids.iter().copied()))
            .map_err(to_py)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Bytes of one token.
    fn token_bytes<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self.inner.decode_bytes([id]).map_err(to_py)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Bytes of each token of `ids`, as a list.
    fn tokens_bytes<'py>(
        &self,
        py: Python<'py>,
        ids: PyReadonlyArray1<'py, i64>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        ids.as_slice()?
            .iter()
            .map(|&id| self.token_bytes(py, id))
            .collect()
    }

    /// Bytes of every mergeable token, in id order.
    fn token_byte_values<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.inner
            .vocab()
            .iter()
            .map(|(_, t)| PyBytes::new(py, t))
            .collect()
    }

    /// Id of the mergeable token with exactly these bytes.
    fn token_id(&self, token: &[u8]) -> Option<Rank> {
        self.inner.vocab().rank(token)
    }
}

/// For a text of at least `PARALLEL_MIN` bytes, `encode()` run on the fork-safe pool of every
/// core (capped by `FERROTOK_NUM_THREADS`), so that its parts are encoded in parallel; `None`
/// for a shorter text or a single thread.
fn long_text(
    text: &str,
    encode: impl FnOnce() -> crate::Result<Vec<Rank>> + Send,
) -> Option<crate::Result<Vec<Rank>>> {
    if text.len() < crate::bpe::PARALLEL_MIN {
        return None;
    }
    let threads = batch::thread_count(None);
    if threads < 2 {
        return None;
    }
    Some(batch::install(threads, encode).and_then(|r| r))
}

/// The texts of a batch: any iterable of `str` (a numpy array of `str` included); anything
/// else at position i is a `TypeError` naming i. Their UTF-8 forms are made on demand
/// ([`Texts::get`]), so that a batch can start encoding before the last one is made.
struct Texts<'py> {
    strs: Vec<Bound<'py, PyString>>,
    /// Where a string with lone surrogates keeps its repaired copy, when repairs are asked
    /// for (see [`Texts::get`]).
    repaired: Option<Vec<std::cell::OnceCell<Bound<'py, PyString>>>>,
}

impl<'py> Texts<'py> {
    fn new(texts: &Bound<'py, PyAny>, repair: bool) -> PyResult<Self> {
        if texts.is_instance_of::<PyString>() || texts.is_instance_of::<PyBytes>() {
            return Err(PyTypeError::new_err(
                "texts must be an iterable of str, not a single str or bytes",
            ));
        }
        let mut strs = Vec::new();
        for (i, item) in texts.try_iter()?.enumerate() {
            let item = item?;
            if !item.is_instance_of::<PyString>() {
                let kind = item.get_type().name()?;
                return Err(PyTypeError::new_err(format!(
                    "texts[{i}] is {kind}, not str"
                )));
            }
            strs.push(item.cast_into::<PyString>()?);
        }
        let repaired = repair.then(|| strs.iter().map(|_| std::cell::OnceCell::new()).collect());
        Ok(Texts { strs, repaired })
    }

    fn len(&self) -> usize {
        self.strs.len()
    }

    /// Text `i` as UTF-8. With repairs, a string with lone surrogates is repaired through
    /// UTF-16 as tiktoken does, so that its ids match; without, it is a `UnicodeEncodeError`.
    fn get(&self, i: usize) -> PyResult<&str> {
        let s = &self.strs[i];
        match (s.to_str(), &self.repaired) {
            (Err(_), Some(spare)) => {
                let repaired = s
                    .call_method1("encode", ("utf-16", "surrogatepass"))?
                    .call_method1("decode", ("utf-16", "replace"))?
                    .cast_into::<PyString>()?;
                spare[i].get_or_init(|| repaired).to_str()
            }
            (text, _) => text,
        }
    }

    fn all(&self) -> PyResult<Vec<&str>> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }

    /// Encodes every text on `threads` threads into a ragged batch: `encode(i, text, min)`,
    /// where a text of more than `min` bytes is worth cutting into parts. With more than one
    /// thread the pool starts on each text as soon as its UTF-8 form is made, while this
    /// thread (holding the interpreter lock) makes the next ones.
    fn encode(
        &self,
        py: Python<'py>,
        threads: usize,
        encode: impl Fn(usize, &str, usize, &mut Vec<Rank>) -> crate::Result<()> + Sync,
    ) -> PyResult<RaggedArrays<'py>> {
        // The size that decides between one thread and the pool (characters, not bytes: the
        // UTF-8 forms are not made yet), counted only where there is a choice to make.
        let chars: usize = if threads > 1 && self.len() > 1 {
            self.strs.iter().map(|s| s.len().unwrap_or(0)).sum()
        } else {
            0
        };
        let ragged = if chars < batch::SEQUENTIAL_BELOW {
            let strs = self.all()?;
            // A text longer than a few parts' worth of the batch is cut into parts, so that
            // one long text does not leave the other threads idle at the end.
            let min = strs.iter().map(|t| t.len()).sum::<usize>() / (threads * 4);
            py.detach(|| batch::encode_all(&strs, threads, |i, t, out| encode(i, t, min, out)))
        } else {
            let min = chars / (threads * 4);
            let mut failed = None;
            let next = |i| self.get(i).map_err(|e| failed = Some(e)).ok();
            let wait = |w: &(dyn Fn() + Sync)| py.detach(w);
            let each = |i, t: &str, out: &mut Vec<Rank>| encode(i, t, min, out);
            match batch::encode_fed(self.len(), threads, chars, next, wait, each) {
                Ok(Some(r)) => Ok(r),
                Ok(None) => return Err(failed.expect("the feed stops only on an error")),
                Err(e) => Err(e),
            }
        };
        Ok(ragged_arrays(py, ragged.map_err(to_py)?))
    }
}

/// `(ids, type_ids, attention_mask, special_tokens_mask, offsets (n, 2), word_ids)`.
type EncodingArrays<'py> = (
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray2<i64>>,
    Bound<'py, PyArray1<i64>>,
);

fn encoding_arrays(py: Python<'_>, e: Encoding) -> PyResult<EncodingArrays<'_>> {
    let n = e.ids.len();
    let offsets = PyArray1::from_vec(py, e.offsets.into_flattened()).reshape([n, 2])?;
    Ok((
        PyArray1::from_vec(py, e.ids),
        PyArray1::from_vec(py, e.type_ids),
        PyArray1::from_vec(py, e.attention),
        PyArray1::from_vec(py, e.special),
        offsets,
        PyArray1::from_vec(py, e.words),
    ))
}

/// `(max_length, strategy, stride, direction)`.
type TruncationTuple = (usize, &'static str, usize, &'static str);
/// `(length or None, direction, pad_to_multiple_of, pad_id, pad_type_id, pad_token)`.
type PaddingTuple = (Option<usize>, &'static str, Option<usize>, u32, u32, String);

/// A `tokenizer.json` tokenizer (wrapped by `ferrotok.Tokenizer`). The vocabulary is shared
/// between the copies that `with_truncation` / `with_padding` make.
#[pyclass(frozen, module = "ferrotok._core", name = "CoreTokenizer")]
pub struct PyTokenizer {
    core: Arc<Pipeline>,
    settings: Settings,
}

#[pymethods]
impl PyTokenizer {
    /// Loads a Hugging Face `tokenizer.json`.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let core = py.detach(|| hf::from_file(&path)).map_err(to_py)?;
        let settings = core.settings.clone();
        Ok(PyTokenizer {
            core: Arc::new(core),
            settings,
        })
    }

    /// Parses the text of a `tokenizer.json` (`origin` names it in errors).
    #[staticmethod]
    fn from_json(py: Python<'_>, text: &str, origin: &str) -> PyResult<Self> {
        let core = py.detach(|| hf::from_json(text, origin)).map_err(to_py)?;
        let settings = core.settings.clone();
        Ok(PyTokenizer {
            core: Arc::new(core),
            settings,
        })
    }

    /// A BERT `vocab.txt`'s text (`origin` names it in errors), as HF's
    /// `BertWordPieceTokenizer` builds it.
    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    fn from_vocab_text(
        py: Python<'_>,
        text: &str,
        origin: &str,
        lowercase: bool,
        strip_accents: Option<bool>,
        clean_text: bool,
        handle_chinese_chars: bool,
        unk_token: String,
        sep_token: String,
        cls_token: String,
        pad_token: String,
        mask_token: String,
        wordpieces_prefix: String,
        max_input_chars_per_word: usize,
    ) -> PyResult<Self> {
        let opts = hf::VocabOptions {
            normalizer: BertNormalizer::new(
                clean_text,
                handle_chinese_chars,
                strip_accents,
                lowercase,
            ),
            unk_token,
            sep_token,
            cls_token,
            pad_token,
            mask_token,
            prefix: wordpieces_prefix,
            max_input_chars_per_word,
        };
        let core = py
            .detach(|| hf::from_vocab_text(text, origin, &opts))
            .map_err(to_py)?;
        Ok(PyTokenizer {
            core: Arc::new(core),
            settings: Settings::default(),
        })
    }

    /// A copy with this truncation (`max_length=None`: none).
    #[pyo3(signature = (max_length, strategy="longest_first", stride=0, direction="right"))]
    fn with_truncation(
        &self,
        max_length: Option<usize>,
        strategy: &str,
        stride: usize,
        direction: &str,
    ) -> PyResult<Self> {
        let mut settings = self.settings.clone();
        settings.truncation = match max_length {
            None => None,
            Some(max_length) => Some(Truncation {
                max_length,
                strategy: match strategy {
                    "longest_first" => TruncationStrategy::LongestFirst,
                    "only_first" => TruncationStrategy::OnlyFirst,
                    "only_second" => TruncationStrategy::OnlySecond,
                    s => {
                        return Err(PyValueError::new_err(format!(
                            "strategy must be 'longest_first', 'only_first' or 'only_second', got {s:?}"
                        )))
                    }
                },
                stride,
                left: side(direction)?,
            }),
        };
        Ok(PyTokenizer {
            core: self.core.clone(),
            settings,
        })
    }

    /// A copy with this padding (`enable=False`: none; `length=None`: the batch's longest).
    #[pyo3(signature = (enable, length=None, direction="right", pad_to_multiple_of=None, pad_id=0, pad_type_id=0, pad_token="[PAD]".to_string()))]
    #[allow(clippy::too_many_arguments)]
    fn with_padding(
        &self,
        enable: bool,
        length: Option<usize>,
        direction: &str,
        pad_to_multiple_of: Option<usize>,
        pad_id: u32,
        pad_type_id: u32,
        pad_token: String,
    ) -> PyResult<Self> {
        let mut settings = self.settings.clone();
        settings.padding = if enable {
            let padding = Padding {
                length,
                left: side(direction)?,
                pad_to_multiple_of,
                pad_id,
                pad_type_id,
                pad_token,
            };
            padding.check().map_err(PyValueError::new_err)?;
            Some(padding)
        } else {
            None
        };
        Ok(PyTokenizer {
            core: self.core.clone(),
            settings,
        })
    }

    #[getter]
    fn truncation(&self) -> Option<TruncationTuple> {
        self.settings.truncation.as_ref().map(|t| {
            let strategy = match t.strategy {
                TruncationStrategy::LongestFirst => "longest_first",
                TruncationStrategy::OnlyFirst => "only_first",
                TruncationStrategy::OnlySecond => "only_second",
            };
            (
                t.max_length,
                strategy,
                t.stride,
                if t.left { "left" } else { "right" },
            )
        })
    }

    #[getter]
    fn padding(&self) -> Option<PaddingTuple> {
        self.settings.padding.as_ref().map(|p| {
            (
                p.length,
                if p.left { "left" } else { "right" },
                p.pad_to_multiple_of,
                p.pad_id,
                p.pad_type_id,
                p.pad_token.clone(),
            )
        })
    }

    /// One text or pair: `(ids, type_ids, attention_mask, special_tokens_mask, offsets,
    /// word_ids)`.
    #[pyo3(signature = (text, pair=None, add_special_tokens=true))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        text: &str,
        pair: Option<&str>,
        add_special_tokens: bool,
    ) -> PyResult<EncodingArrays<'py>> {
        let e = py
            .detach(|| {
                self.core
                    .encode(text, pair, add_special_tokens, &self.settings)
            })
            .map_err(to_py)?;
        encoding_arrays(py, e)
    }

    /// Many texts (and pairs) on a thread pool: the flat arrays of `encode` plus row offsets.
    #[pyo3(signature = (texts, pairs=None, add_special_tokens=true, num_threads=None))]
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        pairs: Option<Vec<String>>,
        add_special_tokens: bool,
        num_threads: Option<usize>,
    ) -> PyResult<(EncodingArrays<'py>, Bound<'py, PyArray1<i64>>)> {
        if let Some(p) = &pairs {
            if p.len() != texts.len() {
                return Err(PyValueError::new_err(format!(
                    "{} texts but {} pairs",
                    texts.len(),
                    p.len()
                )));
            }
        }
        let inputs: Vec<(&str, Option<&str>)> = match &pairs {
            Some(p) => texts
                .iter()
                .zip(p)
                .map(|(a, b)| (a.as_str(), Some(b.as_str())))
                .collect(),
            None => texts.iter().map(|a| (a.as_str(), None)).collect(),
        };
        let threads = batch::thread_count(num_threads);
        let b = py
            .detach(|| {
                self.core
                    .encode_batch(&inputs, add_special_tokens, &self.settings, threads)
            })
            .map_err(to_py)?;
        Ok((
            encoding_arrays(py, b.rows)?,
            PyArray1::from_vec(py, b.row_offsets),
        ))
    }

    /// Text of `ids` (HF's WordPiece decoder); unknown ids raise `ValueError`.
    #[pyo3(signature = (ids, skip_special_tokens=true))]
    fn decode(
        &self,
        py: Python<'_>,
        ids: PyReadonlyArray1<'_, i64>,
        skip_special_tokens: bool,
    ) -> PyResult<String> {
        let ids = ids.as_slice()?;
        py.detach(|| self.core.decode(ids, skip_special_tokens))
            .map_err(to_py)
    }

    fn id_to_token(&self, id: i64) -> Option<&str> {
        u32::try_from(id)
            .ok()
            .and_then(|i| self.core.id_to_token(i))
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.core.token_to_id(token)
    }

    /// Token of every id below `vocab_size`'s bound (None for holes), for lazy `tokens`.
    fn id_to_token_table(&self) -> Vec<Option<&str>> {
        let n = self
            .core
            .model()
            .tokens()
            .iter()
            .map(|(_, id)| id as usize + 1)
            .chain(self.core.added_tokens().iter().map(|a| a.id as usize + 1))
            .max()
            .unwrap_or(0);
        (0..n as u32).map(|i| self.core.id_to_token(i)).collect()
    }

    /// `(token, id)` of the model vocabulary and the added tokens.
    fn vocab(&self) -> Vec<(&str, u32)> {
        let mut v: Vec<(&str, u32)> = self.core.model().tokens().iter().collect();
        v.extend(
            self.core
                .added_tokens()
                .iter()
                .map(|a| (a.content.as_str(), a.id)),
        );
        v
    }

    /// `(content, id, special)` of each added token.
    fn added_tokens(&self) -> Vec<(&str, u32, bool)> {
        self.core
            .added_tokens()
            .iter()
            .map(|a| (a.content.as_str(), a.id, a.special))
            .collect()
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.core.vocab_size()
    }

    /// `"WordPiece"`, `"BPE"` or `"Unigram"`, as the file's `model.type`.
    #[getter]
    fn model_type(&self) -> &'static str {
        match self.core.model() {
            Model::WordPiece(_) => "WordPiece",
            Model::Bpe(_) => "BPE",
            Model::Unigram(_) => "Unigram",
        }
    }
}

/// A SentencePiece model (wrapped by `ferrotok.SentencePiece`).
#[pyclass(frozen, module = "ferrotok._core", name = "CoreSentencePiece")]
pub struct PySentencePiece {
    inner: SentencePiece,
}

impl PySentencePiece {
    /// Ids of one text: BOS, the text (sampled when `alpha` is given), EOS.
    fn ids(&self, text: &str, bos: bool, eos: bool, sampling: spm::Sampling) -> Vec<u32> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        self.ids_into(text, bos, eos, sampling, &mut ids);
        ids
    }

    /// [`Self::ids`], appended to `out`.
    fn ids_into(&self, text: &str, bos: bool, eos: bool, s: spm::Sampling, out: &mut Vec<u32>) {
        let sp = &self.inner;
        out.extend(sp.bos_id().filter(|_| bos));
        sp.encode_into(text, s, out);
        out.extend(sp.eos_id().filter(|_| eos));
    }
}

fn sampling(alpha: Option<f32>, nbest_size: i32, seed: u64) -> PyResult<spm::Sampling> {
    Ok(match alpha {
        None => spm::Sampling::None,
        Some(a) if !(0.0..=1e6).contains(&a) => {
            return Err(PyValueError::new_err(format!(
                "alpha must be a number from 0 to 1e6, got {a}"
            )))
        }
        Some(alpha) => spm::Sampling::Sample {
            alpha,
            nbest_size,
            seed,
        },
    })
}

#[pymethods]
impl PySentencePiece {
    /// Parses the bytes of a `.model` file; `origin` names it in errors.
    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8], origin: &str) -> PyResult<Self> {
        let inner = py
            .detach(|| SentencePiece::from_bytes(data, origin))
            .map_err(to_py)?;
        Ok(PySentencePiece { inner })
    }

    #[getter]
    fn model_type(&self) -> &'static str {
        match self.inner.kind() {
            spm::Kind::Bpe => "bpe",
            spm::Kind::Unigram => "unigram",
        }
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    /// `(unk, bos, eos, pad)` ids, `None` where the model has none.
    #[getter]
    fn special_ids(&self) -> (u32, Option<u32>, Option<u32>, Option<u32>) {
        let sp = &self.inner;
        (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id())
    }

    #[getter]
    fn byte_fallback(&self) -> bool {
        self.inner.byte_fallback()
    }

    #[pyo3(signature = (text, add_bos=false, add_eos=false, alpha=None, nbest_size=-1, seed=0))]
    #[allow(clippy::too_many_arguments)]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        text: &str,
        add_bos: bool,
        add_eos: bool,
        alpha: Option<f32>,
        nbest_size: i32,
        seed: u64,
    ) -> PyResult<Bound<'py, PyArray1<u32>>> {
        let s = sampling(alpha, nbest_size, seed)?;
        let ids = py.detach(|| self.ids(text, add_bos, add_eos, s));
        Ok(PyArray1::from_vec(py, ids))
    }

    /// Encodes many texts on a thread pool into `(ids, offsets)`. When sampling, text `i`
    /// draws from the seed `seed + i`, so the result does not depend on the thread count.
    #[pyo3(signature = (texts, add_bos=false, add_eos=false, num_threads=None, alpha=None, nbest_size=-1, seed=0))]
    #[allow(clippy::too_many_arguments)]
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        add_bos: bool,
        add_eos: bool,
        num_threads: Option<usize>,
        alpha: Option<f32>,
        nbest_size: i32,
        seed: u64,
    ) -> PyResult<RaggedArrays<'py>> {
        let texts = Texts::new(texts, false)?;
        let base = sampling(alpha, nbest_size, seed)?;
        let threads = batch::thread_count(num_threads);
        texts.encode(py, threads, |i, t, _, out| {
            let s = match base {
                spm::Sampling::Sample {
                    alpha, nbest_size, ..
                } => spm::Sampling::Sample {
                    alpha,
                    nbest_size,
                    seed: seed.wrapping_add(i as u64),
                },
                none => none,
            };
            self.ids_into(t, add_bos, add_eos, s, out);
            Ok(())
        })
    }

    /// The `n` best segmentations `(ids, score)`, best first.
    fn nbest<'py>(
        &self,
        py: Python<'py>,
        text: &str,
        n: usize,
    ) -> Vec<(Bound<'py, PyArray1<u32>>, f32)> {
        let results = py.detach(|| self.inner.nbest(text, n));
        results
            .into_iter()
            .map(|(ids, score)| (PyArray1::from_vec(py, ids), score))
            .collect()
    }

    fn decode(&self, py: Python<'_>, ids: PyReadonlyArray1<'_, i64>) -> PyResult<String> {
        let ids = ids.as_slice()?;
        py.detach(|| self.inner.decode(ids)).map_err(to_py)
    }

    fn normalize(&self, py: Python<'_>, text: &str) -> String {
        py.detach(|| self.inner.normalize(text))
    }

    fn id_to_piece(&self, id: i64) -> Option<&str> {
        u32::try_from(id).ok().and_then(|id| self.inner.piece(id))
    }

    fn piece_to_id(&self, piece: &str) -> u32 {
        self.inner.piece_to_id(piece)
    }

    /// `(piece, score, type)` of every id, the type as sentencepiece names it.
    fn table(&self) -> Vec<(&str, f32, &'static str)> {
        let sp = &self.inner;
        (0..sp.vocab_size() as u32)
            .map(|id| {
                let kind = match sp.piece_type(id).expect("in range") {
                    spm::proto::PieceType::Normal => "NORMAL",
                    spm::proto::PieceType::Unknown => "UNKNOWN",
                    spm::proto::PieceType::Control => "CONTROL",
                    spm::proto::PieceType::UserDefined => "USER_DEFINED",
                    spm::proto::PieceType::Unused => "UNUSED",
                    spm::proto::PieceType::Byte => "BYTE",
                };
                (
                    sp.piece(id).expect("in range"),
                    sp.score(id).expect("in range"),
                    kind,
                )
            })
            .collect()
    }
}

fn side(direction: &str) -> PyResult<bool> {
    match direction {
        "right" => Ok(false),
        "left" => Ok(true),
        d => Err(PyValueError::new_err(format!(
            "direction must be 'right' or 'left', got {d:?}"
        ))),
    }
}

/// How a corpus is cut into the pieces a trainer counts.
enum Splitter {
    /// A byte-level split pattern (BPE).
    Pattern(Pretokenizer),
    /// BERT's normalizer and pre-tokenizer (WordPiece).
    Bert(BertSplitter),
    /// Lines cut into `▁`-prefixed words, as SentencePiece's trainer does (Unigram).
    Spm,
}

fn bert_words(splitter: &BertSplitter, text: &str, f: &mut dyn FnMut(&str)) {
    let mut buf = WordBuf::default();
    let _ = splitter.split::<()>(text, 0, &mut buf, &mut |b| {
        f(&b.word);
        Ok(())
    });
}

/// A progress callback for training, called from Rust without the GIL; its first error is
/// kept in `failed` (and later calls are skipped).
fn reporter<'a>(
    progress: Option<&'a Py<PyAny>>,
    failed: &'a mut Option<PyErr>,
) -> impl FnMut(usize) + Send + 'a {
    move |n| {
        if let (Some(cb), None) = (progress, &*failed) {
            *failed = Python::attach(|py| cb.call1(py, (n,)).err());
        }
    }
}

/// Distinct pre-tokenized pieces of a corpus and their counts: the first pass of training.
#[pyclass(module = "ferrotok._core", name = "PieceCounter")]
pub struct PyPieceCounter {
    splitter: Splitter,
    counts: PieceCounts,
    threads: usize,
}

#[pymethods]
impl PyPieceCounter {
    /// Counts the pieces of a byte-level split pattern.
    #[new]
    #[pyo3(signature = (pattern, num_threads=None))]
    fn new(pattern: &str, num_threads: Option<usize>) -> PyResult<Self> {
        Ok(PyPieceCounter {
            splitter: Splitter::Pattern(Pretokenizer::new(pattern).map_err(to_py)?),
            counts: PieceCounts::new(),
            threads: batch::thread_count(num_threads),
        })
    }

    /// Counts the words of BERT's normalizer and pre-tokenizer.
    #[staticmethod]
    #[pyo3(signature = (lowercase, strip_accents, clean_text, handle_chinese_chars, num_threads=None))]
    fn bert(
        lowercase: bool,
        strip_accents: Option<bool>,
        clean_text: bool,
        handle_chinese_chars: bool,
        num_threads: Option<usize>,
    ) -> Self {
        let norm = BertNormalizer::new(clean_text, handle_chinese_chars, strip_accents, lowercase);
        PyPieceCounter {
            splitter: Splitter::Bert(BertSplitter::new(norm)),
            counts: PieceCounts::new(),
            threads: batch::thread_count(num_threads),
        }
    }

    /// Counts the `▁`-prefixed words of each line, as SentencePiece's trainer sees them.
    #[staticmethod]
    #[pyo3(signature = (num_threads=None))]
    fn sentencepiece(num_threads: Option<usize>) -> Self {
        PyPieceCounter {
            splitter: Splitter::Spm,
            counts: PieceCounts::new(),
            threads: batch::thread_count(num_threads),
        }
    }

    /// Counts the pieces of each text (each text is a document of its own).
    fn add_texts(&mut self, py: Python<'_>, texts: &Bound<'_, PyAny>) -> PyResult<()> {
        let texts = Texts::new(texts, false)?;
        let strs = texts.all()?;
        let PyPieceCounter {
            splitter,
            counts,
            threads,
        } = self;
        py.detach(|| {
            batch::install(*threads, || match splitter {
                Splitter::Pattern(p) => counts.add_texts(&strs, &|t, f| p.for_each_piece(t, f)),
                Splitter::Bert(b) => {
                    counts.add_texts_owned(&strs, &|t, f| bert_words(b, t, f));
                    Ok(())
                }
                Splitter::Spm => {
                    counts.add_texts_owned(&strs, &train::unigram::words);
                    Ok(())
                }
            })?
        })
        .map_err(to_py)
    }

    /// Counts the pieces of a UTF-8 text file, streamed in blocks.
    fn add_file(&mut self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let PyPieceCounter {
            splitter,
            counts,
            threads,
        } = self;
        py.detach(|| {
            batch::install(*threads, || match splitter {
                Splitter::Pattern(p) => counts.add_file(&path, p),
                Splitter::Bert(b) => counts.add_file_owned(&path, &|t, f| bert_words(b, t, f)),
                Splitter::Spm => counts.add_file_owned(&path, &train::unigram::words),
            })?
        })
        .map_err(to_py)
    }

    /// Number of distinct pieces.
    #[getter]
    fn n_pieces(&self) -> usize {
        self.counts.len()
    }

    /// Bytes of text counted.
    #[getter]
    fn n_bytes(&self) -> u64 {
        self.counts.bytes
    }

    /// Trains a byte-level BPE of `n_tokens` mergeable tokens; special tokens get the ids after
    /// them. `progress(n)` is called with the number of tokens as training goes. Returns the
    /// encoding and every merge made (the two ids merged), in order.
    #[pyo3(signature = (n_tokens, min_frequency, specials, progress=None))]
    fn train_bpe(
        &self,
        py: Python<'_>,
        n_tokens: usize,
        min_frequency: u64,
        specials: Vec<String>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(PyBpe, Vec<(Rank, Rank)>)> {
        let Splitter::Pattern(pretok) = &self.splitter else {
            return Err(PyValueError::new_err(
                "these counts are words, not byte-level pieces",
            ));
        };
        let mut failed: Option<PyErr> = None;
        let mut report = reporter(progress.as_ref(), &mut failed);
        let trained =
            py.detach(|| train::bpe::train(&self.counts, n_tokens, min_frequency, &mut report));
        drop(report);
        if let Some(err) = failed {
            return Err(err);
        }
        let n = trained.tokens.len() as Rank;
        let pairs = trained.tokens.into_iter().zip(0..).collect();
        let specials = specials.into_iter().zip(n..).collect();
        let inner = Vocab::from_pairs(pairs, "trained vocabulary")
            .and_then(|v| Bpe::new(v, pretok.pattern(), specials, "trained vocabulary"))
            .map_err(to_py)?;
        Ok((PyBpe { inner }, trained.merges))
    }

    /// Trains a WordPiece vocabulary of `vocab_size` tokens (special tokens first); returns
    /// the tokens in id order. `progress(n)` as for `train_bpe`.
    #[pyo3(signature = (vocab_size, min_frequency, specials, prefix, limit_alphabet=None, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn train_wordpiece(
        &self,
        py: Python<'_>,
        vocab_size: usize,
        min_frequency: u64,
        specials: Vec<String>,
        prefix: &str,
        limit_alphabet: Option<usize>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<String>> {
        let mut failed: Option<PyErr> = None;
        let mut report = reporter(progress.as_ref(), &mut failed);
        let tokens = py.detach(|| {
            train::wordpiece::train(
                &self.counts,
                vocab_size,
                min_frequency,
                &specials,
                prefix,
                limit_alphabet,
                &mut report,
            )
        });
        drop(report);
        if let Some(err) = failed {
            return Err(err);
        }
        tokens.map_err(to_py)
    }

    /// Trains a Unigram model of `n_pieces` normal pieces; returns the `.model` file's bytes.
    #[pyo3(signature = (n_pieces, user_defined, character_coverage, max_piece_len, seed_size, split_by_number, split_by_script, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn train_unigram<'py>(
        &self,
        py: Python<'py>,
        n_pieces: usize,
        user_defined: Vec<String>,
        character_coverage: f64,
        max_piece_len: usize,
        seed_size: usize,
        split_by_number: bool,
        split_by_script: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(Bound<'py, PyBytes>, usize)> {
        let opts = train::unigram::UnigramOptions {
            n_pieces,
            character_coverage,
            max_piece_len,
            seed_size,
            split_by_number,
            split_by_script,
            ..Default::default()
        };
        let mut failed: Option<PyErr> = None;
        let mut report = reporter(progress.as_ref(), &mut failed);
        let threads = self.threads;
        let pieces = py
            .detach(|| {
                batch::install(threads, || {
                    train::unigram::train(&self.counts, &opts, &mut report)
                })
            })
            .map_err(to_py)?;
        drop(report);
        if let Some(err) = failed {
            return Err(err);
        }
        let data = train::unigram::model_bytes(&pieces, &user_defined, max_piece_len);
        Ok((PyBytes::new(py, &data), pieces.len()))
    }
}

/// Names of the encodings embedded in the package.
#[pyfunction]
fn embedded_encodings() -> Vec<&'static str> {
    registry::names().collect()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBpe>()?;
    m.add_class::<PyTokenizer>()?;
    m.add_class::<PySentencePiece>()?;
    m.add_class::<PyPieceCounter>()?;
    m.add_function(wrap_pyfunction!(embedded_encodings, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
