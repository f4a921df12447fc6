"""Adversarial inputs: huge whitespace runs, long runs of one letter, random base64.

Correctness only; no timing is asserted. Where tiktoken itself fails (its regex engine
overflows on a megabyte of spaces), ids are checked against ``bpe_reference``, a pure-Python
port of tiktoken's merge applied to the pieces the official patterns give.
"""

from __future__ import annotations

import random

import ferrotok
import pytest
from bpe_reference import byte_pair_encode, byte_pair_merge_literal, encode_pieces
from conftest import ENCODINGS, assert_same_ids, reference

# -- the reference merge against tiktoken ---------------------------------------------------------


@pytest.mark.parametrize("name", ENCODINGS)
def test_reference_merge_matches_tiktoken(name):
    ref = reference(name)
    ranks = ref._mergeable_ranks
    rng = random.Random(1234)
    alphabet = " \t\n aeiouxyzé中😀1'"
    cases = [b"a", b" ", b"  ", b"hello", b"  hello", "ж".encode() * 7, b"\xff\xfe", b" " * 300]
    cases += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))).encode() for _ in range(300)]
    cases += [bytes(rng.randrange(256) for _ in range(rng.randint(1, 30))) for _ in range(100)]
    for piece in cases:
        want = ref._encode_single_piece(piece)
        assert byte_pair_merge_literal(ranks, piece) == want, piece
        assert byte_pair_encode(ranks, piece) == want, piece


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("n", [1, 2, 5, 1000, 100_000])
def test_space_run_then_letter_pieces(name, n):
    """The split the megabyte test relies on: all spaces but the last, then " a" (tiktoken agrees)."""
    enc, ref = ferrotok.get_encoding(name), reference(name)
    text = " " * n + "a"
    pieces = [" " * (n - 1), " a"] if n > 1 else [" a"]
    assert enc.split(text) == pieces
    want = ref.encode_ordinary(text)
    assert encode_pieces(ref._mergeable_ranks, pieces) == want
    assert_same_ids(enc.encode_ordinary(text), want, f"{n} spaces + a", ref)


@pytest.mark.parametrize("name", ENCODINGS)
def test_megabyte_of_spaces_then_letter(name):
    enc, ref = ferrotok.get_encoding(name), reference(name)
    text = " " * 1_000_000 + "a"
    got = enc.encode_ordinary(text)
    want = encode_pieces(ref._mergeable_ranks, [" " * 999_999, " a"])
    assert_same_ids(got, want, "1 MB of spaces + a", ref)
    assert enc.decode(want) == text


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("text", [" " * 200_000, "\n" * 200_000, " \n" * 100_000, "\t" * 100_000 + "x"])
def test_long_whitespace_runs(name, text):
    enc, ref = ferrotok.get_encoding(name), reference(name)
    assert_same_ids(enc.encode_ordinary(text), ref.encode_ordinary(text), repr(text[:4]), ref)


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("letter", ["é", "ж", "a", "中"])
def test_long_run_of_one_letter(name, letter):
    enc, ref = ferrotok.get_encoding(name), reference(name)
    text = letter * (200_000 // len(letter.encode("utf-8")))
    assert_same_ids(enc.encode_ordinary(text), ref.encode_ordinary(text), f"{letter!r} run", ref)


@pytest.mark.parametrize("name", ENCODINGS)
def test_random_base64(name):
    enc, ref = ferrotok.get_encoding(name), reference(name)
    rng = random.Random(0)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    text = "".join(rng.choice(alphabet) for _ in range(200_000))
    assert_same_ids(enc.encode_ordinary(text), ref.encode_ordinary(text), "random base64", ref)


@pytest.mark.parametrize("name", ENCODINGS)
def test_long_pieces_of_random_text(name):
    """Pieces of 256 bytes and more take the backtracking search (rust/src/bpe/backtrack.rs):
    random runs over small alphabets give long pieces with many different token pairs."""
    enc, ref = ferrotok.get_encoding(name), reference(name)
    rng = random.Random(7)
    alphabets = ["ab", "etaoinsh", "éèa", "中文字词", " \t", " \n\r", "=-*", "жщ", "🙂😀", "xyz "]
    for i in range(120):
        alphabet = alphabets[i % len(alphabets)]
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(200, 4000)))
        assert max(map(len, enc.split(text))) >= 200 or " " in alphabet
        assert_same_ids(enc.encode_ordinary(text), ref.encode_ordinary(text), repr(text[:20]), ref)
