"""Batch benchmark: ferrotok ``encode_batch`` on 1 and 2 threads against tiktoken and HF tokenizers.

    python benches/bench_batch.py                         # shared corpora, three encodings
    python benches/bench_batch.py --encodings o200k_base --corpora en --markdown
    python benches/bench_batch.py --warm                  # report warm passes instead of first ones
    python benches/bench_batch.py --settled               # first passes in a process past its first batch

All the documents of a corpus are one batch. Each (library, threads, encoding, corpus) runs in
a fresh process, not pinned (batches are multi-threaded):

- ferrotok 1T / 2T: ``enc.encode_batch(docs, num_threads=1 or 2, disallowed_special=())``
  (ordinary encoding, the ragged ``TokenBatch``); 2T/1T is the speed-up from the second thread.
- 2 x 1T: two ferrotok 1T processes started together, each encoding the whole corpus; their
  summed MB/s is what the machine gives two encoders that share nothing (caches, memory
  bandwidth and a hypervisor's neighbours still shared), so "2 x 1T / 1T" is the ceiling that
  2T/1T can be held to on this machine.
- tiktoken 2T: ``encode_ordinary_batch(docs, num_threads=2)`` (a list of lists).
- tokenizers: HF ``Tokenizer.encode_batch_fast`` built from the rank file by peers.py, on its
  own rayon pool (every core; TOKENIZERS_PARALLELISM and RAYON_NUM_THREADS are unset).
- MB/s: MB = 10**6 UTF-8 bytes; by default the first pass in the process (caches cold; a
  stream of new text), with --warm the best of --repeat further passes; each configuration
  runs in --runs fresh processes (3) and the median is shown (a pass takes a tenth of a
  second, and one run alone swings by half on a shared machine). With --settled, the first
  pass of a second instance (empty caches), after a pass of another: a fresh process's first
  batch also pays for its threads and for mapping fresh memory (with two threads, a sixth of
  the time on English), which a running pipeline's next batch of new text does not. Workers run
  with OPENBLAS_NUM_THREADS=1: numpy's BLAS threads spin at startup and took a third of the
  CPU from every library's first pass.
- ragged MB: ``ids.nbytes + offsets.nbytes`` of ferrotok's result; ideal MB: 4 bytes a token
  plus 8 a text. mem MB: peak RSS during the passes minus RSS before the library was
  imported (corpus already loaded), ferrotok 2T and tiktoken 2T; the result's size included.
- ids = tiktoken: every library's ids equal tiktoken's, document by document.

Below the table: ``TokenBatch.padded(2048)`` for a training batch of 64 texts of at least 2048
tokens (right and left padding, best of 20 calls, ms), the largest peak RSS of any worker, and
one long text (each corpus's documents joined, 6 to 10 MB) encoded by ferrotok on 1 and 2
threads: a text of at least 1 MB is cut at provable piece boundaries and its parts encoded in
parallel (best of 3, in this process); then small batches (64 or 256 texts of 200 bytes, 16 or
64 of 2 KB) on 1 and 2 threads, µs a call (a batch of under 32 KB stays on the calling thread).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_bpe import (  # noqa: E402
    SHARED,
    _rank_file,
    _reset_peak_rss,
    _status_kb,
    cpu_model,
    fmt_table,
    heading,
    load_docs,
)
from timing import compile_ferrotok  # noqa: E402

RESULT = "@@bench_batch "
DEFAULT_ENCODINGS = ("gpt2", "cl100k_base", "o200k_base")
DEFAULT_CORPORA = ("en", "code", "multi")
# (column label, library, threads, processes); threads None: the library's own default.
# "2 x 1T" is two single-thread ferrotok processes at once, each encoding the whole corpus:
# their summed MB/s is what this machine gives two independent encoders, the ceiling for 2T.
CONFIGS = (
    ("ferrotok 1T", "ferrotok", 1, 1),
    ("ferrotok 2T", "ferrotok", 2, 1),
    ("2 x 1T", "ferrotok", 1, 2),
    ("tiktoken 2T", "tiktoken", 2, 1),
    ("tokenizers", "tokenizers", None, 1),
)
PAD_TEXTS, PAD_LENGTH = 64, 2048


# -- worker side ------------------------------------------------------------------------------


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(RESULT + json.dumps(obj) + "\n")
    sys.stdout.flush()


def _digest(rows: Any) -> str:
    """A hash of the ids and the row lengths, whatever container the library returns."""
    import ferrotok
    import numpy as np

    if isinstance(rows, ferrotok.TokenBatch):
        ids, lengths = rows.ids, rows.lengths
    else:
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        ids = np.fromiter((i for r in rows for i in r), dtype=np.uint32, count=int(lengths.sum()))
    h = hashlib.blake2b(digest_size=8)
    h.update(np.ascontiguousarray(ids, dtype=np.uint32).tobytes())
    h.update(np.ascontiguousarray(lengths, dtype=np.int64).tobytes())
    return h.hexdigest()


def build_batch_encoder(
    lib: str, threads: int | None, encoding: str, vocab_dir: Path, fresh: bool = False
) -> Callable[[list[str]], Any]:
    """The library's batch encoder; ``fresh``: a new instance even where the library keeps one
    per encoding (every call builds a new one for the peers)."""
    if lib == "ferrotok":
        import ferrotok
        from ferrotok.encoding import _from_compact

        enc = ferrotok.get_encoding(encoding)
        if fresh:  # a second instance: its own, empty per-thread caches
            enc = _from_compact(encoding, enc._core.to_compact(), enc.pattern, enc.special_tokens)
        return lambda docs: enc.encode_batch(docs, num_threads=threads, disallowed_special=())
    import peers

    rank_file = _rank_file(vocab_dir, encoding)
    if not rank_file.exists():
        raise peers.PeerUnavailable(f"no rank file {rank_file}")
    if lib == "tiktoken":
        import tiktoken

        name = peers.ALIASES.get(encoding, encoding)
        enc = tiktoken.Encoding(
            name,
            pat_str=peers.OFFICIAL_PATTERNS[name],
            mergeable_ranks=peers.load_ranks(rank_file),
            special_tokens=peers.SPECIAL_TOKENS[name],
        )
        return lambda docs: enc.encode_ordinary_batch(docs, num_threads=threads or os.cpu_count() or 1)
    peer = peers.build_peer(lib, encoding, rank_file)
    if peer.encode_batch is None:
        raise peers.PeerUnavailable(f"{lib} has no batch API")
    return peer.encode_batch


def _version(lib: str) -> str:
    if lib == "ferrotok":
        import ferrotok

        return str(ferrotok.__version__)
    try:
        return importlib.metadata.version(lib)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def worker_throughput(spec: dict[str, Any]) -> None:
    import numpy as np  # noqa: F401 (before the RSS baseline: every worker needs it)

    docs = load_docs(Path(spec["path"]), None, 65536)
    nbytes = sum(len(d.encode("utf-8", "surrogatepass")) for d in docs)
    gc.collect()
    _reset_peak_rss()
    base_kb = _status_kb("VmRSS")
    try:
        encode = build_batch_encoder(spec["lib"], spec["threads"], spec["encoding"], Path(spec["vocab_dir"]))
        if spec["settled"]:
            # One pass of another instance first: the process has made its threads, mapped
            # and freed its buffers, as a process does after its first batches; the instance
            # timed below still meets every piece for the first time.
            encode(docs)
            gc.collect()
            encode = build_batch_encoder(
                spec["lib"], spec["threads"], spec["encoding"], Path(spec["vocab_dir"]), fresh=True
            )
    except Exception as exc:
        _emit({"unavailable": f"{type(exc).__name__}: {exc}"})
        return
    out: dict[str, Any] = {"version": _version(spec["lib"]), "docs": len(docs), "bytes": nbytes}
    seconds: list[float] = []
    digests: set[str] = set()
    peak_kb = _status_kb("VmHWM")
    for _ in range(1 + spec["repeat"]):
        gc.collect()
        _reset_peak_rss()  # the peak of the encode call and its result, not of the digest below
        t = time.perf_counter()
        rows = encode(docs)
        seconds.append(time.perf_counter() - t)
        peak_kb = max(peak_kb, _status_kb("VmHWM"))
        digests.add(_digest(rows))
        if spec["lib"] == "ferrotok":
            out["tokens"] = len(rows.ids)
            out["ragged_bytes"] = rows.ids.nbytes + rows.offsets.nbytes
        del rows
    out["cold_s"] = seconds[0]
    out["warm_s"] = min(seconds[1:]) if len(seconds) > 1 else seconds[0]
    out["digest"] = digests.pop() if len(digests) == 1 else "unstable"
    out["mem_mb"] = (peak_kb - base_kb) / 1024
    out["peak_mb"] = peak_kb / 1024
    _emit(out)


def worker_padded(spec: dict[str, Any]) -> None:
    import ferrotok
    import numpy as np

    enc = ferrotok.get_encoding(spec["encoding"])
    text = "\n".join(load_docs(Path(spec["path"]), None, 65536))
    # 64 consecutive slices of the corpus (repeated if need be), long enough for 2048 tokens
    size = 4 * PAD_LENGTH
    while True:
        big = text * (1 + PAD_TEXTS * size // max(1, len(text)))
        texts = [big[i * size : (i + 1) * size] for i in range(PAD_TEXTS)]
        batch = enc.encode_batch(texts, disallowed_special=())
        if int(batch.lengths.min()) >= PAD_LENGTH or size > 1 << 24:
            break
        size *= 2
    out: dict[str, Any] = {
        "texts": len(batch),
        "min_tokens": int(batch.lengths.min()),
        "tokens": len(batch.ids),
    }
    for side in ("right", "left"):
        best = float("inf")
        for _ in range(20):
            t = time.perf_counter()
            ids, mask = batch.padded(PAD_LENGTH, side=side)
            best = min(best, time.perf_counter() - t)
        assert ids.shape == mask.shape == (PAD_TEXTS, PAD_LENGTH) and ids.dtype == np.int64
        out[f"{side}_ms"] = best * 1e3
    # rows of different lengths, so that the padding really is used
    cut = enc.encode_batch(
        [t[: 1 + (i * len(t)) // PAD_TEXTS] for i, t in enumerate(texts)], disallowed_special=()
    )
    best = float("inf")
    for _ in range(20):
        t = time.perf_counter()
        cut.padded(PAD_LENGTH, side="left")
        best = min(best, time.perf_counter() - t)
    out["mixed_ms"] = best * 1e3
    out["mixed_fill"] = float(np.minimum(cut.lengths, PAD_LENGTH).sum() / (PAD_TEXTS * PAD_LENGTH))
    _emit(out)


# -- parent side ------------------------------------------------------------------------------


def run_workers(
    spec: dict[str, Any], timeout: float, copies: int = 1
) -> list[tuple[dict[str, Any], str | None]]:
    """Runs `copies` worker processes of `spec` at the same time; each one's result and problem."""
    # numpy's OpenBLAS starts a thread per core at import, and in a fresh process they spin
    # waiting for work for a while: a third of the CPU time of a first pass went to them,
    # taken from every library's threads alike. No library here calls BLAS.
    env = {**os.environ, "RUST_BACKTRACE": "0", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    for var in ("TOKENIZERS_PARALLELISM", "RAYON_NUM_THREADS", "FERROTOK_NUM_THREADS"):
        env.pop(var, None)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(copies)
    ]
    results = []
    for proc in procs:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            results.append(({}, f"timeout after {timeout:.0f} s"))
            continue
        lines = [json.loads(ln[len(RESULT) :]) for ln in stdout.splitlines() if ln.startswith(RESULT)]
        problem = None
        if proc.returncode != 0:
            problem = f"exit {proc.returncode}: {(stderr.strip().splitlines() or ['no output'])[-1][:120]}"
        results.append(((lines[-1] if lines else {}), problem))
    return results


def run_worker(spec: dict[str, Any], timeout: float) -> tuple[dict[str, Any], str | None]:
    return run_workers(spec, timeout)[0]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--encodings", nargs="+", default=list(DEFAULT_ENCODINGS), metavar="NAME")
    p.add_argument("--corpora", nargs="+", default=list(DEFAULT_CORPORA), metavar="NAME")
    p.add_argument(
        "--vocab-dir", type=Path, default=SHARED / "vocab", help="the peers' .tiktoken(.gz) rank files"
    )
    p.add_argument("--repeat", type=int, default=2, help="warm passes after the first (default 2)")
    p.add_argument(
        "--runs",
        type=int,
        default=3,
        help="fresh processes per configuration; the median is shown (default 3)",
    )
    p.add_argument("--warm", action="store_true", help="report the best warm pass instead of the first")
    p.add_argument(
        "--settled",
        action="store_true",
        help="first pass of a fresh instance in a process that has encoded the corpus once with another",
    )
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    p.add_argument("--timeout", type=float, default=600, help="seconds per worker process (default 600)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    if args.repeat < 0:
        p.error("--repeat must be >= 0")
    if args.runs < 1:
        p.error("--runs must be >= 1")
    args.corpus_paths = []
    for name in args.corpora:
        path = SHARED / "corpus" / f"{name}.jsonl.gz"
        if not path.exists():
            p.error(f"no corpus {path}")
        args.corpus_paths.append((name, path))
    return args


def long_text_lines(args: argparse.Namespace) -> list[str]:
    """One long text per corpus (its documents joined by newlines), 1 and 2 threads."""
    import ferrotok

    lines = []
    for corpus, path in args.corpus_paths:
        text = "\n".join(load_docs(path, None, 65536))
        nbytes = len(text.encode("utf-8", "surrogatepass"))
        for encoding in args.encodings:
            enc = ferrotok.get_encoding(encoding)
            speeds = []
            for threads in (1, 2):
                best = min(_encode_seconds(enc, text, threads) for _ in range(3))
                speeds.append(nbytes / best / 1e6)
            lines.append(
                f"One {nbytes / 1e6:.1f} MB text ({corpus}, {encoding}): 1 thread {speeds[0]:.0f} MB/s, "
                f"2 threads {speeds[1]:.0f} MB/s ({speeds[1] / speeds[0]:.2f}x)."
            )
    return lines


def small_batch_lines(args: argparse.Namespace) -> list[str]:
    """Per-call time of small batches (cut from the first corpus's documents), 1 and 2 threads,
    best of 5 rounds of repeated calls: the hand-over to a pool costs tens of µs a call, and a
    batch of under 32 KB is encoded on the calling thread."""
    import ferrotok

    corpus, path = args.corpus_paths[0]
    docs = load_docs(path, None, 65536)
    enc = ferrotok.get_encoding(args.encodings[0])
    parts = []
    for count, size in ((64, 200), (256, 200), (16, 2000), (64, 2000)):
        texts = [d[:size] for d in (docs * (count // len(docs) + 1))[:count]]
        us = []
        for threads in (1, 2):
            enc.encode_batch(texts, num_threads=threads, disallowed_special=())
            calls = max(10, 20000 // count)
            best = float("inf")
            for _ in range(5):
                t = time.perf_counter()
                for _ in range(calls):
                    enc.encode_batch(texts, num_threads=threads, disallowed_special=())
                best = min(best, (time.perf_counter() - t) / calls)
            us.append(best * 1e6)
        kb = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) / 1e3
        parts.append(f"{count} x {size} B ({kb:.0f} KB) {us[0]:.0f} / {us[1]:.0f}")
    return [
        f"Small batches ({corpus}, {args.encodings[0]}, warm; µs a call, 1 / 2 threads, best of 5): "
        + "; ".join(parts)
        + "."
    ]


def _encode_seconds(enc: Any, text: str, threads: int) -> float:
    t = time.perf_counter()
    enc.encode_batch([text], num_threads=threads, disallowed_special=())
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        (worker_throughput if spec["mode"] == "throughput" else worker_padded)(spec)
        return 0
    compile_ferrotok()

    notes: list[str] = []
    versions: dict[str, str] = {}
    results: dict[tuple[str, str, str], dict[str, Any]] = {}
    unavailable: set[tuple[str, str]] = set()
    peak_mb = 0.0
    t_start = time.perf_counter()
    for encoding in args.encodings:
        for corpus, path in args.corpus_paths:
            for label, lib, threads, copies in CONFIGS:
                if (lib, encoding) in unavailable:
                    continue
                spec = {
                    "mode": "throughput",
                    "lib": lib,
                    "threads": threads,
                    "encoding": encoding,
                    "path": str(path),
                    "vocab_dir": str(args.vocab_dir),
                    "repeat": args.repeat,
                    "settled": args.settled,
                }
                runs = []
                for _ in range(args.runs):
                    got = run_workers(spec, args.timeout, copies)
                    res = next((r for r, _ in got if "unavailable" in r), None)
                    if res is not None:
                        notes.append(f"{lib} {encoding}: {res['unavailable'][:160]}")
                        unavailable.add((lib, encoding))
                        break
                    problems = [p or "no result" for r, p in got if p or "cold_s" not in r]
                    if problems:
                        notes.append(f"{label} {encoding} {corpus}: worker failed ({problems[0]})")
                        break
                    res = dict(got[0][0])
                    # MB/s of the copies together, as if one worker had encoded all their bytes
                    for k in ("cold_s", "warm_s"):
                        res[k] = res["bytes"] / sum(r["bytes"] / max(r[k], 1e-9) for r, _ in got)
                    res["copies"] = [r["digest"] for r, _ in got]
                    runs.append(res)
                if len(runs) < args.runs:
                    continue
                key = "warm_s" if args.warm else "cold_s"
                res = sorted(runs, key=lambda r: r[key])[len(runs) // 2]
                if any(d != res["digest"] for r in runs for d in r["copies"]):
                    res["digest"] = "unstable"
                versions[lib] = res["version"]
                peak_mb = max([peak_mb] + [r["peak_mb"] for r in runs])
                results[(encoding, corpus, label)] = res
                print(
                    f"  {encoding:12} {corpus:6} {label:12} "
                    + " ".join(f"{r['bytes'] / 1e6 / r[key]:7.1f}" for r in runs)
                    + " MB/s",
                    file=sys.stderr,
                    flush=True,
                )

    padded: dict[str, Any] = {}
    if args.corpus_paths:
        enc_name = "o200k_base" if "o200k_base" in args.encodings else args.encodings[0]
        corpus, path = args.corpus_paths[0]
        spec = {"mode": "padded", "encoding": enc_name, "path": str(path)}
        padded, problem = run_worker(spec, args.timeout)
        if problem or "right_ms" not in padded:
            notes.append(f"padded timing failed ({problem})")
            padded = {}
        else:
            padded.update(encoding=enc_name, corpus=corpus)
    elapsed = time.perf_counter() - t_start

    md = args.markdown
    key = "warm_s" if args.warm else "cold_s"
    headers = ["encoding", "corpus", "docs", "MB"]
    headers += [f"{label} MB/s" for label, *_ in CONFIGS]
    headers += [
        "2T/1T",
        "2 x 1T / 1T",
        "ragged MB",
        "ideal MB",
        "ferrotok 2T mem MB",
        "tiktoken 2T mem MB",
        "ids = tiktoken",
    ]
    rows: list[list[str]] = []
    for encoding in args.encodings:
        for corpus, _ in args.corpus_paths:
            got = {label: results.get((encoding, corpus, label)) for label, *_ in CONFIGS}
            any_res = next((r for r in got.values() if r), None)
            if any_res is None:
                continue
            row = [encoding, corpus, str(any_res["docs"]), f"{any_res['bytes'] / 1e6:.2f}"]
            speed: dict[str, float] = {}
            for label, *_ in CONFIGS:
                r = got[label]
                if r:
                    speed[label] = r["bytes"] / 1e6 / max(r[key], 1e-9)
                row.append(f"{speed[label]:.1f}" if label in speed else "-")
            one, two = speed.get("ferrotok 1T"), speed.get("ferrotok 2T")
            procs = speed.get("2 x 1T")
            row.append(f"{two / one:.2f}x" if one and two else "-")
            row.append(f"{procs / one:.2f}x" if one and procs else "-")
            fr = got["ferrotok 2T"] or got["ferrotok 1T"]
            if fr and "ragged_bytes" in fr:
                row.append(f"{fr['ragged_bytes'] / 1e6:.2f}")
                row.append(f"{(4 * fr['tokens'] + 8 * fr['docs']) / 1e6:.2f}")
            else:
                row += ["-", "-"]
            for label in ("ferrotok 2T", "tiktoken 2T"):
                row.append(f"{got[label]['mem_mb']:.1f}" if got[label] else "-")
            ref = got["tiktoken 2T"]
            if ref is None:
                row.append("ref n/a")
            else:
                bad = [
                    lb for lb, r in got.items() if r and lb != "tiktoken 2T" and r["digest"] != ref["digest"]
                ]
                row.append("yes" if not bad else "NO: " + ", ".join(bad))
                if bad:
                    notes.append(f"{encoding} {corpus}: ids differ from tiktoken's for {', '.join(bad)}")
            rows.append(row)

    out = [heading("ferrotok batch benchmark", md)]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    out.append(
        f"{cpu_model()}; {os.cpu_count()} CPUs; Python {platform.python_version()}; "
        f"load average {load:.2f} at the end; {elapsed:.0f} s."
    )
    out.append("Versions: " + ", ".join(f"{lib} {v}" for lib, v in versions.items()))
    out.append(
        (
            f"Best of {args.repeat} warm passes"
            if args.warm
            else "First pass of a fresh instance in a settled process (see --settled)"
            if args.settled
            else "First pass in a fresh process"
        )
        + f"; all documents of a corpus in one batch call; the median of {args.runs} runs.\n"
    )
    out.append(fmt_table(headers, rows, md))
    out.append("")
    if padded:
        out.append(
            f"padded({PAD_LENGTH}) of {padded['texts']} texts x >= {padded['min_tokens']} tokens "
            f"({padded['encoding']}, {padded['corpus']}; int64 ids + mask, best of 20): "
            f"right {padded['right_ms']:.2f} ms, left {padded['left_ms']:.2f} ms; "
            f"rows of mixed lengths ({padded['mixed_fill']:.0%} tokens) left {padded['mixed_ms']:.2f} ms."
        )
    out.append(f"Peak RSS of any worker: {peak_mb:.0f} MB.")
    out += long_text_lines(args)
    out += small_batch_lines(args)
    if notes:
        out.append(heading("Notes", md))
        out += [f"- {n}" for n in dict.fromkeys(notes)]
    print("\n".join(out).lstrip("\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
