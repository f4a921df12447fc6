"""Writes tests/data/fixture_corpus.jsonl.gz, the small corpus that parity tests always run on.

It is a deterministic sample of ../shared/corpus/{en,code,multi}.jsonl.gz (evenly spaced
documents, each cut to its first few KB at a character boundary) plus hand-made documents
aimed at the split patterns' corners. Each line is ``{"source": ..., "text": ...}``. The
output is byte-for-byte reproducible (gzip mtime 0), so re-running it changes nothing.

Run from the repository root, with ../shared beside it::

    python tests/data/make_fixture.py
"""

# ruff: noqa: RUF001  (the test text is meant to hold look-alike characters)
from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared"
OUT = HERE / "fixture_corpus.jsonl.gz"
PER_CORPUS = 16
MAX_BYTES = 4096

CODE = '''\
import os


class Tokenizer:
    """Docstring with 'quotes' and "double quotes"."""

    def __init__(self, path: str) -> None:
        self.path = path  # trailing comment<TRAIL>
\tif True:
\t\treturn {"a": [1, 2, 3], 'b': (4.5e-3, 0x1F)}

        for i in range(10):
            print(f"{i:>4d}", end='')
//  comment\r\n/* block */ x += 1; y -= 2; z **= 3;
    fn main() -> Result<(), Box<dyn Error>> { let v: Vec<u8> = vec![]; Ok(()) }
'''.replace("<TRAIL>", "   ")

HANDMADE = {
    "crlf": "line one\r\nline two\r\n\r\n  indented\r\n\r\n\r\nend\r",
    "tabs": "\tx\t\ty\t \t\n\t\t\tz \t\t\n\t",
    "nbsp": "a\u00a0b \u00a0 c\u00a0\u00a0\u00a0d\u202fe\u2009f \u00a0\u00a0\nprice:\u00a0100\u00a0€",
    "unicode-spaces": "a\u2028b\u2029c\u3000d\x0be\x0cf\x85g\u1680h\u200bi\u2003\u2003j\ufeffk",
    "whitespace-runs": " " * 200 + "x" + "\n" * 50 + "y" + " \t " * 30 + "\n   \n" + " " * 77,
    "trailing-space": "the end   ",
    "trailing-newlines": "the end\n\n  ",
    "only-spaces": "       ",
    "leading-space": "   starts with spaces and \n\n ends with a newline\n",
    "digits": "1234567890" * 20 + " 3.14159 1,000,000 12345678 ٣٤٥٦ ४५६७ ²³ ½ Ⅻ 1e10 0x7FFF 00042",
    "alnum": "abc123def 1st 2nd 3rd 4th x2 H2O COVID-19 v1.2.3-rc4 ISO-8859-1",
    "contractions": (
        "He's I'M we'll THEY'LL you'VE she'd it'S don't WON'T y'all "
        "'S 'ſ 'll 'LL 'Ll 'K 'k '\u212a '\u212aa ſ's 's 'sss ' s '' ''' 'd'd'd "
        "rock'n'roll o'clock l'homme d'Artagnan it\u2019s 'twas"
    ),
    "cases": "HelloWorld camelCase ABCdef XMLHttpRequest ǅungla ǈubljana ǲ ΣΊΣΥΦΟΣ ΐΰ Straße STRASSE ﬁnance",
    "combining": (
        "e\u0301 a\u0300\u0301\u0302 n\u0303o \u0301start Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d"
    ),
    "zalgo": "Z͑ͫ̓ͪ̂ͫ̽͏̴̙̤̞͉͚̯̞̠͍A̴̵̜̰͔ͫ͗͢L̠ͨͧͩ͘G̴̻͈͍͔̹̑͗̎̅͛́Ǫ̵̹̻̝̳͂̌̌͘!͖̬̰̙̗̿̋ͥͥ̂ͣ̐́́͜͞",
    "emoji": "👨\u200d👩\u200d👧\u200d👦 🏳️\u200d🌈 👍🏽 🇫🇷🇯🇵 ❤️\u200d🔥 🧑🏿\u200d💻 #️⃣ 😀😃😄 ✨",
    "cjk": "日本語のテキストです。中文文本，包括标点符号！한국어 텍스트입니다. ｶﾀｶﾅ 全角ＡＢＣ１２３",
    "arabic": "مرحبا بالعالم، هذا نص عربي. \u200fالرقم ١٢٣\u200e and English مختلط",
    "hebrew": "שָׁלוֹם עוֹלָם, זֶה טֶקְסְט",
    "devanagari": "नमस्ते दुनिया, यह हिंदी पाठ है। क्षत्रिय ज्ञान",
    "thai": "ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "astral": "\U0001d400\U0001d401 \U00010000 \U000e0001\U000e0041 \uffff \ufffd \U0010ffff \ue000",
    "controls": "a\x00b\x01c\x1f\x7fd\x1be[0m",
    "punctuation": "!!!??? ... --- /// \n//\n ?!/\r\n/ */ <|> {{}} ((( ))) ```python\n``` ---\n***",
    "specials-as-text": (
        "<|endoftext|> <|fim_prefix|>x<|fim_middle|>y<|fim_suffix|> <|endofprompt|><|endoftext|"
    ),
    "url-email": "https://example.com/a/b?c=d&e=f#g mailto:someone@example.org C:\\Users\\me\\file.txt",
    "long-word": "supercalifragilistic" * 50 + " " + "ab" * 1000,
    "code": CODE,
}


def _sample(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        docs = [json.loads(line)["text"] for line in f if line.strip()]
    step = max(1, len(docs) // PER_CORPUS)
    out = []
    for i in range(0, step * PER_CORPUS, step)[: len(docs)]:
        cut = docs[i].encode("utf-8")[:MAX_BYTES].decode("utf-8", "ignore")  # whole characters
        out.append((i, cut))
    return out


def main() -> int:
    if not (SHARED / "corpus").is_dir():
        print(f"{SHARED / 'corpus'} is absent", file=sys.stderr)
        return 1
    lines = []
    for corpus in ["en", "code", "multi"]:
        for i, text in _sample(SHARED / "corpus" / f"{corpus}.jsonl.gz"):
            lines.append({"source": f"{corpus}#{i}", "text": text})
    lines += [{"source": f"handmade:{k}", "text": v} for k, v in HANDMADE.items()]
    raw = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in lines).encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as f:
        f.write(raw)
    OUT.write_bytes(buf.getvalue())
    print(f"{len(lines)} documents, {len(raw)} bytes uncompressed -> {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
