"""Embedding, patch and VQ benchmark: ferrotok's numpy paths against plain numpy and torch.

    python benches/bench_embedding.py                    # the default sizes below
    python benches/bench_embedding.py --vocab 50000 --batch 8 --markdown   # smaller, markdown

Prints one table:

- lookup: ``Embedding(table, dtype=...)(ids)`` for a ``vocab x dim`` table (default 200k x 768)
  and a training batch of ids (default 64 x 2048), stored as float32, float16, bfloat16 and int8.
  GB/s is the bytes of the output array per second (float32 out for bf16 and int8, float16 out
  for float16). "numpy take" is ``np.take(stored_table, ids, axis=0)`` on the same stored array
  (a raw gather: no conversion, so for bf16 and int8 it is a lower bound, not the same work);
  "torch" is ``F.embedding(ids, weight)`` with the same dtype (int8: on the dequantized float32
  table), when torch is installed.
- patchify: ``patchify(images, 16)`` on uint8 224x224x3 images (N, H, W, C), images/s.
- VQ encode: ``VectorQuantizer(codebook).encode(x)`` with a 8192 x 256 float32 codebook,
  vectors/s (the default chunking).

Every timing is the best of ``--repeat`` calls after one warm-up call, in this one process;
numpy's BLAS and torch use their default thread counts. The header prints the load average:
timings on a busy machine are low.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from ferrotok.embedding import Embedding
from ferrotok.patches import VectorQuantizer, patchify

try:
    import torch
except ImportError:  # torch is optional
    torch = None


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    """The fastest of ``repeat`` calls (seconds), after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def fmt_table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    if markdown:
        lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
        lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
        return "\n".join(lines)
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def torch_weight(emb: Embedding) -> Any:
    if torch is None:
        return None
    return emb.to_torch().weight.detach()


def bench_lookup(args: argparse.Namespace, rng: np.random.Generator, rows: list[list[str]]) -> None:
    """Lookups of one batch of ids, for each storage dtype."""
    src = rng.standard_normal((args.vocab, args.dim), dtype=np.float32)
    ids = rng.integers(0, args.vocab, (args.batch, args.seq), dtype=np.int64)
    tids = torch.from_numpy(ids) if torch is not None else None
    config = f"{args.vocab // 1000}k x {args.dim}, ids {args.batch}x{args.seq}"
    for dtype in ("float32", "float16", "bfloat16", "int8"):
        emb = Embedding(src, dtype=dtype)
        out = emb(ids)
        gb = out.nbytes / 1e9
        t_ft = best_of(lambda emb=emb: emb(ids), args.repeat)
        stored = emb.table
        take = np.take(stored, ids, axis=0)
        t_np = best_of(lambda stored=stored: np.take(stored, ids, axis=0), args.repeat)
        torch_col = "-"
        if torch is not None:
            weight = torch_weight(emb)
            t_t = best_of(lambda weight=weight: torch.nn.functional.embedding(tids, weight), args.repeat)
            tout = torch.nn.functional.embedding(tids, weight)
            torch_col = f"{tout.element_size() * tout.nelement() / 1e9 / t_t:.2f} GB/s"
            del weight, tout
        err = emb.quantization_error()
        table_mb = (stored.nbytes + (0 if emb.scales is None else emb.scales.nbytes)) / 1e6
        rows.append(
            [
                f"lookup {dtype}",
                f"{config}, table {table_mb:.0f} MB -> {out.dtype}",
                f"{t_ft * 1e3:.1f}",
                f"{gb / t_ft:.2f} GB/s",
                f"{take.nbytes / 1e9 / t_np:.2f} GB/s",
                torch_col,
                f"max err {err.max_abs:.2g}",
            ]
        )
        del emb, out, take, stored


def bench_patchify(args: argparse.Namespace, rng: np.random.Generator, rows: list[list[str]]) -> None:
    """patchify of uint8 224x224x3 images, p=16."""
    imgs = rng.integers(0, 256, (args.images, 224, 224, 3), dtype=np.uint8)
    t_p = best_of(lambda: patchify(imgs, 16), args.repeat)
    torch_col = "-"
    if torch is not None:
        timgs = torch.from_numpy(imgs)

        def torch_patchify() -> Any:  # the same layout: (N, 196, 16*16*3)
            n = timgs.shape[0]
            return timgs.reshape(n, 14, 16, 14, 16, 3).permute(0, 1, 3, 2, 4, 5).reshape(n, 196, 768)

        t_tp = best_of(torch_patchify, args.repeat)
        torch_col = f"{args.images / t_tp:,.0f} img/s"
    rows.append(
        [
            "patchify",
            f"{args.images} x 224x224x3 uint8, p=16",
            f"{t_p * 1e3:.1f}",
            f"{args.images / t_p:,.0f} img/s",
            "-",
            torch_col,
            f"{imgs.nbytes / 1e9 / t_p:.2f} GB/s",
        ]
    )


def bench_vq(args: argparse.Namespace, rng: np.random.Generator, rows: list[list[str]]) -> None:
    """VectorQuantizer.encode against a random codebook."""
    codebook = rng.standard_normal((args.codes, args.code_dim), dtype=np.float32)
    x = rng.standard_normal((args.vectors, args.code_dim), dtype=np.float32)
    vq = VectorQuantizer(codebook)
    t_v = best_of(lambda: vq.encode(x), max(1, args.repeat // 2))
    torch_col = "-"
    if torch is not None:
        tc, tx = torch.from_numpy(codebook), torch.from_numpy(x)
        t_tv = best_of(lambda: torch.cdist(tx, tc).argmin(dim=1), max(1, args.repeat // 2))
        torch_col = f"{args.vectors / t_tv:,.0f} vec/s (cdist)"
    gflop = 2 * args.vectors * args.codes * args.code_dim / 1e9
    rows.append(
        [
            "VQ encode",
            f"{args.vectors} x {args.code_dim}, codebook {args.codes} x {args.code_dim}",
            f"{t_v * 1e3:.1f}",
            f"{args.vectors / t_v:,.0f} vec/s",
            "-",
            torch_col,
            f"{gflop / t_v:.0f} GFLOP/s",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch", type=int, default=64, help="rows of ids")
    ap.add_argument("--seq", type=int, default=2048, help="ids per row")
    ap.add_argument("--images", type=int, default=256, help="224x224x3 images per patchify call")
    ap.add_argument("--vectors", type=int, default=16_384, help="vectors per VQ encode call")
    ap.add_argument("--codes", type=int, default=8192)
    ap.add_argument("--code-dim", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(
        f"# bench_embedding: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.2f}; numpy {np.__version__}"
        + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ", no torch")
    )
    rng = np.random.default_rng(0)
    header = ["benchmark", "config", "ms", "ferrotok", "numpy take", "torch", "note"]
    rows: list[list[str]] = []
    bench_lookup(args, rng, rows)
    bench_patchify(args, rng, rows)
    bench_vq(args, rng, rows)
    print(fmt_table(header, rows, args.markdown))


if __name__ == "__main__":
    main()
