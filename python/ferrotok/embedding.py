"""Embedding tables and positional encodings, in numpy (torch optional).

:class:`Embedding` turns token ids (a 1-D array, a padded 2-D array with its attention mask, or a
ragged :class:`~ferrotok.TokenBatch`) into vectors, from a table stored as ``float32``,
``float16``, ``bfloat16`` or ``int8`` (one scale per row). Positions: :func:`sinusoidal_positions`,
:func:`rope` (rotary), :func:`positions_from_mask` (left padding) and :func:`add_positions`.

>>> import numpy as np
>>> emb = Embedding.random(100, 8, seed=0, padding_idx=0)
>>> emb(np.array([[5, 7, 0]])).shape
(1, 3, 8)
>>> float(np.abs(emb([0])).max())  # the padding row is zero, like torch.nn.Embedding
0.0

Everything is vectorized numpy: no Python loop runs per token; the loops that exist walk over
chunks of the vocabulary (to bound the memory of a float32 copy of a compressed table).
"""

from __future__ import annotations

import operator
import os
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from .batch import TokenBatch

__all__ = [
    "Embedding",
    "QuantizationError",
    "add_positions",
    "positions_from_mask",
    "rope",
    "sinusoidal_positions",
]

_DTYPES = ("float32", "float16", "bfloat16", "int8")
# Rows of the table converted to float32 at a time (logits, nearest, quantization error).
_CHUNK_ROWS = 8192


class QuantizationError(NamedTuple):
    """What storing the table cost: absolute error of the stored (dequantized) table against the
    source table as ``float32``, over every element."""

    max_abs: float
    mean_abs: float


def _to_numpy(obj: Any) -> Any:
    """A torch tensor as numpy (bfloat16 through float32: numpy has no bfloat16); else as is."""
    if hasattr(obj, "detach") and hasattr(obj, "cpu") and hasattr(obj, "numpy"):
        t = obj.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        return t.numpy()
    return obj


def _bfloat16() -> Any:
    try:
        import ml_dtypes
    except ImportError as exc:  # pragma: no cover - ml_dtypes is in the test extra
        raise ImportError("dtype='bfloat16' needs ml_dtypes: pip install ml_dtypes") from exc
    return np.dtype(ml_dtypes.bfloat16)


def _dtype_name(dtype: Any) -> str:
    """The storage name of a dtype argument ('float32', 'float16', 'bfloat16', 'int8')."""
    if isinstance(dtype, str):
        name = dtype
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = str(dtype).removeprefix("torch.")
    if name not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    return name


def _int_ids(ids: Any, what: str = "token ids") -> npt.NDArray[Any]:
    """Integer ids of any shape from a numpy array, a list, a torch tensor or a TokenBatch."""
    if isinstance(ids, TokenBatch):
        return ids.ids
    arr = np.asarray(_to_numpy(ids))
    if arr.dtype.kind not in "iu":
        if arr.size == 0 and arr.dtype.kind == "f":
            return arr.astype(np.int64)  # [] is a float64 array
        raise TypeError(f"{what} must be integers, got an array of dtype {arr.dtype}")
    return arr


class Embedding:
    """A token embedding table, ``num_embeddings x embedding_dim``, looked up with numpy.

    Build one from an array (``Embedding(table)``), a safetensors file
    (:meth:`from_safetensors`) or at random like ``torch.nn.Embedding`` (:meth:`random`).

    ``dtype`` is how the table is stored: ``"float32"``, ``"float16"``, ``"bfloat16"`` (numpy
    through ``ml_dtypes``) or ``"int8"`` (symmetric, one float32 scale per row:
    ``scale = max|row| / 127``, ``q = round(row / scale)``). ``None`` keeps a float32, float16 or
    bfloat16 table as it is and stores anything else (float64, integers) as float32.

    Lookups return ``float32`` for int8 and bfloat16 tables, the storage dtype for float32 and
    float16 ones, unless ``out_dtype`` says otherwise. ``padding_idx`` (negative counts from the
    end, as in torch) marks the padding id; like ``torch.nn.Embedding.from_pretrained`` the
    given table's row is kept as it is (:meth:`random` zeroes it, like ``nn.Embedding``).

    >>> emb = Embedding(np.arange(12, dtype=np.float32).reshape(4, 3))
    >>> emb([3, 1]).tolist()
    [[9.0, 10.0, 11.0], [3.0, 4.0, 5.0]]
    >>> emb
    Embedding(4, 3, dtype=float32)
    """

    __slots__ = ("_error", "_norms", "_out_dtype", "_padding_idx", "_scale", "_table")

    def __init__(
        self,
        table: npt.ArrayLike,
        *,
        dtype: str | npt.DTypeLike | None = None,
        padding_idx: int | None = None,
        out_dtype: npt.DTypeLike | None = None,
    ) -> None:
        src = np.asarray(_to_numpy(table))
        if src.ndim != 2:
            raise ValueError(
                f"an embedding table must be 2-D (num_embeddings, embedding_dim), got shape {src.shape}"
            )
        if src.dtype.kind not in "fiu" and src.dtype.name != "bfloat16":
            raise TypeError(f"an embedding table must hold numbers, got dtype {src.dtype}")
        if src.shape[0] == 0 or src.shape[1] == 0:
            raise ValueError(f"an embedding table needs at least one row and one column, got {src.shape}")
        if dtype is None:
            name = src.dtype.name if src.dtype.name in ("float32", "float16", "bfloat16") else "float32"
        else:
            name = _dtype_name(dtype)
        vocab = src.shape[0]
        if padding_idx is not None:
            padding_idx = operator.index(padding_idx)
            if not -vocab <= padding_idx < vocab:
                raise ValueError(f"padding_idx {padding_idx} is out of range for {vocab} embeddings")
            padding_idx %= vocab
        self._padding_idx = padding_idx
        self._scale: npt.NDArray[np.float32] | None = None
        self._norms: npt.NDArray[np.float32] | None = None
        if name == "int8":
            self._table, self._scale, self._error = _quantize_int8(src)
        else:
            target = _bfloat16() if name == "bfloat16" else np.dtype(name)
            self._table = np.ascontiguousarray(src, dtype=target)
            if src.dtype == target or (src.dtype == np.float64 and name == "float32"):
                # error against the source *as float32*: none
                self._error = QuantizationError(0.0, 0.0)
            else:
                self._error = _chunked_error(src, lambda a, b: self._table[a:b].astype(np.float32))
        if out_dtype is None:
            self._out_dtype = np.dtype(np.float32) if name in ("int8", "bfloat16") else self._table.dtype
        else:
            out = np.dtype(out_dtype)
            if out.kind != "f" and out.name != "bfloat16":
                raise TypeError(f"out_dtype must be a floating dtype, got {out}")
            self._out_dtype = out

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def random(
        cls,
        num_embeddings: int,
        embedding_dim: int,
        *,
        seed: int | np.random.Generator | None = 0,
        dtype: str | npt.DTypeLike | None = None,
        padding_idx: int | None = None,
        out_dtype: npt.DTypeLike | None = None,
    ) -> Embedding:
        """A table drawn like ``torch.nn.Embedding``'s: ``normal(0, 1)`` in float32 from
        ``numpy.random.default_rng(seed)``, the ``padding_idx`` row zeroed.

        >>> Embedding.random(5, 2, seed=1, padding_idx=-1)([4]).tolist()
        [[0.0, 0.0]]
        """
        vocab, dim = operator.index(num_embeddings), operator.index(embedding_dim)
        if vocab <= 0 or dim <= 0:
            raise ValueError(f"num_embeddings and embedding_dim must be > 0, got {vocab} and {dim}")
        table = np.random.default_rng(seed).standard_normal((vocab, dim), dtype=np.float32)
        if padding_idx is not None:
            padding_idx = operator.index(padding_idx)
            if not -vocab <= padding_idx < vocab:
                raise ValueError(f"padding_idx {padding_idx} is out of range for {vocab} embeddings")
            table[padding_idx] = 0.0
        return cls(table, dtype=dtype, padding_idx=padding_idx, out_dtype=out_dtype)

    @classmethod
    def from_safetensors(
        cls,
        path: str | os.PathLike[str],
        name: str,
        *,
        dtype: str | npt.DTypeLike | None = None,
        padding_idx: int | None = None,
        out_dtype: npt.DTypeLike | None = None,
    ) -> Embedding:
        """The 2-D tensor ``name`` of a ``.safetensors`` file (needs the ``safetensors`` package).

        A missing file is a ``FileNotFoundError`` naming it; an unknown tensor a ``KeyError``
        listing the names there are (the closest first); a tensor that is not 2-D a
        ``ValueError``. E.g. a BERT checkpoint's ``"embeddings.word_embeddings.weight"``.
        """
        try:
            from safetensors import safe_open
        except ImportError as exc:  # pragma: no cover - safetensors is in the test extra
            raise ImportError(
                "Embedding.from_safetensors needs safetensors: pip install safetensors"
            ) from exc
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no safetensors file at {path!r}")
        try:
            opened = safe_open(path, framework="numpy")
        except Exception as exc:  # safetensors' own error type: a bad header, a truncated file
            raise ValueError(f"{path!r} is not a valid safetensors file: {exc}") from exc
        with opened as f:
            names = list(f.keys())
            if name not in names:
                import difflib  # only for this message: its import costs a millisecond

                close = difflib.get_close_matches(name, names, n=5, cutoff=0.3)
                rest = [n for n in sorted(names) if n not in close]
                shown = close + rest[: max(0, 20 - len(close))]
                more = f" ... and {len(names) - len(shown)} more" if len(names) > len(shown) else ""
                raise KeyError(
                    f"no tensor {name!r} in {path!r}; it has {len(names)}: {', '.join(shown)}{more}"
                )
            shape = list(f.get_slice(name).get_shape())
            if len(shape) != 2:
                raise ValueError(
                    f"tensor {name!r} in {path!r} has shape {tuple(shape)}; an embedding table must be "
                    "2-D (num_embeddings, embedding_dim)"
                )
            if f.get_slice(name).get_dtype() == "BF16":
                _bfloat16()  # numpy reads bfloat16 only once ml_dtypes has registered it
            try:
                table = f.get_tensor(name)
            except Exception as exc:
                raise ValueError(f"tensor {name!r} in {path!r} cannot be read: {exc}") from exc
        try:
            return cls(table, dtype=dtype, padding_idx=padding_idx, out_dtype=out_dtype)
        except (ValueError, TypeError) as exc:  # an empty or non-float table: say which
            raise type(exc)(f"tensor {name!r} in {path!r}: {exc}") from exc

    # -- properties ---------------------------------------------------------------------------

    @property
    def num_embeddings(self) -> int:
        """The number of rows (the vocabulary size)."""
        return int(self._table.shape[0])

    @property
    def embedding_dim(self) -> int:
        """The length of each vector."""
        return int(self._table.shape[1])

    @property
    def dtype(self) -> str:
        """The storage dtype: ``"float32"``, ``"float16"``, ``"bfloat16"`` or ``"int8"``."""
        return "int8" if self._scale is not None else self._table.dtype.name

    @property
    def out_dtype(self) -> np.dtype[Any]:
        """The dtype of :meth:`lookup` results."""
        return self._out_dtype

    @property
    def padding_idx(self) -> int | None:
        """The padding id (non-negative), or ``None``."""
        return self._padding_idx

    @property
    def table(self) -> npt.NDArray[Any]:
        """The stored table, as stored (``int8`` codes for an int8 table: see :attr:`scales`)."""
        return self._table

    @property
    def scales(self) -> npt.NDArray[np.float32] | None:
        """The float32 scale of each row of an int8 table (row ``i`` = ``table[i] * scales[i]``)."""
        return self._scale

    def __repr__(self) -> str:
        pad = "" if self._padding_idx is None else f", padding_idx={self._padding_idx}"
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}, dtype={self.dtype}{pad})"

    def quantization_error(self) -> QuantizationError:
        """``(max_abs, mean_abs)``: the stored table against the source table as float32
        (0 for a float32 table; at most ``scale / 2`` per element of an int8 row). Computed once,
        at construction.

        >>> Embedding.random(10, 4, dtype="float32").quantization_error()
        QuantizationError(max_abs=0.0, mean_abs=0.0)
        """
        return self._error

    def to_numpy(self, dtype: npt.DTypeLike = np.float32) -> npt.NDArray[Any]:
        """The whole table as a new array of ``dtype`` (int8 dequantized)."""
        return self._rows(0, self.num_embeddings).astype(dtype, copy=False)

    def _rows(self, a: int, b: int) -> npt.NDArray[np.float32]:
        """Rows ``a:b`` as float32 (dequantized)."""
        if self._scale is not None:
            return np.multiply(self._table[a:b], self._scale[a:b, None], dtype=np.float32)
        return self._table[a:b].astype(np.float32)

    # -- lookup -------------------------------------------------------------------------------

    def lookup(self, ids: Any, attention_mask: Any = None) -> npt.NDArray[Any]:
        """The vectors of ``ids``: an array of shape ``ids.shape + (embedding_dim,)``.

        ``ids`` is a numpy integer array, a list or a torch tensor of any shape (1-D for one
        text, 2-D ``(batch, width)`` padded), or a ragged :class:`~ferrotok.TokenBatch`, whose
        flat ids give a ``(total_tokens, embedding_dim)`` array (text ``i``'s rows are
        ``out[batch.offsets[i]:batch.offsets[i + 1]]``).

        With ``attention_mask`` (same shape as ``ids``), positions where it is 0 come back as
        zeros, whatever id they hold (it need not even be in range). An id out of range is an
        ``IndexError`` naming it and its position.

        >>> emb = Embedding(np.eye(3, dtype=np.float32))
        >>> emb([[2, 1], [1, 0]], attention_mask=[[1, 1], [1, 0]]).tolist()
        [[[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]], [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]]
        """
        if isinstance(ids, TokenBatch) and attention_mask is not None:
            raise ValueError("attention_mask applies to a padded array of ids, not to a TokenBatch")
        arr = _int_ids(ids)
        mask = None
        if attention_mask is not None:
            mask = np.asarray(_to_numpy(attention_mask))
            if mask.shape != arr.shape:
                raise ValueError(f"attention_mask has shape {mask.shape}, but the ids have shape {arr.shape}")
            if mask.dtype.kind not in "biu":
                raise TypeError(f"attention_mask must be integers or booleans, got dtype {mask.dtype}")
            mask = mask.astype(bool, copy=False)
            arr = np.where(mask, arr, 0)
        self._check_range(arr)
        if self._scale is not None:
            out = np.multiply(
                np.take(self._table, arr, axis=0),
                np.take(self._scale, arr)[..., None],
                dtype=np.float32,
            )
            if self._out_dtype != np.float32:
                out = out.astype(self._out_dtype)
        else:
            out = np.take(self._table, arr, axis=0)
            if out.dtype != self._out_dtype:
                out = out.astype(self._out_dtype)
        if mask is not None:
            out[~mask] = 0
        return out

    __call__ = lookup

    def _check_range(self, arr: npt.NDArray[Any]) -> None:
        if arr.size == 0:
            return
        lo, hi = arr.min(), arr.max()
        vocab = self.num_embeddings
        if lo < 0 or hi >= vocab:
            bad = lo if lo < 0 else hi
            where = np.unravel_index(int(np.argmax(arr == bad)), arr.shape)
            pos = where[0] if len(where) == 1 else tuple(int(i) for i in where)
            kind = "negative token id" if bad < 0 else "token id"
            raise IndexError(
                f"{kind} {int(bad)} at position {pos} is out of range for {vocab} embeddings "
                f"(ids must be in 0..{vocab - 1})"
            )

    # -- tied output and inspection -----------------------------------------------------------

    def logits(self, hidden: Any) -> npt.NDArray[np.float32]:
        """``hidden @ table.T`` (the tied output embedding), float32 of shape
        ``hidden.shape[:-1] + (num_embeddings,)``; int8 and 16-bit tables are converted to
        float32 a chunk of rows at a time, never whole.

        >>> Embedding(np.eye(2, dtype=np.float32)).logits(np.array([3.0, 4.0])).tolist()
        [3.0, 4.0]
        """
        h = np.asarray(_to_numpy(hidden))
        if h.dtype.kind not in "fiu":
            raise TypeError(f"hidden must be a float array, got dtype {h.dtype}")
        if h.ndim == 0 or h.shape[-1] != self.embedding_dim:
            raise ValueError(f"hidden must have shape (..., {self.embedding_dim}), got {h.shape}")
        h = h.astype(np.float32, copy=False)
        vocab = self.num_embeddings
        if self._scale is None and self._table.dtype == np.float32:
            return h @ self._table.T
        out = np.empty((*h.shape[:-1], vocab), dtype=np.float32)
        flat_h = h.reshape(-1, self.embedding_dim)
        flat_out = out.reshape(-1, vocab)
        for a in range(0, vocab, _CHUNK_ROWS):
            b = min(a + _CHUNK_ROWS, vocab)
            if self._scale is not None:
                # (h @ q.T) * scale: the scale of row j multiplies output column j
                np.multiply(
                    flat_h @ self._table[a:b].T.astype(np.float32), self._scale[a:b], out=flat_out[:, a:b]
                )
            else:
                np.matmul(flat_h, self._table[a:b].T.astype(np.float32), out=flat_out[:, a:b])
        return out

    def nearest(self, query: Any, k: int = 10) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The ``k`` rows most like ``query`` by cosine similarity: ``(ids, scores)``, best first
        (equal scores: lower id first).

        ``query`` is a token id (its own row is left out of the answer) or a vector of length
        ``embedding_dim``. A row of zeros scores 0 against everything.

        >>> emb = Embedding(np.array([[1, 0], [1, 0.1], [0, 1], [-1, 0]], dtype=np.float32))
        >>> ids, scores = emb.nearest(0, k=2)
        >>> ids.tolist(), [round(float(s), 3) for s in scores]
        ([1, 2], [0.995, 0.0])
        """
        k = operator.index(k)
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        exclude = None
        q = _to_numpy(query)
        if np.ndim(q) == 0:
            qid = operator.index(q.item() if isinstance(q, np.ndarray | np.generic) else q)
            self._check_range(np.array([qid]))
            vec = self._rows(qid, qid + 1)[0]
            exclude = qid
        else:
            vec = np.asarray(q, dtype=np.float32)
            if vec.shape != (self.embedding_dim,):
                raise ValueError(
                    f"query must be a token id or a vector of shape ({self.embedding_dim},), got {vec.shape}"
                )
        if self._norms is None:
            norms = np.empty(self.num_embeddings, dtype=np.float32)
            for a in range(0, self.num_embeddings, _CHUNK_ROWS):
                b = min(a + _CHUNK_ROWS, self.num_embeddings)
                norms[a:b] = np.linalg.norm(self._rows(a, b), axis=1)
            self._norms = norms
        denom = self._norms * np.float32(np.linalg.norm(vec))
        dots = self.logits(vec)
        scores = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
        if exclude is not None:
            scores[exclude] = -np.inf
        n = self.num_embeddings - (exclude is not None)
        k = min(k, n)
        if k == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        cand = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        order = np.lexsort((cand, -scores[cand]))[:k]
        top = cand[order].astype(np.int64)
        return top, scores[top]

    # -- torch --------------------------------------------------------------------------------

    def to_torch(self) -> Any:
        """A ``torch.nn.Embedding`` with the same weights and ``padding_idx`` (bfloat16 stays
        bfloat16; int8 is dequantized to float32). Needs PyTorch."""
        try:
            import torch
        except ImportError as exc:
            raise ImportError("Embedding.to_torch() needs PyTorch: pip install torch") from exc
        if self._scale is not None:
            weight = torch.from_numpy(self.to_numpy(np.float32))
        elif self.dtype == "bfloat16":
            weight = torch.from_numpy(self._table.view(np.int16).copy()).view(torch.bfloat16)
        else:
            weight = torch.from_numpy(self._table.copy())
        return torch.nn.Embedding.from_pretrained(weight, freeze=False, padding_idx=self._padding_idx)


def _chunked_error(src: npt.NDArray[Any], stored_rows: Any) -> QuantizationError:
    """Max and mean |stored - src.float32| over the table, a chunk of rows at a time."""
    vocab = src.shape[0]
    worst, total = 0.0, 0.0
    for a in range(0, vocab, _CHUNK_ROWS):
        b = min(a + _CHUNK_ROWS, vocab)
        err = np.abs(stored_rows(a, b) - src[a:b].astype(np.float32))
        worst = max(worst, float(err.max()))
        total += float(err.sum(dtype=np.float64))
    return QuantizationError(worst, total / src.size)


def _quantize_int8(
    src: npt.NDArray[Any],
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32], QuantizationError]:
    """Symmetric per-row int8: ``scale = max|row| / 127``, ``q = round(row / scale)``."""
    vocab = src.shape[0]
    q = np.empty(src.shape, dtype=np.int8)
    scale = np.empty(vocab, dtype=np.float32)
    for a in range(0, vocab, _CHUNK_ROWS):
        b = min(a + _CHUNK_ROWS, vocab)
        rows = src[a:b].astype(np.float32)
        if not np.all(np.isfinite(rows)):
            bad = a + int(np.argmax(~np.all(np.isfinite(rows), axis=1)))
            raise ValueError(f"row {bad} of the table is not finite; int8 needs finite values")
        s = np.abs(rows).max(axis=1) / np.float32(127)
        safe = np.where(s > 0, s, np.float32(1))
        q[a:b] = np.clip(np.rint(rows / safe[:, None]), -127, 127)
        scale[a:b] = s
    error = _chunked_error(src, lambda a, b: np.multiply(q[a:b], scale[a:b, None], dtype=np.float32))
    return q, scale, error


# -- positions ----------------------------------------------------------------------------------


def sinusoidal_positions(
    n_positions: int, dim: int, *, base: float = 10000.0, dtype: npt.DTypeLike = np.float32
) -> npt.NDArray[Any]:
    """The fixed encodings of "Attention Is All You Need", shape ``(n_positions, dim)``:
    ``PE[p, 2i] = sin(p / base**(2i / dim))`` and ``PE[p, 2i + 1] = cos(p / base**(2i / dim))``
    (computed in float64, returned as ``dtype``; an odd ``dim`` ends with a sine column).

    >>> sinusoidal_positions(2, 4, dtype=np.float64).round(4).tolist()
    [[0.0, 1.0, 0.0, 1.0], [0.8415, 0.5403, 0.01, 1.0]]
    """
    n, d = operator.index(n_positions), operator.index(dim)
    if n < 0 or d <= 0:
        raise ValueError(f"n_positions must be >= 0 and dim > 0, got {n} and {d}")
    inv = float(base) ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    angles = np.arange(n, dtype=np.float64)[:, None] * inv
    out = np.empty((n, d), dtype=np.float64)
    out[:, 0::2] = np.sin(angles)
    out[:, 1::2] = np.cos(angles[:, : d // 2])
    return out.astype(dtype)


def positions_from_mask(attention_mask: Any) -> npt.NDArray[np.int64]:
    """Per-row positions (``int64``, the mask's shape) that count only real tokens: ``cumsum(mask)
    - 1`` along the last axis, 0 on padding. With LEFT padding the first real token of every row
    is position 0; with right padding this is just ``arange``.

    >>> positions_from_mask([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]).tolist()
    [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]
    """
    mask = np.asarray(_to_numpy(attention_mask))
    if mask.dtype.kind not in "biu":
        raise TypeError(f"attention_mask must be integers or booleans, got dtype {mask.dtype}")
    if mask.ndim == 0:
        raise ValueError("attention_mask must have at least one axis (the sequence)")
    m = mask.astype(bool, copy=False)
    return np.where(m, np.cumsum(m, axis=-1, dtype=np.int64) - 1, 0)


def rope(
    x: Any,
    positions: Any = None,
    *,
    base: float = 10000.0,
    rotary_dim: int | None = None,
    interleaved: bool = False,
) -> npt.NDArray[Any]:
    """Rotary position embedding (RoPE) of queries or keys ``x`` of shape ``(..., dim)``.

    Layout: the LAST axis is the head dimension, and ``positions`` (integers or floats)
    broadcast against ``x.shape[:-1]`` with numpy's rules, aligned on the right. So:

    - ``(batch, heads, seq, head_dim)`` (HF after the transpose): positions ``(seq,)`` or
      ``(batch, 1, seq)`` (e.g. ``positions_from_mask(mask)[:, None, :]``);
    - ``(batch, seq, heads, head_dim)`` (flash-attention layout): positions ``(seq, 1)`` or
      ``(batch, seq, 1)``;
    - ``(batch, seq, dim)`` or ``(seq, dim)``: positions ``(seq,)`` or ``(batch, seq)``.

    ``positions=None`` is ``arange(seq)`` along axis ``-2``. Only the first ``rotary_dim``
    features rotate (default all; even); the rest pass through (GPT-NeoX ``rotary_pct``, GPT-J
    ``rotary_dim``). Frequencies are ``base ** (-2i / rotary_dim)``.

    Default: the half split of GPT-NeoX / Llama (HF ``rotate_half``): feature ``i`` pairs with
    ``i + rotary_dim / 2``. ``interleaved=True``: GPT-J / the RoFormer paper, ``2i`` with
    ``2i + 1``. Angles are computed in float64; the result has ``x``'s float dtype.

    >>> q = np.ones((3, 2))  # (seq, dim), float64
    >>> rope(q).round(4).tolist()
    [[1.0, 1.0], [-0.3012, 1.3818], [-1.3254, 0.4932]]
    """
    arr = np.asarray(_to_numpy(x))
    if arr.dtype.kind != "f":
        raise TypeError(f"rope needs a float array, got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(f"rope needs x of shape (..., seq, dim), got {arr.shape}")
    dim = arr.shape[-1]
    rd = dim if rotary_dim is None else operator.index(rotary_dim)
    if rd <= 0 or rd > dim or rd % 2:
        raise ValueError(f"rotary_dim must be even and in 1..{dim}, got {rd}")
    if positions is None:
        pos = np.arange(arr.shape[-2], dtype=np.float64)[:, None]
    else:
        p = np.asarray(_to_numpy(positions))
        if p.dtype.kind not in "iuf":
            raise TypeError(f"positions must be numbers, got dtype {p.dtype}")
        try:
            np.broadcast_shapes(p.shape, arr.shape[:-1])
        except ValueError:
            raise ValueError(
                f"positions of shape {p.shape} do not broadcast against x.shape[:-1] = {arr.shape[:-1]} "
                "(for (batch, seq, heads, head_dim) pass positions of shape (seq, 1) or (batch, seq, 1))"
            ) from None
        pos = p.astype(np.float64)[..., None]
    inv = float(base) ** (-np.arange(0, rd, 2, dtype=np.float64) / rd)
    angles = pos * inv  # (..., rd / 2)
    cdt = arr.dtype if arr.dtype == np.float64 else np.float32
    cos, sin = np.cos(angles).astype(cdt), np.sin(angles).astype(cdt)
    xr = arr[..., :rd].astype(cdt, copy=False)
    if interleaved:
        x1, x2 = xr[..., 0::2], xr[..., 1::2]
    else:
        x1, x2 = xr[..., : rd // 2], xr[..., rd // 2 :]
    r1 = x1 * cos - x2 * sin
    r2 = x2 * cos + x1 * sin
    out = np.empty(np.broadcast_shapes(arr.shape, (*angles.shape[:-1], dim)), dtype=arr.dtype)
    if interleaved:
        out[..., 0:rd:2], out[..., 1:rd:2] = r1, r2
    else:
        out[..., : rd // 2], out[..., rd // 2 : rd] = r1, r2
    out[..., rd:] = arr[..., rd:]
    return out


def add_positions(
    embeddings: Any,
    kind: Literal["sinusoidal", "learned"] = "sinusoidal",
    *,
    attention_mask: Any = None,
    table: Embedding | npt.ArrayLike | None = None,
    base: float = 10000.0,
) -> npt.NDArray[Any]:
    """``embeddings + positional encodings`` for ``(seq, dim)`` or ``(batch, seq, dim)`` arrays.

    Positions are ``arange(seq)``, or :func:`positions_from_mask` of ``attention_mask`` (so left
    padding works); padding positions (mask 0) are left unchanged. ``kind="sinusoidal"`` adds
    :func:`sinusoidal_positions`; ``kind="learned"`` adds the rows of ``table`` (an
    :class:`Embedding` or a ``(max_positions, dim)`` array, e.g. BERT's
    ``position_embeddings.weight``).

    >>> add_positions(np.zeros((1, 2, 4))).round(3).tolist()
    [[[0.0, 1.0, 0.0, 1.0], [0.841, 0.54, 0.01, 1.0]]]
    """
    emb = np.asarray(_to_numpy(embeddings))
    if emb.dtype.kind != "f":
        raise TypeError(f"embeddings must be a float array, got dtype {emb.dtype}")
    if emb.ndim not in (2, 3):
        raise ValueError(f"embeddings must have shape (seq, dim) or (batch, seq, dim), got {emb.shape}")
    seq, dim = emb.shape[-2:]
    mask = None
    if attention_mask is None:
        pos = np.arange(seq, dtype=np.int64)
    else:
        mask = np.asarray(_to_numpy(attention_mask))
        if mask.shape != emb.shape[:-1]:
            raise ValueError(f"attention_mask has shape {mask.shape}, expected {emb.shape[:-1]}")
        pos = positions_from_mask(mask)
    n_pos = int(pos.max()) + 1 if pos.size else 0
    if kind == "sinusoidal":
        if table is not None:
            raise ValueError("table is for kind='learned'")
        pe = sinusoidal_positions(n_pos, dim, base=base, dtype=emb.dtype)[pos]
    elif kind == "learned":
        if table is None:
            raise ValueError("kind='learned' needs table= (an Embedding or a (max_positions, dim) array)")
        lookup = table if isinstance(table, Embedding) else Embedding(table, dtype="float32")
        if lookup.embedding_dim != dim:
            raise ValueError(f"the position table has dim {lookup.embedding_dim}, the embeddings {dim}")
        pe = lookup(pos)
    else:
        raise ValueError(f"kind must be 'sinusoidal' or 'learned', got {kind!r}")
    if mask is not None:
        pe = pe * mask.astype(bool)[..., None]
    return (emb + pe).astype(emb.dtype, copy=False)
