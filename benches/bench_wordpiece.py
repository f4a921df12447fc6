"""WordPiece (BERT) benchmark: ferrotok against Hugging Face tokenizers and installed peers.

    python benches/bench_wordpiece.py                     # en corpus, every library found
    python benches/bench_wordpiece.py --corpus multi --max-docs 200
    python benches/bench_wordpiece.py --tokenizer path/to/tokenizer.json --libs ferrotok tokenizers

Each library runs in a fresh subprocess pinned to one CPU (single thread: rayon and
ferrotok's pool limited to 1), loads the BERT ``tokenizer.json`` (truncation and padding
turned off, so every byte of every document is tokenized) and encodes each document with
``[CLS]``/``[SEP]``, one call per document, timing only the calls. Two passes: ``cold`` is
the first, ``warm`` the second (caches). MB = 10**6 UTF-8 bytes.

``mismatches`` counts documents whose ids differ from Hugging Face tokenizers' (the
reference). Peers (splintr; tokie and kitoken when installed) are looked for in this
interpreter and in ``$FERROTOK_PEERS_PYTHON`` (another interpreter); a peer that is absent
or cannot load the file is listed as skipped with the reason.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from timing import measure, mismatches, pin_to_one_cpu, read_corpus, run_worker

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"
DEFAULT_JSON = SHARED / "vocab" / "bert-uncased-minilm.tokenizer.json"
FIXTURE_JSON = HERE.parent / "tests" / "data" / "bert-uncased.tokenizer.json"
RESULT = "@@bench_wordpiece "
LIBS = ("ferrotok", "tokenizers", "splintr", "tokie", "kitoken")


# -- the worker: one library, one process ------------------------------------------------------


def build(lib: str, path: str):
    """An ``encode(text) -> list of ids`` for ``lib``, with special tokens, no truncation/padding."""
    if lib == "ferrotok":
        import ferrotok

        tok = ferrotok.Tokenizer.from_file(path).no_truncation().no_padding()
        return lambda text: tok.encode(text).ids
    if lib == "tokenizers":
        import tokenizers

        tok = tokenizers.Tokenizer.from_file(path)
        tok.no_truncation()
        tok.no_padding()
        return lambda text: tok.encode(text).ids
    if lib == "splintr":
        import splintr

        tok = splintr.from_json(path)
        enc = getattr(tok, "encode_with_special", None) or tok.encode
        return enc
    if lib == "tokie":
        import tokie

        tok = tokie.Tokenizer.from_json(path)  # from_file reads tokie's own format
        tok.no_padding()
        tok.no_truncation()
        return lambda text: tok.encode(text).ids
    if lib == "kitoken":
        import kitoken

        tok = kitoken.Kitoken.from_tokenizers_file(path)
        config = tok.config()
        config["processing"] = []  # the file's padding and truncation to 128, off as for the others
        tok.set_config(config)
        # its encode() leaves out the template's [CLS] and [SEP]: added here (a list join per call)
        cls, sep = tok.encode("[CLS]", True), tok.encode("[SEP]", True)
        return lambda text: cls + tok.encode(text, True) + sep
    raise ValueError(f"unknown library {lib!r}")


def worker(lib: str, path: str, corpus: str, max_docs: int | None) -> None:
    pin_to_one_cpu()
    measure(RESULT, lib, lambda: build(lib, path), read_corpus(corpus, max_docs))


# -- the driver -------------------------------------------------------------------------------


def run(lib: str, path: Path, corpus: Path, max_docs: int | None) -> dict:
    args = ["--tokenizer", str(path), "--corpus-file", str(corpus)]
    return run_worker(lib, __file__, args + (["--max-docs", str(max_docs)] if max_docs else []), RESULT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--tokenizer", type=Path, default=DEFAULT_JSON if DEFAULT_JSON.is_file() else FIXTURE_JSON
    )
    ap.add_argument("--corpus", default="en", help="a name in ../shared/corpus (default en)")
    ap.add_argument("--corpus-file", type=Path, help="a .jsonl.gz of {'text': ...} lines instead")
    ap.add_argument("--max-docs", type=int)
    ap.add_argument("--libs", nargs="+", default=list(LIBS))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    corpus = args.corpus_file or SHARED / "corpus" / f"{args.corpus}.jsonl.gz"
    if args.worker:
        worker(args.worker, str(args.tokenizer), str(corpus), args.max_docs)
        return
    if not corpus.is_file():
        sys.exit(f"{corpus} is absent: pass --corpus-file")
    results = [run(lib, args.tokenizer, corpus, args.max_docs) for lib in args.libs]
    ref = next((r for r in results if r["lib"] == "tokenizers" and "skipped" not in r), None)
    print(f"\nWordPiece, {args.tokenizer.name}, corpus {corpus.name}, one thread, one encode per document\n")
    print(f"{'library':<12} {'load ms':>9} {'cold MB/s':>10} {'warm MB/s':>10} {'mismatches':>11}")
    for r in results:
        if "skipped" in r:
            print(f"{r['lib']:<12} skipped: {r['skipped']}")
            continue
        bad = mismatches(r, ref)
        print(f"{r['lib']:<12} {r['load_ms']:>9.1f} {r['cold']:>10.2f} {r['warm']:>10.2f} {bad:>11}")
    n_docs = len(results[0].get("cold_hashes", [])) if results else 0
    print(f"\n{n_docs} documents, {results[0].get('bytes', 0) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
