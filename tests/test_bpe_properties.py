"""Property tests: ids identical to tiktoken on generated text aimed at the split patterns' corners."""

# ruff: noqa: RUF001, RUF003  (the test text is meant to hold look-alike characters)
from __future__ import annotations

import ferrotok
import pytest
from conftest import ENCODINGS, reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters from every class the patterns distinguish: letters by case (Lu Ll Lt Lm Lo),
# marks, digits of several scripts, punctuation, symbols, every kind of whitespace.
CHARS = (
    "aZ éÉßſ\u212a ǅǈ ΣσΐΰЖж ا ب ة ﻻ नम स् ते 中文日本 한국 ｶﾀ ʰˇ ° ª ๆ"
    "\u0301\u0300\u036f\u0903\u093e\u20dd 0 9 ٣ ४ ² ½ Ⅻ"
    "!?.,;:'\"/\\-_()[]{}<>|@#$%^&*+=~`€£ "
    "\t\n\r\x0b\x0c\x85\u00a0\u1680\u2000\u2009\u200b\u2028\u2029\u202f\u3000\ufeff"
    "😀🦀👍🏽\u200d\ufe0f🇫🇷🏳🌈\U0001d400\U000e0041\x00\x1f\x7f"
)

FRAGMENTS = [
    # contractions in every case, including ſ (folds to s) and the Kelvin sign (folds to k)
    *["'s", "'S", "'ſ", "'t", "'T", "'re", "'RE", "'Re", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'lL"],
    *["'d", "'D", "'K", "'\u212a", "'\u212aa", "'", "''", "’s"],
    # whitespace runs and line ends
    *[" ", "  ", "   ", " " * 17, "\t", "\t\t", "\r\n", "\n", "\n\n", "\r", "\r\r\n", " \n "],
    *["\u00a0", "\u3000", "\u2028", "\x85"],
    # digits, letters, mixed case, words
    *["1", "12", "123", "1234", "12345", "٣٤٥", "x", "Hello", "WORLD", "camelCase", "ǅungla", "Straße"],
    # marks, emoji sequences, scripts
    *["e\u0301", "\u0301", "\u0308\u0301", "👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "👍🏽", "🇫🇷"],
    *["中文", "한국어", "مرحبا", "नमस्ते", "ภาษาไทย", "שָׁלוֹם"],
    # punctuation, paths, code
    *["!", "?!", "...", "/", "//", "/\n", "*/", "{", "});", "    ", "\tif x:\n\t\t", "<", "|>"],
]

SPECIALS = ["<|endoftext|>", "<|endofprompt|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>"]

chars_text = st.text(alphabet=st.sampled_from(CHARS), max_size=40)
mixed_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), chars_text), max_size=25).map("".join)
whitespace_text = st.text(alphabet=st.sampled_from(" \t\n\r\x0b\x0c\x85\u00a0\u2028\u3000a1!'"), max_size=200)
any_fragment = st.sampled_from(FRAGMENTS + SPECIALS)
with_specials = st.lists(st.one_of(any_fragment, chars_text), max_size=25).map("".join)
lone_surrogate = st.integers(0xD800, 0xDFFF).map(chr)
with_surrogates = st.lists(
    st.one_of(lone_surrogate, st.just("\ud83d\ude00"), st.sampled_from(FRAGMENTS), chars_text), max_size=20
).map("".join)


def check(name: str, text: str) -> None:
    enc, ref = ferrotok.get_encoding(name), reference(name)
    ids = enc.encode_ordinary(text).tolist()
    assert ids == ref.encode_ordinary(text), f"{text!r}"
    assert enc.decode(ids) == text


@pytest.mark.parametrize("name", ENCODINGS)
@PROPS
@given(text=mixed_text)
def test_mixed_fragments(name, text):
    check(name, text)


@pytest.mark.parametrize("name", ENCODINGS)
@PROPS
@given(text=st.text())
def test_any_unicode(name, text):
    check(name, text)


@pytest.mark.parametrize("name", ENCODINGS)
@PROPS
@given(text=whitespace_text)
def test_whitespace_runs(name, text):
    check(name, text)


@pytest.mark.parametrize("name", ENCODINGS)
@PROPS
@given(text=with_specials)
def test_special_tokens(name, text):
    enc, ref = ferrotok.get_encoding(name), reference(name)
    ids = enc.encode(text, allowed_special="all").tolist()
    assert ids == ref.encode(text, allowed_special="all"), f"{text!r}"
    assert enc.decode(ids) == text
    assert enc.encode(text, disallowed_special=()).tolist() == ref.encode(text, disallowed_special=())
    assert enc.encode_ordinary(text).tolist() == ref.encode_ordinary(text)


@pytest.mark.parametrize("name", ENCODINGS)
@PROPS
@given(text=with_surrogates)
def test_lone_surrogates_are_repaired_like_tiktoken(name, text):
    enc, ref = ferrotok.get_encoding(name), reference(name)
    got = enc.encode(text, disallowed_special=()).tolist()
    assert got == ref.encode(text, disallowed_special=()), f"{text!r}"
    assert enc.encode_ordinary(text).tolist() == ref.encode_ordinary(text), f"{text!r}"
