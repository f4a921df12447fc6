"""WordPiece (BERT family) tokenizers with Hugging Face tokenizers' semantics and numpy outputs.

>>> import ferrotok
>>> tok = ferrotok.Tokenizer.from_file("tokenizer.json")  # doctest: +SKIP
>>> enc = tok.no_padding().encode("Hello, world!")  # doctest: +SKIP
>>> enc.tokens  # doctest: +SKIP
['[CLS]', 'hello', ',', 'world', '!', '[SEP]']
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import _core
from .batch import EncodingBatch
from .encoding import IdsLike, _as_ids, _check_threads, _read_text

__all__ = ["Encoded", "Tokenizer"]

_STRATEGIES = ("longest_first", "only_first", "only_second")


class Encoded:
    """One encoded text (or pair): numpy arrays, one entry per token.

    - ``ids`` (``uint32``): token ids, what the embedding looks up;
    - ``type_ids`` (``uint32``): 0 for the first text, 1 for the second of a pair;
    - ``attention_mask`` (``uint32``): 1 on tokens, 0 on padding;
    - ``special_tokens_mask`` (``uint32``): 1 on tokens the template or padding added;
    - ``offsets`` (``int64``, shape ``(n, 2)``): ``[start, end)`` CHARACTER offsets of each
      token in the text it came from (``(0, 0)`` for added tokens), as Hugging Face's ``encode``;
    - ``word_ids`` (``int64``): the word each token belongs to, ``-1`` for added tokens;
    - ``tokens`` (``list[str]``): the token strings, made on first access (a Unigram model's
      unknown token is its unk token, where HF gives the unknown text).

    >>> enc = tok.no_padding().encode("tokenization")  # doctest: +SKIP
    >>> enc.tokens, enc.offsets.tolist()  # doctest: +SKIP
    (['[CLS]', 'token', '##ization', '[SEP]'], [[0, 0], [0, 5], [5, 12], [0, 0]])
    """

    __slots__ = (
        "_tokenizer",
        "_tokens",
        "attention_mask",
        "ids",
        "offsets",
        "special_tokens_mask",
        "type_ids",
        "word_ids",
    )

    def __init__(
        self,
        tokenizer: Tokenizer,
        ids: npt.NDArray[np.uint32],
        type_ids: npt.NDArray[np.uint32],
        attention_mask: npt.NDArray[np.uint32],
        special_tokens_mask: npt.NDArray[np.uint32],
        offsets: npt.NDArray[np.int64],
        word_ids: npt.NDArray[np.int64],
    ) -> None:
        self._tokenizer = tokenizer
        self._tokens: list[str] | None = None
        self.ids = ids
        self.type_ids = type_ids
        self.attention_mask = attention_mask
        self.special_tokens_mask = special_tokens_mask
        self.offsets = offsets
        self.word_ids = word_ids

    @property
    def tokens(self) -> list[str]:
        """The token strings (padding shows as the pad token)."""
        if self._tokens is None:
            self._tokens = self._tokenizer._tokens_of(self.ids, self.attention_mask)
        return self._tokens

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"Encoded({len(self)} tokens: {self.ids.tolist()[:8]}{'...' if len(self) > 8 else ''})"


class Tokenizer:
    """A Hugging Face ``tokenizer.json`` tokenizer, identical to ``tokenizers`` on the same file
    (ids, offsets, type ids, masks and word ids): WordPiece (BERT family), or the BPE and
    Unigram models of converted SentencePiece models (Llama, Mistral; T5, ALBERT, XLM-R).
    Byte-level BPE files (GPT-2 family) are :class:`Encoding` s instead.

    Immutable and thread-safe: :meth:`no_truncation`, :meth:`no_padding`,
    :meth:`enable_truncation` and :meth:`enable_padding` return modified COPIES (sharing the
    vocabulary); the GIL is released while Rust works.

    >>> tok = Tokenizer.from_file("tokenizer.json").no_padding()  # doctest: +SKIP
    >>> tok.encode("Hello world").ids.tolist()  # doctest: +SKIP
    [101, 7592, 2088, 102]
    >>> tok.decode([101, 7592, 2088, 102])  # doctest: +SKIP
    'hello world'
    """

    __slots__ = ("_core", "_source", "_table")

    def __init__(self, core: _core.CoreTokenizer, source: tuple[Any, ...]) -> None:
        self._core = core
        # what the vocabulary was built from, for pickling: ("json", text, origin) or
        # ("vocab", text, origin, options)
        self._source = source
        self._table: list[str | None] | None = None

    def _with(self, core: _core.CoreTokenizer) -> Tokenizer:
        return Tokenizer(core, self._source)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Loads a Hugging Face ``tokenizer.json``, with either
        - a WordPiece model, the BERT normalizer (or none) and pre-tokenizer and a WordPiece
          decoder, or
        - a BPE model over characters (``byte_fallback``, ``unk_token``, ``fuse_unk``) or a
          Unigram model (``unk_id``, ``byte_fallback``), the ``Precompiled``, ``Replace``,
          ``Prepend`` and ``Strip`` normalizers, the ``WhitespaceSplit`` and ``Metaspace``
          pre-tokenizers (each optional), and a chain of ``Replace``, ``ByteFallback``,
          ``Fuse``, ``Strip`` and ``Metaspace`` decoders, as transformers writes them for
          SentencePiece models;

        and a ``TemplateProcessing`` / ``BertProcessing`` post-processor (or none). Its
        truncation and padding are honoured.

        Any other component raises ``ValueError`` naming it; a missing file
        ``FileNotFoundError``.

        >>> tok = Tokenizer.from_file("bert-base-uncased/tokenizer.json")  # doctest: +SKIP
        """
        origin = os.fspath(path)
        text = _read_text(origin)
        return cls(_core.CoreTokenizer.from_json(text, origin), ("json", text, origin))

    @classmethod
    def from_str(cls, json: str, *, origin: str = "<string>") -> Tokenizer:
        """Like :meth:`from_file`, from the text of a ``tokenizer.json``."""
        if not isinstance(json, str):
            raise TypeError(f"json must be a str, got {type(json).__name__}")
        return cls(_core.CoreTokenizer.from_json(json, origin), ("json", json, origin))

    @classmethod
    def from_vocab(
        cls,
        path: str | os.PathLike[str],
        *,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        clean_text: bool = True,
        handle_chinese_chars: bool = True,
        unk_token: str = "[UNK]",
        sep_token: str = "[SEP]",
        cls_token: str = "[CLS]",
        pad_token: str = "[PAD]",
        mask_token: str = "[MASK]",
        wordpieces_prefix: str = "##",
        max_input_chars_per_word: int = 100,
    ) -> Tokenizer:
        """Loads a BERT ``vocab.txt`` (one token per line, the id is the line number) into the
        tokenizer Hugging Face's ``BertWordPieceTokenizer(vocab, ...)`` builds: the same options,
        the special tokens found in the vocabulary split out of the text, ``[CLS] A [SEP] B
        [SEP]``; no truncation or padding. ``strip_accents=None`` follows ``lowercase``.

        >>> tok = Tokenizer.from_vocab("vocab.txt", lowercase=False)  # doctest: +SKIP
        """
        options = _vocab_options(
            lowercase=lowercase,
            strip_accents=strip_accents,
            clean_text=clean_text,
            handle_chinese_chars=handle_chinese_chars,
            unk_token=unk_token,
            sep_token=sep_token,
            cls_token=cls_token,
            pad_token=pad_token,
            mask_token=mask_token,
            wordpieces_prefix=wordpieces_prefix,
            max_input_chars_per_word=max_input_chars_per_word,
        )
        origin = os.fspath(path)
        return cls._from_vocab_text(_read_text(origin), origin, options)

    @classmethod
    def _from_vocab_text(cls, text: str, origin: str, options: dict[str, Any]) -> Tokenizer:
        o = options
        core = _core.CoreTokenizer.from_vocab_text(
            text,
            origin,
            o["lowercase"],
            o["strip_accents"],
            o["clean_text"],
            o["handle_chinese_chars"],
            o["unk_token"],
            o["sep_token"],
            o["cls_token"],
            o["pad_token"],
            o["mask_token"],
            o["wordpieces_prefix"],
            o["max_input_chars_per_word"],
        )
        return cls(core, ("vocab", text, origin, dict(options)))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._source, self.truncation, self.padding))

    def __repr__(self) -> str:
        return f"<Tokenizer {self._core.model_type} vocab_size={self.vocab_size}>"

    # -- settings: modified copies --------------------------------------------------------------

    @property
    def truncation(self) -> dict[str, Any] | None:
        """The truncation in force, as Hugging Face shows it, or ``None``."""
        t = self._core.truncation
        if t is None:
            return None
        return {"max_length": t[0], "strategy": t[1], "stride": t[2], "direction": t[3]}

    @property
    def padding(self) -> dict[str, Any] | None:
        """The padding in force (``length`` ``None``: the batch's longest), or ``None``."""
        p = self._core.padding
        if p is None:
            return None
        return {
            "length": p[0],
            "direction": p[1],
            "pad_to_multiple_of": p[2],
            "pad_id": p[3],
            "pad_type_id": p[4],
            "pad_token": p[5],
        }

    def no_truncation(self) -> Tokenizer:
        """A copy that does not truncate."""
        return self._with(self._core.with_truncation(None))

    def enable_truncation(
        self,
        max_length: int,
        *,
        stride: int = 0,
        strategy: Literal["longest_first", "only_first", "only_second"] = "longest_first",
        direction: Literal["right", "left"] = "right",
    ) -> Tokenizer:
        """A copy that truncates to ``max_length`` ids, special tokens included (HF's rules:
        ``longest_first`` shortens the longer text of a pair first). ``stride`` is accepted for
        compatibility; overflowing windows are not returned.
        """
        max_length = _non_negative(max_length, "max_length")
        stride = _non_negative(stride, "stride")
        if strategy not in _STRATEGIES:
            raise ValueError(f"strategy must be one of {_STRATEGIES}, got {strategy!r}")
        return self._with(self._core.with_truncation(max_length, strategy, stride, direction))

    def no_padding(self) -> Tokenizer:
        """A copy that does not pad."""
        return self._with(self._core.with_padding(False))

    def enable_padding(
        self,
        *,
        direction: Literal["right", "left"] = "right",
        pad_id: int = 0,
        pad_type_id: int = 0,
        pad_token: str = "[PAD]",
        length: int | None = None,
        pad_to_multiple_of: int | None = None,
    ) -> Tokenizer:
        """A copy that pads: to ``length`` ids, or (``None``) to the longest of each batch;
        either rounded up to a multiple of ``pad_to_multiple_of``.

        >>> tok.enable_padding(length=8).encode("hi").attention_mask.tolist()  # doctest: +SKIP
        [1, 1, 1, 0, 0, 0, 0, 0]
        """
        if length is not None:
            length = _non_negative(length, "length")
        if pad_to_multiple_of is not None:
            pad_to_multiple_of = _non_negative(pad_to_multiple_of, "pad_to_multiple_of")
        return self._with(
            self._core.with_padding(
                True,
                length,
                direction,
                pad_to_multiple_of,
                _non_negative(pad_id, "pad_id", below=2**32),
                _non_negative(pad_type_id, "pad_type_id", below=2**32),
                pad_token,
            )
        )

    # -- vocabulary -----------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of tokens, added tokens included (HF's ``get_vocab_size()``)."""
        return self._core.vocab_size

    @property
    def model_type(self) -> str:
        """The file's model: ``"WordPiece"``, ``"BPE"`` or ``"Unigram"``."""
        return self._core.model_type

    def get_vocab(self) -> dict[str, int]:
        """``{token: id}`` of the whole vocabulary, added tokens included."""
        return dict(self._core.vocab())

    def save_vocab(self, path: str | os.PathLike[str]) -> None:
        """Writes the vocabulary as a BERT ``vocab.txt``: one token per line, the line number
        is the id. :meth:`from_vocab` reads it back (with the normalizer options given there).

        >>> tok.save_vocab("vocab.txt")  # doctest: +SKIP
        """
        if self.model_type != "WordPiece":
            raise ValueError(f"a vocab.txt holds a WordPiece vocabulary; this is a {self.model_type} model")
        table = self._id_table()
        missing = [i for i, t in enumerate(table) if t is None]
        if missing:
            raise ValueError(f"id {missing[0]} has no token: a vocab.txt cannot hold a gap")
        with open(os.fspath(path), "w", encoding="utf-8") as f:
            f.write("".join(t + "\n" for t in table))

    def id_to_token(self, id: int) -> str | None:
        """The token of ``id``, or ``None``."""
        return self._core.id_to_token(int(id))

    def token_to_id(self, token: str) -> int | None:
        """The id of ``token``, or ``None``."""
        _check_str(token, "token")
        return self._core.token_to_id(token)

    def _id_table(self) -> list[str | None]:
        """Token of each id (cached: the vocabulary never changes)."""
        if self._table is None:
            self._table = self._core.id_to_token_table()
        return self._table

    def _tokens_of(self, ids: npt.NDArray[Any], attention_mask: npt.NDArray[Any]) -> list[str]:
        table = self._id_table()
        pad = self._core.padding
        pad_token = pad[5] if pad is not None else "[PAD]"
        n = len(table)
        # padding first: the pad id need not be in the vocabulary
        return [
            pad_token if not m else (table[i] or "") if i < n else ""
            for i, m in zip(ids.tolist(), attention_mask.tolist(), strict=True)
        ]

    # -- encoding -------------------------------------------------------------------------------

    def encode(self, text: str, text_pair: str | None = None, *, add_special_tokens: bool = True) -> Encoded:
        """Encodes a text, or a pair of texts, as Hugging Face's ``Tokenizer.encode``: the
        tokenizer's truncation, the ``[CLS] ... [SEP]`` template (unless
        ``add_special_tokens=False``), then its padding.

        >>> tok.encode("hello", "world").type_ids.tolist()  # doctest: +SKIP
        [0, 0, 0, 1, 1]
        """
        _check_str(text, "text")
        if text_pair is not None:
            _check_str(text_pair, "text_pair")
        return Encoded(self, *self._core.encode(text, text_pair, bool(add_special_tokens)))

    def encode_batch(
        self,
        inputs: Iterable[str] | Iterable[tuple[str, str]],
        *,
        add_special_tokens: bool = True,
        num_threads: int | None = None,
    ) -> EncodingBatch:
        """Encodes many texts, or ``(text, text_pair)`` tuples, on a thread pool (all cores, or
        ``num_threads``, capped by the cores and ``FERROTOK_NUM_THREADS``). Padding, when enabled, applies to
        the batch as in HF (to the longest row, or to the fixed length).

        Returns an :class:`EncodingBatch`: ragged flat arrays with row offsets, and 2-D arrays
        through :meth:`EncodingBatch.arrays`.

        >>> batch = tok.encode_batch([("a question", "a context"), ("another", "one")])  # doctest: +SKIP
        >>> batch.arrays()["input_ids"].shape  # doctest: +SKIP
        (2, 128)
        """
        if isinstance(inputs, (str, bytes)):
            raise TypeError("inputs must be an iterable of str or (str, str) tuples, not a single str")
        _check_threads(num_threads)
        texts: list[str] = []
        pairs: list[str] = []
        kinds = set()
        for i, item in enumerate(inputs):
            if isinstance(item, str):
                texts.append(item)
                kinds.add(1)
            elif isinstance(item, (tuple, list)) and len(item) == 2:
                a, b = item
                _check_str(a, f"inputs[{i}][0]")
                _check_str(b, f"inputs[{i}][1]")
                texts.append(a)
                pairs.append(b)
                kinds.add(2)
            else:
                raise TypeError(f"inputs[{i}] is {type(item).__name__}, not str or a (str, str) pair")
        if kinds == {1, 2}:
            raise ValueError("a batch holds single texts or pairs, not both")
        arrays, row_offsets = self._core.encode_batch(
            texts, pairs if kinds == {2} else None, bool(add_special_tokens), num_threads
        )
        return EncodingBatch(self, *arrays, row_offsets)

    def decode(self, ids: IdsLike, skip_special_tokens: bool = True) -> str:
        """Text of ``ids`` as Hugging Face's WordPiece decoder gives it: ``##`` pieces glued to
        the previous one, spaces before punctuation and contractions cleaned up, special
        tokens dropped unless ``skip_special_tokens=False``. Unlike HF, an id outside the
        vocabulary raises ``ValueError`` instead of vanishing.

        >>> tok.decode([101, 19204, 3989, 102])  # doctest: +SKIP
        'tokenization'
        """
        return self._core.decode(_as_ids(ids), bool(skip_special_tokens))

    def decode_batch(self, batch: Sequence[IdsLike], skip_special_tokens: bool = True) -> list[str]:
        """:meth:`decode` of each row."""
        return [self.decode(row, skip_special_tokens) for row in batch]


def _rebuild(
    source: tuple[Any, ...], truncation: dict[str, Any] | None, padding: dict[str, Any] | None
) -> Tokenizer:
    """Unpickles a :class:`Tokenizer`: the vocabulary from its source, then its settings."""
    if source[0] == "json":
        tok = Tokenizer.from_str(source[1], origin=source[2])
    else:
        tok = Tokenizer._from_vocab_text(source[1], source[2], source[3])
    tok = tok.no_truncation().no_padding()
    if truncation is not None:
        tok = tok.enable_truncation(
            truncation["max_length"],
            stride=truncation["stride"],
            strategy=truncation["strategy"],
            direction=truncation["direction"],
        )
    if padding is not None:
        tok = tok.enable_padding(**padding)
    return tok


def _vocab_options(
    *,
    lowercase: bool = True,
    strip_accents: bool | None = None,
    clean_text: bool = True,
    handle_chinese_chars: bool = True,
    unk_token: str = "[UNK]",
    sep_token: str = "[SEP]",
    cls_token: str = "[CLS]",
    pad_token: str = "[PAD]",
    mask_token: str = "[MASK]",
    wordpieces_prefix: str = "##",
    max_input_chars_per_word: int = 100,
) -> dict[str, Any]:
    """The options of a vocab.txt tokenizer (``Tokenizer.from_vocab``), checked."""
    return {
        "lowercase": bool(lowercase),
        "strip_accents": None if strip_accents is None else bool(strip_accents),
        "clean_text": bool(clean_text),
        "handle_chinese_chars": bool(handle_chinese_chars),
        "unk_token": unk_token,
        "sep_token": sep_token,
        "cls_token": cls_token,
        "pad_token": pad_token,
        "mask_token": mask_token,
        "wordpieces_prefix": wordpieces_prefix,
        "max_input_chars_per_word": _non_negative(max_input_chars_per_word, "max_input_chars_per_word"),
    }


def _check_str(value: Any, what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")


def _non_negative(value: Any, what: str, below: int = 2**63) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if not 0 <= value < below:
        raise ValueError(f"{what} must be >= 0 and < {below}, got {value}")
    return int(value)
