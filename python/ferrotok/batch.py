"""Batches of token ids: the ragged form :class:`TokenBatch`, and padding to 2-D model input.

A batch of ``n`` texts is two arrays: ``ids``, every text's ids one after another, and
``offsets`` (``int64``, ``n + 1`` entries, ``offsets[0] == 0``), with the ids of text ``i`` at
``ids[offsets[i]:offsets[i + 1]]``. That costs 4 bytes a token plus 8 a text, and holds no
Python object per text.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = ["EncodingBatch", "TokenBatch", "as_ragged"]


def _gather_positions(starts: npt.NDArray[np.int64], counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``starts[i] + 0, ..., starts[i] + counts[i] - 1`` for every ``i``, concatenated."""
    ends = np.cumsum(counts)
    total = int(ends[-1]) if len(ends) else 0
    return np.arange(total, dtype=np.int64) + np.repeat(starts - (ends - counts), counts)


class TokenBatch:
    """The ids of many texts: one flat id array (``uint32`` from ``encode_batch``) plus ``int64``
    offsets, ``n + 1`` of them.

    ``batch[i]`` is the ids of text ``i``, a numpy view (no copy); negative ``i`` counts from the
    end. ``batch[a:b]`` is a new ``TokenBatch`` that shares the id buffer; ``batch[[2, 0]]``
    (indices or a boolean mask) one that gathers a copy. Iterating gives the rows as views.

    >>> import ferrotok
    >>> batch = ferrotok.get_encoding("o200k_base").encode_batch(["hello world", "hi"])
    >>> batch
    TokenBatch(2 texts, 3 tokens)
    >>> batch[0].tolist(), batch.lengths.tolist(), batch.offsets.tolist()
    ([24912, 2375], [2, 1], [0, 2, 3])
    >>> ids, mask = batch.padded(side="left")
    >>> ids.tolist(), mask.tolist()
    ([[24912, 2375], [0, 3686]], [[1, 1], [0, 1]])
    """

    __slots__ = ("_ids", "_offsets")

    def __init__(self, ids: npt.ArrayLike, offsets: npt.ArrayLike) -> None:
        ids_arr = np.asarray(ids)
        if ids_arr.size == 0 and ids_arr.dtype.kind not in "iu":
            ids_arr = np.empty(0, dtype=np.uint32)
        if ids_arr.ndim != 1 or ids_arr.dtype.kind not in "iu":
            raise TypeError(
                f"ids must be a 1-D integer array, got shape {ids_arr.shape} dtype {ids_arr.dtype}"
            )
        offsets_arr = np.asarray(offsets)
        if offsets_arr.ndim != 1 or len(offsets_arr) == 0 or offsets_arr.dtype.kind not in "iu":
            raise TypeError(
                f"offsets must be a non-empty 1-D integer array, got shape {offsets_arr.shape} "
                f"dtype {offsets_arr.dtype}"
            )
        offsets_arr = offsets_arr.astype(np.int64, copy=False)
        if (
            offsets_arr[0] != 0
            or offsets_arr[-1] != len(ids_arr)
            or np.any(offsets_arr[1:] < offsets_arr[:-1])
        ):
            raise ValueError(
                f"offsets must rise from 0 to len(ids) = {len(ids_arr)}, "
                f"got {offsets_arr[0]} ... {offsets_arr[-1]} (or a decrease)"
            )
        self._ids = ids_arr
        self._offsets = offsets_arr

    # -- the ragged form --------------------------------------------------------------------

    @property
    def ids(self) -> npt.NDArray[Any]:
        """Every text's ids one after another (``uint32`` from ``encode_batch``)."""
        return self._ids

    @property
    def offsets(self) -> npt.NDArray[np.int64]:
        """``int64``, ``len(self) + 1`` entries: text ``i`` is ``ids[offsets[i]:offsets[i + 1]]``."""
        return self._offsets

    @property
    def lengths(self) -> npt.NDArray[np.int64]:
        """The number of ids of each text (``int64``)."""
        return np.diff(self._offsets)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, key: Any) -> Any:
        n = len(self)
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step == 1:
                stop = max(start, stop)
                a, b = self._offsets[start], self._offsets[stop]
                return TokenBatch(self._ids[a:b], self._offsets[start : stop + 1] - a)
            return self._take(np.arange(start, stop, step))
        try:
            i = operator.index(key)
        except TypeError:
            # indices or a boolean mask: numpy checks the bounds and shapes
            rows = np.asarray(key)
            if rows.size == 0 and rows.dtype.kind not in "iub":
                rows = rows.astype(np.intp)  # [] is a float64 array
            return self._take(np.arange(n)[rows])
        if not -n <= i < n:
            raise IndexError(f"TokenBatch index {i} is out of range for {n} texts")
        if i < 0:
            i += n
        return self._ids[self._offsets[i] : self._offsets[i + 1]]

    def _take(self, rows: npt.NDArray[np.intp]) -> TokenBatch:
        rows = np.asarray(rows).reshape(-1)
        counts = self.lengths[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return TokenBatch(self._ids[_gather_positions(self._offsets[:-1][rows], counts)], offsets)

    def __iter__(self) -> Iterator[npt.NDArray[Any]]:
        ids = self._ids
        for a, b in itertools.pairwise(self._offsets.tolist()):
            yield ids[a:b]

    def __repr__(self) -> str:
        return f"TokenBatch({len(self)} texts, {len(self._ids)} tokens)"

    def __reduce__(self) -> tuple[Any, ...]:
        return (TokenBatch, (self._ids, self._offsets))

    def tolist(self) -> list[list[int]]:
        """The ids of each text as a list of Python ints (one list per text)."""
        flat = self._ids.tolist()
        return [flat[a:b] for a, b in itertools.pairwise(self._offsets.tolist())]

    # -- padded 2-D forms -------------------------------------------------------------------

    def padded(
        self,
        max_length: int | None = None,
        *,
        pad_id: int = 0,
        side: Literal["right", "left"] = "right",
        truncation: bool = True,
        pad_to_multiple_of: int | None = None,
        dtype: npt.DTypeLike = np.int64,
    ) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """``(ids, attention_mask)``: 2-D arrays of shape ``(len(self), width)``.

        Row ``i`` holds the ids of text ``i`` then ``pad_id`` (``side="right"``, for encoders),
        or ``pad_id`` then the ids (``side="left"``, for decoders that generate after the last
        token). ``attention_mask`` is 1 on ids and 0 on padding, in the same ``dtype`` as
        ``ids`` (``int64`` by default, what PyTorch models take).

        ``width`` is ``max_length`` when given (a fixed shape), else the longest row; either is
        then rounded up to a multiple of ``pad_to_multiple_of``. Rows longer than
        ``max_length`` keep their first ``max_length`` ids (truncation drops the end, whatever
        ``side``); with ``truncation=False`` such a row raises ``ValueError`` naming it.

        Vectorized: memory is a few bytes per cell of the ``(n, width)`` result.
        """
        if side not in ("right", "left"):
            raise ValueError(f"side must be 'right' or 'left', got {side!r}")
        out_dtype = np.dtype(dtype)
        if out_dtype.kind not in "iu":
            raise TypeError(f"dtype must be an integer type, got {out_dtype}")
        info = np.iinfo(out_dtype)
        pad_id = operator.index(pad_id)
        if not info.min <= pad_id <= info.max:
            raise ValueError(f"pad_id {pad_id} does not fit in {out_dtype}")
        lengths = self.lengths
        n = len(self)
        longest = int(lengths.max()) if n else 0
        if max_length is None:
            width = longest
        else:
            max_length = operator.index(max_length)
            if max_length < 0:
                raise ValueError(f"max_length must be >= 0, got {max_length}")
            if longest > max_length:
                if not truncation:
                    row = int(np.argmax(lengths > max_length))
                    raise ValueError(
                        f"row {row} has {int(lengths[row])} tokens, more than max_length={max_length} "
                        "(pass truncation=True to keep its first max_length tokens)"
                    )
                lengths = np.minimum(lengths, max_length)
            width = max_length
        if pad_to_multiple_of is not None:
            multiple = operator.index(pad_to_multiple_of)
            if multiple <= 0:
                raise ValueError(f"pad_to_multiple_of must be > 0, got {multiple}")
            width = -(-width // multiple) * multiple

        # The kept ids, in row order; the cells they go to, in the same row-major order.
        if max_length is not None and longest > max_length:
            kept = self._ids[_gather_positions(self._offsets[:-1], lengths)]
        else:
            kept = self._ids
        _check_fits(kept, out_dtype)
        cols = np.arange(width, dtype=np.int64)
        if side == "right":
            mask = cols < lengths[:, None]
        else:
            mask = cols >= (width - lengths)[:, None]
        ids = np.full((n, width), pad_id, dtype=out_dtype)
        ids[mask] = kept
        return ids, mask.astype(out_dtype)

    def to_torch(
        self,
        max_length: int | None = None,
        *,
        padded: bool = True,
        pad_id: int = 0,
        side: Literal["right", "left"] = "right",
        truncation: bool = True,
        pad_to_multiple_of: int | None = None,
        dtype: Any = None,
    ) -> tuple[Any, Any]:
        """:meth:`padded` as PyTorch tensors: ``(input_ids, attention_mask)``, made from the
        numpy arrays without a copy. ``dtype`` is a torch (or numpy) integer dtype, default
        ``torch.int64``.

        With ``padded=False``: ``(ids, offsets)``, the ragged form as 1-D tensors: ``ids`` is
        converted to ``dtype`` (a copy: torch has little ``uint32`` support), ``offsets`` is
        ``int64`` and shares memory with :attr:`offsets`. The padding arguments are then unused.

        Needs PyTorch (``pip install torch``); ferrotok itself does not depend on it.
        """
        try:
            import torch
        except ImportError as exc:
            raise ImportError("TokenBatch.to_torch() needs PyTorch: pip install torch") from exc
        if dtype is None:
            np_dtype = np.dtype(np.int64)
        elif isinstance(dtype, torch.dtype):
            np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
        else:
            np_dtype = np.dtype(dtype)
        if not padded:
            ids = self._ids.astype(_check_fits(self._ids, np_dtype))  # a copy, as documented
            return torch.from_numpy(ids), torch.from_numpy(self._offsets)
        ids, mask = self.padded(
            max_length,
            pad_id=pad_id,
            side=side,
            truncation=truncation,
            pad_to_multiple_of=pad_to_multiple_of,
            dtype=np_dtype,
        )
        return torch.from_numpy(ids), torch.from_numpy(mask)

    def to_arrow(self) -> Any:
        """The batch as a ``pyarrow.LargeListArray`` of ``uint32`` that shares this batch's
        buffers (no copy): one list per text, e.g. a column for ``pyarrow.Table`` or a
        Hugging Face ``datasets.Dataset``.

        Needs pyarrow (``pip install pyarrow``); ferrotok itself does not depend on it.
        """
        try:
            import pyarrow as pa
        except ImportError as exc:
            raise ImportError("TokenBatch.to_arrow() needs pyarrow: pip install pyarrow") from exc
        return pa.LargeListArray.from_arrays(pa.array(self._offsets), pa.array(self._ids))


# -- anything batch-like, back to the ragged form ----------------------------------------------


def _is_torch(obj: Any) -> bool:
    return hasattr(obj, "detach") and hasattr(obj, "cpu") and hasattr(obj, "numpy")


def _int_array(obj: Any, what: str) -> npt.NDArray[Any]:
    if _is_torch(obj):
        obj = obj.detach().cpu().numpy()
    arr = np.asarray(obj)
    if arr.size == 0 and arr.dtype.kind not in "iu":
        return np.empty(arr.shape, dtype=np.int64)
    if arr.dtype.kind == "f" and isinstance(obj, (list, tuple)):
        arr = np.asarray(obj, dtype=object)  # ints that numpy made floats: 1 beside 2**63
    if arr.dtype == object and arr.size and all(isinstance(x, int) for x in arr.flat):
        # ints too large for any integer dtype (2**64): name one, as decode() does
        far = next(x for x in arr.flat if not 0 <= x < 2**63)
        raise ValueError(f"token id {far} is not in the vocabulary")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{what} must be integers, got an array of dtype {arr.dtype}")
    return arr


def _as_int64(ids: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """``ids`` as contiguous ``int64``; a ``uint64`` id past its range is named, not wrapped.
    (Checked on the ids that are kept: masked-out padding may hold anything.)"""
    if ids.dtype == np.uint64 and ids.size and ids.max() > np.iinfo(np.int64).max:
        raise ValueError(f"token id {int(ids.max())} is not in the vocabulary")
    return np.ascontiguousarray(ids, dtype=np.int64)


def _check_fits(ids: npt.NDArray[Any], dtype: npt.DTypeLike) -> np.dtype[Any]:
    """The integer ``dtype``, once every id is known to fit in it (a cast must not wrap)."""
    out = np.dtype(dtype)
    if out.kind not in "iu":
        raise TypeError(f"dtype must be an integer type, got {out}")
    if ids.size and not np.can_cast(ids.dtype, out):
        info = np.iinfo(out)
        lo, hi = int(ids.min()), int(ids.max())
        if lo < info.min or hi > info.max:
            raise ValueError(f"token id {hi if hi > info.max else lo} does not fit in {out}")
    return out


def as_ragged(batch: Any, attention_mask: Any = None) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(ids, offsets)``, both ``int64``, of anything ``decode_batch`` takes:

    - a :class:`TokenBatch`;
    - a 2-D integer array (numpy or torch): every row, all of its positions, or with
      ``attention_mask`` (same shape) only the positions where the mask is non-zero, so
      padding is dropped whichever side it is on;
    - a list (or other iterable) of id sequences: lists, 1-D arrays or tensors, any lengths.
    """
    if isinstance(batch, TokenBatch):
        if attention_mask is not None:
            raise ValueError("attention_mask applies to a 2-D array of ids, not to a TokenBatch")
        return _as_int64(batch.ids), batch.offsets
    if isinstance(batch, np.ndarray) and batch.dtype == object and batch.ndim == 1 and attention_mask is None:
        batch = list(batch)  # an array of rows
    elif _is_torch(batch) or isinstance(batch, np.ndarray) or attention_mask is not None:
        arr = _int_array(batch, "token ids")
        if arr.ndim != 2:
            raise ValueError(
                f"a batch array must be 2-D (rows of ids), got shape {arr.shape}; "
                "decode one sequence with decode(), or pass a list of sequences"
            )
        n, width = arr.shape
        if attention_mask is None:
            ids = arr.reshape(-1)
            offsets = np.arange(n + 1, dtype=np.int64) * width
        else:
            if _is_torch(attention_mask):
                attention_mask = attention_mask.detach().cpu().numpy()
            mask = np.asarray(attention_mask)
            if mask.shape != arr.shape:
                raise ValueError(f"attention_mask has shape {mask.shape}, the ids have shape {arr.shape}")
            keep = mask != 0
            ids = arr[keep]
            offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(keep.sum(axis=1), out=offsets[1:])
        return _as_int64(ids), offsets
    if isinstance(batch, (str, bytes)):
        raise TypeError("decode_batch() expects a batch of token ids, not a str or bytes")
    rows = []
    for i, row in enumerate(batch):
        arr = _int_array(row, f"row {i}")
        if arr.ndim != 1:
            raise ValueError(f"row {i} must be 1-D, got shape {arr.shape}")
        rows.append(_as_int64(arr))  # before joining: int64 and uint64 rows would join as floats
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(np.array([len(r) for r in rows], dtype=np.int64), out=offsets[1:])
    ids = _as_int64(np.concatenate(rows)) if rows else np.empty(0, dtype=np.int64)
    return ids, offsets


# -- WordPiece batches: ids plus the other per-token arrays --------------------------------------


class EncodingBatch(TokenBatch):
    """What ``Tokenizer.encode_batch`` returns: a :class:`TokenBatch` of the ids (ragged, row
    ``i`` at ``ids[offsets[i]:offsets[i + 1]]``; indexing, slicing and :meth:`padded` work on
    the ids) plus the other per-token arrays, flat in the same layout: :attr:`type_ids`,
    :attr:`attention_mask`, :attr:`special_tokens_mask` (``uint32``), :attr:`token_offsets`
    (``int64``, ``(n_tokens, 2)``, character offsets) and :attr:`word_ids` (``int64``, -1 for
    added tokens).

    :meth:`arrays` gives the 2-D model inputs; when the tokenizer pads (every row the same
    length) they are views of the flat arrays. :meth:`encoding` gives row ``i`` as an
    ``Encoded``.

    >>> batch = tok.encode_batch(["hello world", "hi"])  # doctest: +SKIP
    >>> batch.arrays()["attention_mask"].tolist()  # doctest: +SKIP
    [[1, 1, 1, 1], [1, 1, 1, 0]]
    """

    __slots__ = ("_attention", "_special", "_token_offsets", "_tokenizer", "_type_ids", "_word_ids")

    def __init__(
        self,
        tokenizer: Any,
        ids: npt.NDArray[np.uint32],
        type_ids: npt.NDArray[np.uint32],
        attention_mask: npt.NDArray[np.uint32],
        special_tokens_mask: npt.NDArray[np.uint32],
        token_offsets: npt.NDArray[np.int64],
        word_ids: npt.NDArray[np.int64],
        offsets: npt.NDArray[np.int64],
    ) -> None:
        super().__init__(ids, offsets)
        n = len(self._ids)
        for name, arr in (
            ("type_ids", type_ids),
            ("attention_mask", attention_mask),
            ("special_tokens_mask", special_tokens_mask),
            ("token_offsets", token_offsets),
            ("word_ids", word_ids),
        ):
            if len(arr) != n:
                raise ValueError(f"{name} has {len(arr)} entries, ids have {n}")
        self._tokenizer = tokenizer
        self._type_ids = type_ids
        self._attention = attention_mask
        self._special = special_tokens_mask
        self._token_offsets = token_offsets
        self._word_ids = word_ids

    @property
    def type_ids(self) -> npt.NDArray[np.uint32]:
        """Flat type ids (0 first text, 1 second text of a pair), laid out like :attr:`ids`."""
        return self._type_ids

    @property
    def attention_mask(self) -> npt.NDArray[np.uint32]:
        """Flat attention mask (0 on padding), laid out like :attr:`ids`."""
        return self._attention

    @property
    def special_tokens_mask(self) -> npt.NDArray[np.uint32]:
        """Flat mask of the tokens the template or padding added."""
        return self._special

    @property
    def token_offsets(self) -> npt.NDArray[np.int64]:
        """``(n_tokens, 2)`` character offsets of every token into its own text."""
        return self._token_offsets

    @property
    def word_ids(self) -> npt.NDArray[np.int64]:
        """Flat word index of every token (-1 for added tokens)."""
        return self._word_ids

    def __repr__(self) -> str:
        return f"EncodingBatch({len(self)} texts, {len(self._ids)} tokens)"

    def __reduce__(self) -> tuple[Any, ...]:
        # the tokenizer is not pickled: a pickled batch comes back as its ids
        return (TokenBatch, (self._ids, self._offsets))

    def encoding(self, i: int) -> Any:
        """Row ``i`` as an ``Encoded`` (numpy views, no copy)."""
        from .tokenizer import Encoded

        n = len(self)
        i = operator.index(i)
        if not -n <= i < n:
            raise IndexError(f"EncodingBatch index {i} is out of range for {n} texts")
        if i < 0:
            i += n
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        return Encoded(
            self._tokenizer,
            self._ids[a:b],
            self._type_ids[a:b],
            self._attention[a:b],
            self._special[a:b],
            self._token_offsets[a:b],
            self._word_ids[a:b],
        )

    @property
    def encodings(self) -> list[Any]:
        """Every row as an ``Encoded``."""
        return [self.encoding(i) for i in range(len(self))]

    def arrays(self, *, dtype: npt.DTypeLike = np.int64) -> dict[str, npt.NDArray[Any]]:
        """The 2-D model inputs ``{"input_ids", "token_type_ids", "attention_mask"}``, shape
        ``(len(self), width)``, in ``dtype`` (``int64``, what PyTorch models take).

        Rows the tokenizer padded are used as they are; rows of different lengths (padding
        disabled) are padded on the right to the longest with id 0, type 0 and mask 0.
        """
        lengths = self.lengths
        n = len(self)
        if n and np.all(lengths == lengths[0]):
            width = int(lengths[0])

            def grid(flat: npt.NDArray[Any]) -> npt.NDArray[Any]:
                return flat.reshape(n, width).astype(_check_fits(flat, dtype), copy=False)

        else:

            def grid(flat: npt.NDArray[Any]) -> npt.NDArray[Any]:
                return TokenBatch(flat, self._offsets).padded(dtype=dtype)[0]

        return {
            "input_ids": grid(self._ids),
            "token_type_ids": grid(self._type_ids),
            "attention_mask": grid(self._attention),
        }
