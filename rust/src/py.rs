//! The Python binding layer: the only module that knows PyO3. It converts arguments,
//! releases the GIL around every call that loops over text or ids, and maps core errors to
//! Python exceptions. The friendly API is `python/ferrotok/*.py`.

use std::path::PathBuf;

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::batch;
use crate::bpe::Bpe;
use crate::error::Error;
use crate::registry;
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
            .detach(|| self.inner.encode_ordinary(text))
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
            .detach(|| self.inner.encode(text, &allowed, &disallowed))
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
        let owned = texts_of(texts)?;
        let strs = owned
            .iter()
            .map(|s| s.to_str())
            .collect::<PyResult<Vec<&str>>>()?;
        let specials = self.inner.specials();
        let allowed = specials.set(allowed.iter().map(String::as_str));
        let disallowed = specials.set(disallowed.iter().map(String::as_str));
        let threads = batch::thread_count(num_threads);
        let ragged = py
            .detach(|| {
                if allowed.is_empty() && disallowed.is_empty() {
                    batch::encode_all(&strs, threads, |t| self.inner.encode_ordinary(t))
                } else {
                    batch::encode_all(&strs, threads, |t| {
                        self.inner.encode(t, &allowed, &disallowed)
                    })
                }
            })
            .map_err(to_py)?;
        Ok((
            PyArray1::from_vec(py, ragged.ids),
            PyArray1::from_vec(py, ragged.offsets),
        ))
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

/// The texts of a batch as Python strings: any iterable of `str` (a numpy array of `str`
/// included). Anything else at position i is a `TypeError` naming i. Strings with lone
/// surrogates are repaired through UTF-16 as tiktoken does, so their ids match.
fn texts_of<'py>(texts: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyString>>> {
    if texts.is_instance_of::<PyString>() || texts.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(
            "texts must be an iterable of str, not a single str or bytes",
        ));
    }
    let mut out = Vec::new();
    for (i, item) in texts.try_iter()?.enumerate() {
        let item = item?;
        if !item.is_instance_of::<PyString>() {
            let kind = item.get_type().name()?;
            return Err(PyTypeError::new_err(format!(
                "texts[{i}] is {kind}, not str"
            )));
        }
        let s = item.cast_into::<PyString>()?;
        if s.to_str().is_ok() {
            out.push(s);
        } else {
            let repaired = s
                .call_method1("encode", ("utf-16", "surrogatepass"))?
                .call_method1("decode", ("utf-16", "replace"))?;
            out.push(repaired.cast_into::<PyString>()?);
        }
    }
    Ok(out)
}

/// Names of the encodings embedded in the package.
#[pyfunction]
fn embedded_encodings() -> Vec<&'static str> {
    registry::names().collect()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBpe>()?;
    m.add_function(wrap_pyfunction!(embedded_encodings, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
