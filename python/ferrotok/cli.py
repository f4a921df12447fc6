"""The ``ferrotok`` command: encode text to token ids, decode ids to text, train vocabularies.

Examples::

    ferrotok encode notes.txt                        # the ids, space-separated, on one line
    echo "hello world" | ferrotok encode --count     # only the number of tokens
    ferrotok encode book.txt --encoding cl100k_base --out book.npy
    ferrotok encode chat.txt --allow-special         # "<|endoftext|>" becomes its id
    ferrotok decode book.npy                         # a .npy file of ids ...
    echo "24912 2375" | ferrotok decode              # ... or whitespace-separated integers
    ferrotok list                                    # the embedded encodings
    ferrotok train corpus/*.txt --vocab-size 32000 --out tokenizer.json      # byte-level BPE
    ferrotok train corpus.txt --model wordpiece --vocab-size 30000 --out vocab.txt
    ferrotok train corpus.txt --model unigram --vocab-size 16000 --out my.model

``encode`` and ``decode`` read FILE, or standard input when FILE is ``-`` or omitted; ``train``
reads its files, streamed. Text must be UTF-8. ``decode`` writes the text exactly, with no
newline added. Errors print one line, ``ferrotok: error: ...``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys

import numpy as np

from . import __version__, get_encoding, list_encodings, train_bpe, train_unigram, train_wordpiece

__all__ = ["main"]

DEFAULT_ENCODING = "o200k_base"
_NPY_MAGIC = b"\x93NUMPY"
_INT = re.compile(r"-?[0-9]+")


class _Error(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _read(path: str | None) -> bytes:
    if path is None or path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise _Error(f"no such file: {path}") from None
    except OSError as e:
        raise _Error(f"cannot read {path}: {e.strerror or e}") from None


def _name(path: str | None) -> str:
    return "standard input" if path is None or path == "-" else path


def _write(text: str) -> None:
    out = getattr(sys.stdout, "buffer", None)
    if out is None:
        sys.stdout.write(text)
    else:  # exact UTF-8 whatever the locale
        sys.stdout.flush()
        out.write(text.encode("utf-8"))
    sys.stdout.flush()


def _encode(args: argparse.Namespace) -> None:
    enc = get_encoding(args.encoding)
    data = _read(args.file)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Error(f"{_name(args.file)} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    ids = enc.encode(text, allowed_special="all") if args.allow_special else enc.encode_ordinary(text)
    if args.out is not None:
        try:
            with open(args.out, "wb") as f:
                np.save(f, ids)
        except OSError as e:
            raise _Error(f"cannot write {args.out}: {e.strerror or e}") from None
        print(f"{len(ids)} tokens -> {args.out}")
    elif args.count:
        print(len(ids))
    else:
        print(" ".join(map(str, ids.tolist())))


def _parse_ids(data: bytes, source: str, n_vocab: int) -> np.ndarray:
    if data.startswith(_NPY_MAGIC):
        try:
            return np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as e:
            raise _Error(f"{source}: not a readable .npy file ({e})") from None
    try:
        words = data.decode("utf-8").split()
    except UnicodeDecodeError:
        raise _Error(f"{source} is neither a .npy file nor whitespace-separated integers") from None
    ids = []
    for word in words:
        if not _INT.fullmatch(word):
            raise _Error(f"{source}: not a token id: {word!r}")
        token = int(word)
        if not 0 <= token < n_vocab:  # also keeps huge numbers out of int64 arrays
            raise _Error(f"token id {token} is not in the vocabulary (n_vocab = {n_vocab})")
        ids.append(token)
    return np.array(ids, dtype=np.int64)


def _decode(args: argparse.Namespace) -> None:
    enc = get_encoding(args.encoding)
    ids = _parse_ids(_read(args.file), _name(args.file), enc.n_vocab)
    _write(enc.decode(ids, errors="replace"))


def _train(args: argparse.Namespace) -> None:
    progress = not args.quiet
    common = {"files": args.files, "vocab_size": args.vocab_size, "progress": progress}
    if args.min_frequency is not None:
        if args.model == "unigram":
            raise _Error("--min-frequency applies to bpe and wordpiece only")
        common["min_frequency"] = args.min_frequency
    if args.special:  # else each trainer's own default
        common["special_tokens"] = args.special
    if args.model == "bpe":
        enc = train_bpe(pattern=args.pattern, **common)
        save = enc.save_tiktoken if args.out.endswith(".tiktoken") else enc.save
        save(args.out)
        size = enc.n_vocab
    elif args.model == "wordpiece":
        tok = train_wordpiece(**common)
        tok.save_vocab(args.out)
        size = tok.vocab_size
    else:
        sp = train_unigram(**common)
        sp.save(args.out)
        size = sp.vocab_size
    print(f"{args.model}: {size} tokens -> {args.out}")


def _list(args: argparse.Namespace) -> None:
    for name in list_encodings():
        print(name)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ferrotok",
        description="Byte-level BPE tokenization identical to tiktoken.",
        epilog="Errors print one line and exit with status 2.",
    )
    parser.add_argument("--version", action="version", version=f"ferrotok {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("file", nargs="?", metavar="FILE", help=f"{what} (default or '-': standard input)")
        p.add_argument(
            "--encoding", "-e", default=DEFAULT_ENCODING, help=f"encoding name (default: {DEFAULT_ENCODING})"
        )

    p = commands.add_parser("encode", help="text -> token ids")
    common(p, "UTF-8 text file")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--out", "-o", metavar="PATH", help="save the ids as a .npy file (uint32)")
    mode.add_argument("--count", "-c", action="store_true", help="print only the number of tokens")
    p.add_argument(
        "--allow-special", action="store_true", help="encode special tokens such as <|endoftext|> as such"
    )
    p.set_defaults(run=_encode)

    p = commands.add_parser("decode", help="token ids -> text")
    common(p, ".npy file or whitespace-separated integers")
    p.set_defaults(run=_decode)

    p = commands.add_parser("train", help="train a vocabulary from text files")
    p.add_argument("files", nargs="+", metavar="FILE", help="UTF-8 text files (streamed)")
    p.add_argument("--model", "-m", choices=("bpe", "wordpiece", "unigram"), default="bpe")
    p.add_argument("--vocab-size", "-n", type=int, required=True, help="tokens in all, specials included")
    p.add_argument(
        "--out",
        "-o",
        required=True,
        metavar="PATH",
        help="bpe: tokenizer.json (or a .tiktoken rank file); wordpiece: vocab.txt; unigram: .model",
    )
    p.add_argument(
        "--pattern",
        default=DEFAULT_ENCODING,
        help=f"bpe: split regex or encoding name (default: {DEFAULT_ENCODING})",
    )
    p.add_argument("--special", action="append", metavar="TOKEN", help="a special token (repeatable)")
    p.add_argument("--min-frequency", type=int, help="bpe, wordpiece: stop below this pair count (default 2)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    p.set_defaults(run=_train)

    p = commands.add_parser("list", help="list the embedded encodings")
    p.set_defaults(run=_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # --help / --version (0), usage errors (2)
        return e.code if isinstance(e.code, int) else 2
    try:
        args.run(args)
    except BrokenPipeError:  # e.g. `ferrotok encode big.txt | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (_Error, ValueError, TypeError, OSError) as e:
        message = " ".join(str(e).splitlines()) or type(e).__name__
        print(f"ferrotok: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
