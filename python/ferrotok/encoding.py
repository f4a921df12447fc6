"""Byte-level BPE encodings with tiktoken's semantics and numpy outputs."""

from __future__ import annotations

import _thread
import operator
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import _core
from .batch import TokenBatch, as_ragged

__all__ = ["Encoding", "get_encoding", "list_encodings"]

IdsLike = Sequence[int] | npt.NDArray[np.integer[Any]] | Any  # Any: a torch tensor


def _repair_surrogates(text: str) -> str:
    # Lone surrogates cannot be UTF-8 encoded. tiktoken repairs them through UTF-16: pairs
    # become the character they encode, lone halves become U+FFFD. Do the same.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _as_ids(ids: IdsLike) -> npt.NDArray[np.int64]:
    """Token ids from a list, any integer numpy array or a torch tensor, as int64."""
    if hasattr(ids, "detach") and hasattr(ids, "cpu"):  # torch.Tensor, without importing torch
        ids = ids.detach().cpu().numpy()
    arr = np.asarray(ids)
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        if arr.ndim == 1 and not isinstance(ids, np.ndarray):
            # Python ints beyond int64 make numpy fall back to float or object arrays
            for i in ids:
                if isinstance(i, int) and not 0 <= i < 2**63:
                    raise ValueError(f"token id {i} is not in the vocabulary")
        raise TypeError(f"token ids must be integers, got an array of dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"token ids must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == np.uint64 and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"token id {int(arr.max())} is not in the vocabulary")
    return np.ascontiguousarray(arr, dtype=np.int64)


class Encoding:
    """A byte-level BPE encoding: gives the same ids as tiktoken, as numpy arrays.

    Get an embedded one with :func:`get_encoding`, or load a rank file with
    :meth:`Encoding.from_tiktoken`. An ``Encoding`` is immutable: share it between threads,
    pickle it, use it after ``fork``.

    >>> enc = get_encoding("o200k_base")
    >>> enc.encode("hello world").tolist()
    [24912, 2375]
    >>> enc.decode([24912, 2375])
    'hello world'
    """

    __slots__ = ("_all_special", "_core", "_embedded", "_special", "name")

    def __init__(self, core: _core.CoreBPE, name: str, *, embedded: bool = False) -> None:
        self._core = core
        self.name = name
        self._embedded = embedded
        self._special: dict[str, int] = dict(core.special_tokens())
        self._all_special = list(self._special)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_tiktoken(
        cls,
        path: str | os.PathLike[str],
        *,
        pattern: str,
        special_tokens: Mapping[str, int] | None = None,
        name: str | None = None,
    ) -> Encoding:
        """Loads a ``.tiktoken`` rank file (``base64-token rank`` per line).

        ``pattern`` is the split regex, or the name of an embedded encoding to use its pattern.
        Errors name the file and line: ``FileNotFoundError`` for a missing file, ``ValueError``
        for bad base64, a bad rank, duplicate tokens or ranks.

        >>> enc = Encoding.from_tiktoken("my.tiktoken", pattern="cl100k_base",
        ...                              special_tokens={"<|endoftext|>": 100257})  # doctest: +SKIP
        """
        specials = _special_pairs(special_tokens)
        core = _core.CoreBPE.from_tiktoken(os.fspath(path), _pattern_of(pattern), specials)
        return cls(core, name if name is not None else os.path.basename(os.fspath(path)))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, name: str | None = None) -> Encoding:
        """Loads a byte-level BPE ``tokenizer.json`` (GPT-2 family: a ``Split`` regex then
        ``ByteLevel``, or ``ByteLevel`` with its own regex), such as :meth:`save` writes.

        Tokens are ranked by id, as in tiktoken, so the merges must be in id order; ids equal
        Hugging Face's when the merges list every two-token split of each token (as the files
        :meth:`save` and transformers' tiktoken converter write do). Other components
        (normalizers, byte fallback, dropout, ...) raise ``ValueError`` naming them.

        >>> enc = Encoding.from_file("tokenizer.json")  # doctest: +SKIP
        """
        origin = os.fspath(path)
        core = _core.CoreBPE.from_json(_read_text(origin), origin)
        return cls(core, name if name is not None else os.path.basename(origin))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes this encoding as a Hugging Face ``tokenizer.json``: HF ``tokenizers`` loads it
        and gives the same ids, and :meth:`from_file` reads it back (special tokens included).

        >>> enc.save("my-tokenizer.json")  # doctest: +SKIP
        """
        with open(os.fspath(path), "w", encoding="utf-8") as f:
            f.write(self._core.to_json())

    def save_tiktoken(self, path: str | os.PathLike[str]) -> None:
        """Writes the mergeable tokens as a ``.tiktoken`` rank file (``base64-token rank`` per
        line). As in tiktoken, the file holds neither the split pattern nor the special
        tokens: pass them back to :meth:`from_tiktoken`.

        >>> enc.save_tiktoken("my.tiktoken")  # doctest: +SKIP
        >>> Encoding.from_tiktoken("my.tiktoken", pattern=enc.pattern,
        ...                        special_tokens=enc.special_tokens)  # doctest: +SKIP
        """
        with open(os.fspath(path), "w", encoding="ascii") as f:
            f.write(self._core.to_tiktoken())

    def __reduce__(self) -> tuple[Any, ...]:
        if self._embedded:
            return (get_encoding, (self.name,))
        return (_from_compact, (self.name, self._core.to_compact(), self.pattern, self._special))

    def __repr__(self) -> str:
        return f"<Encoding {self.name!r} n_vocab={self.n_vocab}>"

    # -- properties ---------------------------------------------------------------------------

    @property
    def pattern(self) -> str:
        """The split pattern (a regex)."""
        return self._core.pattern

    @property
    def n_vocab(self) -> int:
        """One past the largest token id, special tokens included."""
        return self._core.n_vocab

    @property
    def max_token_value(self) -> int:
        """The largest token id."""
        return self._core.n_vocab - 1

    @property
    def eot_token(self) -> int:
        """The id of ``<|endoftext|>``."""
        return self._special["<|endoftext|>"]

    @property
    def special_tokens_set(self) -> set[str]:
        """The special tokens' strings."""
        return set(self._special)

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token string -> id."""
        return dict(self._special)

    def token_byte_values(self) -> list[bytes]:
        """The bytes of every mergeable token, in id order."""
        return self._core.token_byte_values()

    # -- encoding -----------------------------------------------------------------------------

    def _special_args(
        self,
        allowed_special: Literal["all"] | Collection[str],
        disallowed_special: Literal["all"] | Collection[str],
    ) -> tuple[list[str], list[str]]:
        """tiktoken's special-token arguments as two lists of strings."""
        allowed = self._all_special if allowed_special == "all" else list(allowed_special)
        if disallowed_special == "all":
            disallowed = [t for t in self._all_special if t not in allowed] if allowed else self._all_special
        else:
            disallowed = list(disallowed_special)
        return allowed, disallowed

    def encode_ordinary(self, text: str) -> npt.NDArray[np.uint32]:
        """Encodes ``text``, treating special tokens as ordinary text.

        >>> get_encoding("gpt2").encode_ordinary("<|endoftext|>").tolist()
        [27, 91, 437, 1659, 5239, 91, 29]
        """
        if not isinstance(text, str):
            raise TypeError(f"encode_ordinary() expects str, got {type(text).__name__}")
        try:
            return self._core.encode_ordinary(text)
        except UnicodeEncodeError:
            return self._core.encode_ordinary(_repair_surrogates(text))

    def encode(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | Collection[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> npt.NDArray[np.uint32]:
        """Encodes ``text`` with tiktoken's handling of special tokens.

        Special tokens in ``allowed_special`` become their ids; one in ``disallowed_special``
        (by default: every special token not allowed) raises ``ValueError`` naming it.

        >>> enc = get_encoding("cl100k_base")
        >>> enc.encode("hi<|endoftext|>", allowed_special="all").tolist()
        [6151, 100257]
        """
        if not isinstance(text, str):
            raise TypeError(f"encode() expects str, got {type(text).__name__}")
        allowed, disallowed = self._special_args(allowed_special, disallowed_special)
        for s in disallowed:
            # tiktoken refuses any listed string, special token or not
            if s not in self._special and s and s in text:
                raise ValueError(f"Encountered text corresponding to disallowed special token {s!r}.")
        try:
            return self._core.encode(text, allowed, disallowed)
        except UnicodeEncodeError:
            return self._core.encode(_repair_surrogates(text), allowed, disallowed)

    def encode_batch(
        self,
        texts: Iterable[str],
        *,
        num_threads: int | None = None,
        allowed_special: Literal["all"] | Collection[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> TokenBatch:
        """Encodes many texts at once on all cores. The calling thread holds the GIL only
        while it reads each string's UTF-8 form, which the other threads start encoding at once.

        Returns a :class:`TokenBatch`: one flat ``uint32`` id array plus ``int64`` offsets,
        with ``batch[i]`` the ids of ``texts[i]`` (a view) and ``batch.padded()`` for 2-D
        model input. ``num_threads`` (default: every core) is capped by the number of
        cores and the environment variable ``FERROTOK_NUM_THREADS``; a batch of under 32 KB
        of text is encoded on the calling thread (handing it to others would cost more). Ids
        equal ``encode`` on each text.

        >>> batch = get_encoding("o200k_base").encode_batch(["hello world", "hi"])
        >>> batch[0].tolist(), batch.lengths.tolist()
        ([24912, 2375], [2, 1])
        """
        if isinstance(texts, (str, bytes)):
            raise TypeError("encode_batch() expects an iterable of str, not a single str or bytes")
        _check_threads(num_threads)
        allowed, disallowed = self._special_args(allowed_special, disallowed_special)
        extra = [s for s in disallowed if s not in self._special and s]
        if extra:
            texts = list(texts)
            for text in texts:
                if isinstance(text, str):
                    for s in extra:
                        if s in text:
                            raise ValueError(
                                f"Encountered text corresponding to disallowed special token {s!r}."
                            )
        ids, offsets = self._core.encode_batch(texts, allowed, disallowed, num_threads)
        return TokenBatch(ids, offsets)

    def decode_batch(self, batch: Any, attention_mask: Any = None, *, errors: str = "replace") -> list[str]:
        """Decodes a :class:`TokenBatch`, a 2-D id array (padding dropped where
        ``attention_mask`` is 0), or a list of id sequences, to a list of strings."""
        ids, offsets = as_ragged(batch, attention_mask)
        return [b.decode("utf-8", errors=errors) for b in self._core.decode_ragged(ids, offsets)]

    def split(self, text: str) -> list[str]:
        """The pieces that the split pattern cuts ``text`` into (before merging); lone
        surrogates are repaired first, as :meth:`encode` does."""
        try:
            return self._core.split(text)
        except UnicodeEncodeError:
            return self._core.split(_repair_surrogates(text))

    # -- decoding -----------------------------------------------------------------------------

    def decode_bytes(self, ids: IdsLike) -> bytes:
        """The bytes of ``ids`` concatenated. An unknown id raises ``ValueError`` naming it."""
        return self._core.decode_bytes(_as_ids(ids))

    def decode(self, ids: IdsLike, errors: str = "replace") -> str:
        """Decodes ``ids`` to text.

        A token need not be whole UTF-8 (one character can span tokens), so decoding is lossy
        where ``ids`` cut a character: with ``errors="replace"`` (the default) such bytes
        become U+FFFD; ``errors="strict"`` raises ``UnicodeDecodeError`` instead.

        >>> get_encoding("o200k_base").decode([24912, 2375])
        'hello world'
        """
        return self._core.decode_bytes(_as_ids(ids)).decode("utf-8", errors=errors)

    def decode_single_token_bytes(self, token: int) -> bytes:
        """The bytes of one token. An unknown id raises ``ValueError`` naming it."""
        token = operator.index(token)  # an int (numpy's too), not "5" or 1.7
        if not 0 <= token < 2**63:
            raise ValueError(f"token id {token} is not in the vocabulary")
        return self._core.token_bytes(token)

    def decode_tokens_bytes(self, ids: IdsLike) -> list[bytes]:
        """The bytes of each token of ``ids``."""
        return self._core.tokens_bytes(_as_ids(ids))

    def encode_single_token(self, text_or_bytes: str | bytes) -> int:
        """The id of the single token with exactly this text (a special token or a mergeable one)."""
        if isinstance(text_or_bytes, str):
            data = text_or_bytes.encode("utf-8", "surrogatepass")
        elif isinstance(text_or_bytes, (bytes, bytearray, memoryview)):
            data = bytes(text_or_bytes)
        else:
            raise TypeError(f"expected str or bytes, got {type(text_or_bytes).__name__}")
        token = self._core.token_id(data)
        if token is None:
            # as tiktoken: a special token by its text, given as str or as UTF-8 bytes
            try:
                token = self._special.get(data.decode("utf-8"))
            except UnicodeDecodeError:
                pass
        if token is None:
            raise KeyError(text_or_bytes)
        return token


def _pattern_of(pattern: str) -> str:
    """``pattern``, or the split pattern of the embedded encoding it names."""
    return get_encoding(pattern).pattern if pattern in _core.embedded_encodings() else pattern


def _special_pairs(special_tokens: Mapping[str, int] | None) -> list[tuple[str, int]]:
    """``(text, id)`` of each special token, checked: errors name the token."""
    pairs = []
    for text, token in (special_tokens or {}).items():
        if not isinstance(text, str):
            raise TypeError(f"special token {text!r} must be a str")
        if isinstance(token, bool) or not isinstance(token, (int, np.integer)):
            raise TypeError(f"special token {text!r}: id must be an int, got {type(token).__name__}")
        if not 0 <= token < 2**32 - 1:
            raise ValueError(f"special token {text!r}: id {token} is not in [0, 2**32 - 1)")
        pairs.append((text, int(token)))
    return pairs


def _read_text(path: str) -> str:
    """The UTF-8 text of the file at ``path``; a ``ValueError`` naming it if it is not text."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); is it the right kind of file?"
        ) from None


def _check_threads(num_threads: int | None) -> None:
    if num_threads is not None and num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")


def _from_compact(name: str, data: bytes, pattern: str, special_tokens: Mapping[str, int]) -> Encoding:
    return Encoding(_core.CoreBPE.from_compact(data, pattern, list(special_tokens.items())), name)


_cache: dict[str, Encoding] = {}
# threading.Lock itself: `import threading` would add 2 ms to `import ferrotok`
_cache_lock = _thread.allocate_lock()


def list_encodings() -> list[str]:
    """Names of the encodings embedded in the package.

    >>> list_encodings()
    ['gpt2', 'r50k_base', 'cl100k_base', 'o200k_base']
    """
    return list(_core.embedded_encodings())


def get_encoding(name: str) -> Encoding:
    """An embedded encoding by name (loaded once, then cached); no file or network access.

    An unknown name raises ``ValueError`` listing the known ones.
    """
    enc = _cache.get(name)
    if enc is None:
        with _cache_lock:
            enc = _cache.get(name)
            if enc is None:
                enc = _cache[name] = Encoding(_core.CoreBPE.embedded(name), name, embedded=True)
    return enc
