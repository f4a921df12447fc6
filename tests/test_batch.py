"""Batches: encode_batch, TokenBatch, padding, decode_batch, threads, fork, torch and arrow."""

from __future__ import annotations

import base64
import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import ferrotok
import numpy as np
import pytest
from conftest import CORPORA, ENCODINGS, assert_same_ids, fixture_corpus, reference, shared_corpus
from ferrotok import TokenBatch
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]


def plain_corpus():
    """The fixture corpus without the texts that contain a special token's text."""
    specials = set().union(*(ferrotok.get_encoding(n).special_tokens_set for n in ENCODINGS))
    return [t for t in fixture_corpus() if not any(s in t for s in specials)]


def assert_batch_equals(batch, want, what, ref=None):
    """``batch`` is a well-formed TokenBatch whose rows are ``want`` (a list of id arrays)."""
    assert isinstance(batch, TokenBatch)
    assert len(batch) == len(want), what
    assert batch.ids.dtype == np.uint32 and batch.offsets.dtype == np.int64
    assert batch.offsets[0] == 0 and batch.offsets[-1] == len(batch.ids)
    lengths = np.array([len(w) for w in want], dtype=np.int64)
    if not np.array_equal(batch.lengths, lengths) or not np.array_equal(
        batch.ids, np.concatenate([np.asarray(w, np.uint32) for w in want]) if want else []
    ):
        for i, w in enumerate(want):
            assert_same_ids(batch[i], w, f"{what}, text {i}", ref)
        pytest.fail(f"{what}: rows equal but the flat arrays differ")


# -- encode_batch equals encode, text by text -----------------------------------------------------


@pytest.mark.parametrize("num_threads", [1, 2, None])
@pytest.mark.parametrize("name", ENCODINGS)
def test_encode_batch_equals_encode_ordinary_on_fixture_corpus(name, num_threads):
    enc = ferrotok.get_encoding(name)
    texts = fixture_corpus()
    want = [enc.encode_ordinary(t) for t in texts]
    batch = enc.encode_batch(texts, num_threads=num_threads, disallowed_special=())
    assert_batch_equals(batch, want, f"{name} fixture corpus, num_threads={num_threads}", reference(name))


@pytest.mark.parametrize("name", ENCODINGS)
def test_encode_batch_equals_tiktoken_batch(name):
    texts = fixture_corpus()
    enc, ref = ferrotok.get_encoding(name), reference(name)
    batch = enc.encode_batch(texts, num_threads=2, disallowed_special=())
    assert batch.tolist() == ref.encode_ordinary_batch(texts, num_threads=2)
    # by default, like tiktoken's encode_batch, special-token text is refused
    plain = [t for t in texts if not any(s in t for s in enc.special_tokens_set)]
    assert len(plain) < len(texts)
    with pytest.raises(ValueError, match="disallowed special token"):
        enc.encode_batch(texts)
    assert enc.encode_batch(plain).tolist() == ref.encode_batch(plain)


@pytest.mark.parametrize("corpus", CORPORA)
@pytest.mark.parametrize("name", ENCODINGS)
def test_encode_batch_equals_encode_ordinary_on_shared_corpora(name, corpus):
    texts = shared_corpus(corpus)
    enc = ferrotok.get_encoding(name)
    want = [enc.encode_ordinary(t) for t in texts]
    batch = enc.encode_batch(texts, num_threads=2, disallowed_special=())
    assert_batch_equals(batch, want, f"{name} {corpus}", reference(name))


def _long_text(docs: list[str], size: int) -> str:
    text = "\n".join(docs)
    return (text + "\n") * (size // len(text) + 1)


@pytest.mark.parametrize("name", ENCODINGS)
def test_long_text_cut_into_parts_equals_tiktoken(name):
    # >= 1 MB: encode and encode_batch cut the text at provable piece boundaries and encode the
    # parts in parallel; the ids must be tiktoken's for the whole text
    text = _long_text(fixture_corpus(), 3 << 20)
    enc, ref = ferrotok.get_encoding(name), reference(name)
    want = ref.encode_ordinary(text)
    assert_same_ids(enc.encode_ordinary(text), want, name, ref)
    assert_same_ids(enc.encode_batch([text], num_threads=2, disallowed_special=())[0], want, name, ref)
    assert_same_ids(
        enc.encode(text, allowed_special="all"), ref.encode(text, allowed_special="all"), name, ref
    )


@pytest.mark.parametrize("corpus", CORPORA)
def test_long_text_cut_into_parts_on_shared_corpora(corpus):
    text = _long_text(shared_corpus(corpus), 4 << 20)
    for name in ENCODINGS:
        enc = ferrotok.get_encoding(name)
        sequential = enc.encode_batch([text], num_threads=1, disallowed_special=())[0]
        parallel = enc.encode_batch([text, text[: 2 << 20]], num_threads=2, disallowed_special=())
        assert_same_ids(parallel[0], sequential, f"{name} {corpus}", reference(name))
        assert_same_ids(parallel[1], enc.encode_ordinary(text[: 2 << 20]), f"{name} {corpus}")


SPECIAL_TEXTS = [
    "hello <|endoftext|> world",
    "<|endoftext|><|endoftext|>",
    "no special token here",
    "",
    "<|fim_prefix|>def f():<|fim_suffix|> return 1<|fim_middle|>",
    "x<|endofprompt|>y",
]


@pytest.mark.parametrize("num_threads", [1, 2])
@pytest.mark.parametrize("name", ENCODINGS)
def test_encode_batch_allowed_special_all(name, num_threads):
    enc, ref = ferrotok.get_encoding(name), reference(name)
    batch = enc.encode_batch(SPECIAL_TEXTS, allowed_special="all", num_threads=num_threads)
    want = [enc.encode(t, allowed_special="all") for t in SPECIAL_TEXTS]
    assert_batch_equals(batch, want, name)
    assert batch.tolist() == ref.encode_batch(SPECIAL_TEXTS, allowed_special="all")
    assert enc.eot_token in batch[0].tolist()
    # many of them: more than 32 KB, encoded on the pool when num_threads=2
    many = [t * 20 for t in SPECIAL_TEXTS] * 20
    assert sum(map(len, many)) > 32 << 10
    got = enc.encode_batch(many, allowed_special="all", num_threads=num_threads)
    assert got.tolist() == ref.encode_batch(many, allowed_special="all")


@pytest.mark.parametrize("name", ENCODINGS)
def test_encode_batch_allowed_special_subset_and_disallowed_none(name):
    enc, ref = ferrotok.get_encoding(name), reference(name)
    texts = ["a<|endoftext|>b", "plain"]
    got = enc.encode_batch(texts, allowed_special={"<|endoftext|>"})
    assert got.tolist() == ref.encode_batch(texts, allowed_special={"<|endoftext|>"})
    got = enc.encode_batch(SPECIAL_TEXTS, disallowed_special=())
    assert got.tolist() == [enc.encode_ordinary(t).tolist() for t in SPECIAL_TEXTS]


@pytest.mark.parametrize("num_threads", [1, 2])
@pytest.mark.parametrize("name", ENCODINGS)
def test_encode_batch_disallowed_special_raises(name, num_threads):
    enc = ferrotok.get_encoding(name)
    with pytest.raises(ValueError, match=r"<\|endoftext\|>"):
        enc.encode_batch(["fine", "bad <|endoftext|>", "fine"], num_threads=num_threads)
    # a batch large enough for the pool (small ones are encoded on the calling thread)
    filler = ["fine words " * 1000] * 8
    with pytest.raises(ValueError, match=r"<\|endoftext\|>"):
        enc.encode_batch([*filler, "bad <|endoftext|>", *filler], num_threads=num_threads)
    with pytest.raises(ValueError, match="not-special"):
        enc.encode_batch(["a", "b not-special"], disallowed_special={"not-special"})


def test_encode_batch_repairs_lone_surrogates_like_encode():
    enc = ferrotok.get_encoding("cl100k_base")
    texts = ["a\ud800b", "\udc00", "ok", "\ud83d\ude00 pair"]
    want = [enc.encode(t) for t in texts]
    assert_batch_equals(enc.encode_batch(texts, num_threads=2), want, "surrogates")
    assert enc.encode_batch(texts).tolist() == reference("cl100k_base").encode_batch(texts)
    # among many texts (more than 32 KB, so that the pool runs), as the pool encodes earlier
    # ones while later ones are being read
    many = [f"{i} {t} " * 12 for i in range(200) for t in texts]
    assert sum(map(len, many)) > 32 << 10
    assert_batch_equals(enc.encode_batch(many, num_threads=3), [enc.encode(t) for t in many], "many")


def test_encode_batch_empty_list_and_empty_strings():
    enc = ferrotok.get_encoding("o200k_base")
    for num_threads in (1, 2, None):
        empty = enc.encode_batch([], num_threads=num_threads)
        assert len(empty) == 0
        assert empty.offsets.tolist() == [0]
        assert empty.ids.shape == (0,) and empty.ids.dtype == np.uint32
        assert empty.tolist() == [] and list(empty) == []
        batch = enc.encode_batch(["", "hello", "", ""], num_threads=num_threads)
        assert batch.offsets.tolist() == [0, 0, 1, 1, 1]
        assert batch.tolist() == [[], enc.encode("hello").tolist(), [], []]
        only_empty = enc.encode_batch(["", ""], num_threads=num_threads)
        assert only_empty.offsets.tolist() == [0, 0, 0] and len(only_empty.ids) == 0
        # the same around a text long enough for the pool
        long = "hello " * 10000
        batch = enc.encode_batch(["", long, "", ""], num_threads=num_threads)
        n = len(enc.encode(long))
        assert batch.offsets.tolist() == [0, 0, n, n, n]


# -- what encode_batch accepts ---------------------------------------------------------------------

TEXTS = ["hello world", "", "héllo wörld ✓", "def f(x):\n    return x"]


@pytest.mark.parametrize(
    "make",
    [
        list,
        tuple,
        lambda t: (x for x in t),
        iter,
        lambda t: np.array(t),  # dtype '<U…'
        lambda t: np.array(t, dtype=object),
        lambda t: dict.fromkeys(t).keys(),
    ],
    ids=["list", "tuple", "generator", "iterator", "numpy-U", "numpy-object", "dict-keys"],
)
def test_encode_batch_accepts_any_iterable_of_str(make):
    enc = ferrotok.get_encoding("cl100k_base")
    batch = enc.encode_batch(make(TEXTS), num_threads=2)
    assert batch.tolist() == [enc.encode(t).tolist() for t in TEXTS]


@pytest.mark.parametrize(
    ("texts", "index", "kind"),
    [
        (["a", b"b"], 1, "bytes"),
        (["a", "b", None], 2, "NoneType"),
        ((x for x in ["a", 3]), 1, "int"),
        (np.array(["a", "b", None], dtype=object), 2, "NoneType"),
        ([None], 0, "NoneType"),
    ],
)
def test_encode_batch_non_str_item_raises_type_error_naming_it(texts, index, kind):
    enc = ferrotok.get_encoding("gpt2")
    with pytest.raises(TypeError, match=rf"\[{index}\].*{kind}"):
        enc.encode_batch(texts)


@pytest.mark.parametrize("bad", ["a single str", b"bytes", 3, None])
def test_encode_batch_rejects_non_iterables_and_single_strings(bad):
    with pytest.raises(TypeError):
        ferrotok.get_encoding("gpt2").encode_batch(bad)


# -- TokenBatch ------------------------------------------------------------------------------------


@pytest.fixture
def small():
    enc = ferrotok.get_encoding("o200k_base")
    texts = ["hello world", "", "a b c d e", "hi", "héllo"]
    return enc.encode_batch(texts), [enc.encode(t).tolist() for t in texts]


def test_token_batch_indexing_gives_views(small):
    batch, rows = small
    assert len(batch) == 5
    for i in range(-5, 5):
        row = batch[i]
        assert row.tolist() == rows[i]
        assert row.dtype == np.uint32
        if len(row):
            assert np.shares_memory(row, batch.ids)
    assert batch[np.int64(2)].tolist() == rows[2]
    for bad in (5, -6, 100):
        with pytest.raises(IndexError, match=str(bad)):
            batch[bad]
    with pytest.raises(IndexError):
        TokenBatch(np.empty(0, np.uint32), np.zeros(1, np.int64))[0]


def test_token_batch_slices_share_the_id_buffer(small):
    batch, rows = small
    for key in [
        slice(1, 4),
        slice(None),
        slice(2, None),
        slice(-2, None),
        slice(4, 1),
        slice(0, 0),
        slice(3, 100),
    ]:
        part = batch[key]
        assert isinstance(part, TokenBatch)
        assert part.tolist() == rows[key], key
        assert part.offsets[0] == 0 and part.offsets[-1] == len(part.ids)
        if len(part.ids):
            assert np.shares_memory(part.ids, batch.ids)
    for key in [slice(None, None, 2), slice(None, None, -1), slice(4, 0, -2)]:
        assert batch[key].tolist() == rows[key], key
    assert batch[1:4][1:][0].tolist() == rows[2]


def test_token_batch_fancy_indexing(small):
    batch, rows = small
    assert batch[[4, 0, 0, 2]].tolist() == [rows[4], rows[0], rows[0], rows[2]]
    assert batch[np.array([-1, 1])].tolist() == [rows[-1], rows[1]]
    keep = np.array([True, False, True, False, True])
    assert batch[keep].tolist() == [rows[0], rows[2], rows[4]]
    assert batch[[]].tolist() == []
    with pytest.raises(IndexError):
        batch[[0, 5]]


def test_token_batch_iteration_lengths_tolist_repr(small):
    batch, rows = small
    assert [r.tolist() for r in batch] == rows
    assert batch.lengths.tolist() == [len(r) for r in rows]
    assert batch.lengths.dtype == np.int64
    assert batch.tolist() == rows
    assert all(type(i) is int for r in batch.tolist() for i in r)
    assert repr(batch) == f"TokenBatch(5 texts, {sum(map(len, rows))} tokens)"


def test_token_batch_pickles(small):
    batch, rows = small
    back = pickle.loads(pickle.dumps(batch))
    assert back.tolist() == rows
    assert back.ids.dtype == np.uint32


def test_token_batch_construction_checks_offsets():
    ids = np.arange(5, dtype=np.uint32)
    assert TokenBatch(ids, [0, 2, 5]).tolist() == [[0, 1], [2, 3, 4]]
    for bad in ([1, 5], [0, 4], [0, 3, 2, 5]):
        with pytest.raises(ValueError, match="offsets"):
            TokenBatch(ids, bad)
    with pytest.raises(TypeError):
        TokenBatch(ids, [])
    with pytest.raises(TypeError):
        TokenBatch(ids.astype(float), [0, 5])
    with pytest.raises(TypeError):
        TokenBatch(ids.reshape(1, 5), [0, 5])


def test_no_row_objects_on_construction():
    # The ragged form holds two arrays, not one object per text.
    batch = ferrotok.get_encoding("gpt2").encode_batch(["a b"] * 1000, num_threads=2)
    assert not hasattr(batch, "__dict__")
    assert {type(batch.ids), type(batch.offsets)} == {np.ndarray}


# -- padded ----------------------------------------------------------------------------------------


def reference_padded(rows, max_length, pad_id, side, truncation, multiple):
    """A straightforward per-row implementation of TokenBatch.padded (returns lists)."""
    if max_length is not None:
        for i, r in enumerate(rows):
            if len(r) > max_length and not truncation:
                raise ValueError(f"row {i}")
        rows = [r[:max_length] for r in rows]
        width = max_length
    else:
        width = max((len(r) for r in rows), default=0)
    if multiple:
        while width % multiple:
            width += 1
    ids, mask = [], []
    for r in rows:
        pad = width - len(r)
        if side == "right":
            ids.append(list(r) + [pad_id] * pad)
            mask.append([1] * len(r) + [0] * pad)
        else:
            ids.append([pad_id] * pad + list(r))
            mask.append([0] * pad + [1] * len(r))
    return ids, mask


def check_padded(batch, rows, **kwargs):
    args = {"max_length": None, "pad_id": 0, "side": "right", "truncation": True, "pad_to_multiple_of": None}
    args.update(kwargs)
    dtype = np.dtype(args.pop("dtype", np.int64))
    ids, mask = batch.padded(**args, dtype=dtype)
    want_ids, want_mask = reference_padded(
        rows,
        args["max_length"],
        args["pad_id"],
        args["side"],
        args["truncation"],
        args["pad_to_multiple_of"],
    )
    assert ids.dtype == mask.dtype == dtype
    assert ids.ndim == mask.ndim == 2 and ids.shape == mask.shape
    assert ids.shape[0] == len(rows)
    if rows:
        assert ids.tolist() == want_ids, kwargs
        assert mask.tolist() == want_mask, kwargs
    assert ids.flags.c_contiguous and mask.flags.c_contiguous
    return ids, mask


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("max_length", [None, 0, 1, 2, 3, 8, 20])
@pytest.mark.parametrize("multiple", [None, 1, 4])
def test_padded_matches_reference(small, side, max_length, multiple):
    batch, rows = small
    ids, _ = check_padded(batch, rows, side=side, max_length=max_length, pad_to_multiple_of=multiple)
    if max_length is None:
        width = max(map(len, rows))
        assert ids.shape[1] == (width if multiple is None else -(-width // multiple) * multiple)
    else:
        # max_length is a fixed width (rounded up to the multiple)
        assert ids.shape[1] == (max_length if multiple is None else -(-max_length // multiple) * multiple)


@pytest.mark.parametrize("side", ["right", "left"])
def test_padded_pad_id_and_dtype(small, side):
    batch, rows = small
    check_padded(batch, rows, side=side, pad_id=199999)
    check_padded(batch, rows, side=side, pad_id=-100, dtype=np.int32)
    check_padded(batch, rows, side=side, pad_id=7, dtype=np.uint32, max_length=3)
    _, mask = check_padded(batch, rows, side=side, dtype="int64")
    assert mask.dtype == np.int64


def test_padded_left_padding_right_aligns_rows(small):
    batch, rows = small
    ids, mask = batch.padded(side="left", pad_id=-1)
    for i, r in enumerate(rows):
        assert ids[i, ids.shape[1] - len(r) :].tolist() == r
        assert mask[i].sum() == len(r)
        assert (mask[i, ids.shape[1] - len(r) :] == 1).all()


def test_padded_truncation_false_names_the_row(small):
    batch, rows = small
    assert len(rows[2]) > 3 and all(len(r) <= 3 for r in rows[:2])
    with pytest.raises(ValueError, match=r"row 2 has \d+ tokens.*max_length=3"):
        batch.padded(3, truncation=False)
    longest = max(map(len, rows))
    check_padded(batch, rows, max_length=longest, truncation=False)


def test_padded_bad_arguments(small):
    batch, _ = small
    with pytest.raises(ValueError, match="side"):
        batch.padded(side="middle")
    with pytest.raises(TypeError, match="integer"):
        batch.padded(dtype=np.float32)
    with pytest.raises(ValueError, match="pad_to_multiple_of"):
        batch.padded(pad_to_multiple_of=0)
    with pytest.raises(ValueError, match="max_length"):
        batch.padded(-1)
    with pytest.raises(ValueError, match="pad_id"):
        batch.padded(pad_id=-1, dtype=np.uint32)
    with pytest.raises(ValueError, match="pad_id"):
        batch.padded(pad_id=1000, dtype=np.int8)
    # o200k ids beyond int16: refused, not wrapped around
    with pytest.raises(ValueError, match="does not fit"):
        batch.padded(dtype=np.int16)


def test_padded_empty_batch_and_empty_rows():
    empty = TokenBatch(np.empty(0, np.uint32), np.zeros(1, np.int64))
    ids, mask = empty.padded()
    assert ids.shape == mask.shape == (0, 0)
    assert empty.padded(16)[0].shape == (0, 16)
    blanks = TokenBatch(np.empty(0, np.uint32), np.zeros(4, np.int64))
    ids, mask = blanks.padded(pad_id=5)
    assert ids.shape == (3, 0)
    assert blanks.padded(2, pad_id=5)[0].tolist() == [[5, 5]] * 3
    assert blanks.padded(2)[1].tolist() == [[0, 0]] * 3


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(0, 2**32 - 1), max_size=12), max_size=8),
    max_length=st.none() | st.integers(0, 15),
    side=st.sampled_from(["right", "left"]),
    multiple=st.none() | st.integers(1, 5),
    pad_id=st.integers(-3, 3),
)
def test_padded_matches_reference_on_random_batches(rows, max_length, side, multiple, pad_id):
    batch = TokenBatch(
        np.array([i for r in rows for i in r], dtype=np.uint32),
        np.cumsum([0, *map(len, rows)]),
    )
    check_padded(batch, rows, max_length=max_length, side=side, pad_to_multiple_of=multiple, pad_id=pad_id)
    # a sliced batch (offsets into a shared buffer) pads the same
    if len(rows) > 1:
        check_padded(batch[1:], rows[1:], max_length=max_length, side=side, pad_id=pad_id)


def test_padded_training_batch_shape():
    enc = ferrotok.get_encoding("cl100k_base")
    long_text = " ".join(plain_corpus())
    batch = enc.encode_batch([long_text[i * 1000 :] for i in range(8)] + ["short"])
    ids, mask = batch.padded(2048, side="left", pad_id=enc.eot_token)
    assert ids.shape == (9, 2048)
    assert mask[:8].all()
    assert ids[0].tolist() == batch[0][:2048].tolist()
    assert ids[8, -1] == batch[8][-1] and mask[8].sum() == 1


# -- decode_batch ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ENCODINGS)
def test_decode_batch_round_trips_token_batch(name):
    enc = ferrotok.get_encoding(name)
    texts = [*plain_corpus()[:30], "", "héllo ✓"]
    batch = enc.encode_batch(texts, num_threads=2)
    assert enc.decode_batch(batch) == texts
    assert enc.decode_batch(batch[3:7]) == texts[3:7]
    assert enc.decode_batch(batch[[5, 1]]) == [texts[5], texts[1]]


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint32])
def test_decode_batch_round_trips_padded_with_mask(side, dtype):
    enc = ferrotok.get_encoding("cl100k_base")
    texts = ["hello world", "", "a much longer text, with some words in it ✓", "x"]
    ids, mask = enc.encode_batch(texts).padded(side=side, pad_id=enc.eot_token, dtype=dtype)
    assert enc.decode_batch(ids, mask) == texts
    assert enc.decode_batch(ids, mask.astype(bool)) == texts
    assert enc.decode_batch(ids.tolist(), mask.tolist()) == texts


def test_decode_batch_truncated_rows_decode_to_prefixes():
    enc = ferrotok.get_encoding("gpt2")
    texts = ["one two three four five", "six"]
    ids, mask = enc.encode_batch(texts).padded(3)
    assert enc.decode_batch(ids, mask) == ["one two three", "six"]


def test_decode_batch_without_mask_keeps_every_position():
    enc = ferrotok.get_encoding("gpt2")
    ids, _ = enc.encode_batch(["hello world", "hi"]).padded(pad_id=enc.eot_token)
    assert enc.decode_batch(ids) == [enc.decode(r) for r in ids]
    assert enc.decode_batch(ids)[1] == "hi<|endoftext|>"
    assert enc.decode_batch(np.empty((0, 4), np.int64)) == []
    assert enc.decode_batch(np.empty((2, 0), np.int64)) == ["", ""]


def test_decode_batch_list_of_sequences():
    enc = ferrotok.get_encoding("o200k_base")
    texts = ["hello", "", "wörld ✓"]
    rows = [enc.encode(t) for t in texts]
    assert enc.decode_batch(rows) == texts
    assert enc.decode_batch([r.tolist() for r in rows]) == texts
    assert enc.decode_batch(tuple(r.astype(np.int16 if len(r) == 0 else np.int64) for r in rows)) == texts
    assert enc.decode_batch(np.array(rows, dtype=object)) == texts
    assert enc.decode_batch(iter(rows)) == texts
    assert enc.decode_batch([]) == []


def test_decode_batch_errors():
    enc = ferrotok.get_encoding("cl100k_base")
    ids, mask = enc.encode_batch(["a b", "c"]).padded()
    with pytest.raises(ValueError, match="shape"):
        enc.decode_batch(ids, mask[:, :1])
    with pytest.raises(ValueError, match="2-D"):
        enc.decode_batch(ids[0])
    with pytest.raises(ValueError, match="attention_mask"):
        enc.decode_batch(enc.encode_batch(["a"]), mask)
    with pytest.raises(ValueError, match=str(enc.n_vocab + 5)):
        enc.decode_batch([[1, 2], [enc.n_vocab + 5]])
    with pytest.raises(ValueError, match="-1"):
        enc.decode_batch(np.array([[1, -1]]))
    with pytest.raises(TypeError):
        enc.decode_batch([[1.5, 2.0]])
    with pytest.raises(TypeError):
        enc.decode_batch("not ids")
    with pytest.raises(ValueError, match="row 1"):
        enc.decode_batch([[1], [[1, 2]]])


def test_decode_batch_names_ids_past_every_integer_type():
    enc = ferrotok.get_encoding("gpt2")
    with pytest.raises(ValueError, match=str(2**64)):
        enc.decode_batch([[1], [2**64]])
    for rows in ([[1], [2**63]], [[1, 2**63]]):  # not wrapped through a float or an int64
        with pytest.raises(ValueError, match=str(2**63)):
            enc.decode_batch(rows)
    with pytest.raises(ValueError, match=str(2**63)):  # not wrapped to a negative id
        enc.decode_batch(TokenBatch(np.array([2**63], np.uint64), [0, 1]))
    # masked-out padding may hold anything, as it may in int64
    ids = np.array([[31373, 2**63]], np.uint64)
    assert enc.decode_batch(ids, np.array([[1, 0]])) == ["hello"]


def test_dtype_conversions_refuse_ids_that_do_not_fit():
    enc = ferrotok.get_encoding("gpt2")
    batch = enc.encode_batch(["hello world", "hi there"])  # ids above 127
    with pytest.raises(ValueError, match="does not fit in int8"):
        batch.padded(dtype=np.int8)
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="does not fit in int8"):
        batch.to_torch(padded=False, dtype=torch.int8)
    ids, offsets = batch.to_torch(padded=False, dtype=torch.int32)
    assert ids.tolist() == batch.ids.tolist() and offsets.tolist() == batch.offsets.tolist()


def test_decode_batch_errors_argument():
    enc = ferrotok.get_encoding("cl100k_base")
    crab = enc.encode("🦀").tolist()
    assert len(crab) > 1
    rows = [crab[:1], crab]
    assert enc.decode_batch(rows) == ["\ufffd", "🦀"]
    with pytest.raises(UnicodeDecodeError):
        enc.decode_batch(rows, errors="strict")


# -- threads, fork, environment --------------------------------------------------------------------


def test_sixteen_threads_share_one_encoding():
    enc = ferrotok.get_encoding("cl100k_base")
    texts = plain_corpus()[:40]
    want_single = [enc.encode(t).tolist() for t in texts]
    want_batch = enc.encode_batch(texts, num_threads=1).tolist()
    assert want_batch == want_single
    start = threading.Barrier(16)
    results: list[object] = [None] * 16

    def work(k):
        try:
            start.wait(timeout=60)
            out = []
            for rep in range(3):
                out.append(enc.encode_batch(texts, num_threads=(1, 2, None)[(k + rep) % 3]).tolist())
                out.append([enc.encode(t).tolist() for t in texts[k::8]])
                out.append(enc.decode_batch(enc.encode_batch(texts[k : k + 5], num_threads=2)))
            results[k] = out
        except BaseException as exc:  # reported below
            results[k] = exc

    threads = [threading.Thread(target=work, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    for k, out in enumerate(results):
        assert not isinstance(out, BaseException), f"thread {k} raised {out!r}"
        for rep in range(3):
            assert out[3 * rep] == want_batch, f"thread {k}"
            assert out[3 * rep + 1] == want_single[k::8], f"thread {k}"
            assert out[3 * rep + 2] == texts[k : k + 5], f"thread {k}"


def _child_encodes(texts):
    enc = ferrotok.get_encoding("o200k_base")
    return (
        enc.encode_batch(texts, num_threads=2).tolist(),
        enc.encode_batch(texts).tolist(),
        enc.encode_batch(texts, num_threads=1).tolist(),
        [enc.encode(t).tolist() for t in texts],
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Python >= 3.12 warns on fork with threads
def test_encode_batch_after_fork():
    enc = ferrotok.get_encoding("o200k_base")
    texts = plain_corpus()[:30]
    # The parent makes its thread pools first: the child inherits them without their threads.
    want = enc.encode_batch(texts, num_threads=2).tolist()
    assert enc.encode_batch(texts).tolist() == want
    pool = multiprocessing.get_context("fork").Pool(1)
    try:
        got = pool.apply_async(_child_encodes, (texts,)).get(timeout=60)
    except multiprocessing.TimeoutError:
        pytest.fail(
            "encode_batch in a forked child did not finish in 60 s (a deadlock on the parent's pool?)"
        )
    finally:
        pool.terminate()
        pool.join()
    assert got == (want, want, want, want)
    # and the parent's own pools still work
    assert enc.encode_batch(texts, num_threads=2).tolist() == want


def _run_python(code, **env):
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        cwd=REPO,
    )


THREAD_PROBE = """
    import os, sys
    import ferrotok

    enc = ferrotok.get_encoding("gpt2")

    def pool_threads():
        names = []
        for tid in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else []:
            try:
                with open(f"/proc/self/task/{tid}/comm") as f:
                    names.append(f.read().strip())
            except OSError:
                pass
        return sum(n.startswith("ferrotok") for n in names)

    # under 32 KB of text: encoded on the calling thread, no pool built
    small = ["hello world %d" % i for i in range(100)]
    assert enc.encode_batch(small, num_threads=4).tolist() == enc.encode_batch(small, num_threads=1).tolist()
    assert pool_threads() == 0
    texts = ["hello world %d " % i * 40 for i in range(100)]
    want = [enc.encode_ordinary(t).tolist() for t in texts]
    for n in (None, 1, 2, 4):
        assert enc.encode_batch(texts, num_threads=n).tolist() == want, n
    print("OK", pool_threads())
"""


@pytest.mark.parametrize("value", [None, "1", "3", "0", "not-a-number"])
def test_ferrotok_num_threads_environment(monkeypatch, value):
    monkeypatch.delenv("FERROTOK_NUM_THREADS", raising=False)
    proc = _run_python(THREAD_PROBE, **({} if value is None else {"FERROTOK_NUM_THREADS": value}))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK"), proc.stdout
    if sys.platform.startswith("linux"):
        # pool threads are named ferrotok-N: capped at one thread, no pool is ever built
        pool_threads = int(proc.stdout.split()[1])
        if value == "1":
            assert pool_threads == 0
        cores = len(os.sched_getaffinity(0))
        assert pool_threads <= cores  # num_threads=4 is capped at the cores: no more threads
        if value is None and cores >= 2:
            assert pool_threads >= 2  # num_threads=2 (and 4) built a pool


# -- pickling an Encoding after batch use ----------------------------------------------------------


@pytest.mark.parametrize("name", ENCODINGS)
def test_pickled_encoding_after_batch_use(name):
    enc = ferrotok.get_encoding(name)
    texts = plain_corpus()[:10]
    want = enc.encode_batch(texts, num_threads=2).tolist()
    back = pickle.loads(pickle.dumps(enc))
    assert back.encode_batch(texts, num_threads=2).tolist() == want


def test_pickled_custom_encoding_after_batch_use(tmp_path):
    tokens = ferrotok.get_encoding("gpt2").token_byte_values()
    path = tmp_path / "mine.tiktoken"
    path.write_bytes(b"".join(base64.b64encode(t) + b" %d\n" % i for i, t in enumerate(tokens)))
    enc = ferrotok.Encoding.from_tiktoken(path, pattern="gpt2", special_tokens={"<|endoftext|>": 50256})
    texts = [*plain_corpus()[:10], "x<|endoftext|>"]
    want = enc.encode_batch(texts, num_threads=2, allowed_special="all").tolist()
    assert want == ferrotok.get_encoding("gpt2").encode_batch(texts, allowed_special="all").tolist()
    back = pickle.loads(pickle.dumps(enc))
    assert back is not enc
    assert back.encode_batch(texts, num_threads=2, allowed_special="all").tolist() == want


# -- torch and pyarrow (optional) ------------------------------------------------------------------


def test_to_torch_padded():
    torch = pytest.importorskip("torch")
    enc = ferrotok.get_encoding("o200k_base")
    batch = enc.encode_batch(["hello world", "", "a b c d e f"])
    for side in ("right", "left"):
        ids, mask = batch.to_torch(4, side=side, pad_id=enc.eot_token)
        want_ids, want_mask = batch.padded(4, side=side, pad_id=enc.eot_token)
        assert ids.dtype == mask.dtype == torch.int64
        assert ids.tolist() == want_ids.tolist() and mask.tolist() == want_mask.tolist()
        assert enc.decode_batch(ids, mask) == enc.decode_batch(want_ids, want_mask)
    ids, mask = batch.to_torch(dtype=torch.int32, pad_to_multiple_of=8)
    assert ids.dtype == mask.dtype == torch.int32 and ids.shape == (3, 8)
    assert batch.to_torch(dtype=np.int32)[0].dtype == torch.int32


def test_to_torch_ragged():
    torch = pytest.importorskip("torch")
    batch = ferrotok.get_encoding("gpt2").encode_batch(["hello world", "", "hi"])
    ids, offsets = batch.to_torch(padded=False)
    assert ids.dtype == offsets.dtype == torch.int64
    assert ids.tolist() == batch.ids.tolist() and offsets.tolist() == batch.offsets.tolist()
    assert offsets.data_ptr() == batch.offsets.ctypes.data  # shared, not copied
    assert batch.to_torch(padded=False, dtype=torch.int32)[0].dtype == torch.int32


def test_decode_batch_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    enc = ferrotok.get_encoding("cl100k_base")
    texts = ["hello", "a longer one ✓"]
    ids, mask = enc.encode_batch(texts).padded(side="left")
    assert enc.decode_batch(torch.from_numpy(ids), torch.from_numpy(mask)) == texts
    assert enc.decode_batch([torch.from_numpy(r.astype(np.int64)) for r in enc.encode_batch(texts)]) == texts


def test_to_arrow_shares_buffers():
    pa = pytest.importorskip("pyarrow")
    batch = ferrotok.get_encoding("o200k_base").encode_batch(["hello world", "", "hi there"])
    arr = batch.to_arrow()
    assert isinstance(arr, pa.LargeListArray)
    assert arr.type == pa.large_list(pa.uint32())
    assert arr.to_pylist() == batch.tolist()
    assert arr.values.buffers()[1].address == batch.ids.ctypes.data
    assert arr.offsets.buffers()[1].address == batch.offsets.ctypes.data
    assert batch[1:].to_arrow().to_pylist() == batch.tolist()[1:]


@pytest.mark.parametrize(("module", "method"), [("torch", "to_torch"), ("pyarrow", "to_arrow")])
def test_missing_optional_dependency_says_what_to_install(monkeypatch, module, method):
    monkeypatch.setitem(sys.modules, module, None)  # makes "import module" raise ImportError
    batch = ferrotok.get_encoding("gpt2").encode_batch(["a"])
    with pytest.raises(ImportError, match=f"pip install {module}"):
        getattr(batch, method)()
