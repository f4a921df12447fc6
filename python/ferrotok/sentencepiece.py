"""SentencePiece models (``.model`` files): BPE with byte fallback (Llama, Mistral) and Unigram
(T5, ALBERT, XLNet), with the ``sentencepiece`` library's ids and numpy outputs.

>>> import ferrotok
>>> sp = ferrotok.SentencePiece.from_file("mistral.model")  # doctest: +SKIP
>>> sp.encode("Hello world", add_bos=True).tolist()  # doctest: +SKIP
[1, 22557, 1526]
>>> sp.decode([1, 22557, 1526])  # doctest: +SKIP
'Hello world'
"""

from __future__ import annotations

import itertools
import operator
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from .batch import TokenBatch, as_ragged
from .encoding import IdsLike, _as_ids, _check_threads
from .tokenizer import _check_str

__all__ = ["SentencePiece"]


class SentencePiece:
    """A SentencePiece model: the same normalization, segmentation, byte fallback and decoding as
    the ``sentencepiece`` library's ``SentencePieceProcessor``, faster, returning numpy arrays.

    Immutable and thread-safe; the GIL is released while Rust works; pickles by its model bytes.

    Subword regularization: ``encode(text, alpha=0.1)`` samples a segmentation. For Unigram
    models ``nbest_size`` picks from the ``nbest_size`` best (``-1``: from all, by
    forward-filtering backward-sampling); for BPE models it is BPE-dropout with merge-skip
    probability ``alpha``. Samples are reproducible with ``seed=``, but they are drawn with
    ferrotok's own generator: the same seed does not give sentencepiece's sample.

    >>> sp = SentencePiece.from_file("t5.model")  # doctest: +SKIP
    >>> sp.encode_as_pieces("Hello world")  # doctest: +SKIP
    ['▁Hello', '▁world']
    """

    __slots__ = ("_core", "_data", "_origin", "_table")

    def __init__(self, core: _core.CoreSentencePiece, data: bytes, origin: str) -> None:
        self._core = core
        self._data = data
        self._origin = origin
        self._table: list[tuple[str, float, str]] | None = None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> SentencePiece:
        """Loads a SentencePiece ``.model`` file (a ``ModelProto``). A file that is not one, or
        that is corrupt, raises ``ValueError`` naming it; a missing file ``FileNotFoundError``.
        """
        origin = os.fspath(path)
        with open(origin, "rb") as f:
            data = f.read()
        return cls.from_bytes(data, origin=origin)

    @classmethod
    def from_bytes(cls, data: bytes, *, origin: str = "<bytes>") -> SentencePiece:
        """Like :meth:`from_file`, from the serialized model (``model_proto=`` in sentencepiece)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        data = bytes(data)
        return cls(_core.CoreSentencePiece.from_bytes(data, origin), data, origin)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the model as a ``.model`` file (the serialized ``ModelProto``), which this class
        and the sentencepiece library load.

        >>> sp.save("my.model")  # doctest: +SKIP
        """
        with open(os.fspath(path), "wb") as f:
            f.write(self._data)

    @property
    def serialized_model_proto(self) -> bytes:
        """The model's bytes, as sentencepiece's ``serialized_model_proto()`` gives them."""
        return self._data

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._data, self._origin))

    def __repr__(self) -> str:
        return f"<SentencePiece {self.model_type} vocab_size={self.vocab_size} from {self._origin!r}>"

    # -- the vocabulary --------------------------------------------------------------------------

    @property
    def model_type(self) -> str:
        """``"bpe"`` or ``"unigram"``."""
        return self._core.model_type

    @property
    def vocab_size(self) -> int:
        """Number of pieces (sentencepiece's ``get_piece_size()``)."""
        return self._core.vocab_size

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def unk_id(self) -> int:
        return self._core.special_ids[0]

    @property
    def bos_id(self) -> int:
        """The BOS id, ``-1`` when the model has none (as sentencepiece)."""
        return _or_minus_one(self._core.special_ids[1])

    @property
    def eos_id(self) -> int:
        """The EOS id, ``-1`` when the model has none."""
        return _or_minus_one(self._core.special_ids[2])

    @property
    def pad_id(self) -> int:
        """The padding id, ``-1`` when the model has none."""
        return _or_minus_one(self._core.special_ids[3])

    @property
    def byte_fallback(self) -> bool:
        """Whether characters outside the vocabulary become ``<0xXX>`` byte pieces (else unk)."""
        return self._core.byte_fallback

    def _rows(self) -> list[tuple[str, float, str]]:
        if self._table is None:
            self._table = self._core.table()
        return self._table

    def id_to_piece(self, id: int) -> str:
        """The piece of ``id``; ``IndexError`` outside the vocabulary."""
        piece = self._core.id_to_piece(int(id))
        if piece is None:
            raise IndexError(f"piece id {id} is out of range (vocab_size = {self.vocab_size})")
        return piece

    def piece_to_id(self, piece: str) -> int:
        """The id of ``piece``; the unk id when the model does not have it (as sentencepiece)."""
        _check_str(piece, "piece")
        return self._core.piece_to_id(piece)

    def get_score(self, id: int) -> float:
        self.id_to_piece(id)
        return self._rows()[int(id)][1]

    def piece_type(self, id: int) -> str:
        """``NORMAL``, ``UNKNOWN``, ``CONTROL``, ``USER_DEFINED``, ``UNUSED`` or ``BYTE``."""
        self.id_to_piece(id)
        return self._rows()[int(id)][2]

    def is_control(self, id: int) -> bool:
        return self.piece_type(id) == "CONTROL"

    def is_unknown(self, id: int) -> bool:
        return self.piece_type(id) == "UNKNOWN"

    def is_byte(self, id: int) -> bool:
        return self.piece_type(id) == "BYTE"

    def get_vocab(self) -> dict[str, int]:
        """``{piece: id}`` for every piece."""
        return {piece: i for i, (piece, _, _) in enumerate(self._rows())}

    def normalize(self, text: str) -> str:
        """The normalized text the model segments (``▁`` for spaces, the dummy prefix added)."""
        _check_str(text, "text")
        return self._core.normalize(text)

    # -- encoding --------------------------------------------------------------------------------

    def encode(
        self,
        text: str,
        *,
        add_bos: bool = False,
        add_eos: bool = False,
        alpha: float | None = None,
        nbest_size: int = -1,
        seed: int | None = None,
    ) -> npt.NDArray[np.uint32]:
        """The ids of ``text`` (``uint32``), as sentencepiece's ``encode(text)``; with ``alpha``,
        a sampled segmentation (see the class notes; ``seed=None`` draws a fresh one).

        >>> sp.encode("Hello", add_bos=True, add_eos=True).tolist()  # doctest: +SKIP
        [1, 22557, 2]
        """
        _check_str(text, "text")
        alpha, seed, nbest_size = _sampling(alpha, seed, nbest_size)
        return self._core.encode(text, bool(add_bos), bool(add_eos), alpha, nbest_size, seed)

    def encode_as_pieces(self, text: str, **options: Any) -> list[str]:
        """The pieces of ``text`` (``encode``'s options apply)."""
        rows = self._rows()
        return [rows[i][0] for i in self.encode(text, **options).tolist()]

    def encode_batch(
        self,
        texts: Iterable[str],
        *,
        add_bos: bool = False,
        add_eos: bool = False,
        num_threads: int | None = None,
        alpha: float | None = None,
        nbest_size: int = -1,
        seed: int | None = None,
    ) -> TokenBatch:
        """Encodes many texts on a thread pool (all cores, or ``num_threads``, capped by the
        cores and ``FERROTOK_NUM_THREADS``; under 32 KB of text, the calling thread) into a
        :class:`TokenBatch` (ragged; ``.padded()`` for 2-D ids and an attention mask). When
        sampling, text ``i`` uses the seed ``seed + i``.

        >>> sp.encode_batch(["Hello", "world"]).padded()[0].shape  # doctest: +SKIP
        (2, 1)
        """
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be an iterable of str, not a single str or bytes")
        _check_threads(num_threads)
        alpha, seed, nbest_size = _sampling(alpha, seed, nbest_size)
        ids, offsets = self._core.encode_batch(
            texts, bool(add_bos), bool(add_eos), num_threads, alpha, nbest_size, seed
        )
        return TokenBatch(ids, offsets)

    def nbest(self, text: str, n: int) -> list[tuple[npt.NDArray[np.uint32], float]]:
        """The ``n`` best segmentations of ``text`` with their scores (log probabilities), best
        first, as sentencepiece's ``nbest_encode`` (Unigram; a BPE model has just one).
        """
        _check_str(text, "text")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        return self._core.nbest(text, int(n))

    # -- decoding --------------------------------------------------------------------------------

    def decode(self, ids: IdsLike) -> str:
        """The text of ``ids``, as sentencepiece's ``decode``: ``▁`` back to spaces, byte pieces
        reassembled into UTF-8 (a byte that is not part of a whole character becomes U+FFFD,
        so the text is lossy there), control pieces dropped, unk shown as `` ⁇ ``. An id outside
        the vocabulary raises ``ValueError`` naming it.
        """
        return self._core.decode(_as_ids(ids))

    def decode_pieces(self, pieces: Sequence[str]) -> str:
        """The text of a list of pieces (each looked up with :meth:`piece_to_id`)."""
        return self.decode([self.piece_to_id(p) for p in pieces])

    def decode_batch(self, batch: TokenBatch | Sequence[IdsLike] | Any, mask: Any = None) -> list[str]:
        """:meth:`decode` of each row of a :class:`TokenBatch`, a list of id arrays, or 2-D ids
        with their attention mask."""
        ids, offsets = as_ragged(batch, mask)
        bounds = offsets.tolist()
        return [self.decode(ids[a:b]) for a, b in itertools.pairwise(bounds)]


def _rebuild(data: bytes, origin: str) -> SentencePiece:
    return SentencePiece.from_bytes(data, origin=origin)


def _or_minus_one(value: int | None) -> int:
    return -1 if value is None else value


def _sampling(alpha: float | None, seed: int | None, nbest_size: int) -> tuple[float | None, int, int]:
    if alpha is not None:
        alpha = float(alpha)
        if not 0.0 <= alpha <= 1e6:
            raise ValueError(f"alpha must be a number from 0 to 1e6, got {alpha}")
    nbest_size = operator.index(nbest_size)
    if not -(2**31) <= nbest_size < 2**31:
        raise ValueError(f"nbest_size must fit in 32 bits (-1: all segmentations), got {nbest_size}")
    if seed is None:
        seed = int.from_bytes(os.urandom(8), "little")
    elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an int in [0, 2**64), got {seed!r}")
    return alpha, int(seed), nbest_size
