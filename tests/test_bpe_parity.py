"""Ids identical to tiktoken on real text: the committed fixture corpus and the shared corpora."""

from __future__ import annotations

import ferrotok
import pytest
from conftest import CORPORA, ENCODINGS, assert_same_ids, first_difference, fixture_corpus, shared_corpus


def check_documents(name, docs, ref, *, special=False, passes=1):
    """Compares every document, `passes` times over (a later pass meets the pieces cached by
    the first); fails listing the first few that differ (index + position)."""
    enc = ferrotok.get_encoding(name)
    if special:
        wants = [ref.encode(doc, allowed_special="all") for doc in docs]
    else:
        wants = [ref.encode_ordinary(doc) for doc in docs]
    failures = []
    for p in range(passes):
        for i, (doc, want) in enumerate(zip(docs, wants, strict=True)):
            got = enc.encode(doc, allowed_special="all") if special else enc.encode_ordinary(doc)
            if got.tolist() != want:
                failures.append(f"pass {p}, document {i}: {first_difference(got, want, ref)}")
    if failures:
        shown = "\n  ".join(failures[:5])
        pytest.fail(f"{len(failures)} of {len(docs)} documents differ:\n  {shown}", pytrace=False)


def test_fixture_corpus_is_present_and_sized():
    docs = fixture_corpus()
    size = sum(len(d.encode("utf-8")) for d in docs)
    assert len(docs) >= 50
    assert 100_000 < size < 400_000


@pytest.mark.parametrize("name", ENCODINGS)
def test_fixture_corpus_encode_ordinary(name, tiktoken_ref):
    check_documents(name, fixture_corpus(), tiktoken_ref(name))


@pytest.mark.parametrize("name", ENCODINGS)
def test_fixture_corpus_encode_allowed_special(name, tiktoken_ref):
    check_documents(name, fixture_corpus(), tiktoken_ref(name), special=True)


@pytest.mark.parametrize("corpus", CORPORA)
@pytest.mark.parametrize("name", ENCODINGS)
def test_shared_corpus(name, corpus, tiktoken_ref):
    check_documents(name, shared_corpus(corpus), tiktoken_ref(name), passes=2)


@pytest.mark.parametrize("name", ENCODINGS)
def test_whole_corpus_as_one_text(name, tiktoken_ref):
    text = "\n\n".join(fixture_corpus())
    ref = tiktoken_ref(name)
    assert_same_ids(ferrotok.get_encoding(name).encode_ordinary(text), ref.encode_ordinary(text), name, ref)


SPECIAL_TEXTS = [
    "<|endoftext|>",
    "hello<|endoftext|>world",
    "a <|endoftext|> b<|endoftext|><|endoftext|>\n<|endoftext|>  ",
    "<|fim_prefix|>def f():<|fim_suffix|>\n    return 1<|fim_middle|>",
    "prompt<|endofprompt|>answer<|endoftext|>",
    "<|endoftext <|endoftext|> endoftext|> <|endoftext|",
    "<|<|endoftext|>|>",
]


@pytest.mark.parametrize("text", SPECIAL_TEXTS)
@pytest.mark.parametrize("name", ENCODINGS)
def test_special_tokens_in_text(name, text, tiktoken_ref):
    enc, ref = ferrotok.get_encoding(name), tiktoken_ref(name)
    assert enc.encode_ordinary(text).tolist() == ref.encode_ordinary(text)
    assert enc.encode(text, allowed_special="all").tolist() == ref.encode(text, allowed_special="all")
    assert enc.encode(text, disallowed_special=()).tolist() == ref.encode(text, disallowed_special=())
    some = {"<|endoftext|>"}
    rest = ref.special_tokens_set - some
    assert enc.encode(text, allowed_special=some, disallowed_special=()).tolist() == ref.encode(
        text, allowed_special=some, disallowed_special=()
    )
    assert enc.encode(text, allowed_special=rest, disallowed_special=()).tolist() == ref.encode(
        text, allowed_special=rest, disallowed_special=()
    )


@pytest.mark.parametrize("name", ENCODINGS)
def test_split_pieces_rebuild_text_and_ids(name, tiktoken_ref):
    """``split`` covers the text exactly, and BPE of each piece gives tiktoken's ids."""
    enc, ref = ferrotok.get_encoding(name), tiktoken_ref(name)
    for i, doc in enumerate(fixture_corpus()):
        pieces = enc.split(doc)
        assert "".join(pieces) == doc, f"document {i}: pieces do not rebuild the text"
        assert all(pieces), f"document {i}: empty piece"
        ids = [t for p in pieces for t in ref._encode_single_piece(p)]
        assert_same_ids(ids, ref.encode_ordinary(doc), f"document {i}", ref)
