"""Write the compact vocabularies that the package embeds (rust/data/*.ftok).

    python scripts/embed_vocab.py ../shared/vocab

Reads the official `.tiktoken(.gz)` rank files and writes ferrotok's compact form: the magic
`FTOKV1\\0\\0`, the number of ids (u32 LE), one LEB128 byte length per id (0 for an id with no
token), then all token bytes in id order. Loading that is one pass over memory, with no base64.
The tests check the embedded data against the official files' sha256, so a wrong conversion
cannot go unnoticed.
"""

import base64
import gzip
import pathlib
import struct
import sys

NAMES = ("gpt2", "cl100k_base", "o200k_base")


def leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def convert(src: pathlib.Path, dst: pathlib.Path) -> None:
    raw = src.read_bytes()
    if src.suffix == ".gz":
        raw = gzip.decompress(raw)
    ranks = {}
    for line in raw.splitlines():
        if line:
            tok, rank = line.split()
            ranks[int(rank)] = base64.b64decode(tok)
    n = max(ranks) + 1
    toks = [ranks.get(i, b"") for i in range(n)]
    data = b"FTOKV1\0\0" + struct.pack("<I", n) + b"".join(leb128(len(t)) for t in toks) + b"".join(toks)
    dst.write_bytes(data)
    print(f"{dst}: {len(ranks)} tokens, {len(data)} bytes")


if __name__ == "__main__":
    vocab_dir = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/vocab")
    out_dir = pathlib.Path(__file__).resolve().parent.parent / "rust" / "data"
    for name in NAMES:
        convert(vocab_dir / f"{name}.tiktoken.gz", out_dir / f"{name}.ftok")
