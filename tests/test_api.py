"""The Python API: construction, types, special tokens, decoding, errors, pickling, threads."""

from __future__ import annotations

import base64
import pickle
import re
from concurrent.futures import ThreadPoolExecutor

import ferrotok
import numpy as np
import pytest
from conftest import ENCODINGS, fixture_corpus, reference
from ferrotok import Encoding

# -- get_encoding / list_encodings ----------------------------------------------------------------


def test_list_encodings():
    assert ferrotok.list_encodings() == ["gpt2", "r50k_base", "cl100k_base", "o200k_base"]


def test_get_encoding_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="no_such_encoding") as info:
        ferrotok.get_encoding("no_such_encoding")
    for name in ferrotok.list_encodings():
        assert name in str(info.value)


@pytest.mark.parametrize("name", ferrotok.list_encodings())
def test_get_encoding_is_cached(name):
    enc = ferrotok.get_encoding(name)
    assert enc is ferrotok.get_encoding(name)
    assert enc.name == name
    assert name in repr(enc)


def test_gpt2_and_r50k_base_are_identical():
    a, b = ferrotok.get_encoding("gpt2"), ferrotok.get_encoding("r50k_base")
    assert a.token_byte_values() == b.token_byte_values()
    assert (a.pattern, a.special_tokens, a.n_vocab) == (b.pattern, b.special_tokens, b.n_vocab)
    text = "\n".join(fixture_corpus()[:20])
    assert a.encode_ordinary(text).tolist() == b.encode_ordinary(text).tolist()


# -- properties -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ENCODINGS)
def test_properties_match_tiktoken(name):
    enc, ref = ferrotok.get_encoding(name), reference(name)
    assert enc.n_vocab == ref.n_vocab
    assert enc.max_token_value == ref.max_token_value
    assert enc.eot_token == ref.eot_token
    assert enc.special_tokens_set == ref.special_tokens_set
    assert enc.special_tokens == ref._special_tokens


# -- encoding -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "a", "hello world", "<|endoftext|>" * 3])
@pytest.mark.parametrize("name", ENCODINGS)
def test_outputs_are_1d_uint32(name, text):
    enc = ferrotok.get_encoding(name)
    for ids in (enc.encode_ordinary(text), enc.encode(text, allowed_special="all")):
        assert isinstance(ids, np.ndarray)
        assert ids.dtype == np.uint32
        assert ids.ndim == 1
    assert enc.encode_ordinary("").shape == (0,)


@pytest.mark.parametrize("name", ENCODINGS)
def test_disallowed_special_raises_naming_the_token(name):
    enc, ref = ferrotok.get_encoding(name), reference(name)
    for token in enc.special_tokens_set:
        text = f"hi {token} there"
        with pytest.raises(ValueError, match=re.escape(token)):
            enc.encode(text)
        with pytest.raises(ValueError):
            ref.encode(text)
        assert enc.encode(text, allowed_special="all").tolist() == ref.encode(text, allowed_special="all")
        assert enc.encode(text, allowed_special={token}).tolist() == ref.encode(text, allowed_special={token})
        assert enc.encode(text, disallowed_special=()).tolist() == ref.encode(text, disallowed_special=())
        assert enc.encode(text, allowed_special="all").tolist().count(enc.special_tokens[token]) == 1


def test_only_disallowed_tokens_raise():
    enc, ref = ferrotok.get_encoding("cl100k_base"), reference("cl100k_base")
    text = "<|fim_prefix|>a<|endoftext|>b<|fim_middle|>"
    with pytest.raises(ValueError, match=re.escape("<|fim_prefix|>")):
        enc.encode(text, allowed_special={"<|endoftext|>"})
    with pytest.raises(ValueError, match=re.escape("<|fim_middle|>")):
        enc.encode(text, allowed_special={"<|endoftext|>", "<|fim_prefix|>"})
    for kwargs in [
        {"allowed_special": {"<|endoftext|>"}, "disallowed_special": ()},
        {"allowed_special": {"<|fim_prefix|>", "<|fim_middle|>"}, "disallowed_special": {"<|fim_suffix|>"}},
        {"disallowed_special": {"<|endofprompt|>"}},
    ]:
        assert enc.encode(text, **kwargs).tolist() == ref.encode(text, **kwargs), kwargs


@pytest.mark.parametrize("name", ENCODINGS)
def test_encode_ordinary_treats_special_tokens_as_text(name):
    enc, ref = ferrotok.get_encoding(name), reference(name)
    text = "".join(sorted(enc.special_tokens_set))
    assert enc.encode_ordinary(text).tolist() == ref.encode_ordinary(text)
    assert enc.eot_token not in enc.encode_ordinary(text).tolist()


@pytest.mark.parametrize("bad", [b"bytes", 42, None, ["a", "b"]])
def test_non_str_input_raises_type_error(bad):
    enc = ferrotok.get_encoding("cl100k_base")
    with pytest.raises(TypeError):
        enc.encode(bad)
    with pytest.raises(TypeError):
        enc.encode_ordinary(bad)


@pytest.mark.parametrize("name", ENCODINGS)
def test_encode_single_token(name):
    enc, ref = ferrotok.get_encoding(name), reference(name)
    for token in ["hello", " the", "!", b"\xff", b" world", *enc.special_tokens_set]:
        assert enc.encode_single_token(token) == ref.encode_single_token(token)
    with pytest.raises(KeyError):
        enc.encode_single_token("not one single token at all")
    # as tiktoken: a special token's UTF-8 bytes name it too; other types are refused
    for token in enc.special_tokens_set:
        assert enc.encode_single_token(token.encode()) == ref.encode_single_token(token.encode())
    for bad in (104, [104], None):
        with pytest.raises(TypeError):
            enc.encode_single_token(bad)


def test_decode_single_token_bytes_takes_ints_only():
    enc = ferrotok.get_encoding("gpt2")
    assert enc.decode_single_token_bytes(np.int64(31373)) == b"hello"
    for bad in ("5", 1.7):
        with pytest.raises(TypeError):
            enc.decode_single_token_bytes(bad)


def test_split_repairs_lone_surrogates_as_encode_does():
    enc = ferrotok.get_encoding("cl100k_base")
    assert enc.split("a\ud800b c") == enc.split("a\ufffdb c")


@pytest.mark.parametrize("token", [-1, 2**32 - 1, 2**40])
def test_from_tiktoken_special_token_ids_out_of_range_name_the_token(tmp_path, token):
    path = write_rank_file(tmp_path / "v.tiktoken", lines=BYTE_LINES)
    with pytest.raises(ValueError, match=r"'<\|x\|>'.*id"):
        Encoding.from_tiktoken(path, pattern="gpt2", special_tokens={"<|x|>": token})


def test_from_file_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x80\x81 not text")
    for load in (Encoding.from_file, ferrotok.Tokenizer.from_file, ferrotok.Tokenizer.from_vocab):
        with pytest.raises(ValueError, match=re.escape(str(path)) + ".*not UTF-8"):
            load(path)


# -- decoding -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ENCODINGS)
def test_decode_token_split_mid_character(name):
    enc, ref = ferrotok.get_encoding(name), reference(name)
    # A character whose UTF-8 bytes take more than one token, then cut after the first token.
    char = next(c for c in "😀🦀𝄞ꙮ𒀀" if len(enc.encode_ordinary(c)) > 1)
    ids = enc.encode_ordinary(f"a{char}b").tolist()
    cut = ids[:2]
    assert enc.decode(cut) == ref.decode(cut) == enc.decode(cut, errors="replace")
    assert "\ufffd" in enc.decode(cut)
    with pytest.raises(UnicodeDecodeError):
        enc.decode(cut, errors="strict")
    assert enc.decode(ids, errors="strict") == f"a{char}b"
    assert enc.decode_bytes(cut) == ref.decode_bytes(cut)


@pytest.mark.parametrize("name", ENCODINGS)
def test_decode_bytes_variants_match_tiktoken(name):
    enc, ref = ferrotok.get_encoding(name), reference(name)
    ids = enc.encode("Grüße, 世界! 🦀 <|endoftext|>", allowed_special="all").tolist()
    assert enc.decode_bytes(ids) == ref.decode_bytes(ids)
    assert enc.decode_tokens_bytes(ids) == ref.decode_tokens_bytes(ids)
    for t in [*ids, 0, 255, enc.max_token_value]:
        assert enc.decode_single_token_bytes(t) == ref.decode_single_token_bytes(t)
    assert enc.decode([]) == ""
    assert enc.decode_bytes([]) == b""
    assert enc.decode_tokens_bytes([]) == []


@pytest.mark.parametrize(
    "dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
)
def test_decode_accepts_integer_arrays(dtype):
    enc = ferrotok.get_encoding("gpt2")
    ids = [0, 31, 64, 90, 93]  # ASCII in gpt2, and small enough for every dtype
    want = enc.decode(ids)
    assert enc.decode(np.array(ids, dtype=dtype)) == want
    assert enc.decode_bytes(np.array(ids, dtype=dtype)) == want.encode() == b"!@a{~"
    assert enc.decode_tokens_bytes(np.array(ids, dtype=dtype)) == enc.decode_tokens_bytes(ids)
    # non-contiguous views too
    assert enc.decode(np.repeat(np.array(ids, dtype=dtype), 2)[::2]) == want


def test_decode_round_trips_its_own_output():
    enc = ferrotok.get_encoding("o200k_base")
    text = fixture_corpus()[0]
    ids = enc.encode_ordinary(text)
    assert enc.decode(ids) == text
    assert enc.decode(ids.astype(np.int64)) == enc.decode(ids.tolist()) == text


def test_decode_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    enc = ferrotok.get_encoding("cl100k_base")
    ids = enc.encode_ordinary("hello torch")
    assert enc.decode(torch.tensor(ids.astype(np.int64))) == "hello torch"


@pytest.mark.parametrize("name", ENCODINGS)
def test_bad_ids_raise_value_error_naming_the_id(name):
    enc = ferrotok.get_encoding(name)
    holes = sorted(
        set(range(enc.n_vocab)) - set(range(len(enc.token_byte_values()))) - set(enc.special_tokens.values())
    )
    for bad in [enc.n_vocab, enc.n_vocab + 1000, -1, -(2**40), 2**40, *holes[:3]]:
        names_it = rf"(?<![0-9]){re.escape(str(bad))}(?![0-9])"
        for call in (enc.decode, enc.decode_bytes, enc.decode_tokens_bytes):
            with pytest.raises(ValueError, match=names_it):
                call([1, bad, 2])
        with pytest.raises(ValueError, match=names_it):
            enc.decode_single_token_bytes(bad)
    with pytest.raises(ValueError, match=str(2**64 - 1)):
        enc.decode(np.array([2**64 - 1], dtype=np.uint64))


def test_non_integer_ids_raise_type_error():
    enc = ferrotok.get_encoding("gpt2")
    with pytest.raises(TypeError):
        enc.decode(np.array([1.0, 2.0]))
    with pytest.raises(TypeError):
        enc.decode(["a", "b"])


# -- pickling and threads -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ferrotok.list_encodings())
def test_pickle_embedded_by_name(name):
    enc = ferrotok.get_encoding(name)
    data = pickle.dumps(enc)
    assert len(data) < 200  # by name, not by vocabulary
    assert pickle.loads(data) is enc


def test_pickle_from_tiktoken_round_trips(tmp_path):
    path = write_rank_file(tmp_path / "gpt2.tiktoken", ferrotok.get_encoding("gpt2").token_byte_values())
    enc = Encoding.from_tiktoken(path, pattern="gpt2", special_tokens={"<|endoftext|>": 50256}, name="mine")
    back = pickle.loads(pickle.dumps(enc))
    assert back.name == "mine"
    assert (back.pattern, back.special_tokens, back.n_vocab) == (enc.pattern, enc.special_tokens, enc.n_vocab)
    assert back.token_byte_values() == enc.token_byte_values()
    text = fixture_corpus()[1] + "<|endoftext|>"
    assert (
        back.encode(text, allowed_special="all").tolist() == enc.encode(text, allowed_special="all").tolist()
    )


@pytest.mark.parametrize("name", ENCODINGS)
def test_sixteen_threads_give_identical_ids(name):
    enc = ferrotok.get_encoding(name)
    docs = fixture_corpus() * 4
    serial = [enc.encode_ordinary(d).tolist() for d in docs]
    with ThreadPoolExecutor(max_workers=16) as pool:
        parallel = list(pool.map(lambda d: enc.encode_ordinary(d).tolist(), docs))
        decoded = list(pool.map(enc.decode, serial))
    assert parallel == serial
    assert decoded == docs


# -- Encoding.from_tiktoken -----------------------------------------------------------------------


def rank_lines(tokens):
    return [base64.b64encode(t) + b" " + str(i).encode() for i, t in enumerate(tokens)]


def write_rank_file(path, tokens=None, *, lines=None, newline=b"\n"):
    if lines is None:
        lines = rank_lines(tokens)
    path.write_bytes(newline.join(lines) + newline)
    return path


BYTE_LINES = rank_lines([bytes([b]) for b in range(256)])  # the smallest valid byte-level vocab


@pytest.mark.parametrize("name", ENCODINGS)
def test_from_tiktoken_equals_embedded(tmp_path, name):
    embedded = ferrotok.get_encoding(name)
    path = write_rank_file(tmp_path / f"{name}.tiktoken", embedded.token_byte_values())
    enc = Encoding.from_tiktoken(path, pattern=name, special_tokens=embedded.special_tokens)
    assert enc.name == f"{name}.tiktoken"
    assert enc.pattern == embedded.pattern
    assert enc.n_vocab == embedded.n_vocab
    assert enc.token_byte_values() == embedded.token_byte_values()
    for doc in fixture_corpus():
        assert (
            enc.encode(doc, allowed_special="all").tolist()
            == embedded.encode(doc, allowed_special="all").tolist()
        )


def test_from_tiktoken_pattern_shorthand_and_str_path(tmp_path):
    path = write_rank_file(tmp_path / "bytes.tiktoken", lines=BYTE_LINES)
    enc = Encoding.from_tiktoken(str(path), pattern="cl100k_base")
    assert enc.pattern == ferrotok.get_encoding("cl100k_base").pattern
    assert enc.n_vocab == 256
    assert enc.encode_ordinary("ab").tolist() == [97, 98]


def test_from_tiktoken_crlf_and_blank_lines(tmp_path):
    lines = [*BYTE_LINES[:100], b"", *BYTE_LINES[100:]]
    enc = Encoding.from_tiktoken(
        write_rank_file(tmp_path / "crlf.tiktoken", lines=lines, newline=b"\r\n"), pattern="gpt2"
    )
    assert enc.token_byte_values() == [bytes([b]) for b in range(256)]


def test_from_tiktoken_custom_pattern_and_specials(tmp_path):
    path = write_rank_file(tmp_path / "v.tiktoken", lines=[*BYTE_LINES, b"YWI= 256"])  # "ab"
    enc = Encoding.from_tiktoken(path, pattern=r"\S+|\s+", special_tokens={"<|x|>": 300})
    assert enc.n_vocab == 301
    assert enc.encode("ab ab<|x|>", allowed_special="all").tolist() == [256, 32, 256, 300]
    assert enc.split("ab  cd") == ["ab", "  ", "cd"]


def test_from_tiktoken_missing_file(tmp_path):
    path = tmp_path / "nope.tiktoken"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        Encoding.from_tiktoken(path, pattern="gpt2")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"!!!! 3", "base64"),
        (b"Aw== x", "rank"),
        (b"Aw== -3", "rank"),
        (b"Aw==", "expected"),
        (b"Aw== 3 extra", "expected"),
    ],
)
def test_from_tiktoken_bad_line_names_file_and_line(tmp_path, line, message):
    path = write_rank_file(tmp_path / "bad.tiktoken", lines=[*BYTE_LINES[:3], line, *BYTE_LINES[4:]])
    with pytest.raises(ValueError, match=re.escape(str(path)) + r".*line 4\b.*" + message):
        Encoding.from_tiktoken(path, pattern="gpt2")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        # b"\x05" twice
        (BYTE_LINES[5].split()[0] + b" 256", r"line 257: duplicate token .*first on line 6\b"),
        (b"YWI= 5", r"line 257: duplicate rank 5 \(first on line 6\)"),
    ],
)
def test_from_tiktoken_duplicates_name_the_file_and_line(tmp_path, extra, message):
    path = write_rank_file(tmp_path / "dup.tiktoken", lines=[*BYTE_LINES, extra])
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message):
        Encoding.from_tiktoken(path, pattern="gpt2")


def test_from_tiktoken_ids_far_past_the_vocabulary_are_refused(tmp_path):
    # tables by id would take gigabytes: refused at load, naming the line or the token
    path = write_rank_file(tmp_path / "far.tiktoken", lines=[*BYTE_LINES, b"YWI= 4294967294"])
    with pytest.raises(ValueError, match=re.escape(str(path)) + r".*line 257: rank 4294967294 is far past"):
        Encoding.from_tiktoken(path, pattern="gpt2")
    path = write_rank_file(tmp_path / "v.tiktoken", lines=BYTE_LINES)
    with pytest.raises(ValueError, match=r"special token id 100000000 is far past"):
        Encoding.from_tiktoken(path, pattern="gpt2", special_tokens={"<|x|>": 10**8})


def test_from_tiktoken_missing_single_byte(tmp_path):
    path = write_rank_file(tmp_path / "nobyte.tiktoken", lines=BYTE_LINES[:65] + BYTE_LINES[66:])
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*0x41"):
        Encoding.from_tiktoken(path, pattern="gpt2")


def test_from_tiktoken_empty_file(tmp_path):
    path = tmp_path / "empty.tiktoken"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        Encoding.from_tiktoken(path, pattern="gpt2")


@pytest.mark.parametrize("pattern", ["(", r"\p{NoSuchClass}", "[a-"])
def test_from_tiktoken_bad_pattern(tmp_path, pattern):
    path = write_rank_file(tmp_path / "v.tiktoken", lines=BYTE_LINES)
    with pytest.raises(ValueError, match="pattern"):
        Encoding.from_tiktoken(path, pattern=pattern)


def test_from_tiktoken_special_token_clashing_with_a_mergeable_id(tmp_path):
    path = write_rank_file(tmp_path / "v.tiktoken", lines=BYTE_LINES)
    with pytest.raises(ValueError, match="<\\|x\\|>"):
        Encoding.from_tiktoken(path, pattern="gpt2", special_tokens={"<|x|>": 5})


def test_disallowed_string_that_is_not_a_special_token_raises_like_tiktoken():
    enc = ferrotok.get_encoding("cl100k_base")
    with pytest.raises(ValueError, match="ell"):
        enc.encode("hello", disallowed_special={"ell"})
    assert enc.encode("hello", disallowed_special={"xyz"}).tolist() == enc.encode_ordinary("hello").tolist()


@pytest.mark.parametrize("bad", [2**63, 2**70, -(2**70)])
def test_huge_ids_name_the_id(bad):
    enc = ferrotok.get_encoding("gpt2")
    with pytest.raises(ValueError, match=str(bad)):
        enc.decode([1, bad])
    with pytest.raises(ValueError, match=str(bad)):
        enc.decode_single_token_bytes(bad)
