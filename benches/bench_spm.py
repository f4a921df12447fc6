"""SentencePiece benchmark: ferrotok against the sentencepiece library on `.model` files,
and against Hugging Face tokenizers on the `tokenizer.json` of the same model.

    python benches/bench_spm.py      # Mistral's BPE and the tests' Unigram model, on en and multi
    python benches/bench_spm.py --model path/to/x.model --corpus multi --max-docs 200
    python benches/bench_spm.py --model path/to/tokenizer.json   # HF's file of a BPE model

Each library runs in a fresh subprocess pinned to one CPU (ferrotok's pool limited to one
thread) and encodes each document with one call, timing only the calls: ``cold`` is the first
pass, ``warm`` the second; each figure is the median of ``--trials`` processes (default 3), the
libraries taking turns. MB = 10**6 UTF-8 bytes. ``mismatches`` counts documents whose ids
differ from sentencepiece's (the reference), in either pass.

Peers: kitoken (``Kitoken.from_sentencepiece_file``) and gigatoken
(``Tokenizer.from_sentencepiece``: BPE models only, a Unigram model is listed as skipped with
its error), looked for in this interpreter and in ``$FERROTOK_PEERS_PYTHON``. A ``.json``
model is a ``tokenizer.json`` (write one for a
``.model`` with transformers: ``LlamaTokenizer.from_pretrained(folder_with_tokenizer_model)``
then ``backend_tokenizer.save(path)``): ferrotok's ``Tokenizer`` against HF ``tokenizers``
(the reference there) and the peers that load it (gigatoken, splintr, tokie, kitoken), each
encoding with the file's special tokens. The other fast peers of the byte-level benchmark have
no SentencePiece ``.model`` loader in the versions installed here (fastokens also rejects the
``tokenizer.json``'s Metaspace pre-tokenizer).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from timing import compile_ferrotok, measure, mismatches, pin_to_one_cpu, read_corpus, run_worker

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"
MODELS = [SHARED / "vocab" / "mistral-v1.spm.model", HERE.parent / "tests" / "data" / "spm-unigram.model"]
RESULT = "@@bench_spm "
LIBS = ("ferrotok", "sentencepiece", "gigatoken", "kitoken")
JSON_LIBS = ("ferrotok", "tokenizers", "gigatoken", "splintr", "tokie", "kitoken")


def load_json(lib: str, path: str):
    """An ``encode(text) -> ids`` for a tokenizer.json, with the file's special tokens."""
    if lib == "ferrotok":
        import ferrotok

        tok = ferrotok.Tokenizer.from_file(path)
        return lambda text: tok.encode(text).ids
    if lib == "tokenizers":
        import tokenizers

        tok = tokenizers.Tokenizer.from_file(path)
        return lambda text: tok.encode(text).ids
    if lib == "gigatoken":
        import gigatoken

        return gigatoken.Tokenizer(path).encode
    if lib == "splintr":
        import splintr

        tok = splintr.from_json(path)
        return getattr(tok, "encode_with_special", None) or tok.encode
    if lib == "tokie":
        import tokie

        tok = tokie.Tokenizer.from_json(path)
        return lambda text: tok.encode(text).ids
    if lib == "kitoken":
        import kitoken

        return kitoken.Kitoken.from_tokenizers_file(path).encode
    raise ValueError(f"unknown library {lib!r}")


def worker(lib: str, model: str, corpus: str, max_docs: int | None) -> None:
    pin_to_one_cpu()

    def load():
        if model.endswith(".json"):
            return load_json(lib, model)
        if lib == "ferrotok":
            import ferrotok

            return ferrotok.SentencePiece.from_file(model).encode
        if lib == "kitoken":
            import kitoken

            return kitoken.Kitoken.from_sentencepiece_file(model).encode
        if lib == "gigatoken":
            import gigatoken

            return gigatoken.Tokenizer.from_sentencepiece(model).encode
        import sentencepiece

        return sentencepiece.SentencePieceProcessor(model_file=model).encode

    measure(RESULT, lib, load, read_corpus(corpus, max_docs))


def run(lib: str, model: Path, corpus: Path, max_docs: int | None) -> dict:
    args = ["--model", str(model), "--corpus-file", str(corpus)]
    return run_worker(lib, __file__, args + (["--max-docs", str(max_docs)] if max_docs else []), RESULT)


def run_trials(
    libs: tuple[str, ...], model: Path, corpus: Path, max_docs: int | None, trials: int
) -> list[dict]:
    """Each library's result, the median of `trials` fresh processes, the libraries taking turns
    (a library skipped once is skipped)."""
    runs: dict[str, list[dict]] = {lib: [] for lib in libs}
    for _ in range(trials):
        for lib in libs:
            if not any("skipped" in r for r in runs[lib]):
                runs[lib].append(run(lib, model, corpus, max_docs))
    results = []
    for lib in libs:
        rs = runs[lib]
        skipped = [r for r in rs if "skipped" in r]
        if skipped:
            results.append(skipped[0])
            continue
        res = dict(rs[0])
        for key in ("load_ms", "cold", "warm"):
            res[key] = statistics.median(r[key] for r in rs)
        results.append(res)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, action="append", help="a .model file (repeatable)")
    ap.add_argument("--corpus", action="append", help="names in ../shared/corpus (default en, multi)")
    ap.add_argument("--corpus-file", type=Path, help="a .jsonl.gz of {'text': ...} lines instead")
    ap.add_argument("--max-docs", type=int)
    ap.add_argument("--trials", type=int, default=3, help="processes per library, median taken (default 3)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, str(args.model[0]), str(args.corpus_file), args.max_docs)
        return
    compile_ferrotok()
    models = [m for m in (args.model or MODELS) if m.is_file()]
    corpora = (
        [args.corpus_file]
        if args.corpus_file
        else [SHARED / "corpus" / f"{c}.jsonl.gz" for c in args.corpus or ("en", "multi")]
    )
    columns = f"{'load ms':>8} {'cold MB/s':>10} {'warm MB/s':>10} {'mismatches':>11}"
    print(f"{'model':<22} {'corpus':<8} {'library':<14} {columns}")
    for model in models:
        for corpus in corpora:
            if not corpus.is_file():
                sys.exit(f"{corpus} is absent: pass --corpus-file")
            json_file = model.suffix == ".json"
            libs = JSON_LIBS if json_file else LIBS
            results = run_trials(libs, model, corpus, args.max_docs, args.trials)
            reference = "tokenizers" if json_file else "sentencepiece"
            ref = next((r for r in results if r["lib"] == reference and "skipped" not in r), None)
            for r in results:
                head = f"{model.name[:22]:<22} {corpus.name.split('.')[0]:<8} {r['lib']:<14}"
                if "skipped" in r:
                    print(f"{head} skipped: {r['skipped']}")
                    continue
                bad = mismatches(r, ref)
                print(f"{head} {r['load_ms']:>8.1f} {r['cold']:>10.2f} {r['warm']:>10.2f} {bad:>11}")


if __name__ == "__main__":
    main()
