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


# --- The banded (block) implementation: large and odd sizes, every block size, edges, gradients ---

from dualsr.data import resize as resize_module  # noqa: E402


def reference_separable(image: np.ndarray, out_h: int, out_w: int, scale_h: float, scale_w: float) -> np.ndarray:
    """The per-pixel reference's weights as dense matrices, applied as two products (fast enough
    for images too large for the per-pixel loop; same weights, same mirroring)."""
    wh = reference_weights(image.shape[-2], out_h, scale_h)
    ww = reference_weights(image.shape[-1], out_w, scale_w)
    return wh @ image @ ww.T


@pytest.fixture
def block_rows(monkeypatch):
    """Force the banded plan with `rows` output pixels per block (0: the strided plan wherever the
    interior taps are equally spaced, banded with 4 rows elsewhere) instead of the cost model's choice."""
    def force(rows: int) -> None:
        def choose(in_len, out_len, scale, antialias, *_, grad):
            if rows == 0:  # (as the cost model, never strided under autograd)
                strided = not grad and resize_module._find_stride(in_len, out_len, scale, antialias)
                return 0 if strided else min(4, out_len)
            return min(rows, out_len)
        monkeypatch.setattr(resize_module, "_choose_method", choose)
    return force


@pytest.mark.parametrize("rows", [0, 1, 2, 3, 5, 8, 13, 64, 10**6])
@pytest.mark.parametrize("shape,scale", [
    ((37, 29), 0.25),      # x1/4, odd sizes: the last block is short
    ((23, 31), 4),         # x4 up
    ((41, 26), 0.37),      # non-integer down
    ((17, 19), 1.7),       # non-integer up
    ((5, 4), 0.25),        # kernel (18 taps) wider than the image: windows are the whole image
])
def test_every_block_size_matches_reference(block_rows, rows, shape, scale):
    block_rows(rows)
    image = np.random.default_rng(rows).uniform(0, 255, size=shape)
    ours = _ours(image, scale=scale)
    out_h, out_w = math.ceil(shape[0] * scale - 1e-9), math.ceil(shape[1] * scale - 1e-9)
    expected = reference_imresize(image, out_h, out_w, scale, scale)
    np.testing.assert_allclose(ours, expected, atol=1e-6, rtol=0)


def _assert_matches_reference(image: np.ndarray, scale: float) -> None:
    """imresize of a (C, H, W) image equals the per-pixel reference, channel by channel, to 1e-6."""
    ours = _ours(image, scale=scale)
    out_h, out_w = (math.ceil(side * scale - 1e-9) for side in image.shape[-2:])
    for c in range(image.shape[0]):
        expected = reference_separable(image[c], out_h, out_w, scale, scale)
        np.testing.assert_allclose(ours[c], expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape,scale", [
    ((517, 389), 0.25),     # large, odd, non-square x1/4
    ((96, 131), 4),         # x4 up, non-square
    ((1003, 61), 1 / 3),    # tall and thin
    ((333, 250), 0.53),     # non-integer down
])
def test_large_odd_sizes_match_reference(shape, scale):
    _assert_matches_reference(np.random.default_rng(7).uniform(0, 255, size=(2, *shape)), scale)


def test_large_image_uses_few_taps_per_output():
    # 2048 -> 512 (x1/4, 18 taps): every banded block reads a window of a few times the taps, never
    # the whole 2048-pixel input as a dense weight matrix would; the strided plan reads exactly the
    # 18 taps of each output (one phase: starts 4 apart) plus two small border blocks.
    for rows in (1, 4, 8, 16):
        plan = resize_module._plan_cpu(2048, 512, 0.25, True, rows)
        assert plan.window <= 18 + 4 * (rows - 1) + 1
        assert plan.weights.shape == (-(-512 // rows), rows, plan.window)
    strided = resize_module._plan_cpu(2048, 512, 0.25, True, 0)
    assert (strided.stride, strided.taps) == (4, 18) and strided.weights.shape[1:] == (1, 18)
    assert strided.stop - strided.first >= 500 and all(m.shape[1] < 40 for *_, m in strided.borders)
    assert resize_module._choose_method(2048, 512, 0.25, True, 3, 2048, "cpu", 8, grad=False) == 0
    banded = resize_module._choose_method(2048, 512, 0.25, True, 3, 2048, "cpu", 8, grad=True)  # autograd
    assert 0 < banded < 512 and resize_module._plan_cpu(2048, 512, 0.25, True, banded).window < 100


@pytest.mark.parametrize("in_len,out_len,scale,stride", [(64, 16, 0.25, 4), (60, 30, 0.5, 2), (45, 15, 1 / 3, 3),
                                                         (12, 12, 1, 1), (40, 10, 0.25, 4)])
def test_strided_plan_for_integer_downscaling(in_len, out_len, scale, stride):
    first, stop, found = resize_module._find_stride(in_len, out_len, scale, True)
    assert found == stride and 0 <= first < stop <= out_len


@pytest.mark.parametrize("in_len,out_len,scale", [(30, 120, 4), (20, 60, 3), (100, 37, 0.37), (90, 60, 2 / 3),
                                                  (20, 5, 0.25), (5, 2, 0.25), (1, 1, 0.25)])
def test_no_strided_plan_when_taps_are_not_equally_spaced(in_len, out_len, scale):
    assert resize_module._find_stride(in_len, out_len, scale, True) is None


@pytest.mark.parametrize("shape,scale", [((64, 48), 0.25), ((91, 77), 0.25), ((45, 60), 1 / 3), ((40, 36), 0.5),
                                         ((12, 12), 0.25), ((30, 41), 4), ((13, 11), 1)])
def test_strided_plan_matches_reference(block_rows, shape, scale):
    block_rows(0)
    _assert_matches_reference(np.random.default_rng(8).uniform(0, 255, size=(3, *shape)), scale)


@pytest.mark.parametrize("shape,scale", [
    ((1, 1), 4), ((1, 1), 0.25), ((1, 7), 4), ((7, 1), 0.25), ((1, 9), 0.25), ((2, 1), 3), ((1, 5), 1.7),
])
def test_one_pixel_edges(shape, scale):
    image = np.random.default_rng(4).uniform(0, 255, size=shape)
    ours = _ours(image, scale=scale)
    out_h, out_w = math.ceil(shape[0] * scale - 1e-9), math.ceil(shape[1] * scale - 1e-9)
    assert ours.shape == (out_h, out_w)
    expected = reference_imresize(image, out_h, out_w, scale, scale)
    np.testing.assert_allclose(ours, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("rows", [0, 3])
def test_width_first_when_its_scale_is_smaller(block_rows, rows):
    # scale_w < scale_h: MATLAB resizes the width first (strided x1/4 on the transposed view,
    # then banded x2, or banded both ways); both passes go through several blocks.
    block_rows(rows)
    image = np.random.default_rng(5).uniform(0, 255, size=(21, 80))
    ours = _ours(image, size=(42, 20))
    expected = reference_imresize(image, 42, 20, 2.0, 0.25)
    np.testing.assert_allclose(ours, expected, atol=1e-6, rtol=0)


def test_without_antialias_downscaling_uses_the_plain_kernel(block_rows):
    block_rows(4)
    image = np.random.default_rng(6).uniform(0, 255, size=(30, 26))
    ours = _ours(image, scale=0.25, antialias=False)
    # Without antialiasing the kernel is not widened: weights are cubic(distance) over 6 taps.
    dense_h = resize_module.resize_matrix(30, 8, 0.25, antialias=False).numpy()
    dense_w = resize_module.resize_matrix(26, 7, 0.25, antialias=False).numpy()
    np.testing.assert_allclose(ours, dense_h @ image @ dense_w.T, atol=1e-9, rtol=0)
    assert np.abs(dense_h).sum(axis=1).max() < 2 and (dense_h != 0).sum(axis=1).max() <= 6


def test_resize_matrix_is_the_reference_weights():
    for in_len, out_len, scale in ((19, 5, 0.25), (7, 28, 4), (3, 1, 0.25), (10, 4, 0.37)):
        np.testing.assert_allclose(resize_module.resize_matrix(in_len, out_len, scale).numpy(),
                                   reference_weights(in_len, out_len, scale), atol=1e-12, rtol=0)


@pytest.mark.parametrize("rows", [0, 5])
def test_leading_dimensions_and_2d_input(block_rows, rows):
    block_rows(rows)
    batch = torch.rand(2, 3, 1, 29, 22, dtype=torch.float64) * 255
    out = imresize(batch, 0.25)
    assert out.shape == (2, 3, 1, 8, 6) and out.is_contiguous()
    for index in np.ndindex(2, 3, 1):
        torch.testing.assert_close(out[index], imresize(batch[index], 0.25), rtol=0, atol=1e-10)


def test_empty_batch():
    assert imresize(torch.zeros(0, 3, 16, 12), 0.25).shape == (0, 3, 4, 3)
    assert imresize(torch.zeros(2, 0, 5, 6), 4).shape == (2, 0, 20, 24)


def test_non_contiguous_input():
    image = torch.rand(3, 40, 36, dtype=torch.float64) * 255
    view = image.transpose(-1, -2)  # (3, 36, 40), not contiguous
    torch.testing.assert_close(imresize(view, 0.25), imresize(view.contiguous(), 0.25), rtol=0, atol=1e-10)


def test_float32_stays_float32_and_close_on_large_images():
    image = torch.rand(1, 3, 300, 260, dtype=torch.float64) * 255
    out64, out32 = imresize(image, 0.25), imresize(image.float(), 0.25)
    assert out32.dtype == torch.float32 and out64.dtype == torch.float64
    assert (out32.double() - out64).abs().max() < 1e-3
    rounded = imresize(image.float(), 0.25, round_uint8=True)
    assert rounded.dtype == torch.float32 and rounded.min() >= 0 and rounded.max() <= 255


@pytest.mark.parametrize("rows", [2, 10**6])
@pytest.mark.parametrize("shape,scale", [((11, 9), 0.25), ((4, 5), 4), ((9, 7), 0.6), ((1, 6), 2.5)])
def test_gradcheck_banded_and_dense(block_rows, rows, shape, scale):
    block_rows(rows)
    image = torch.rand(2, *shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: imresize(x, scale), (image,))


def test_gradient_is_the_transposed_resize(block_rows):
    # d/dx <imresize(x), g> = Mh^T g Mw for the dense 1-D matrices; the banded autograd path must agree.
    block_rows(0)  # the strided plan without autograd, banded (the model's choice) with it
    image = torch.rand(2, 37, 30, dtype=torch.float64, requires_grad=True)
    out = imresize(image, 0.25)
    g = torch.rand_like(out)
    (grad,) = torch.autograd.grad((out * g).sum(), image)
    mh, mw = resize_module.resize_matrix(37, 10, 0.25), resize_module.resize_matrix(30, 8, 0.25)
    torch.testing.assert_close(grad, mh.t() @ g @ mw, rtol=0, atol=1e-10)
    with torch.no_grad():
        torch.testing.assert_close(imresize(image, 0.25), out.detach(), rtol=0, atol=1e-12)
