"""What the per-library benchmark workers share: pinning to one CPU and timing two passes."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable


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
