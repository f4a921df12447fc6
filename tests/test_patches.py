"""ferrotok.patches: patchify / unpatchify, tubelets, PatchEmbedding (= Conv2d) and VectorQuantizer.

References are written out with explicit loops over the (few) patches of small inputs; torch's
Conv2d / Conv3d where torch is installed (those tests skip otherwise).
"""

from __future__ import annotations

import doctest
import tracemalloc

import ferrotok.patches as fp
import numpy as np
import pytest
from ferrotok.patches import PatchEmbedding, VectorQuantizer, patchify, tubelets, unpatchify, untubelet


def images(n: int, h: int, w: int, c: int, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "u":
        return rng.integers(0, 256, (n, h, w, c), dtype=dtype)
    return rng.standard_normal((n, h, w, c)).astype(dtype)


def reference_patches(x: np.ndarray, ph: int, pw: int, channels_last: bool) -> np.ndarray:
    """Patch (i, j) of image n is ``x[n, i*ph:(i+1)*ph, j*pw:(j+1)*pw]`` flattened."""
    if not channels_last:
        x_cl = x.transpose(0, 2, 3, 1)
    else:
        x_cl = x
    n, h, w, _ = x_cl.shape
    rows = []
    for k in range(n):
        row = []
        for i in range(h // ph):
            for j in range(w // pw):
                if channels_last:
                    block = x[k, i * ph : (i + 1) * ph, j * pw : (j + 1) * pw, :]
                else:
                    block = x[k, :, i * ph : (i + 1) * ph, j * pw : (j + 1) * pw]
                row.append(block.reshape(-1))
        rows.append(row)
    return np.array(rows)


def test_docstring_examples():
    assert doctest.testmod(fp).failed == 0


# -- patchify -------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize(("h", "w", "patch"), [(8, 12, 4), (6, 10, (3, 5)), (4, 4, 4), (5, 7, 1)])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_patchify_values_and_round_trip(channels_last, h, w, patch, dtype):
    x = images(3, h, w, 3, dtype)
    if not channels_last:
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    ph, pw = (patch, patch) if isinstance(patch, int) else patch
    patches, positions = patchify(x, patch, channels_last=channels_last)
    gh, gw = h // ph, w // pw
    assert patches.shape == (3, gh * gw, ph * pw * 3) and patches.dtype == dtype
    np.testing.assert_array_equal(patches, reference_patches(x, ph, pw, channels_last))
    assert positions.dtype == np.int64 and positions.shape == (gh * gw, 2)
    assert positions.tolist() == [[i, j] for i in range(gh) for j in range(gw)]
    back = unpatchify(patches, patch, (h, w), channels_last=channels_last)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, x)


def test_channels_first_patch_is_the_channels_last_patch_reordered():
    x = images(2, 8, 8, 3)
    last, _ = patchify(x, 4)
    first, _ = patchify(x.transpose(0, 3, 1, 2), 4, channels_last=False)
    np.testing.assert_array_equal(
        first, last.reshape(2, 4, 4, 4, 3).transpose(0, 1, 4, 2, 3).reshape(2, 4, 48)
    )


def test_single_image():
    x = images(1, 8, 12, 3)
    patches, _ = patchify(x[0], 4)
    assert patches.shape == (6, 48)
    np.testing.assert_array_equal(patches, patchify(x, 4)[0][0])
    np.testing.assert_array_equal(unpatchify(patches, 4, (8, 12)), x[0])


def test_torch_images():
    torch = pytest.importorskip("torch")
    x = images(2, 8, 12, 3)
    tp, tpos = patchify(torch.from_numpy(x), 4)
    np.testing.assert_array_equal(tp, patchify(x, 4)[0])
    np.testing.assert_array_equal(tpos, patchify(x, 4)[1])
    back = unpatchify(torch.from_numpy(tp), 4, (8, 12))
    np.testing.assert_array_equal(back, x)


@pytest.mark.parametrize("channels_last", [True, False])
def test_pad_and_crop_back(channels_last):
    x = images(2, 10, 13, 2, np.float32)
    if not channels_last:
        x = x.transpose(0, 3, 1, 2)
    patches, positions = patchify(x, 4, channels_last=channels_last, pad=True)
    assert patches.shape == (2, 3 * 4, 32) and positions[-1].tolist() == [2, 3]
    padded = np.zeros((2, 12, 16, 2), np.float32) if channels_last else np.zeros((2, 2, 12, 16), np.float32)
    if channels_last:
        padded[:, :10, :13] = x
    else:
        padded[:, :, :10, :13] = x
    np.testing.assert_array_equal(patches, patchify(padded, 4, channels_last=channels_last)[0])
    np.testing.assert_array_equal(unpatchify(patches, 4, (10, 13), channels_last=channels_last), x)


@pytest.mark.parametrize(
    ("x", "kwargs", "exc", "words"),
    [
        (
            np.zeros((2, 10, 12, 3)),
            {},
            ValueError,
            r"\(10, 12\) is not divisible by the patch size \(4, 4\).*pad=True",
        ),
        (np.zeros((10, 12)), {}, ValueError, r"\(N, H, W, C\).*\(10, 12\)"),
        (np.zeros((1, 2, 8, 8, 3)), {"channels_last": False}, ValueError, r"\(N, C, H, W\)"),
        (np.array([[["a"]]]), {}, TypeError, "numeric"),
        (np.zeros((1, 8, 8, 3)), {"patch_size": 0}, ValueError, "patch_size must be > 0"),
        (np.zeros((1, 8, 8, 3)), {"patch_size": (2, 2, 2)}, ValueError, "2 ints"),
    ],
)
def test_patchify_bad_input(x, kwargs, exc, words):
    kwargs = {"patch_size": 4, **kwargs}
    with pytest.raises(exc, match=words):
        patchify(x, **kwargs)


def test_unpatchify_bad_input():
    patches, _ = patchify(np.zeros((1, 8, 8, 3)), 4)
    with pytest.raises(ValueError, match=r"4 patches do not tile \(8, 12\).*expected 6"):
        unpatchify(patches, 4, (8, 12))
    with pytest.raises(ValueError, match="not a multiple"):
        unpatchify(patches[..., :47], 4, (8, 8))
    with pytest.raises(ValueError, match="patches must be"):
        unpatchify(patches.reshape(-1), 4, (8, 8))


# -- tubelets -------------------------------------------------------------------------------------


def test_tubelets_values_positions_and_round_trip():
    rng = np.random.default_rng(1)
    v = rng.integers(0, 256, (2, 4, 8, 12, 3), dtype=np.uint8)  # (N, T, H, W, C)
    tokens, positions = tubelets(v, 2, 4)
    assert tokens.shape == (2, 2 * 2 * 3, 2 * 4 * 4 * 3) and tokens.dtype == np.uint8
    want_pos = [[a, i, j] for a in range(2) for i in range(2) for j in range(3)]
    assert positions.tolist() == want_pos
    for k, (a, i, j) in enumerate(want_pos):
        block = v[:, a * 2 : a * 2 + 2, i * 4 : i * 4 + 4, j * 4 : j * 4 + 4, :]
        np.testing.assert_array_equal(tokens[:, k], block.reshape(2, -1))
    np.testing.assert_array_equal(untubelet(tokens, 2, 4, (4, 8, 12)), v)
    # a single video; t = 1 is per-frame patchify
    single, _ = tubelets(v[0], 2, 4)
    np.testing.assert_array_equal(single, tokens[0])
    np.testing.assert_array_equal(untubelet(single, 2, 4, (4, 8, 12)), v[0])
    frames, _ = tubelets(v, 1, 4)
    np.testing.assert_array_equal(
        frames.reshape(2, 4, 6, 48), patchify(v.reshape(8, 8, 12, 3), 4)[0].reshape(2, 4, 6, 48)
    )


def test_tubelets_pad_and_channels_first():
    rng = np.random.default_rng(2)
    v = rng.standard_normal((1, 3, 5, 6, 2)).astype(np.float32)
    with pytest.raises(ValueError, match=r"\(3, 5, 6\) is not divisible by the patch size \(2, 4, 4\)"):
        tubelets(v, 2, 4)
    tokens, positions = tubelets(v, 2, 4, pad=True)
    assert tokens.shape == (1, 2 * 2 * 2, 2 * 4 * 4 * 2) and positions.shape == (8, 3)
    np.testing.assert_array_equal(untubelet(tokens, 2, 4, (3, 5, 6)), v)
    vf = v.transpose(0, 4, 1, 2, 3)  # (N, C, T, H, W)
    tf, _ = tubelets(vf, 2, 4, channels_last=False, pad=True)
    np.testing.assert_array_equal(untubelet(tf, 2, 4, (3, 5, 6), channels_last=False), vf)
    with pytest.raises(ValueError, match=r"\(N, T, H, W, C\)"):
        tubelets(v[0, 0], 2, 4)


# -- PatchEmbedding -------------------------------------------------------------------------------


def test_patch_embedding_is_linear():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((5, 12)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    pe = PatchEmbedding(w, b)
    x = rng.integers(0, 256, (2, 7, 12), dtype=np.uint8)
    out = pe(x)
    assert out.shape == (2, 7, 5) and out.dtype == np.float32
    np.testing.assert_allclose(out, x.astype(np.float32) @ w.T + b, rtol=1e-5)
    np.testing.assert_allclose(PatchEmbedding(w)(x), x.astype(np.float32) @ w.T, rtol=1e-5)
    with pytest.raises(ValueError, match=r"\(\.\.\., 12\)"):
        pe(x[..., :11])
    with pytest.raises(ValueError, match=r"bias must have shape \(5,\)"):
        PatchEmbedding(w, b[:4])
    with pytest.raises(ValueError, match="2-D float"):
        PatchEmbedding(w[0])
    with pytest.raises(ValueError, match="no patch_size"):
        pe.embed_images(np.zeros((1, 4, 4, 3)))
    with pytest.raises(ValueError, match="4-D"):
        PatchEmbedding.from_conv2d_weight(w)


@pytest.mark.parametrize("channels_last", [False, True])
def test_patch_embedding_from_conv2d_equals_conv2d(channels_last):
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(3, 32, kernel_size=8, stride=8)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen))
        conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen))
    x = torch.randn(2, 3, 32, 48, generator=gen)  # (N, C, H, W)
    with torch.no_grad():
        ref = conv(x).flatten(2).transpose(1, 2).numpy()  # (N, num_patches, D), row-major
    pe = PatchEmbedding.from_conv2d_weight(conv.weight, conv.bias, channels_last=channels_last)
    assert pe.patch_size == (8, 8) and (pe.dim, pe.patch_dim) == (32, 192)
    images = x.numpy().transpose(0, 2, 3, 1) if channels_last else x.numpy()
    tokens, positions = pe.embed_images(images)
    assert tokens.shape == (2, 24, 32) and positions.shape == (24, 2)
    np.testing.assert_allclose(tokens, ref, rtol=1e-4, atol=1e-4)


def test_tubelets_channels_first_equal_conv3d():
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(1)
    conv = torch.nn.Conv3d(3, 16, kernel_size=(2, 4, 4), stride=(2, 4, 4), bias=False)
    x = torch.randn(2, 3, 4, 8, 8, generator=gen)  # (N, C, T, H, W)
    with torch.no_grad():
        ref = conv(x).flatten(2).transpose(1, 2).numpy()
    tokens, _ = tubelets(x, 2, 4, channels_last=False)
    got = PatchEmbedding(conv.weight.detach().reshape(16, -1))(tokens)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


# -- VectorQuantizer ------------------------------------------------------------------------------


def brute_force(x: np.ndarray, codebook: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = ((x[..., None, :].astype(np.float64) - codebook.astype(np.float64)) ** 2).sum(-1)
    return d.argmin(-1), d.min(-1)


@pytest.mark.parametrize("chunk_size", [None, 1, 7, 1000])
def test_vq_encode_matches_brute_force(chunk_size):
    rng = np.random.default_rng(4)
    codebook = rng.standard_normal((64, 8)).astype(np.float32)
    x = rng.standard_normal((3, 50, 8)).astype(np.float32)
    vq = VectorQuantizer(codebook)
    ids, dist = vq.encode(x, chunk_size=chunk_size, return_distances=True)
    want_ids, want_dist = brute_force(x, codebook)
    assert ids.shape == (3, 50) and ids.dtype == np.int64
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(dist, want_dist, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(vq.encode(x, chunk_size=chunk_size), ids)
    decoded = vq.decode(ids)
    assert decoded.shape == (3, 50, 8)
    np.testing.assert_array_equal(decoded, codebook[ids])
    # a code encodes to itself
    np.testing.assert_array_equal(vq.encode(codebook), np.arange(64))


def test_vq_far_from_the_origin_keeps_float32_precision():
    # codes around 100 (as in an image's pixel space), 0.1 apart: the expanded distance
    # ‖x‖² - 2 x·c + ‖c‖² about the origin loses their difference in float32
    rng = np.random.default_rng(7)
    codebook = (100 + 0.1 * rng.standard_normal((32, 64))).astype(np.float32)
    x = (100 + 0.1 * rng.standard_normal((200, 64))).astype(np.float32)
    ids, dist = VectorQuantizer(codebook).encode(x, return_distances=True)
    want_ids, want_dist = brute_force(x, codebook)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(dist, want_dist, rtol=1e-4)


def test_vq_ties_go_to_the_lowest_id():
    codebook = np.array([[5, 5], [1, 0], [0, 1], [1, 0], [-1, 0]], dtype=np.float32)
    vq = VectorQuantizer(codebook)
    # [1, 0] is codes 1 and 3; [0.5, 0.5] is as far from codes 1, 2 and 3
    assert vq.encode(np.array([[1.0, 0.0], [0.5, 0.5], [0, 0]])).tolist() == [1, 1, 1]


def test_vq_on_image_patches_round_trip():
    rng = np.random.default_rng(5)
    codebook = rng.integers(0, 256, (16, 4 * 4 * 3)).astype(np.float32)
    picks = rng.integers(0, 16, (2, 36))
    img = unpatchify(codebook[picks].astype(np.uint8), 4, (24, 24))  # images made of codes
    patches, _ = patchify(img, 4)
    vq = VectorQuantizer(codebook)
    ids = vq.encode(patches, chunk_size=10)  # uint8 input
    np.testing.assert_array_equal(ids, picks)
    np.testing.assert_array_equal(unpatchify(vq.decode(ids).astype(np.uint8), 4, (24, 24)), img)


def test_vq_memory_stays_bounded_by_the_chunk():
    rng = np.random.default_rng(6)
    codebook = rng.standard_normal((1024, 4)).astype(np.float32)
    x = rng.standard_normal((100_000, 4)).astype(np.float32)  # all distances: 400 MB
    vq = VectorQuantizer(codebook)
    tracemalloc.start()
    try:
        ids = vq.encode(x, chunk_size=1000)  # 4 MB of distances at a time
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000
    sample = rng.integers(0, 100_000, 500)
    np.testing.assert_array_equal(ids[sample], brute_force(x[sample], codebook)[0])


def test_vq_bad_input():
    vq = VectorQuantizer(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        vq.encode(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="chunk_size must be > 0"):
        vq.encode(np.zeros((5, 3)), chunk_size=0)
    with pytest.raises(IndexError, match="code id 4 is out of range for 4 codes"):
        vq.decode([0, 4])
    with pytest.raises(IndexError, match="code id -1"):
        vq.decode([-1])
    with pytest.raises(TypeError, match="integers"):
        vq.decode([0.5])
    with pytest.raises(ValueError, match=r"2-D \(K, D\)"):
        VectorQuantizer(np.zeros(3))
    assert vq.decode([]).shape == (0, 3)
    assert repr(vq) == "VectorQuantizer(4 codes, dim=3)"
