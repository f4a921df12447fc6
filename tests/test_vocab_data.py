"""The embedded vocabularies, patterns and special tokens are exactly OpenAI's official ones."""

from __future__ import annotations

import base64
import gzip
import hashlib

import ferrotok
import pytest
import tiktoken_ext.openai_public as openai_public
from conftest import SHARED

# sha256 of the official .tiktoken files (the hashes tiktoken itself checks downloads against).
OFFICIAL_SHA256 = {
    "gpt2": "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
    "r50k_base": "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}


def tiktoken_text(enc: ferrotok.Encoding) -> bytes:
    """The vocabulary as an official ``.tiktoken`` file: ``base64 rank`` lines, in rank order."""
    return b"".join(
        base64.b64encode(token) + b" " + str(rank).encode() + b"\n"
        for rank, token in enumerate(enc.token_byte_values())
    )


@pytest.mark.parametrize("name", sorted(OFFICIAL_SHA256))
def test_embedded_vocab_hash(name):
    assert hashlib.sha256(tiktoken_text(ferrotok.get_encoding(name))).hexdigest() == OFFICIAL_SHA256[name]


@pytest.mark.parametrize("name", ["gpt2", "cl100k_base", "o200k_base"])
def test_embedded_vocab_equals_shared_file(name):
    path = SHARED / "vocab" / f"{name}.tiktoken.gz"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    assert tiktoken_text(ferrotok.get_encoding(name)) == gzip.decompress(path.read_bytes())


@pytest.mark.parametrize("name", sorted(OFFICIAL_SHA256))
def test_pattern_and_special_tokens_are_official(name, monkeypatch):
    # tiktoken_ext's constructors hold the official patterns and special tokens; give them the
    # embedded ranks instead of a download so that no network is needed.
    enc = ferrotok.get_encoding(name)
    ranks = {token: rank for rank, token in enumerate(enc.token_byte_values())}
    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", lambda *a, **k: ranks)
    monkeypatch.setattr(openai_public, "data_gym_to_mergeable_bpe_ranks", lambda *a, **k: ranks)
    official = openai_public.ENCODING_CONSTRUCTORS[name]()
    assert enc.pattern == official["pat_str"]
    assert enc.special_tokens == official["special_tokens"]
    assert enc.n_vocab == official.get("explicit_n_vocab", enc.n_vocab)
    assert enc.n_vocab == max([len(ranks) - 1, *official["special_tokens"].values()]) + 1
