"""What the per-library benchmarks share: finding an interpreter that has a peer installed,
pinning a worker to one CPU, and timing two passes."""

from __future__ import annotations

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


def pin_to_one_cpu() -> None:
    """Runs this process on one CPU (where the platform allows it)."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


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
            hashes.append(
                hashlib.blake2b(json.dumps([int(i) for i in ids]).encode(), digest_size=8).hexdigest()
            )
        out[name] = out["bytes"] / spent / 1e6
        out[f"{name}_hashes"] = hashes
    return out
