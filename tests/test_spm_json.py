"""tokenizer.json files of SentencePiece BPE models (Llama, Mistral) through
ferrotok.Tokenizer.from_file, against Hugging Face tokenizers on the same file.

The files are what transformers writes for these models (its ``LlamaTokenizer`` converts the
``.model`` file: ``legacy=True`` prepends ``▁`` to every section, ``legacy=False`` only to the
first), plus edits HF loads too: the older Llama-2 layout (``Prepend`` + ``Replace``
normalizers, no pre-tokenizer), and a Metaspace pre-tokenizer that splits words with an
unknown token instead of byte fallback, fused or not. Ids, offsets, word ids, tokens and
decoded text must be identical on the fixture corpus, the shared corpora (Mistral's model,
skipped without ../shared) and hypothesis text.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import os
import shutil
from pathlib import Path

import ferrotok
import pytest
from conftest import SHARED, TESTS, fixture_corpus, shared_corpus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

tokenizers = pytest.importorskip("tokenizers")

SMALL = TESTS / "data" / "spm-bpe.model"
MISTRAL = SHARED / "vocab" / "mistral-v1.spm.model"
VARIANTS = ("always", "first", "legacy-normalizer", "split-unk", "split-unk-unfused")
TRICKY = [
    "",
    " ",
    "  a",
    "Hello  world <s> x",
    "<s>Hi</s> there",
    "é世 \U0001f600!",
    "a\n\nb\tc",
    " leading",
    "trailing ",
    "<unk>",
    "x" * 3000,
    "▁▁ ▁a",
    "\u0301\u200d",
]


@functools.cache
def converted(model: Path) -> dict:
    """The tokenizer.json transformers writes for `model`, per prepend scheme."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never ask the Hub
    transformers = pytest.importorskip("transformers")
    out = {}
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"ferrotok-spm-json-{os.getpid()}-{model.stem}"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(model, folder / "tokenizer.model")
    for legacy, scheme in ((True, "always"), (False, "first")):
        tok = transformers.LlamaTokenizer.from_pretrained(str(folder), legacy=legacy)
        out[scheme] = json.loads(tok.backend_tokenizer.to_str())
    shutil.rmtree(folder, ignore_errors=True)
    return out


def variant(model: Path, name: str) -> str:
    base = converted(model)
    if name in base:
        assert base[name]["pre_tokenizer"]["prepend_scheme"] == name
        return json.dumps(base[name])
    d = copy.deepcopy(base["always"])
    if name == "legacy-normalizer":
        d["normalizer"] = {
            "type": "Sequence",
            "normalizers": [
                {"type": "Prepend", "prepend": "▁"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
            ],
        }
        d["pre_tokenizer"] = None
    else:
        d["pre_tokenizer"]["split"] = True
        d["model"].update(byte_fallback=False, unk_token="<unk>", fuse_unk=name == "split-unk")
        d["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
        d["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": "<s>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
            ],
            "pair": [
                {"SpecialToken": {"id": "<s>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "</s>", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {
                "<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]},
            },
        }
    return json.dumps(d, ensure_ascii=False)


@functools.cache
def pair(model: Path, name: str):
    text = variant(model, name)
    ours = ferrotok.Tokenizer.from_str(text, origin=f"{model.name}:{name}")
    return ours, tokenizers.Tokenizer.from_str(text)


def fields(enc) -> dict:
    if isinstance(enc, ferrotok.Encoded):
        return {
            "ids": enc.ids.tolist(),
            "type_ids": enc.type_ids.tolist(),
            "offsets": [tuple(o) for o in enc.offsets.tolist()],
            "word_ids": enc.word_ids.tolist(),
            "special_tokens_mask": enc.special_tokens_mask.tolist(),
            "tokens": enc.tokens,
        }
    return {
        "ids": enc.ids,
        "type_ids": enc.type_ids,
        "offsets": [tuple(o) for o in enc.offsets],
        "word_ids": [-1 if w is None else w for w in enc.word_ids],
        "special_tokens_mask": enc.special_tokens_mask,
        "tokens": enc.tokens,
    }


def check(model: Path, name: str, texts: list[str]) -> None:
    ours, theirs = pair(model, name)
    bad = []
    for i, text in enumerate(texts):
        for special in (True, False):
            got = fields(ours.encode(text, add_special_tokens=special))
            want = fields(theirs.encode(text, add_special_tokens=special))
            if got != want:
                key = next(k for k in want if got[k] != want[k])
                bad.append(f"text {i} {text[:40]!r} special={special}: {key} differs")
        ids = theirs.encode(text).ids
        for skip in (True, False):
            if ours.decode(ids, skip_special_tokens=skip) != theirs.decode(ids, skip_special_tokens=skip):
                bad.append(f"text {i} {text[:40]!r}: decode(skip_special_tokens={skip}) differs")
    assert not bad, f"{len(bad)} differences, first: {bad[:3]}"


@pytest.mark.parametrize("name", VARIANTS)
def test_fixture_corpus_matches(name):
    check(SMALL, name, TRICKY + fixture_corpus())


@pytest.mark.skipif(not MISTRAL.is_file(), reason="../shared/vocab is absent")
@pytest.mark.parametrize("corpus", ["en", "multi"])
@pytest.mark.parametrize("name", ["first", "legacy-normalizer", "split-unk"])
def test_mistral_shared_corpus_matches(corpus, name):
    check(MISTRAL, name, TRICKY + shared_corpus(corpus))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(VARIANTS),
    text=st.text(
        st.one_of(
            st.sampled_from(list(" \t\n▁<s></s>abcé世\U0001f600\u0301")),
            st.characters(codec="utf-8"),
        ),
        max_size=40,
    ),
)
def test_fuzz_against_hf(name, text):
    check(SMALL, name, [text])


def test_pairs_and_batches_match():
    ours, theirs = pair(SMALL, "split-unk")
    docs = fixture_corpus()[:20]
    for a, b in itertools.pairwise(docs):
        assert fields(ours.encode(a, b)) == fields(theirs.encode(a, b))
    got = ours.encode_batch(docs).encodings
    want = theirs.encode_batch(docs)
    assert [fields(g) for g in got] == [fields(w) for w in want]
    pairs = list(itertools.pairwise(docs))
    got = ours.encode_batch(pairs).encodings
    assert [fields(g) for g in got] == [fields(w) for w in theirs.encode_batch(pairs)]


def test_vocabulary_and_tokens():
    ours, theirs = pair(SMALL, "first")
    assert ours.vocab_size == theirs.get_vocab_size()
    assert ours.get_vocab() == theirs.get_vocab()
    assert ours.token_to_id("<0x41>") == theirs.token_to_id("<0x41>")
    assert ours.model_type == "BPE"
    with pytest.raises(ValueError, match="WordPiece"):
        ours.save_vocab(Path(os.devnull))


def base_json() -> dict:
    return json.loads(variant(SMALL, "first"))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["model"].update(type="Unigram"), "Unigram"),
        (lambda d: d["model"].update(dropout=0.1), "dropout"),
        (lambda d: d["model"].update(continuing_subword_prefix="##"), "continuing_subword_prefix"),
        (
            lambda d: d.update(pre_tokenizer={"type": "ByteLevel", "add_prefix_space": False}),
            "Encoding.from_file",
        ),
        (
            lambda d: d.update(normalizer={"type": "Replace", "pattern": {"Regex": " +"}, "content": "▁"}),
            "Regex",
        ),
        (lambda d: d.update(normalizer={"type": "NFKC"}), "NFKC"),
        (lambda d: d.update(decoder={"type": "CTC"}), "CTC"),
        (lambda d: d["model"]["merges"].append(["zzz", "qqq"]), "not in the vocabulary"),
    ],
)
def test_unsupported_or_bad_files_are_named(edit, message):
    d = base_json()
    edit(d)
    with pytest.raises(ValueError, match=message) as e:
        ferrotok.Tokenizer.from_str(json.dumps(d), origin="edited.json")
    assert "edited.json" in str(e.value)
