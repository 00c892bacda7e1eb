"""imresize against a plain per-pixel reference of MATLAB's bicubic imresize.

The reference below is written from MATLAB's documented algorithm, not from resize.py: for every
output pixel it walks over the input pixels in reach of the (possibly widened) Keys kernel,
mirrors out-of-range indices, and normalises the weights; rows and columns separably, in float64.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dualsr.data.resize import imresize


def keys_cubic(x: float) -> float:
    """Keys (1981) cubic convolution kernel with a = -0.5."""
    a = -0.5
    x = abs(x)
    if x <= 1:
        return (a + 2) * x**3 - (a + 3) * x**2 + 1
    if x < 2:
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return 0.0


def mirror(index: int, length: int) -> int:
    """MATLAB 'symmetric' padding: ... 2 1 0 | 0 1 2 ... n-1 | n-1 n-2 ... (0-based)."""
    while index < 0 or index >= length:
        index = -index - 1 if index < 0 else 2 * length - 1 - index
    return index


def reference_weights(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """Dense (out_len, in_len) weights of MATLAB's 1-D bicubic resize, one output pixel at a time."""
    antialias = scale < 1
    support = 2.0 / scale if antialias else 2.0  # half-width of the kernel in input pixels
    weights = np.zeros((out_len, in_len))
    for out_index in range(out_len):
        centre = (out_index + 0.5) / scale - 0.5  # 0-based input coordinate of this output pixel
        taps = []
        for k in range(math.floor(centre - support) - 1, math.ceil(centre + support) + 2):
            distance = centre - k
            w = scale * keys_cubic(scale * distance) if antialias else keys_cubic(distance)
            taps.append((k, w))
        total = sum(w for _, w in taps)
        for k, w in taps:
            weights[out_index, mirror(k, in_len)] += w / total
    return weights


def reference_imresize(image: np.ndarray, out_h: int, out_w: int, scale_h: float, scale_w: float) -> np.ndarray:
    """(H, W) float64 -> (out_h, out_w), looping over output pixels."""
    wh = reference_weights(image.shape[0], out_h, scale_h)
    ww = reference_weights(image.shape[1], out_w, scale_w)
    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            acc = 0.0
            for p in np.nonzero(wh[i])[0]:
                for q in np.nonzero(ww[j])[0]:
                    acc += wh[i, p] * ww[j, q] * image[p, q]
            out[i, j] = acc
    return out


def _ours(image: np.ndarray, **kwargs) -> np.ndarray:
    return imresize(torch.from_numpy(image), **kwargs).numpy()


@pytest.mark.parametrize("shape,scale", [
    ((9, 11), 2),          # integer up
    ((12, 10), 3),         # integer up, x3
    ((16, 20), 0.25),      # integer down (antialiased)
    ((13, 17), 0.5),       # odd sizes down
    ((10, 9), 1.7),        # non-integer up
    ((19, 14), 0.37),      # non-integer down
    ((15, 12), 1 / 3),     # 1/3: in * scale must land on an integer
])
def test_matches_reference_for_scale_factors(shape, scale):
    rng = np.random.default_rng(abs(hash((shape, scale))) % 2**32)
    image = rng.uniform(0, 255, size=shape)
    ours = _ours(image, scale=scale)
    out_h, out_w = math.ceil(shape[0] * scale - 1e-9), math.ceil(shape[1] * scale - 1e-9)
    assert ours.shape == (out_h, out_w)
    expected = reference_imresize(image, out_h, out_w, scale, scale)
    np.testing.assert_allclose(ours, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape,size", [
    ((12, 5), (7, 15)),    # down in height, up in width
    ((8, 8), (8, 3)),      # identity height, down width
    ((6, 10), (11, 4)),    # non-integer ratios both ways
])
def test_matches_reference_for_output_sizes_per_dimension(shape, size):
    image = np.random.default_rng(1).uniform(0, 255, size=shape)
    ours = _ours(image, size=size)
    expected = reference_imresize(image, size[0], size[1], size[0] / shape[0], size[1] / shape[1])
    np.testing.assert_allclose(ours, expected, atol=1e-6, rtol=0)


def test_matches_reference_for_different_scales_per_dimension():
    image = np.random.default_rng(2).uniform(0, 255, size=(10, 8))
    ours = _ours(image, scale=(0.5, 2.5))
    expected = reference_imresize(image, 5, 20, 0.5, 2.5)
    np.testing.assert_allclose(ours, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape,scale", [((3, 3), 0.25), ((3, 3), 4), ((2, 3), 0.5), ((1, 4), 3), ((3, 3), 0.1)])
def test_mirror_borders_on_tiny_images(shape, scale):
    # Kernels wider than the image reach through several mirror reflections.
    image = np.random.default_rng(3).uniform(0, 255, size=shape)
    ours = _ours(image, scale=scale)
    out_h, out_w = math.ceil(shape[0] * scale - 1e-9), math.ceil(shape[1] * scale - 1e-9)
    expected = reference_imresize(image, out_h, out_w, scale, scale)
    np.testing.assert_allclose(ours, expected, atol=1e-6, rtol=0)


def test_constant_image_stays_constant():
    image = torch.full((1, 3, 7, 9), 123.0, dtype=torch.float64)
    for scale in (0.25, 0.6, 1.5, 4):
        torch.testing.assert_close(imresize(image, scale), torch.full_like(imresize(image, scale), 123.0))


@pytest.mark.parametrize("in_size,scale,expected", [
    ((7, 10), 0.5, (4, 5)),
    ((10, 10), 1 / 3, (4, 4)),
    ((12, 9), 1 / 3, (4, 3)),
    ((9, 5), 1.5, (14, 8)),
    ((5, 7), 4, (20, 28)),
    ((3, 3), 0.25, (1, 1)),
])
def test_output_size_is_ceil_of_input_times_scale(in_size, scale, expected):
    out = imresize(torch.zeros(1, 1, *in_size), scale)
    assert tuple(out.shape[-2:]) == expected


def test_batched_equals_per_image():
    batch = torch.rand(3, 3, 11, 13, dtype=torch.float64) * 255
    for scale in (0.25, 1.5):
        together = imresize(batch, scale)
        for n in range(3):
            for c in range(3):
                torch.testing.assert_close(together[n, c], imresize(batch[n, c], scale), rtol=0, atol=1e-10)


def test_float32_matches_float64_closely():
    image = torch.rand(1, 3, 20, 24, dtype=torch.float64) * 255
    out64 = imresize(image, 0.25)
    out32 = imresize(image.float(), 0.25)
    assert out32.dtype == torch.float32
    assert (out32.double() - out64).abs().max() < 1e-3


@pytest.mark.parametrize("scale", [0.5, 1.5])
def test_gradients_flow(scale):
    image = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: imresize(x, scale), (image,))
    imresize(image, scale).sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_round_uint8_rounds_half_away_from_zero_and_clamps():
    # At scale 1 the bicubic kernel samples 1 at distance 0 and 0 at +-1, +-2: the identity.
    values = torch.tensor([[-3.2, -0.5, 0.5, 1.5, 2.5, 2.4999, 254.5, 300.0]], dtype=torch.float64)
    rounded = imresize(values, 1, round_uint8=True)
    assert rounded.tolist() == [[0.0, 0.0, 1.0, 2.0, 3.0, 2.0, 255.0, 255.0]]
    assert rounded.dtype == torch.float64


def test_rejects_integer_tensors():
    with pytest.raises(TypeError):
        imresize(torch.zeros(4, 4, dtype=torch.uint8), 2)
