"""Images and videos as tokens: patches (ViT), tubelets (video), soft and hard tokens.

- :func:`patchify` / :func:`unpatchify`: images to a sequence of flattened ``p x p`` patches and
  back, exactly.
- :func:`tubelets` / :func:`untubelet`: videos to flattened ``t x p x p`` spacetime patches.
- :class:`PatchEmbedding`: soft tokens, a linear projection of patches (equal to a ViT's
  ``Conv2d(kernel_size=p, stride=p)``).
- :class:`VectorQuantizer`: hard tokens, the id of each vector's nearest code.

>>> import numpy as np
>>> images = np.zeros((2, 32, 48, 3), dtype=np.uint8)  # (N, H, W, C)
>>> patches, positions = patchify(images, 16)
>>> patches.shape, positions.tolist()
((2, 6, 768), [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]])
>>> unpatchify(patches, 16, (32, 48)).shape
(2, 32, 48, 3)

Everything is reshapes and transposes (one copy) or chunked matrix products: no Python loop
runs per patch or per vector.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["PatchEmbedding", "VectorQuantizer", "patchify", "tubelets", "unpatchify", "untubelet"]


def _to_numpy(obj: Any) -> npt.NDArray[Any]:
    if hasattr(obj, "detach") and hasattr(obj, "cpu") and hasattr(obj, "numpy"):
        t = obj.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        return np.asarray(t.numpy())
    return np.asarray(obj)


def _sizes(size: int | Sequence[int], k: int, what: str) -> tuple[int, ...]:
    """``size`` as ``k`` positive ints (one int repeats)."""
    if isinstance(size, (int, np.integer)):
        sizes = (operator.index(size),) * k
    else:
        sizes = tuple(operator.index(s) for s in size)
        if len(sizes) != k:
            raise ValueError(f"{what} must be an int or {k} ints, got {size!r}")
    if any(s <= 0 for s in sizes):
        raise ValueError(f"{what} must be > 0, got {size!r}")
    return sizes


def _check_numeric(arr: npt.NDArray[Any], what: str) -> None:
    if arr.dtype.kind not in "biuf" and arr.dtype.name != "bfloat16":
        raise TypeError(f"{what} must be a numeric (uint8 or float) array, got dtype {arr.dtype}")


def _blockify(
    x: npt.NDArray[Any], block: tuple[int, ...], channels_last: bool, pad: bool, what: str
) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64]]:
    """``x`` (N, *S, C) or (N, C, *S) with ``k = len(block)`` spatial axes S, cut into blocks:
    ``(N, prod(S / block), prod(block) * C)`` and the ``(L, k)`` block grid coordinates."""
    k = len(block)
    n = x.shape[0]
    if channels_last:
        spatial, c = x.shape[1 : 1 + k], x.shape[-1]
    else:
        c, spatial = x.shape[1], x.shape[2 : 2 + k]
    grid = tuple(-(-s // b) for s, b in zip(spatial, block, strict=True))
    if any(s % b for s, b in zip(spatial, block, strict=True)):
        if not pad:
            raise ValueError(
                f"{what} size {tuple(spatial)} is not divisible by the patch size {block}; "
                "pass pad=True to zero-pad it on the bottom/right (the end of each axis)"
            )
        widths = [(0, g * b - s) for g, b, s in zip(grid, block, spatial, strict=True)]
        widths = [(0, 0), *widths, (0, 0)] if channels_last else [(0, 0), (0, 0), *widths]
        x = np.pad(x, widths)
    split = [d for g, b in zip(grid, block, strict=True) for d in (g, b)]
    if channels_last:
        # (N, g1, b1, ..., gk, bk, C) -> (N, g1..gk, b1..bk, C)
        y = x.reshape(n, *split, c)
        perm = (0, *range(1, 2 * k, 2), *range(2, 2 * k + 1, 2), 2 * k + 1)
    else:
        # (N, C, g1, b1, ..., gk, bk) -> (N, g1..gk, C, b1..bk): torch's conv weight order
        y = x.reshape(n, c, *split)
        perm = (0, *range(2, 2 * k + 2, 2), 1, *range(3, 2 * k + 2, 2))
    blocks = y.transpose(perm).reshape(n, int(np.prod(grid)), int(np.prod(block)) * c)
    positions = np.indices(grid, dtype=np.int64).reshape(k, -1).T
    return blocks, np.ascontiguousarray(positions)


def _unblockify(
    tokens: npt.NDArray[Any],
    block: tuple[int, ...],
    size: tuple[int, ...],
    channels_last: bool,
    what: str,
) -> npt.NDArray[Any]:
    """The inverse of :func:`_blockify`, cropped back to ``size`` (the spatial shape)."""
    k = len(block)
    n, length, dim = tokens.shape
    grid = tuple(-(-s // b) for s, b in zip(size, block, strict=True))
    volume = int(np.prod(block))
    if length != int(np.prod(grid)):
        raise ValueError(
            f"{length} {what} do not tile {size} with blocks of {block}: expected {int(np.prod(grid))} "
            f"(a grid of {grid})"
        )
    if dim % volume:
        raise ValueError(f"{what} have {dim} values each, not a multiple of {block} = {volume}")
    c = dim // volume
    if channels_last:
        y = tokens.reshape(n, *grid, *block, c)
        # (N, g1..gk, b1..bk, C) -> (N, g1, b1, ..., gk, bk, C)
        perm = (0, *[a for i in range(k) for a in (1 + i, 1 + k + i)], 2 * k + 1)
        full = y.transpose(perm).reshape(n, *(g * b for g, b in zip(grid, block, strict=True)), c)
        return full[(slice(None), *(slice(0, s) for s in size))]
    y = tokens.reshape(n, *grid, c, *block)
    # (N, g1..gk, C, b1..bk) -> (N, C, g1, b1, ..., gk, bk)
    perm = (0, k + 1, *[a for i in range(k) for a in (1 + i, k + 2 + i)])
    full = y.transpose(perm).reshape(n, c, *(g * b for g, b in zip(grid, block, strict=True)))
    return full[(slice(None), slice(None), *(slice(0, s) for s in size))]


def patchify(
    images: Any,
    patch_size: int | tuple[int, int],
    *,
    channels_last: bool = True,
    pad: bool = False,
) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64]]:
    """Cut images into non-overlapping ``p x p`` patches: ``(patches, positions)``.

    ``images`` is ``(N, H, W, C)`` (``channels_last=True``) or ``(N, C, H, W)``, any numeric
    dtype (uint8 stays uint8), numpy or torch; a single image ``(H, W, C)`` / ``(C, H, W)`` is a
    batch of one and gives 2-D patches ``(num_patches, patch_dim)``. ``patch_size`` is ``p`` or
    ``(ph, pw)``.

    - ``patches``: ``(N, num_patches, ph * pw * C)``, patches in row-major order (left to right,
      then top to bottom). Within a patch: ``(row, col, channel)`` for channels-last input, and
      ``(channel, row, col)`` for channels-first, which is how ``Conv2d.weight`` (``D, C, p, p``)
      flattens, so :meth:`PatchEmbedding.from_conv2d_weight` equals the convolution.
    - ``positions``: ``(num_patches, 2)`` ``int64``, the ``(row, col)`` of each patch in the
      grid.

    A size not divisible by the patch size is a ``ValueError``, or with ``pad=True`` is padded
    with zeros at the bottom and right (:func:`unpatchify` crops it back).

    >>> img = np.arange(16).reshape(4, 4, 1)
    >>> patchify(img, 2)[0].tolist()
    [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    """
    x = _to_numpy(images)
    _check_numeric(x, "images")
    if x.ndim not in (3, 4):
        layout = "(N, H, W, C)" if channels_last else "(N, C, H, W)"
        raise ValueError(f"images must be {layout} or a single image without N, got shape {x.shape}")
    single = x.ndim == 3
    if single:
        x = x[None]
    block = _sizes(patch_size, 2, "patch_size")
    patches, positions = _blockify(x, block, channels_last, pad, "image")
    return (patches[0] if single else patches), positions


def unpatchify(
    patches: Any,
    patch_size: int | tuple[int, int],
    image_size: tuple[int, int],
    *,
    channels_last: bool = True,
) -> npt.NDArray[Any]:
    """The inverse of :func:`patchify`: ``(N, num_patches, patch_dim)`` patches (or one image's
    ``(num_patches, patch_dim)``) back to ``(N, H, W, C)`` (or ``(N, C, H, W)``; 3-D for 2-D
    patches). ``image_size`` is the original ``(H, W)``: padding added by ``pad=True`` is
    cropped; the channel count is ``patch_dim / (ph * pw)``.

    >>> img = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    >>> bool((unpatchify(patchify(img, 2, pad=True)[0], 2, (5, 7)) == img).all())
    True
    """
    x = _to_numpy(patches)
    _check_numeric(x, "patches")
    if x.ndim not in (2, 3):
        raise ValueError(
            f"patches must be (N, num_patches, patch_dim) or (num_patches, patch_dim), got {x.shape}"
        )
    block = _sizes(patch_size, 2, "patch_size")
    size = _sizes(image_size, 2, "image_size")
    single = x.ndim == 2
    out = _unblockify(x[None] if single else x, block, size, channels_last, "patches")
    return out[0] if single else out


def tubelets(
    video: Any,
    t: int,
    p: int | tuple[int, int],
    *,
    channels_last: bool = True,
    pad: bool = False,
) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64]]:
    """Cut videos into ``t x p x p`` spacetime patches (ViViT / VideoMAE tubelets).

    ``video`` is ``(N, T, H, W, C)`` (or ``(N, C, T, H, W)`` with ``channels_last=False``, the
    ``Conv3d`` layout); a single video without ``N`` gives 2-D tokens. Returns ``(tokens,
    positions)``: tokens ``(N, T/t · H/p · W/p, t·p·p·C)`` ordered by time, then row, then
    column; within a tubelet ``(frame, row, col, channel)`` (channels-first: ``(channel, frame,
    row, col)``, like ``Conv3d.weight``); positions ``(num_tokens, 3)`` ``int64`` ``(t, row,
    col)``. Sizes not divisible: ``ValueError``, or zero padding at the end with ``pad=True``.

    >>> v = np.zeros((1, 4, 32, 32, 3), dtype=np.uint8)
    >>> tokens, pos = tubelets(v, 2, 16)
    >>> tokens.shape, pos[:3].tolist()
    ((1, 8, 1536), [[0, 0, 0], [0, 0, 1], [0, 1, 0]])
    """
    x = _to_numpy(video)
    _check_numeric(x, "video")
    if x.ndim not in (4, 5):
        layout = "(N, T, H, W, C)" if channels_last else "(N, C, T, H, W)"
        raise ValueError(f"video must be {layout} or a single video without N, got shape {x.shape}")
    single = x.ndim == 4
    if single:
        x = x[None]
    ph, pw = _sizes(p, 2, "p")
    (tt,) = _sizes(t, 1, "t")
    tokens, positions = _blockify(x, (tt, ph, pw), channels_last, pad, "video")
    return (tokens[0] if single else tokens), positions


def untubelet(
    tokens: Any,
    t: int,
    p: int | tuple[int, int],
    video_shape: tuple[int, int, int],
    *,
    channels_last: bool = True,
) -> npt.NDArray[Any]:
    """The inverse of :func:`tubelets`: ``video_shape`` is the original ``(T, H, W)`` (padding is
    cropped); gives ``(N, T, H, W, C)`` (``(N, C, T, H, W)`` channels-first; no ``N`` for 2-D
    tokens)."""
    x = _to_numpy(tokens)
    _check_numeric(x, "tokens")
    if x.ndim not in (2, 3):
        raise ValueError(
            f"tokens must be (N, num_tokens, token_dim) or (num_tokens, token_dim), got {x.shape}"
        )
    ph, pw = _sizes(p, 2, "p")
    (tt,) = _sizes(t, 1, "t")
    size = _sizes(video_shape, 3, "video_shape (T, H, W)")
    single = x.ndim == 2
    out = _unblockify(x[None] if single else x, (tt, ph, pw), size, channels_last, "tokens")
    return out[0] if single else out


class PatchEmbedding:
    """Soft tokens: patches projected linearly, ``patches @ weight.T + bias``.

    ``weight`` is ``(dim, patch_dim)`` — torch ``nn.Linear``'s ``(out, in)`` layout — and ``bias``
    ``(dim,)`` or ``None``. Inputs of any numeric dtype are converted to float32 (uint8 pixels
    are not rescaled: normalize first if the model expects it); the result is float32
    ``(..., dim)``.

    :meth:`from_conv2d_weight` takes a ViT's patch convolution (``Conv2d(C, dim, kernel_size=p,
    stride=p)``) and remembers ``patch_size`` and the layout, so :meth:`embed_images` gives the
    same numbers as the convolution, flattened to ``(N, num_patches, dim)``.

    >>> pe = PatchEmbedding(np.ones((2, 4), dtype=np.float32), bias=[0.0, 1.0])
    >>> pe(np.arange(4)).tolist()
    [6.0, 7.0]
    """

    __slots__ = ("bias", "channels_last", "patch_size", "weight")

    def __init__(
        self,
        weight: Any,
        bias: Any = None,
        *,
        patch_size: int | tuple[int, int] | None = None,
        channels_last: bool = True,
    ) -> None:
        w = _to_numpy(weight)
        if w.ndim != 2 or w.dtype.kind != "f":
            raise ValueError(f"weight must be a 2-D float array (dim, patch_dim), got {w.shape} {w.dtype}")
        self.weight: npt.NDArray[np.float32] = np.ascontiguousarray(w, dtype=np.float32)
        self.bias: npt.NDArray[np.float32] | None = None
        if bias is not None:
            b = np.asarray(_to_numpy(bias), dtype=np.float32)
            if b.shape != (w.shape[0],):
                raise ValueError(f"bias must have shape ({w.shape[0]},), got {b.shape}")
            self.bias = b
        self.patch_size = None if patch_size is None else _sizes(patch_size, 2, "patch_size")
        self.channels_last = channels_last
        if self.patch_size is not None and w.shape[1] % (self.patch_size[0] * self.patch_size[1]):
            raise ValueError(f"patch_dim {w.shape[1]} is not a multiple of patch_size {self.patch_size}")

    @classmethod
    def from_conv2d_weight(
        cls, weight: Any, bias: Any = None, *, channels_last: bool = False
    ) -> PatchEmbedding:
        """From a ``Conv2d`` weight ``(dim, C, ph, pw)`` (and bias ``(dim,)``), for patches made
        with ``channels_last`` (default ``False``: the conv's own ``(C, p, p)`` order; ``True``
        reorders the weight to ``(p, p, C)``)."""
        w = _to_numpy(weight)
        if w.ndim != 4:
            raise ValueError(f"a Conv2d weight is 4-D (dim, C, ph, pw), got shape {w.shape}")
        dim, _, ph, pw = w.shape
        if channels_last:
            w = w.transpose(0, 2, 3, 1)
        return cls(w.reshape(dim, -1), bias, patch_size=(ph, pw), channels_last=channels_last)

    @property
    def dim(self) -> int:
        """The output (model) dimension."""
        return int(self.weight.shape[0])

    @property
    def patch_dim(self) -> int:
        """The length of a flattened patch."""
        return int(self.weight.shape[1])

    def __repr__(self) -> str:
        return f"PatchEmbedding(patch_dim={self.patch_dim}, dim={self.dim}, patch_size={self.patch_size})"

    def __call__(self, patches: Any) -> npt.NDArray[np.float32]:
        """``(..., patch_dim)`` patches to ``(..., dim)`` float32 tokens."""
        x = _to_numpy(patches)
        _check_numeric(x, "patches")
        if x.ndim == 0 or x.shape[-1] != self.patch_dim:
            raise ValueError(f"patches must have shape (..., {self.patch_dim}), got {x.shape}")
        out = x.astype(np.float32, copy=False) @ self.weight.T
        if self.bias is not None:
            out += self.bias
        return out

    def embed_images(
        self, images: Any, *, pad: bool = False
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """:func:`patchify` with this embedding's ``patch_size`` and layout, then project:
        ``(tokens (N, num_patches, dim), positions (num_patches, 2))``."""
        if self.patch_size is None:
            raise ValueError("this PatchEmbedding has no patch_size: pass one to the constructor")
        patches, positions = patchify(images, self.patch_size, channels_last=self.channels_last, pad=pad)
        return self(patches), positions


class VectorQuantizer:
    """Hard tokens: each vector's nearest code in a ``(K, D)`` codebook (VQ-VAE / VQGAN).

    :meth:`encode` maps ``(..., D)`` vectors to ``int64`` ids ``(...)`` by squared L2 distance
    ``‖x‖² - 2 x·c + ‖c‖²``, computed ``chunk_size`` vectors at a time so memory stays at
    ``chunk_size x K`` floats however many vectors there are. Equal distances: the lowest id
    wins. :meth:`decode` gives the codes back.

    >>> vq = VectorQuantizer(np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]))
    >>> ids = vq.encode(np.array([[0.9, 0.8], [0.1, -0.2]]))
    >>> ids.tolist(), vq.decode(ids).tolist()
    ([1, 0], [[1.0, 1.0], [0.0, 0.0]])
    """

    __slots__ = ("_center", "_centered", "_sqnorm", "codebook")

    def __init__(self, codebook: Any) -> None:
        cb = _to_numpy(codebook)
        if cb.ndim != 2 or cb.shape[0] == 0:
            raise ValueError(f"codebook must be 2-D (K, D) with K >= 1, got shape {cb.shape}")
        if cb.dtype.kind not in "fiu":
            raise TypeError(f"codebook must be a float array, got dtype {cb.dtype}")
        dtype = np.float64 if cb.dtype == np.float64 else np.float32
        self.codebook: npt.NDArray[Any] = np.ascontiguousarray(cb, dtype=dtype)
        # Distances are taken about the codebook's mean: far from the origin, ‖x‖² and 2 x·c
        # are large and nearly cancel, and float32 would lose the difference between codes.
        # Rounded to an integer, so that integer data stays exact (and equal distances equal).
        self._center = np.round(self.codebook.mean(axis=0))
        self._centered = self.codebook - self._center
        self._sqnorm = np.einsum("kd,kd->k", self._centered, self._centered)

    @property
    def num_codes(self) -> int:
        return int(self.codebook.shape[0])

    @property
    def dim(self) -> int:
        return int(self.codebook.shape[1])

    def __repr__(self) -> str:
        return f"VectorQuantizer({self.num_codes} codes, dim={self.dim})"

    def encode(self, x: Any, *, chunk_size: int | None = None, return_distances: bool = False) -> Any:
        """The id of the nearest code of each vector of ``x`` (``(..., D)``, any numeric dtype):
        ``int64`` of shape ``x.shape[:-1]``; with ``return_distances=True`` also the squared
        distances (``≥ 0``). ``chunk_size``: vectors per step (default: about 64 MB of
        distances, ``2**24 // K``)."""
        arr = _to_numpy(x)
        _check_numeric(arr, "x")
        if arr.ndim == 0 or arr.shape[-1] != self.dim:
            raise ValueError(f"x must have shape (..., {self.dim}), got {arr.shape}")
        lead = arr.shape[:-1]
        flat = arr.reshape(-1, self.dim)
        n = flat.shape[0]
        step = max(1, (1 << 24) // self.num_codes) if chunk_size is None else operator.index(chunk_size)
        if step <= 0:
            raise ValueError(f"chunk_size must be > 0, got {step}")
        ids = np.empty(n, dtype=np.int64)
        dist = np.empty(n, dtype=self.codebook.dtype) if return_distances else None
        cbt = self._centered.T
        for a in range(0, n, step):
            xs = flat[a : a + step].astype(self.codebook.dtype, copy=False)
            d = (xs - self._center) @ cbt  # (chunk, K)
            d *= -2
            d += self._sqnorm  # ‖c‖² - 2 x·c; ‖x‖² is the same for every code
            best = np.argmin(d, axis=1)  # the first minimum: the lowest id
            ids[a : a + len(xs)] = best
            if dist is not None:
                # from the differences themselves: exact to the dtype's precision
                diff = xs - self.codebook[best]
                dist[a : a + len(xs)] = np.einsum("nd,nd->n", diff, diff)
        if dist is not None:
            return ids.reshape(lead), dist.reshape(lead)
        return ids.reshape(lead)

    def decode(self, ids: Any) -> npt.NDArray[Any]:
        """The code vectors of ``ids`` (any shape): ``ids.shape + (D,)``. An id out of range is an
        ``IndexError`` naming it."""
        arr = _to_numpy(ids)
        if arr.dtype.kind not in "iu":
            if arr.size == 0:
                arr = arr.astype(np.int64)
            else:
                raise TypeError(f"code ids must be integers, got dtype {arr.dtype}")
        if arr.size:
            lo, hi = arr.min(), arr.max()
            if lo < 0 or hi >= self.num_codes:
                bad = int(lo if lo < 0 else hi)
                raise IndexError(f"code id {bad} is out of range for {self.num_codes} codes")
        return np.take(self.codebook, arr, axis=0)
