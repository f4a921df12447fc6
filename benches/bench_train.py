"""Training benchmark: ferrotok's trainers against Hugging Face's ``BpeTrainer`` (byte-level
BPE) and ``WordPieceTrainer`` (through ``BertWordPieceTokenizer``).

    python benches/bench_train.py                    # all of ../shared/corpus, 32k vocab
    python benches/bench_train.py --vocab-size 8000 --corpus en
    python benches/bench_train.py --big 1000         # also stream a generated 1000 MB file

Each run is a fresh subprocess using every core (both trainers are multi-threaded). Both
split text with the same regex (cl100k_base's; Oniguruma's spelling for HF) and byte-level
symbols, so both learn the same vocabulary: ``same vocab`` checks it. ``train s`` times the
training call only (the documents are already in memory, as a list of str); ``peak MB`` is
the growth of the process's peak resident memory during that call. WordPiece runs use BERT's
uncased normalizer and pre-tokenizer in both libraries (30k vocab); their vocabularies are not
compared here (HF numbers the ``##`` characters in hash order, so its ties vary from run to
run); the tests compare their compression on held-out text instead. Unigram runs train
ferrotok against sentencepiece's trainer (``identity`` normalization, every core, the
documents' lines as sentences; 16k pieces).
``--big`` writes a corpus file of that many MB (the shared documents repeated with shuffled words) and trains
ferrotok from the file, to show that memory follows the distinct pieces, not the text.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import peers
from timing import read_corpus

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"
RESULT = "@@bench_train "
PATTERN = "cl100k_base"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def load_docs(corpora: list[str]) -> list[str]:
    return [d for name in corpora for d in read_corpus(SHARED / "corpus" / f"{name}.jsonl.gz", None)]


def vocab_hash(tokens: list[bytes]) -> str:
    return hashlib.blake2b(b"\0".join(tokens), digest_size=8).hexdigest()


def train_ferrotok(data, vocab_size: int) -> list[bytes]:
    import ferrotok

    # data: the documents, or [Path] of a file (streamed)
    enc = ferrotok.train_bpe(data, vocab_size, pattern=PATTERN, min_frequency=2, progress=False)
    return [enc.decode_single_token_bytes(i) for i in range(enc.n_vocab)]


def train_hf(docs: list[str], vocab_size: int) -> list[bytes]:
    import ferrotok
    import tokenizers

    pre = tokenizers.pre_tokenizers
    regex = peers.oniguruma(ferrotok.get_encoding(PATTERN).pattern)
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = pre.Sequence(
        [
            pre.Split(tokenizers.Regex(regex), behavior="isolated"),
            pre.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, initial_alphabet=pre.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(docs, trainer)
    char_byte = {c: b for b, c in peers._bytes_to_unicode().items()}
    by_id = {i: s for s, i in tok.get_vocab().items()}
    return [bytes(char_byte[c] for c in by_id[i]) for i in range(len(by_id))]


def train_ferrotok_wp(docs: list[str], vocab_size: int) -> list[bytes]:
    import ferrotok

    tok = ferrotok.train_wordpiece(docs, vocab_size, progress=False)
    return [tok.id_to_token(i).encode() for i in range(tok.vocab_size)]


def train_hf_wp(docs: list[str], vocab_size: int) -> list[bytes]:
    import tokenizers

    tok = tokenizers.BertWordPieceTokenizer()
    tok.train_from_iterator(docs, vocab_size=vocab_size, show_progress=False)
    return sorted(t.encode() for t in tok.get_vocab())


def _lines(docs: list[str]) -> list[str]:
    return [line for d in docs for line in d.split("\n") if line.strip()]


def train_ferrotok_unigram(docs: list[str], vocab_size: int) -> list[bytes]:
    import ferrotok

    sp = ferrotok.train_unigram(docs, vocab_size, progress=False)
    return [sp.id_to_piece(i).encode() for i in range(sp.vocab_size)]


def train_sentencepiece(docs: list[str], vocab_size: int) -> list[bytes]:
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_lines(docs)),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        normalization_rule_name="identity",
        num_threads=os.cpu_count(),
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    return [sp.id_to_piece(i).encode() for i in range(sp.vocab_size())]


TRAINERS = {
    "ferrotok": train_ferrotok,
    "hf-tokenizers": train_hf,
    "ferrotok-wp": train_ferrotok_wp,
    "hf-wp": train_hf_wp,
    "ferrotok-unigram": train_ferrotok_unigram,
    "sentencepiece": train_sentencepiece,
}


def worker(lib: str, corpora: list[str], vocab_size: int, big_file: str | None) -> None:
    data: object = [Path(big_file)] if big_file else load_docs(corpora)
    size = os.path.getsize(big_file) if big_file else sum(len(d.encode("utf-8")) for d in data)  # type: ignore[union-attr]
    before = peak_mb()
    t = time.perf_counter()
    tokens = TRAINERS[lib](data, vocab_size)  # type: ignore[arg-type]
    spent = time.perf_counter() - t
    out = {"lib": lib, "seconds": spent, "mb": size / 1e6, "peak_mb": peak_mb() - before}
    out.update({"n_tokens": len(tokens), "vocab": vocab_hash(tokens)})
    print(RESULT + json.dumps(out), flush=True)


def run(lib: str, corpora: list[str], vocab_size: int, big_file: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--worker", lib, "--vocab-size", str(vocab_size), "--corpus", *corpora]
    if big_file:
        cmd += ["--big-file", big_file]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    raise RuntimeError(f"{lib} failed:\n{proc.stderr[-2000:]}")


def write_big(path: str, mb: int, corpora: list[str]) -> None:
    rng = random.Random(0)
    docs = load_docs(corpora)
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < mb * 10**6:
            words = rng.choice(docs).split(" ")
            rng.shuffle(words)
            text = " ".join(words) + "\n"
            f.write(text)
            written += len(text.encode("utf-8"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", nargs="+", default=["en", "code", "multi"])
    ap.add_argument("--vocab-size", type=int, default=32000)
    ap.add_argument("--unigram-size", type=int, default=16000)
    ap.add_argument("--big", type=int, default=0, help="also train from a generated file of this many MB")
    ap.add_argument("--worker")
    ap.add_argument("--big-file")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.corpus, args.vocab_size, args.big_file)
        return
    rows = [run(lib, args.corpus, args.vocab_size) for lib in ("ferrotok", "hf-tokenizers")]
    if args.big:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "big.txt")
            write_big(path, args.big, args.corpus)
            big = run("ferrotok", args.corpus, args.vocab_size, path)
            big["lib"] = "ferrotok (file)"
            rows.append(big)
    wp = [run(lib, args.corpus, 30000) for lib in ("ferrotok-wp", "hf-wp")]
    uni = [run(lib, args.corpus, args.unigram_size) for lib in ("ferrotok-unigram", "sentencepiece")]
    print(f"corpus {'+'.join(args.corpus)}, {os.cpu_count()} cores\n")
    print(f"{'trainer':<36} {'MB':>7} {'train s':>8} {'MB/s':>7} {'peak MB':>8} {'tokens':>7} {'same':>5}")
    for kind, group, same_of in (
        (f"byte-level BPE {args.vocab_size}", rows, lambda r: r["vocab"] == rows[1]["vocab"]),
        ("WordPiece 30000", wp, None),
        (f"Unigram {args.unigram_size}", uni, None),
    ):
        for r in group:
            same = "-" if same_of is None or r["lib"].endswith("(file)") else ("yes" if same_of(r) else "NO")
            name = f"{kind} {r['lib']}"
            speed = r["mb"] / r["seconds"]
            print(
                f"{name:<36} {r['mb']:>7.1f} {r['seconds']:>8.2f} {speed:>7.1f} "
                f"{r['peak_mb']:>8.0f} {r['n_tokens']:>7} {same:>5}"
            )
        print(f"{'':<36} ferrotok speed-up: {group[1]['seconds'] / group[0]['seconds']:.1f}x")


if __name__ == "__main__":
    main()
