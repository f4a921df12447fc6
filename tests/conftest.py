"""Shared helpers: the corpora, and the tiktoken reference built offline from the embedded data.

The reference is ``tiktoken.Encoding`` given ferrotok's own vocabulary, pattern and special
tokens: the embedded data is checked against the official files by hash in
``test_vocab_data.py``, so agreement with this reference is agreement with tiktoken.
"""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Sequence
from pathlib import Path

import ferrotok
import pytest
import tiktoken

ENCODINGS = ["gpt2", "cl100k_base", "o200k_base"]
"""The three official vocabularies (r50k_base is gpt2's data under another name)."""

TESTS = Path(__file__).resolve().parent
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CORPORA = ["en", "code", "multi"]
FIXTURE_CORPUS = TESTS / "data" / "fixture_corpus.jsonl.gz"


def read_jsonl_gz(path: Path) -> list[str]:
    """The ``text`` of each line of a gzipped JSON-lines file."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def shared_corpus_path(name: str) -> Path:
    return SHARED / "corpus" / f"{name}.jsonl.gz"


@functools.cache
def shared_corpus(name: str) -> list[str]:
    """The documents of ``../shared/corpus/{name}.jsonl.gz``; skips the test when it is absent."""
    path = shared_corpus_path(name)
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared is not beside the repository)")
    return read_jsonl_gz(path)


@functools.cache
def fixture_corpus() -> list[str]:
    """The small corpus committed in tests/data (always present)."""
    return read_jsonl_gz(FIXTURE_CORPUS)


@functools.cache
def reference(name: str) -> tiktoken.Encoding:
    """tiktoken's ``Encoding`` for ``name``, built from the embedded data, without network."""
    enc = ferrotok.get_encoding(name)
    tokens = enc.token_byte_values()
    ranks = {b: i for i, b in enumerate(tokens)}
    # The official vocabularies have ids 0..n-1 with no hole, so position == id.
    assert len(ranks) == len(tokens)
    assert all(enc.encode_single_token(tokens[i]) == i for i in (0, 255, len(tokens) // 2, len(tokens) - 1))
    return tiktoken.Encoding(
        name, pat_str=enc.pattern, mergeable_ranks=ranks, special_tokens=enc.special_tokens
    )


@pytest.fixture(scope="session")
def tiktoken_ref():
    """``tiktoken_ref(name)``: the offline tiktoken reference for an encoding (cached)."""
    return reference


def first_difference(got: Sequence[int], want: Sequence[int], ref: tiktoken.Encoding | None = None) -> str:
    """Where two id sequences first differ (with the text there, when ``ref`` can decode it)."""
    got, want = list(got), list(want)
    i = next((k for k, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
    msg = (
        f"first difference at id position {i} (lengths {len(got)} vs {len(want)}): "
        f"ferrotok {got[i : i + 5]} vs tiktoken {want[i : i + 5]}"
    )
    if ref is not None:
        at = len(ref.decode_bytes(want[:i]))
        msg += f", at byte {at} of the text: {ref.decode_bytes(want[i : i + 5])!r}"
    return msg


def assert_same_ids(
    got: Sequence[int], want: Sequence[int], what: str = "", ref: tiktoken.Encoding | None = None
) -> None:
    """Asserts equal ids; on failure, says where they first differ instead of a giant diff."""
    got, want = list(got), list(want)
    if got != want:
        pytest.fail(f"{what}: {first_difference(got, want, ref)}", pytrace=False)
