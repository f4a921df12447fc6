"""Byte-level BPE benchmark: ferrotok against tiktoken and every installed peer.

    python benches/bench_bpe.py                       # shared corpora, all encodings and libraries
    python benches/bench_bpe.py --max-docs 50         # a quick run
    python benches/bench_bpe.py --file notes.txt --encodings o200k_base --libs ferrotok tiktoken

Each (library, encoding, corpus) is measured in a fresh subprocess pinned to one CPU, so
every number is single-threaded and the first pass really is the first pass of a process:

- load ms: importing the library and building the encoder (tiktoken and the peers parse the
  rank file in ../shared/vocab; ferrotok loads its embedded vocabulary).
- cold MB/s: the first pass over the corpus, one ``encode_ordinary`` call per document,
  timing only the calls; MB = 10**6 UTF-8 bytes.
- warm MB/s: a second pass over the same documents in the same process; libraries that
  cache encoded pieces across calls (gigatoken, splintr, fastokens, tokenizers) gain here.
- mem MB: peak resident memory (VmHWM) minus the resident memory just before the library
  was imported (the corpus already in memory); peak MB is VmHWM itself.
- mismatches: documents whose ids, in either pass, differ from tiktoken's.

The adversarial section times one call per pathological input (1 MB of spaces then a
letter, 200 KB of one repeated non-ASCII letter, 200 KB of random base64) in a fresh process
per (library, encoding) and checks the ids against tiktoken's.
"""

from __future__ import annotations

import argparse
import base64
import gc
import gzip
import importlib.metadata
import importlib.util
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from timing import compile_ferrotok, digest

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"  # ../shared beside the repository
RESULT = "@@bench_bpe "  # prefix of the worker's result lines on stdout

DEFAULT_ENCODINGS = ("gpt2", "cl100k_base", "o200k_base")
DEFAULT_CORPORA = ("en", "code", "multi")
# Library -> (importable module, distribution name for its version).
LIBS = {
    "ferrotok": ("ferrotok", "ferrotok"),
    "tiktoken": ("tiktoken", "tiktoken"),
    "tokenizers": ("tokenizers", "tokenizers"),
    "gigatoken": ("gigatoken", "gigatoken"),
    "fastokens": ("fastokens", "fastokens"),
    "splintr": ("splintr", "splintr-rs"),
    "bpe-openai": ("bpe_openai", "bpe-openai"),
}
REFERENCE = "tiktoken"
# Single-threaded workers: rayon pools, HF tokenizers, BLAS; no Rust backtraces on stderr.
WORKER_ENV = {
    "RAYON_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "RUST_BACKTRACE": "0",
}


def adversarial_inputs() -> dict[str, str]:
    """Name -> text, riskiest last (a crash or timeout loses only the inputs after it)."""
    rng = random.Random(1234)
    b64 = base64.b64encode(bytes(rng.getrandbits(8) for _ in range(150_000))).decode()
    return {
        "200 KB random base64": b64[:200_000],
        "200 KB 'é' repeated": "é" * 100_000,
        "1 MB spaces + letter": " " * 1_000_000 + "a",
    }


# -- worker side ------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> None:
    try:  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _rank_file(vocab_dir: Path, encoding: str) -> Path:
    stem = "gpt2" if encoding in ("gpt2", "r50k_base") else encoding
    for name in (f"{stem}.tiktoken.gz", f"{stem}.tiktoken"):
        if (vocab_dir / name).exists():
            return vocab_dir / name
    return vocab_dir / f"{stem}.tiktoken.gz"


def build_encoder(lib: str, encoding: str, vocab_dir: Path) -> Callable[[str], Sequence[int]]:
    """The library's single-document ordinary encoder; raises peers.PeerUnavailable."""
    if lib == "ferrotok":
        import ferrotok

        return ferrotok.get_encoding(encoding).encode_ordinary
    sys.path.insert(0, str(HERE))
    import peers

    rank_file = _rank_file(vocab_dir, encoding)
    if not rank_file.exists():
        if lib == "tiktoken":  # tiktoken's own loader: its cache, or the network
            import tiktoken

            return tiktoken.get_encoding(encoding).encode_ordinary
        raise peers.PeerUnavailable(f"no rank file {rank_file}")
    return peers.build_peer(lib, encoding, rank_file).encode


def load_docs(path: Path, max_docs: int | None, doc_bytes: int) -> list[str]:
    """Documents of a .jsonl(.gz) file ({"text": ...} per line) or a text file, cut at line
    boundaries into documents of about ``doc_bytes`` (0: the whole file is one document)."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    stem = path.name.removesuffix(".gz")
    docs: list[str] = []
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        if stem.endswith((".jsonl", ".ndjson")):
            for line in f:
                if line.strip():
                    obj = json.loads(line)
                    docs.append(obj["text"] if isinstance(obj, dict) else str(obj))
                    if max_docs is not None and len(docs) >= max_docs:
                        break
            return docs
        text = f.read()
    if doc_bytes <= 0:
        return [text] if text else []
    chunk: list[str] = []
    size = 0
    for line in text.splitlines(keepends=True):
        chunk.append(line)
        size += len(line.encode("utf-8", "surrogatepass"))
        if size >= doc_bytes:
            docs.append("".join(chunk))
            chunk, size = [], 0
    if chunk:
        docs.append("".join(chunk))
    return docs[:max_docs] if max_docs is not None else docs


def _version(lib: str) -> str:
    if lib == "ferrotok":
        import ferrotok

        return str(ferrotok.__version__)
    try:
        return importlib.metadata.version(LIBS[lib][1])
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _short_error(exc: BaseException) -> str:
    msg = " ".join(str(exc).split()).replace("called `Result::unwrap()` on an `Err` value: ", "")
    return f"{type(exc).__name__}: {msg[:60]}"


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(RESULT + json.dumps(obj) + "\n")
    sys.stdout.flush()


def _load(spec: dict[str, Any]) -> tuple[Callable[[str], Sequence[int]] | None, float]:
    t0 = time.perf_counter()
    try:
        encode = build_encoder(spec["lib"], spec["encoding"], Path(spec["vocab_dir"]))
    except Exception as exc:
        kind = "unavailable" if type(exc).__name__ == "PeerUnavailable" else "error"
        _emit({kind: f"{type(exc).__name__}: {exc}"})
        return None, 0.0
    return encode, (time.perf_counter() - t0) * 1e3


def worker_corpus(spec: dict[str, Any]) -> None:
    import numpy as np  # before the baseline: every worker needs it for digests

    docs = load_docs(Path(spec["path"]), spec["max_docs"], spec["doc_bytes"])
    nbytes = sum(len(d.encode("utf-8", "surrogatepass")) for d in docs)
    gc.collect()
    _reset_peak_rss()
    base_kb = _status_kb("VmRSS")
    encode, load_ms = _load(spec)
    if encode is None:
        return
    out: dict[str, Any] = {
        "version": _version(spec["lib"]),
        "load_ms": load_ms,
        "docs": len(docs),
        "bytes": nbytes,
    }
    last: Any = None
    for name in ("cold", "warm"):
        gc.collect()
        seconds = 0.0
        tokens = 0
        digests: list[str] = []
        errors = 0
        for doc in docs:
            t = time.perf_counter()
            try:
                ids = encode(doc)
            except BaseException as exc:  # pyo3 PanicException is a BaseException
                seconds += time.perf_counter() - t
                if isinstance(exc, KeyboardInterrupt):
                    raise
                errors += 1
                digests.append(f"!{type(exc).__name__}")
                continue
            seconds += time.perf_counter() - t
            tokens += len(ids)
            digests.append(digest(ids))
            last = ids
        out[name] = {"seconds": seconds, "tokens": tokens, "digests": digests, "errors": errors}
    peak_kb = _status_kb("VmHWM")
    if spec["lib"] == "ferrotok" and not (isinstance(last, np.ndarray) and last.dtype == np.uint32):
        out["note"] = f"encode_ordinary returned {type(last).__name__} {getattr(last, 'dtype', '')}"
    out["mem_mb"] = (peak_kb - base_kb) / 1024
    out["peak_mb"] = peak_kb / 1024
    _emit(out)


def worker_adversarial(spec: dict[str, Any]) -> None:
    encode, load_ms = _load(spec)
    if encode is None:
        return
    _emit({"version": _version(spec["lib"]), "load_ms": load_ms})
    encode("hello world")  # lazy initialisation is not the input's cost
    for name, text in adversarial_inputs().items():
        t = time.perf_counter()
        try:
            ids = encode(text)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            ms = (time.perf_counter() - t) * 1e3
            _emit({"input": name, "ms": ms, "error": _short_error(exc)})
            continue
        ms = (time.perf_counter() - t) * 1e3
        _emit({"input": name, "ms": ms, "tokens": len(ids), "digest": digest(ids)})


def worker_main(spec: dict[str, Any]) -> None:
    try:
        os.sched_setaffinity(0, {spec["cpu"]})
    except (AttributeError, OSError):
        pass
    if spec["mode"] == "corpus":
        worker_corpus(spec)
    else:
        worker_adversarial(spec)


# -- parent side ------------------------------------------------------------------------------


def run_worker(spec: dict[str, Any], timeout: float) -> tuple[list[dict[str, Any]], str | None]:
    """The worker's result lines, and why it ended early (None when it exited cleanly)."""
    env = {**os.environ, **WORKER_ENV}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        stdout, stderr, problem = proc.stdout, proc.stderr, None
        if proc.returncode != 0:
            tail = (stderr.strip().splitlines() or ["no output"])[-1]
            problem = f"exit {proc.returncode}: {tail[:120]}"
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""
        stdout = out.decode() if isinstance(out, bytes) else out
        problem = f"timeout after {timeout:.0f} s"
    results = [json.loads(line[len(RESULT) :]) for line in stdout.splitlines() if line.startswith(RESULT)]
    return results, problem


def median_result(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One worker result from several trials: the median of each timing and memory figure, and
    the ids (digests) of the first trial."""
    res = dict(runs[0])
    for key in ("load_ms", "mem_mb", "peak_mb"):
        res[key] = statistics.median(r[key] for r in runs)
    for name in ("cold", "warm"):
        res[name] = {**runs[0][name], "seconds": statistics.median(r[name]["seconds"] for r in runs)}
    return res


Key = tuple[str, str, str]


def adversarial_runs(runs: dict[Key, list[dict[str, Any]]]) -> dict[Key, dict[str, Any]]:
    """Per input and library: the first failing trial, or the first trial with the median time."""
    out: dict[Key, dict[str, Any]] = {}
    for key, rs in runs.items():
        failed = [r for r in rs if "error" in r]
        out[key] = failed[0] if failed else {**rs[0], "ms": statistics.median(r["ms"] for r in rs)}
    return out


def installed_libs() -> list[str]:
    return [lib for lib, (module, _) in LIBS.items() if importlib.util.find_spec(module) is not None]


def fmt_table(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    numeric = [all(_is_num(r[i]) for r in rows) and rows != [] for i in range(len(headers))]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |"]
        lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        padded = (c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric, strict=True))
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _is_num(cell: str) -> bool:
    try:
        float(cell.rstrip("x").split("/")[0])
        return True
    except ValueError:
        return cell in ("n/a", "-", "")


def heading(text: str, markdown: bool) -> str:
    return f"\n### {text}\n" if markdown else f"\n{text}\n{'=' * len(text)}"


def cpu_model() -> str:
    """The processor's model name, for the report."""
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass
    return model


def machine_line(cpu: int) -> str:
    model = cpu_model()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{model}; workers pinned to CPU {cpu} of {os.cpu_count()}; "
        f"Python {platform.python_version()}; load average {load:.2f} at start"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--encodings", nargs="+", default=list(DEFAULT_ENCODINGS), metavar="NAME")
    p.add_argument(
        "--corpora",
        nargs="+",
        metavar="NAME",
        help=f"corpora in {SHARED / 'corpus'} (default: {' '.join(DEFAULT_CORPORA)}, unless --file)",
    )
    p.add_argument(
        "--file",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="a .jsonl(.gz) file with one {'text': ...} per line, or any text file (repeatable)",
    )
    p.add_argument("--libs", nargs="+", metavar="LIB", help=f"default: every installed one of {list(LIBS)}")
    p.add_argument("--max-docs", type=int, metavar="N", help="only the first N documents of each corpus")
    p.add_argument(
        "--doc-bytes",
        type=int,
        default=65536,
        metavar="N",
        help="text files are cut into documents of about N bytes at line ends (0: one document)",
    )
    p.add_argument("--vocab-dir", type=Path, default=SHARED / "vocab", help="the .tiktoken(.gz) rank files")
    p.add_argument("--no-adversarial", action="store_true", help="skip the adversarial inputs")
    p.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    p.add_argument("--cpu", type=int, help="the CPU workers are pinned to (default: the first one allowed)")
    p.add_argument(
        "--trials",
        type=int,
        default=3,
        metavar="N",
        help="fresh processes per library, encoding and corpus, the libraries taking turns; the "
        "table gives each figure's median (default 3: one run on a shared machine varies by 30%%)",
    )
    p.add_argument("--timeout", type=float, default=600, help="seconds per worker process (default 600)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    if args.max_docs is not None and args.max_docs < 1:
        p.error("--max-docs must be at least 1")
    if args.trials < 1:
        p.error("--trials must be at least 1")
    corpora: list[tuple[str, Path]] = []
    if args.corpora is not None or not args.file:
        names = args.corpora if args.corpora is not None else list(DEFAULT_CORPORA)
        corpus_dir = SHARED / "corpus"
        for name in names:
            path = corpus_dir / f"{name}.jsonl.gz"
            if not path.exists():
                hint = "" if corpus_dir.is_dir() else f"{corpus_dir} does not exist; "
                p.error(f"{hint}no corpus {path}; pass --file PATH to benchmark a file of your own")
            corpora.append((name, path))
    for path in args.file:
        if not path.is_file():
            p.error(f"--file {path}: no such file")
        name = path.name.removesuffix(".gz").removesuffix(".jsonl")
        corpora.append((name, path))
    args.corpus_list = corpora
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker_main(json.loads(args.worker))
        return 0

    cpu = args.cpu if args.cpu is not None else min(os.sched_getaffinity(0))
    compile_ferrotok()
    installed = installed_libs()
    notes: list[str] = []
    if args.libs is None:
        libs = installed
        missing = [lib for lib in LIBS if lib not in installed]
        if missing:
            notes.append(f"not installed, skipped: {', '.join(missing)}")
    else:
        unknown = [lib for lib in args.libs if lib not in LIBS]
        if unknown:
            print(f"unknown libraries {unknown}; known: {list(LIBS)}", file=sys.stderr)
            return 2
        libs = [lib for lib in LIBS if lib in args.libs and lib in installed]
        for lib in args.libs:
            if lib not in installed:
                notes.append(f"{lib}: not installed, skipped")
    # tiktoken is the reference: run it even when not asked for, to count mismatches.
    run_libs = libs + ([REFERENCE] if REFERENCE in installed and REFERENCE not in libs else [])
    run_libs.sort(key=list(LIBS).index)
    if REFERENCE not in installed:
        notes.append("tiktoken is not installed: ids are not checked")
    if not run_libs:
        print("no library to benchmark", file=sys.stderr)
        return 2

    base = {"vocab_dir": str(args.vocab_dir), "cpu": cpu}
    versions: dict[str, str] = {}
    corpus_info: dict[str, tuple[int, int]] = {}
    # (encoding, corpus, lib) -> worker result
    results: dict[tuple[str, str, str], dict[str, Any]] = {}
    t_start = time.perf_counter()
    for encoding in args.encodings:
        skip: set[str] = set()
        for corpus, path in args.corpus_list:
            trials: dict[str, list[dict[str, Any]]] = {}
            for _ in range(args.trials):
                for lib in run_libs:
                    if lib in skip:
                        continue
                    spec = {
                        **base,
                        "mode": "corpus",
                        "lib": lib,
                        "encoding": encoding,
                        "path": str(path),
                        "max_docs": args.max_docs,
                        "doc_bytes": args.doc_bytes,
                    }
                    t0 = time.perf_counter()
                    lines, problem = run_worker(spec, args.timeout)
                    res = lines[-1] if lines else {}
                    if "unavailable" in res or "error" in res:
                        why = " ".join(str(res.get("unavailable") or res.get("error")).split())
                        notes.append(f"{lib} {encoding}: {why[:160]}")
                        skip.add(lib)
                        continue
                    if problem or "cold" not in res:
                        notes.append(f"{lib} {encoding} {corpus}: worker failed ({problem})")
                        continue
                    versions[lib] = res["version"]
                    corpus_info[corpus] = (res["docs"], res["bytes"])
                    if "note" in res and not trials.get(lib):
                        notes.append(f"{lib} {encoding}: {res['note']}")
                    trials.setdefault(lib, []).append(res)
                    mbs = res["bytes"] / 1e6 / max(res["cold"]["seconds"], 1e-9)
                    print(
                        f"  {encoding:12} {corpus:8} {lib:11} cold {mbs:7.1f} MB/s"
                        f"  ({time.perf_counter() - t0:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
            for lib, runs in trials.items():
                results[(encoding, corpus, lib)] = median_result(runs)

    adversarial_trials: dict[Key, list[dict[str, Any]]] = {}
    if not args.no_adversarial:
        inputs = list(adversarial_inputs())
        for encoding in args.encodings:
            for trial in range(args.trials):
                for lib in run_libs:
                    spec = {**base, "mode": "adversarial", "lib": lib, "encoding": encoding}
                    lines, problem = run_worker(spec, args.timeout)
                    if lines and ("unavailable" in lines[0] or "error" in lines[0]):
                        continue  # already noted by the corpus run, or noted here when it was skipped
                    got = {r["input"]: r for r in lines if "input" in r}
                    for name in inputs:
                        r = got.get(name) or {"error": f"no result: {problem or 'worker ended'}"}
                        adversarial_trials.setdefault((encoding, name, lib), []).append(r)
                    print(
                        f"  adversarial {encoding:12} {lib:11} trial {trial + 1} done",
                        file=sys.stderr,
                        flush=True,
                    )
    adversarial = adversarial_runs(adversarial_trials)
    elapsed = time.perf_counter() - t_start

    out: list[str] = []
    md = args.markdown
    out.append(heading("ferrotok byte-level BPE benchmark", md))
    out.append(machine_line(cpu) + ".")
    out.append("Versions: " + ", ".join(f"{lib} {versions[lib]}" for lib in run_libs if lib in versions))
    out.append(
        "Corpora: "
        + "; ".join(
            f"{name} {corpus_info[name][0]} docs, {corpus_info[name][1] / 1e6:.2f} MB"
            for name, _ in args.corpus_list
            if name in corpus_info
        )
        + (f" (first {args.max_docs} docs only)" if args.max_docs else "")
        + f". Each figure is the median of {args.trials} fresh process(es) per library, the libraries "
        + f"taking turns. Total time {elapsed:.0f} s."
    )
    if md:
        out.append("")

    # -- throughput table
    headers = ["encoding", "corpus", "library", "cold MB/s", "warm MB/s", "load ms", "mem MB", "peak MB"]
    headers.append("mismatches")
    rows: list[list[str]] = []
    speed: dict[tuple[str, str, str], tuple[float, float, int | None]] = {}
    for encoding in args.encodings:
        for corpus, _ in args.corpus_list:
            ref = results.get((encoding, corpus, REFERENCE))
            for lib in libs:
                res = results.get((encoding, corpus, lib))
                if res is None:
                    continue
                cold = res["bytes"] / 1e6 / max(res["cold"]["seconds"], 1e-9)
                warm = res["bytes"] / 1e6 / max(res["warm"]["seconds"], 1e-9)
                bad = mismatches(res, ref, lib, encoding, corpus, notes)
                speed[(encoding, corpus, lib)] = (cold, warm, bad)
                rows.append(
                    [
                        encoding,
                        corpus,
                        lib,
                        f"{cold:.1f}",
                        f"{warm:.1f}",
                        f"{res['load_ms']:.0f}",
                        f"{res['mem_mb']:.1f}",
                        f"{res['peak_mb']:.1f}",
                        "n/a" if bad is None else f"{bad}/{res['docs']}" if bad else "0",
                    ]
                )
    out.append(fmt_table(headers, rows, md) if rows else "(no measurements: see the notes)")

    # -- ratios
    ratio_rows: list[list[str]] = []
    for encoding in args.encodings:
        for corpus, _ in args.corpus_list:
            mine = speed.get((encoding, corpus, "ferrotok"))
            if mine is None:
                continue
            row = [encoding, corpus]
            tk = speed.get((encoding, corpus, REFERENCE))
            row += [f"{mine[0] / tk[0]:.2f}x", f"{mine[1] / tk[1]:.2f}x"] if tk else ["n/a", "n/a"]
            exact = {
                lib: v
                for (e, c, lib), v in speed.items()
                if e == encoding and c == corpus and lib != "ferrotok" and v[2] in (0, None)
            }
            for i in (0, 1):
                if exact:
                    best = max(exact, key=lambda lib, i=i: exact[lib][i])
                    row.append(f"{mine[i] / exact[best][i]:.2f}x ({best})")
                else:
                    row.append("n/a")
            ratio_rows.append(row)
    if ratio_rows:
        out.append(heading("ferrotok speed ratios (>1: ferrotok faster; best = fastest exact peer)", md))
        ratio_headers = ["encoding", "corpus", "vs tiktoken cold", "vs tiktoken warm"]
        ratio_headers += ["vs best cold", "vs best warm"]
        out.append(fmt_table(ratio_headers, ratio_rows, md))

    # -- adversarial
    if adversarial:
        out.append(
            heading(
                "Adversarial inputs (ms: one call in a fresh process, median of the trials; ids vs tiktoken)",
                md,
            )
        )
        adv_rows: list[list[str]] = []
        for encoding in args.encodings:
            for name in adversarial_inputs():
                ref_adv = adversarial.get((encoding, name, REFERENCE))
                for lib in libs:
                    r = adversarial.get((encoding, name, lib))
                    if r is None:
                        continue
                    if "error" in r:
                        ms, tokens, match = "-", "-", f"failed: {r['error']}"
                    else:
                        ms, tokens = f"{r['ms']:.1f}", str(r["tokens"])
                        mine = adversarial.get((encoding, name, "ferrotok"), {})
                        if ref_adv is None or "digest" not in ref_adv:
                            match = "ref n/a (tiktoken failed)" if ref_adv else "ref n/a"
                            if lib != "ferrotok" and "digest" in mine:
                                same = r["digest"] == mine["digest"]
                                match += "; same as ferrotok" if same else "; DIFFERS from ferrotok"
                        elif lib == REFERENCE:
                            match = "reference"
                        else:
                            match = "yes" if r["digest"] == ref_adv["digest"] else "NO"
                    adv_rows.append([encoding, name, lib, ms, tokens, match])
        out.append(fmt_table(["encoding", "input", "library", "ms", "tokens", "ids match"], adv_rows, md))

    if notes:
        out.append(heading("Notes", md))
        out += [f"- {n}" for n in dict.fromkeys(notes)]
    print("\n".join(out).lstrip("\n"))
    return 0


def mismatches(
    res: dict[str, Any],
    ref: dict[str, Any] | None,
    lib: str,
    encoding: str,
    corpus: str,
    notes: list[str],
) -> int | None:
    """Documents whose ids differ from the reference's in either pass; None without one."""
    cold, warm = res["cold"]["digests"], res["warm"]["digests"]
    unstable = [i for i, (a, b) in enumerate(zip(cold, warm, strict=True)) if a != b]
    if unstable:
        notes.append(f"{lib} {encoding} {corpus}: warm ids differ from cold ids in {len(unstable)} docs")
    errors = res["cold"]["errors"] + res["warm"]["errors"]
    if errors:
        notes.append(f"{lib} {encoding} {corpus}: {errors} encode calls raised")
    if ref is None:
        return None
    want = ref["cold"]["digests"]
    if len(want) != len(cold):
        notes.append(f"{lib} {encoding} {corpus}: {len(cold)} docs, tiktoken had {len(want)}")
        return len(cold)
    bad = [i for i, w in enumerate(want) if cold[i] != w or warm[i] != w]
    if bad:
        notes.append(f"{lib} {encoding} {corpus}: ids differ from tiktoken's, first in doc {bad[0]}")
    return len(bad)


if __name__ == "__main__":
    sys.exit(main())
