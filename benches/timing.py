"""What the per-library benchmarks share: running each library in a worker process (found in
this interpreter or another one that has the peer installed), pinned to one CPU, timing two
passes, and counting the documents whose ids differ from the reference's."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable

# Another interpreter that has the peers installed (they need not share ferrotok's venv).
PEERS_PYTHON = os.environ.get("FERROTOK_PEERS_PYTHON", "")


def interpreter_for(module: str) -> str | None:
    """This interpreter or ``$FERROTOK_PEERS_PYTHON``, whichever can import ``module``."""
    for python in (sys.executable, PEERS_PYTHON):
        if not python or not os.path.exists(python):
            continue
        probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True, check=False)
        if probe.returncode == 0:
            return python
    return None


def compile_ferrotok() -> None:
    """Compiles ferrotok's Python modules to bytecode once, as pip does when it installs a
    wheel. Run from the source tree (``PYTHONPATH=python``) on a machine that sets
    ``PYTHONDONTWRITEBYTECODE`` (this one does), every worker would compile them again inside
    its load time: 45 ms of the 60 that ``import ferrotok`` took here, against 14 compiled."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("ferrotok")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        compileall.compile_dir(folder, quiet=1)


def read_corpus(path: str | os.PathLike[str], max_docs: int | None) -> list[str]:
    """The ``text`` of each line of a gzipped JSON-lines file (the first ``max_docs``)."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        docs = [json.loads(line)["text"] for line in f if line.strip()]
    return docs[:max_docs] if max_docs else docs


def measure(
    marker: str, lib: str, load: Callable[[], Callable[[str], Iterable[int]]], docs: list[str]
) -> None:
    """The worker's side: times ``load()`` (the encoder) and two passes over ``docs``, and prints
    the result as one ``marker``-prefixed JSON line for :func:`run_worker`. numpy is imported
    before the clock starts, as ``bench_bpe.py`` does: every caller of an encoder that returns
    numpy arrays has it loaded already, and its import (about 100 ms here) would hide the load."""
    with contextlib.suppress(ImportError):
        import numpy  # noqa: F401

    t0 = time.perf_counter()
    encode = load()
    out: dict = {"lib": lib, "load_ms": (time.perf_counter() - t0) * 1e3}
    out.update(time_passes(encode, docs))
    print(marker + json.dumps(out), flush=True)


def run_worker(lib: str, script: str, args: list[str], marker: str) -> dict:
    """The driver's side: runs ``script --worker lib *args`` in an interpreter that can import
    ``lib``, every thread pool capped at one; the worker's result, or ``{"skipped": why}``."""
    python = interpreter_for(lib)  # the library names are their modules' names
    if python is None:
        return {"lib": lib, "skipped": "not installed"}
    env = dict(
        os.environ,
        RAYON_NUM_THREADS="1",
        FERROTOK_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        OPENBLAS_NUM_THREADS="1",  # numpy's BLAS threads would spin on the pinned CPU
    )
    proc = subprocess.run(
        [python, script, "--worker", lib, *args], capture_output=True, text=True, env=env, check=False
    )
    for line in proc.stdout.splitlines():
        if line.startswith(marker):
            return json.loads(line[len(marker) :])
    reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"lib": lib, "skipped": reason[:100]}


def mismatches(result: dict, ref: dict | None) -> str:
    """Documents whose ids, in either pass, differ from the reference's first pass."""
    if ref is None:
        return "n/a"
    pairs = zip(result["cold_hashes"], result["warm_hashes"], ref["cold_hashes"], strict=True)
    return str(sum(a != b or c != b for a, c, b in pairs))


def pin_to_one_cpu() -> None:
    """Runs this process on one CPU (where the platform allows it)."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def digest(ids: Iterable[int]) -> str:
    """A short hash of a document's ids, as ``uint32`` bytes, the same for any library's list or
    array of the same ids. Made between timed calls, so it is made cheaply: hashing the JSON of
    a list of Python ints instead evicted enough of an encoder's tables from the CPU caches to
    cost ferrotok 20-25% of its measured speed (cl100k en, first pass 116 -> 86 MB/s)."""
    import numpy as np

    return hashlib.blake2b(np.asarray(ids, dtype=np.uint32).tobytes(), digest_size=8).hexdigest()


def time_passes(encode: Callable[[str], Iterable[int]], docs: list[str]) -> dict:
    """Encodes every document twice, one call each, timing only the calls: ``cold`` and ``warm``
    MB/s (10**6 UTF-8 bytes), ``bytes``, and a short hash of each document's ids per pass
    (``cold_hashes`` / ``warm_hashes``) for comparing libraries."""
    out: dict = {"bytes": sum(len(d.encode("utf-8")) for d in docs)}
    for name in ("cold", "warm"):
        hashes = []
        spent = 0.0
        for d in docs:
            t = time.perf_counter()
            ids = encode(d)
            spent += time.perf_counter() - t
            hashes.append(digest(ids))
        out[name] = out["bytes"] / spent / 1e6
        out[f"{name}_hashes"] = hashes
    return out
