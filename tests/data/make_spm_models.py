"""Writes tests/data/spm-unigram.model and tests/data/spm-bpe.model: small SentencePiece models
trained with sentencepiece's own trainer, so the SentencePiece tests run without ../shared.

Training text: the fixture corpus plus the first ~1.5 MB of ../shared/corpus/{en,multi}, one
line per non-empty line. The Unigram model (8000 pieces, nmt_nfkc normalizer) has user-defined
symbols and a control symbol; the BPE model (4000 pieces) falls back to bytes and splits digits.
sentencepiece's trainer is multithreaded, so a re-run may give slightly different models;
the tests compare against sentencepiece on whatever model is committed.

Run from the repository root, with ../shared beside it::

    python tests/data/make_spm_models.py
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import sentencepiece as spm

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared"


def training_text(path: Path) -> None:
    docs = [json.loads(line)["text"] for line in gzip.open(HERE / "fixture_corpus.jsonl.gz", "rt")]
    for name in ("en", "multi"):
        size = 0
        for line in gzip.open(SHARED / "corpus" / f"{name}.jsonl.gz", "rt"):
            docs.append(json.loads(line)["text"])
            size += len(docs[-1])
            if size > 1_500_000:
                break
    with open(path, "w", encoding="utf-8") as f:
        for doc in docs:
            f.writelines(line + "\n" for line in doc.split("\n") if line.strip())


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "train.txt"
        training_text(text)
        common = {"input": str(text), "character_coverage": 0.9995, "num_threads": 2, "minloglevel": 2}
        spm.SentencePieceTrainer.train(
            model_prefix=str(Path(tmp) / "unigram"),
            model_type="unigram",
            vocab_size=8000,
            user_defined_symbols=["<mask>", "[SEP]", "http://"],
            control_symbols=["<cls>"],
            **common,
        )
        spm.SentencePieceTrainer.train(
            model_prefix=str(Path(tmp) / "bpe"),
            model_type="bpe",
            vocab_size=4000,
            byte_fallback=True,
            user_defined_symbols=["<mask>"],
            allow_whitespace_only_pieces=True,
            split_digits=True,
            **common,
        )
        for name in ("unigram", "bpe"):
            (HERE / f"spm-{name}.model").write_bytes((Path(tmp) / f"{name}.model").read_bytes())


if __name__ == "__main__":
    main()
