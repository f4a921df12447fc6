"""A slow, obviously correct byte-level BPE trainer: every step recounts every pair.

It states the rules ferrotok's trainer follows: bytes ranked in GPT-2's order, the most
frequent adjacent pair merged left to right in every piece, ties to the smallest
(left id, right id), a merge whose bytes already form a token reusing that token.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping

PRINTABLE = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
BYTE_ORDER = PRINTABLE + [b for b in range(256) if b not in PRINTABLE]


def train(
    pieces: Mapping[str, int], n_tokens: int, min_frequency: int = 1
) -> tuple[list[bytes], list[tuple[int, int]]]:
    """Tokens in id order and the merges made, from piece -> count."""
    tokens = [bytes([b]) for b in BYTE_ORDER]
    ids = {t: i for i, t in enumerate(tokens)}
    words = [([ids[bytes([b])] for b in p.encode()], n) for p, n in pieces.items()]
    merges: list[tuple[int, int]] = []
    while len(tokens) < n_tokens:
        pairs: Counter[tuple[int, int]] = Counter()
        for syms, n in words:
            for a, b in itertools.pairwise(syms):
                pairs[(a, b)] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < min_frequency:
            break
        merged = tokens[best[0]] + tokens[best[1]]
        if merged not in ids:
            ids[merged] = len(tokens)
            tokens.append(merged)
        new = ids[merged]
        for syms, _ in words:
            i = 0
            while i < len(syms) - 1:
                if (syms[i], syms[i + 1]) == best:
                    syms[i : i + 2] = [new]
                i += 1
        merges.append(best)
    return tokens, merges
