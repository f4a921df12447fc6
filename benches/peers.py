"""Peer tokenizers for the ferrotok benchmark, built offline from rank files.

Every peer is constructed from the reference ``.tiktoken`` rank file (or, for
bpe-openai, from a copy bundled in its wheel that is checked against that file),
so nothing is downloaded at run time. Each encoder does *ordinary* encoding:
special-token text is never promoted to a special id, like
``tiktoken.Encoding.encode_ordinary``.

    peer = build_peer("splintr", "cl100k_base", Path("shared/vocab/cl100k_base.tiktoken.gz"))
    ids = peer.encode(text)               # one document
    rows = peer.encode_batch(docs)        # None when the peer has no batch API

``load_peer`` is the forgiving form: it returns only the single-document
encoder, or ``None`` with the reason stored in ``UNAVAILABLE``.

Ids come back in each library's native container (list, numpy array), because
converting would be charged to the peer's time; compare with ``list(a) == list(b)``.
Batch encoders use the library's own parallelism (rayon pools honour
``RAYON_NUM_THREADS``; tiktoken gets ``os.cpu_count()`` threads).

gigatoken, splintr, fastokens and tokenizers keep per-piece caches that persist
across calls, so a second pass over the same documents is faster (gigatoken's
several-fold): time a first pass on a freshly built peer, or report both.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Encoder = Callable[[str], Sequence[int]]
BatchEncoder = Callable[[list[str]], Sequence[Sequence[int]]]

PEERS = ("tiktoken", "tokenizers", "gigatoken", "fastokens", "splintr", "bpe-openai")
ENCODINGS = ("r50k_base", "cl100k_base", "o200k_base")
# gpt2 and r50k_base share ranks and pattern; the rank file is gpt2.tiktoken.gz.
ALIASES = {"gpt2": "r50k_base"}

# Verbatim from tiktoken_ext/openai_public.py (tiktoken 0.14): the rank files
# carry neither the split pattern nor the special tokens.
_R50K_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+"""
    r"""| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = (  # tiktoken writes it as "|".join of these lines
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"""
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?"""
    r"""|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"""
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?"""
    r"""|\p{N}{1,3}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n/]*"""
    r"""|\s*[\r\n]+"""
    r"""|\s+(?!\S)"""
    r"""|\s+"""
)
OFFICIAL_PATTERNS = {
    "r50k_base": _R50K_PAT,
    "cl100k_base": _CL100K_PAT,
    "o200k_base": _O200K_PAT,
}

SPECIAL_TOKENS: dict[str, dict[str, int]] = {
    "r50k_base": {"<|endoftext|>": 50256},
    "cl100k_base": {
        "<|endoftext|>": 100257,
        "<|fim_prefix|>": 100258,
        "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260,
        "<|endofprompt|>": 100276,
    },
    "o200k_base": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
}

UNAVAILABLE: dict[tuple[str, str], str] = {}
"""(peer, encoding) -> why ``load_peer`` returned None."""


class PeerUnavailable(Exception):
    """The peer is not installed or cannot do this encoding offline."""


@dataclass(frozen=True)
class Peer:
    encode: Encoder
    encode_batch: BatchEncoder | None = None


def load_ranks(path: Path) -> dict[bytes, int]:
    """Mergeable ranks from a ``.tiktoken`` or ``.tiktoken.gz`` file."""
    data = _read_rank_bytes(path)
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def load_peer(peer: str, encoding: str, rank_file: Path) -> Encoder | None:
    """The peer's single-document encoder, or None (reason in ``UNAVAILABLE``)."""
    try:
        return build_peer(peer, encoding, rank_file).encode
    except PeerUnavailable as exc:
        UNAVAILABLE[(peer, ALIASES.get(encoding, encoding))] = str(exc)
        return None


def build_peer(peer: str, encoding: str, rank_file: Path) -> Peer:
    """Build ``peer`` for ``encoding``; raises PeerUnavailable with the reason."""
    encoding = ALIASES.get(encoding, encoding)
    if encoding not in ENCODINGS:
        raise PeerUnavailable(f"unknown encoding {encoding!r}")
    if peer not in _BUILDERS:
        raise PeerUnavailable(f"unknown peer {peer!r}")
    module_name, builder = _BUILDERS[peer]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PeerUnavailable(f"{module_name} is not installed: {exc}") from exc
    try:
        return builder(module, encoding, Path(rank_file))
    except PeerUnavailable:
        raise
    except Exception as exc:  # a version that rejects our pattern or file cannot do this encoding
        raise PeerUnavailable(f"{peer} failed to build {encoding}: {exc!r}") from exc


_GZIP_MAGIC = b"\x1f\x8b"


def _read_rank_bytes(path: Path) -> bytes:
    raw = Path(path).read_bytes()
    return gzip.decompress(raw) if raw.startswith(_GZIP_MAGIC) else raw


def _plain_rank_file(path: Path) -> Path:
    """``path`` itself, or an uncompressed copy of it in the temp dir (keyed by
    content hash): gigatoken and fastokens take only a path and cannot read gzip."""
    raw = Path(path).read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return Path(path)
    data = gzip.decompress(raw)
    digest = hashlib.sha256(data).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / "ferrotok-bench-ranks" / f"{digest}.tiktoken"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(out)  # atomic, so concurrent runs never read a half-written file
    return out


def _tiktoken(tiktoken: Any, encoding: str, rank_file: Path) -> Peer:
    enc = tiktoken.Encoding(
        encoding,
        pat_str=OFFICIAL_PATTERNS[encoding],
        mergeable_ranks=load_ranks(rank_file),
        special_tokens=SPECIAL_TOKENS[encoding],
    )
    threads = os.cpu_count() or 1
    return Peer(
        enc.encode_ordinary,
        lambda docs: enc.encode_ordinary_batch(docs, num_threads=threads),
    )


def oniguruma(pattern: str) -> str:
    """An official split pattern as HF tokenizers' regex engine (Oniguruma) must read it."""
    # Oniguruma reads "{1,3}+" as "({1,3})+", i.e. any run of digits, not as
    # possessive; plain "{1,3}" ends its alternative, so it is equivalent there.
    return pattern.replace(r"\p{N}{1,3}+", r"\p{N}{1,3}")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable-char table that HF ByteLevel vocabularies use."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    extra = (b for b in range(256) if b not in printable)
    table = {b: chr(b) for b in printable}
    table.update({b: chr(256 + i) for i, b in enumerate(extra)})
    return table


def _tokenizers(tokenizers: Any, encoding: str, rank_file: Path) -> Peer:
    # Rebuild a tokenizer.json-equivalent from the ranks, as transformers'
    # TikTokenConverter does: a merge (a, b) for every split of each token into
    # two tokens, ordered by the merged token's rank, so HF's lowest-merge-first
    # loop follows tiktoken's lowest-rank-first loop.
    ranks = load_ranks(rank_file)
    table = _bytes_to_unicode()

    def byte_str(b: bytes) -> str:
        return "".join(table[x] for x in b)

    merges: list[tuple[int, int, int, str, str]] = []
    for token, rank in ranks.items():
        for i in range(1, len(token)):
            left, right = token[:i], token[i:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], byte_str(left), byte_str(right)))
    merges.sort()
    model = tokenizers.models.BPE(
        vocab={byte_str(t): r for t, r in ranks.items()},
        merges=[(m[3], m[4]) for m in merges],
        # tiktoken returns a piece that is itself a token without merging; the
        # vocab has tokens BPE cannot reach, so this is needed for equal ids.
        ignore_merges=True,
    )
    tok = tokenizers.Tokenizer(model)
    pattern = oniguruma(OFFICIAL_PATTERNS[encoding])
    pre = tokenizers.pre_tokenizers
    tok.pre_tokenizer = pre.Sequence(
        [
            pre.Split(tokenizers.Regex(pattern), behavior="isolated"),
            pre.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = tokenizers.decoders.ByteLevel()
    # encode_batch_fast skips offset tracking; rayon threads, TOKENIZERS_PARALLELISM.
    return Peer(
        lambda text: tok.encode(text, add_special_tokens=False).ids,
        lambda docs: [e.ids for e in tok.encode_batch_fast(docs, add_special_tokens=False)],
    )


def _gigatoken(gigatoken: Any, encoding: str, rank_file: Path) -> Peer:
    # Name the pretokenizer explicitly: gigatoken otherwise infers it from the
    # file name, and our copy's name is a hash. No special tokens: its backend
    # always matches the ones it knows, which ordinary encoding must not do.
    scheme = {"r50k_base": "gpt2", "cl100k_base": "gpt4", "o200k_base": "o200k"}[encoding]
    tok = gigatoken.gigatoken_rs.BPETokenizer.from_tiktoken(str(_plain_rank_file(rank_file)), scheme, None)
    return Peer(tok.encode, lambda docs: tok.encode_batch_list(docs, parallel=True))


def _fastokens(fastokens: Any, encoding: str, rank_file: Path) -> Peer:
    import numpy as np

    tok = fastokens.Tokenizer.from_tiktoken(
        str(_plain_rank_file(rank_file)),
        pattern=OFFICIAL_PATTERNS[encoding],
        special_tokens={},
    )
    # FASTOKENS_SEGMENT_CACHE would cache whole documents (no added tokens split
    # them), turning every repeated pass into a lookup; keep it off.
    tok.enable_segment_cache(0)

    def batch(docs: list[str]) -> list[Sequence[int]]:
        ids, offsets = tok.encode_batch_flat(docs)  # its bulk path: two buffers, no per-token objects
        flat, off = np.frombuffer(ids, np.uint32), np.frombuffer(offsets, np.uint64)
        return [flat[off[i] : off[i + 1]] for i in range(len(docs))]

    return Peer(lambda text: tok.encode_ordinary(text).ids, batch)


def _splintr(splintr: Any, encoding: str, rank_file: Path) -> Peer:
    # splintr's regex engine (regexr) rejects possessive quantifiers; its own
    # constants are the same patterns without them (GPT-2's original form).
    pattern = {
        "r50k_base": splintr.GPT2_PATTERN,
        "cl100k_base": splintr.CL100K_BASE_PATTERN,
        "o200k_base": OFFICIAL_PATTERNS["o200k_base"],
    }[encoding]
    tok = splintr.Tokenizer.from_bytes(_read_rank_bytes(rank_file), pattern, None)
    # A directly constructed Tokenizer has no template and matches no specials,
    # so encode_ordinary is plain BPE. It keeps an LRU cache of encoded chunks.
    return Peer(tok.encode_ordinary, tok.encode_batch)


def _bpe_openai(bpe_openai: Any, encoding: str, rank_file: Path) -> Peer:
    # The Rust backend embeds its own cl100k/o200k tables and cannot load a
    # rank file (the wheel's Python-side copies are checked against it below);
    # r50k would go through tiktoken_ext, which downloads.
    from bpe_openai import _bindings, registry

    if encoding not in _bindings.supported_encodings():
        raise PeerUnavailable(f"bpe-openai has no bundled {encoding}")
    if registry.ENCODING_CONSTRUCTORS[encoding]()["mergeable_ranks"] != load_ranks(rank_file):
        raise PeerUnavailable(f"bpe-openai's bundled {encoding} differs from {rank_file}")
    enc = bpe_openai.get_encoding(encoding)
    # encode_ordinary refuses texts of 1M+ chars. Its batch API is a Python
    # ThreadPoolExecutor over the single encoder (no faster than a loop here).
    return Peer(enc.encode_ordinary, lambda docs: enc.encode_ordinary_batch(docs))


_BUILDERS: dict[str, tuple[str, Callable[[Any, str, Path], Peer]]] = {
    "tiktoken": ("tiktoken", _tiktoken),
    "tokenizers": ("tokenizers", _tokenizers),
    "gigatoken": ("gigatoken", _gigatoken),
    "fastokens": ("fastokens", _fastokens),
    "splintr": ("splintr", _splintr),
    "bpe-openai": ("bpe_openai", _bpe_openai),
}
