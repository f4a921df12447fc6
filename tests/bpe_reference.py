"""A pure-Python reference of tiktoken's byte-pair merge, for inputs tiktoken cannot take.

``byte_pair_merge_literal`` is a line-by-line port of tiktoken's ``_byte_pair_merge``
(src/lib.rs): repeatedly merge the adjacent pair whose concatenation has the lowest rank, the
leftmost one on ties, until no adjacent pair is a token. It is quadratic, so
``byte_pair_encode`` does the same merges in the same order with a heap (lowest rank, then
leftmost position, pops first; stale entries are skipped), which is fast enough for a piece
of a megabyte. Both are tested against tiktoken and each other on small inputs.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Mapping

MAX_RANK = 2**32 - 1


def byte_pair_merge_literal(ranks: Mapping[bytes, int], piece: bytes) -> list[int]:
    """tiktoken's ``byte_pair_encode``: the shortcut for a whole-token piece, then the merge."""
    if piece in ranks:
        return [ranks[piece]]
    # parts[i] = (start of part i, rank of merging part i with part i + 1)
    parts = [(i, ranks.get(piece[i : i + 2], MAX_RANK)) for i in range(len(piece) - 1)]
    parts += [(len(piece) - 1, MAX_RANK), (len(piece), MAX_RANK)]

    def get_rank(i: int) -> int:
        if i + 3 < len(parts):
            return ranks.get(piece[parts[i][0] : parts[i + 3][0]], MAX_RANK)
        return MAX_RANK

    while True:
        rank, i = min((r, k) for k, (_, r) in enumerate(parts[:-1]))
        if rank == MAX_RANK:
            break
        if i > 0:
            parts[i - 1] = (parts[i - 1][0], get_rank(i - 1))
        parts[i] = (parts[i][0], get_rank(i))
        del parts[i + 1]
    return [ranks[piece[a:b]] for (a, _), (b, _) in itertools.pairwise(parts)]


def byte_pair_encode(ranks: Mapping[bytes, int], piece: bytes) -> list[int]:
    """The same ids as :func:`byte_pair_merge_literal`, in O(n log n)."""
    if piece in ranks:
        return [ranks[piece]]
    n = len(piece)
    nxt = list(range(1, n + 1))  # parts form a linked list of start offsets
    prv = list(range(-1, n - 1))
    alive = [True] * n
    heap = [(r, i) for i in range(n - 1) if (r := ranks.get(piece[i : i + 2])) is not None]
    heapq.heapify(heap)

    def push(i: int) -> None:  # the pair starting at part i, if it is a token
        j = nxt[i]
        if j < n and (r := ranks.get(piece[i : nxt[j]])) is not None:
            heapq.heappush(heap, (r, i))

    while heap:
        r, i = heapq.heappop(heap)
        # Skip stale entries: the part is gone, or its pair is no longer those bytes (ranks
        # are unique per token, so an unchanged rank means unchanged bytes).
        if not alive[i] or nxt[i] >= n or ranks.get(piece[i : nxt[nxt[i]]]) != r:
            continue
        j = nxt[i]
        alive[j] = False
        nxt[i] = nxt[j]
        if nxt[j] < n:
            prv[nxt[j]] = i
        push(i)
        if prv[i] >= 0:
            push(prv[i])
    out = []
    i = 0
    while i < n:
        out.append(ranks[piece[i : nxt[i]]])
        i = nxt[i]
    return out


def encode_pieces(ranks: Mapping[bytes, int], pieces: Iterable[str]) -> list[int]:
    """The ids of already-split pieces, as tiktoken's ``encode_ordinary`` would give them."""
    return [t for p in pieces for t in byte_pair_encode(ranks, p.encode("utf-8"))]
