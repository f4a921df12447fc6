"""Training new vocabularies from a corpus."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Union

from . import _core
from .encoding import Encoding, _check_threads, _pattern_of
from .sentencepiece import SentencePiece
from .tokenizer import Tokenizer, _vocab_options

__all__ = ["train_bpe", "train_unigram", "train_wordpiece"]

#: A progress callback: ``(stage, done, total)``; stage is ``"count"`` (done: bytes read,
#: total: bytes to read when known, else 0), ``"merge"`` (BPE, WordPiece: tokens so far and the
#: target) or ``"prune"`` (Unigram: pieces left after each EM round, and the target).
ProgressCallback = Callable[[str, int, int], object]
Data = Union[Iterable[Union[str, "os.PathLike[str]"]], "os.PathLike[str]", None]

# Documents are handed to Rust in batches of about this many bytes: large enough to keep
# every core busy, small enough that memory does not follow the corpus.
_BATCH_BYTES = 4 << 20


class _Progress:
    """Reports to a callback, or prints a line per stage to stderr (progress=True)."""

    def __init__(self, progress: bool | ProgressCallback) -> None:
        self._callback = progress if callable(progress) else None
        self._print = progress is True
        self._last = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self._callback is not None:
            self._callback(stage, done, total)
        elif self._print:
            unit = "MB" if stage == "count" else "tokens"
            scale = 1e6 if stage == "count" else 1
            line = f"ferrotok: {stage} {done / scale:,.0f}"
            line += f"/{total / scale:,.0f} {unit}" if total else f" {unit}"
            if line != self._last:
                sys.stderr.write("\r" + line)
                sys.stderr.flush()
                self._last = line

    def end(self) -> None:
        if self._print and self._last:
            sys.stderr.write("\n")
            self._last = ""


def _check_vocab_size(vocab_size: object) -> None:
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
        raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")


def _check_specials(special_tokens: Iterable[str]) -> list[str]:
    specials = list(special_tokens)
    for i, s in enumerate(specials):
        if not isinstance(s, str) or not s:
            raise ValueError(f"special_tokens[{i}] must be a non-empty str, got {s!r}")
    seen: set[str] = set()
    for s in specials:
        if s in seen:
            raise ValueError(f"special token {s!r} is listed twice")
        seen.add(s)
    return specials


def _check_min_frequency(min_frequency: int) -> None:
    if not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"min_frequency must be an int >= 1, got {min_frequency!r}")


def _files_of(files: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Paths as strings, each checked readable before any work starts."""
    paths = [os.fspath(f) for f in files]
    for p in paths:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p}: no such file")
        if not os.access(p, os.R_OK):
            raise PermissionError(f"{p}: not readable")
    return paths


def train_bpe(
    data: Data = None,
    vocab_size: int = 32000,
    *,
    files: Sequence[str | os.PathLike[str]] = (),
    pattern: str = "o200k_base",
    special_tokens: Iterable[str] = (),
    min_frequency: int = 2,
    num_threads: int | None = None,
    progress: bool | ProgressCallback = True,
    name: str = "trained",
) -> Encoding:
    """Trains a byte-level BPE vocabulary (tiktoken style) and returns it as an :class:`Encoding`.

    ``data`` is an iterable of documents (``str``); ``pathlib.Path`` items (or ``files=``, a
    list of paths) are UTF-8 text files, streamed. ``vocab_size`` counts the 256 byte tokens,
    the learned merges and the special tokens, which get the last ids. Training stops early if
    the most frequent pair occurs fewer than ``min_frequency`` times.

    Pieces come from ``pattern`` (an embedded encoding's name or a regex); each merge takes the
    most frequent adjacent pair, ties going to the smaller pair of ids (bytes are ranked in
    GPT-2's order, so Hugging Face's ``BpeTrainer`` breaks ties the same way). The result
    saves with :meth:`Encoding.save` (tokenizer.json) and :meth:`Encoding.save_tiktoken`.

    ``num_threads`` (default: every core, capped by the cores and ``FERROTOK_NUM_THREADS``) counts the pieces
    in parallel; the merges run on one thread. ``progress``: ``True`` prints to stderr; a
    callable gets ``(stage, done, total)``.

    >>> enc = train_bpe(["low lower lowest"] * 100, 260, progress=False)
    >>> enc.n_vocab
    260
    """
    _check_vocab_size(vocab_size)
    specials = _check_specials(special_tokens)
    if vocab_size < 256 + len(specials):
        raise ValueError(
            f"vocab_size {vocab_size} is below the base alphabet: 256 byte tokens"
            + (f" + {len(specials)} special tokens" if specials else "")
        )
    _check_min_frequency(min_frequency)
    _check_threads(num_threads)
    report = _Progress(progress)
    counter = _count(_core.PieceCounter(_pattern_of(pattern), num_threads), data, files, report)
    n_tokens = vocab_size - len(specials)
    core, _ = counter.train_bpe(n_tokens, min_frequency, specials, lambda n: report("merge", n, n_tokens))
    report.end()
    return Encoding(core, name)


def _count(
    counter: _core.PieceCounter, data: Data, files: Iterable[str | os.PathLike[str]], report: _Progress
) -> _core.PieceCounter:
    """Counts the pieces of ``files`` and ``data`` (checked before any work starts)."""
    if isinstance(data, (str, bytes)):
        raise TypeError(
            "data must be an iterable of documents (str) or of pathlib.Path files, not a single "
            "str or bytes; pass files=[...] for file names given as str"
        )
    if isinstance(data, os.PathLike):
        data = [data]
    paths = _files_of(files)
    if isinstance(data, (list, tuple)):
        _files_of(d for d in data if isinstance(d, os.PathLike))
        if data and all(isinstance(d, str) and "\n" not in d and os.path.isfile(d) for d in data):
            raise TypeError(
                "every item of data names a file, but str items are documents: pass the files "
                "as files=[...] or as pathlib.Path objects"
            )
        if not data and not paths:
            raise ValueError("the corpus is empty: no documents and no files")
    total = sum(os.path.getsize(p) for p in paths)
    for p in paths:
        counter.add_file(p)
        report("count", counter.n_bytes, total)
    if data is not None:
        _count_documents(counter, data, report)
    report.end()
    if counter.n_pieces == 0:
        raise ValueError("the corpus is empty: no text to train on")
    return counter


def _count_documents(counter: _core.PieceCounter, data: Iterable[object], report: _Progress) -> None:
    batch: list[str] = []
    size = 0
    for i, doc in enumerate(data):
        if isinstance(doc, os.PathLike):
            if not isinstance(data, (list, tuple)):
                _files_of([doc])  # lists were checked up front
            counter.add_file(os.fspath(doc))
            continue
        if not isinstance(doc, str):
            raise TypeError(f"data[{i}] is {type(doc).__name__}, not str or a path")
        batch.append(doc)
        size += len(doc)
        if size >= _BATCH_BYTES:
            counter.add_texts(batch)
            report("count", counter.n_bytes, 0)
            batch, size = [], 0
    if batch:
        counter.add_texts(batch)
        report("count", counter.n_bytes, 0)


BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_wordpiece(
    data: Data = None,
    vocab_size: int = 30000,
    *,
    files: Sequence[str | os.PathLike[str]] = (),
    lowercase: bool = True,
    strip_accents: bool | None = None,
    clean_text: bool = True,
    handle_chinese_chars: bool = True,
    special_tokens: Iterable[str] = BERT_SPECIAL_TOKENS,
    min_frequency: int = 2,
    limit_alphabet: int | None = 1000,
    wordpieces_prefix: str = "##",
    num_threads: int | None = None,
    progress: bool | ProgressCallback = True,
) -> Tokenizer:
    """Trains a WordPiece vocabulary (BERT style) and returns it as a :class:`Tokenizer`.

    Text goes through BERT's normalizer and pre-tokenizer with the options given (as
    Hugging Face's ``BertWordPieceTokenizer``); then, as HF's ``WordPieceTrainer``, BPE merges
    over the characters of each word, every character after the first carrying
    ``wordpieces_prefix``. The vocabulary is the special tokens, the ``limit_alphabet`` most
    frequent characters with and without the prefix, then the learned pieces, ``vocab_size``
    in all. ``data``, ``files``, ``min_frequency``, ``num_threads`` and ``progress`` are as
    for :func:`train_bpe`. Save it with :meth:`Tokenizer.save_vocab` (a ``vocab.txt``).

    >>> tok = train_wordpiece(["a lower lowest low"] * 50, 60, progress=False)
    >>> tok.encode("lowest", add_special_tokens=False).tokens
    ['lowest']
    """
    _check_vocab_size(vocab_size)
    specials = _check_specials(special_tokens)
    if "[UNK]" not in specials:
        raise ValueError("special_tokens must include the unknown token '[UNK]'")
    if vocab_size <= len(specials):
        raise ValueError(f"vocab_size {vocab_size} leaves no room beside {len(specials)} special tokens")
    _check_min_frequency(min_frequency)
    _check_threads(num_threads)
    if limit_alphabet is not None and limit_alphabet < 1:
        raise ValueError(f"limit_alphabet must be >= 1 or None, got {limit_alphabet}")
    if not wordpieces_prefix:
        raise ValueError("wordpieces_prefix must not be empty")
    options = _vocab_options(
        lowercase=lowercase,
        strip_accents=strip_accents,
        clean_text=clean_text,
        handle_chinese_chars=handle_chinese_chars,
        wordpieces_prefix=wordpieces_prefix,
    )
    report = _Progress(progress)
    counter = _count(
        _core.PieceCounter.bert(
            options["lowercase"],
            options["strip_accents"],
            options["clean_text"],
            options["handle_chinese_chars"],
            num_threads,
        ),
        data,
        files,
        report,
    )
    tokens = counter.train_wordpiece(
        vocab_size,
        min_frequency,
        specials,
        wordpieces_prefix,
        limit_alphabet,
        lambda n: report("merge", n, vocab_size),
    )
    report.end()
    return Tokenizer._from_vocab_text("\n".join(tokens) + "\n", "trained vocabulary", options)


def train_unigram(
    data: Data = None,
    vocab_size: int = 8000,
    *,
    files: Sequence[str | os.PathLike[str]] = (),
    special_tokens: Iterable[str] = (),
    character_coverage: float = 0.9995,
    max_piece_length: int = 16,
    seed_size: int = 1_000_000,
    split_by_number: bool = True,
    split_by_script: bool = True,
    num_threads: int | None = None,
    progress: bool | ProgressCallback = True,
) -> SentencePiece:
    """Trains a Unigram model as SentencePiece's trainer does and returns it as a
    :class:`SentencePiece` (save it with :meth:`SentencePiece.save`; sentencepiece loads it).

    Each line of each document is a sentence; words are its space-separated runs, each with the
    ``▁`` prefix. The seed vocabulary is every substring (up to ``max_piece_length`` characters,
    not across ``▁``, digits or scripts) seen twice, best ``seed_size`` by frequency times length;
    EM with SentencePiece's Bayesian update and pruning by likelihood loss then bring it to
    ``vocab_size`` pieces in all: ``<unk>``, ``<s>``, ``</s>``, ``special_tokens`` (user-defined
    pieces, matched in raw text) and the learned pieces. The characters that cover
    ``character_coverage`` of the text are always kept; rarer ones become ``<unk>``. The model
    normalizes by collapsing spaces only (SentencePiece's ``identity`` rule). ``data``,
    ``files``, ``num_threads`` and ``progress`` are as for :func:`train_bpe`.

    >>> sp = train_unigram(["the cat sat on the mat"] * 50, 16, progress=False)  # doctest: +SKIP
    >>> sp.encode_as_pieces("the cat")  # doctest: +SKIP
    ['▁the', '▁cat']
    """
    _check_vocab_size(vocab_size)
    specials = _check_specials(special_tokens)
    reserved = {"<unk>", "<s>", "</s>"}
    clash = [s for s in specials if s in reserved]
    if clash:
        raise ValueError(f"special token {clash[0]!r} collides with a meta piece (<unk>, <s>, </s>)")
    n_meta = 3 + len(specials)
    if vocab_size <= n_meta:
        raise ValueError(f"vocab_size {vocab_size} leaves no room beside {n_meta} meta and special pieces")
    if not 0 < character_coverage <= 1:
        raise ValueError(f"character_coverage must be in (0, 1], got {character_coverage}")
    if not isinstance(max_piece_length, int) or max_piece_length < 1:
        raise ValueError(f"max_piece_length must be an int >= 1, got {max_piece_length!r}")
    if not isinstance(seed_size, int) or seed_size < 1:
        raise ValueError(f"seed_size must be an int >= 1, got {seed_size!r}")
    _check_threads(num_threads)
    report = _Progress(progress)
    counter = _count(_core.PieceCounter.sentencepiece(num_threads), data, files, report)
    n_pieces = vocab_size - n_meta
    model, got = counter.train_unigram(
        n_pieces,
        specials,
        float(character_coverage),
        max_piece_length,
        seed_size,
        bool(split_by_number),
        bool(split_by_script),
        lambda n: report("prune", n, n_pieces),
    )
    report.end()
    if got < n_pieces:
        raise ValueError(
            f"vocab_size {vocab_size} is too high for this corpus: training kept {got + n_meta} pieces; "
            f"set vocab_size <= {got + n_meta}"
        )
    return SentencePiece.from_bytes(model, origin="trained unigram model")
