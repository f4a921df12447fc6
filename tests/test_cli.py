"""The command line, run as ``python -m ferrotok`` in a subprocess."""

from __future__ import annotations

import subprocess
import sys

import ferrotok
import numpy as np
import pytest
from conftest import ENCODINGS, fixture_corpus
from ferrotok.cli import main

TEXT = "Hello, wörld!\r\n\tCode:  x = 1  # 😀\n<|endoftext|> end  \n"


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "ferrotok", *args], input=stdin, capture_output=True, timeout=120, check=False
    )


def ok(proc: subprocess.CompletedProcess[bytes]) -> str:
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    return proc.stdout.decode("utf-8")


def one_line_error(proc: subprocess.CompletedProcess[bytes], *words: str) -> str:
    assert proc.returncode == 2
    assert proc.stdout == b""
    err = proc.stderr.decode()
    assert err.startswith("ferrotok: error: ")
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    for word in words:
        assert word in err
    return err


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(TEXT.encode("utf-8"))
    return path


@pytest.mark.parametrize("name", ENCODINGS)
def test_encode_default_prints_ids_on_one_line(text_file, name):
    out = ok(run("encode", str(text_file), "--encoding", name))
    assert out.endswith("\n") and out.count("\n") == 1
    assert [int(x) for x in out.split()] == ferrotok.get_encoding(name).encode_ordinary(TEXT).tolist()


def test_encode_uses_o200k_base_by_default(text_file):
    ids = [int(x) for x in ok(run("encode", str(text_file))).split()]
    assert ids == ferrotok.get_encoding("o200k_base").encode_ordinary(TEXT).tolist()


def test_encode_count_from_stdin():
    enc = ferrotok.get_encoding("cl100k_base")
    count = len(enc.encode_ordinary(TEXT))
    assert ok(run("encode", "--count", "-e", "cl100k_base", stdin=TEXT.encode())) == f"{count}\n"
    assert ok(run("encode", "-", "--count", "-e", "cl100k_base", stdin=TEXT.encode())) == f"{count}\n"


def test_encode_allow_special(text_file):
    enc = ferrotok.get_encoding("gpt2")
    ids = [int(x) for x in ok(run("encode", str(text_file), "-e", "gpt2", "--allow-special")).split()]
    assert ids == enc.encode(TEXT, allowed_special="all").tolist()
    assert enc.eot_token in ids


def test_encode_out_npy_and_decode_round_trip(text_file, tmp_path):
    out = tmp_path / "ids.npy"
    message = ok(run("encode", str(text_file), "--out", str(out)))
    ids = np.load(out)
    assert ids.dtype == np.uint32 and ids.ndim == 1
    assert ids.tolist() == ferrotok.get_encoding("o200k_base").encode_ordinary(TEXT).tolist()
    assert message == f"{len(ids)} tokens -> {out}\n"
    assert ok(run("decode", str(out))) == TEXT


def test_decode_text_ids_round_trip(text_file):
    ids = ok(run("encode", str(text_file), "-e", "cl100k_base"))
    assert ok(run("decode", "-e", "cl100k_base", stdin=ids.encode())) == TEXT
    spread = "\n".join(ids.split()) + "\n\n"  # any whitespace between ids
    assert ok(run("decode", "-e", "cl100k_base", stdin=spread.encode())) == TEXT


def test_decode_partial_character_is_replaced():
    enc = ferrotok.get_encoding("gpt2")
    first = enc.encode_ordinary("😀")[0]
    assert ok(run("decode", "-e", "gpt2", stdin=f"{first}".encode())) == enc.decode([first])
    assert "\ufffd" in enc.decode([first])


def test_list():
    assert ok(run("list")).split() == ferrotok.list_encodings()


def test_missing_file(tmp_path):
    missing = tmp_path / "missing.txt"
    one_line_error(run("encode", str(missing)), str(missing))
    one_line_error(run("decode", str(missing)), str(missing))


def test_unknown_encoding(text_file):
    one_line_error(run("encode", str(text_file), "--encoding", "nope"), "nope", "o200k_base")


@pytest.mark.parametrize("stdin", [b"1 2 99999999", b"1 -5", b"12 abc", b"1 2 " + b"9" * 30])
def test_decode_bad_ids(stdin):
    one_line_error(run("decode", "-e", "gpt2", stdin=stdin))


def test_undecodable_input(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"abc \xff\xfe")
    one_line_error(run("encode", str(bad)), "UTF-8")
    one_line_error(run("decode", str(bad)))


def test_usage_errors_exit_2():
    assert run().returncode == 2
    assert run("frobnicate").returncode == 2
    assert run("encode", "--count", "--out", "x.npy").returncode == 2


def test_main_in_process(text_file, capsys):
    assert main(["encode", str(text_file), "--count", "-e", "gpt2"]) == 0
    assert capsys.readouterr().out == f"{len(ferrotok.get_encoding('gpt2').encode_ordinary(TEXT))}\n"
    assert main(["encode", str(text_file), "-e", "nope"]) == 2
    assert capsys.readouterr().err.startswith("ferrotok: error: unknown encoding")
    assert main(["--help"]) == 0


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(fixture_corpus()), encoding="utf-8")
    return path


def test_train_bpe_writes_a_tokenizer_json_that_loads(corpus_file, tmp_path):
    out = tmp_path / "tok.json"
    assert ok(
        run("train", str(corpus_file), "-n", "600", "-o", str(out), "--quiet", "--special", "<|eot|>")
    ) == (f"bpe: 600 tokens -> {out}\n")
    enc = ferrotok.Encoding.from_file(out)
    want = ferrotok.train_bpe(files=[corpus_file], vocab_size=600, special_tokens=["<|eot|>"], progress=False)
    assert enc.token_byte_values() == want.token_byte_values()
    assert enc.special_tokens == {"<|eot|>": 599}


def test_train_wordpiece_and_unigram(corpus_file, tmp_path):
    vocab = tmp_path / "vocab.txt"
    ok(run("train", str(corpus_file), "-m", "wordpiece", "-n", "3000", "-o", str(vocab), "-q"))
    assert ferrotok.Tokenizer.from_vocab(vocab).vocab_size == 3000
    model = tmp_path / "my.model"
    ok(run("train", str(corpus_file), "-m", "unigram", "-n", "1000", "-o", str(model), "-q"))
    assert ferrotok.SentencePiece.from_file(model).vocab_size == 1000


def test_train_progress_goes_to_stderr(corpus_file, tmp_path):
    proc = run("train", str(corpus_file), "-n", "300", "-o", str(tmp_path / "t.tiktoken"))
    assert proc.returncode == 0
    assert b"ferrotok: merge" in proc.stderr
    assert (tmp_path / "t.tiktoken").read_text().count("\n") == 300


def test_train_errors(corpus_file, tmp_path):
    one_line_error(run("train", str(tmp_path / "nope.txt"), "-n", "300", "-o", "x.json"), "nope.txt")
    one_line_error(run("train", str(corpus_file), "-n", "100", "-o", "x.json", "-q"), "256 byte tokens")
