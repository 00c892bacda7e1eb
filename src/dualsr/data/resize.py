"""MATLAB-compatible bicubic `imresize` in torch.

Every published SR figure is computed on LR images made by MATLAB's `imresize(img, s, 'bicubic')`,
whose antialiasing when downscaling makes it differ from `torch.nn.functional.interpolate` by
about 0.2-0.5 dB. This reimplements it exactly: Keys cubic (a = -0.5), kernel widened by 1/scale
when downscaling, symmetric (mirror) borders, output size ceil(in * scale), and MATLAB's order of
dimensions (the one with the smaller scale first).

Each 1-D resize reads, for every output pixel, only its P = ceil(kernel width) + 2 taps (MATLAB's
count, 18 for x1/4; the mirrored border is folded into the indices), so its cost is proportional
to the taps, not to the input length as a dense (out_len x in_len) weight matrix would be. Two
plans, both BLAS products, batched over any leading dimensions, on any device, in the input's
dtype; a small cost model picks one per pass:

* strided (integer downscaling, x1/s: the taps of consecutive outputs start s pixels apart): all
  interior outputs are one batched (1 x P) @ (P x columns) product over an `unfold` view of the
  input (no copy), exactly P multiply-adds per value; the few border outputs are small dense
  blocks with the mirrored taps folded in;
* banded (everything else, and always under autograd): the output is cut into blocks of rows,
  each one small dense matrix product with the contiguous input window it reads.

Tap indices and weights are computed once per (length, scale) in float64 and cached.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import torch

_KERNEL_WIDTH = 4.0  # support of the Keys cubic kernel


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys cubic convolution kernel with a = -0.5, as in MATLAB's imresize."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


@lru_cache(maxsize=128)
def _taps_cpu(in_len: int, out_len: int, scale: float, antialias: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """For each output pixel its P input indices (0-based, mirrored into the image) and normalised
    weights, both (out_len, P), in float64: MATLAB's contributions()."""
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    # Output pixel x (1-based) maps to input coordinate u, pixel centres aligned.
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    width = _KERNEL_WIDTH / scale if (scale < 1 and antialias) else _KERNEL_WIDTH
    left = torch.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]  # 1-based
    distance = u[:, None] - indices
    if scale < 1 and antialias:
        weights = scale * cubic(scale * distance)
    else:
        weights = cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Symmetric padding: index sequence 1..n, n..1 repeated (MATLAB's 'symmetric').
    zero_based = (indices - 1).long()
    period = 2 * in_len
    mod = torch.remainder(zero_based, period)
    mirrored = torch.where(mod < in_len, mod, period - 1 - mod)
    return mirrored, weights


def resize_matrix(
    in_len: int, out_len: int, scale: float, antialias: bool = True,
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """The dense (out_len, in_len) matrix M such that M @ signal is MATLAB's 1-D bicubic resize
    (`imresize` itself never builds it; kept for inspection and tests)."""
    mirrored, weights = _taps_cpu(in_len, out_len, float(scale), antialias)
    matrix = torch.zeros(out_len, in_len, dtype=torch.float64)
    matrix.scatter_add_(1, mirrored, weights)
    return matrix.to(device=device, dtype=dtype)


def _folded_block(mirrored: torch.Tensor, weights: torch.Tensor) -> tuple[int, torch.Tensor]:
    """(start, matrix) with matrix @ input[start : start + matrix.shape[1]] = these outputs: the
    taps (mirrored indices, weights) of consecutive outputs folded into one dense block over the
    range of input pixels they read."""
    low, high = int(mirrored.min()), int(mirrored.max())
    matrix = torch.zeros(mirrored.shape[0], high - low + 1, dtype=torch.float64)
    matrix.scatter_add_(1, mirrored - low, weights)
    return low, matrix


class _Banded:
    """One 1-D resize cut into blocks of `rows` output pixels: block k computes outputs
    [k * rows, (k + 1) * rows) as weights[k] @ input[starts[k] : starts[k] + window]."""

    def __init__(self, in_len: int, out_len: int, scale: float, antialias: bool, rows: int):
        mirrored, weights = _taps_cpu(in_len, out_len, scale, antialias)
        taps = mirrored.shape[1]
        blocks = -(-out_len // rows)
        pad = blocks * rows - out_len
        # Padded rows (past the last output) repeat the last row's indices with zero weight.
        index = torch.cat([mirrored, mirrored[-1:].expand(pad, taps)]).view(blocks, rows * taps)
        weight = torch.cat([weights, weights.new_zeros(pad, taps)]).view(blocks, rows, taps)
        low, high = index.min(dim=1).values, index.max(dim=1).values
        # One window length for all blocks (the widest; border blocks reach further once
        # mirrored), its start moved left where it would run past the end of the input.
        self.window = int((high - low).max()) + 1
        start = torch.minimum(low, torch.full_like(low, in_len - self.window))
        local = (index - start[:, None]).view(blocks, rows, taps)
        self.weights = torch.zeros(blocks, rows, self.window, dtype=torch.float64)
        self.weights.scatter_add_(2, local, weight)
        self.rows, self.starts = rows, start.tolist()


class _Strided:
    """One 1-D resize whose interior outputs [first, stop) read P consecutive taps starting
    `stride` pixels apart (integer downscaling: x1/s has stride s) and never mirrored: all of them
    are one batched (1 x P) @ (P x columns) product over a strided view (unfold) of the input,
    exactly P multiply-adds per output value. The few border outputs (mirrored taps) are folded
    dense blocks."""

    def __init__(self, in_len: int, out_len: int, scale: float, antialias: bool, first: int, stop: int, stride: int):
        mirrored, weights = _taps_cpu(in_len, out_len, scale, antialias)
        self.taps, self.stride, self.first, self.stop = mirrored.shape[1], stride, first, stop
        self.start = int(mirrored[first, 0])
        self.weights = weights[first:stop].unsqueeze(1)  # (stop - first, 1, P)
        self.borders = [(o0, o1, *_folded_block(mirrored[o0:o1], weights[o0:o1]))
                        for o0, o1 in ((0, first), (stop, out_len)) if o1 > o0]


def _find_stride(in_len: int, out_len: int, scale: float, antialias: bool) -> tuple[int, int, int] | None:
    """(first, stop, stride) when the outputs whose taps lie inside the image form a run
    [first, stop) of at least two whose tap starts are `stride` apart, else None. (Upscaling and
    non-integer scales repeat only with a period of several outputs; the banded plan serves them.)"""
    mirrored, _ = _taps_cpu(in_len, out_len, scale, antialias)
    taps = mirrored.shape[1]
    # MATLAB's taps are consecutive input pixels; inside the image the mirroring leaves them so.
    start = mirrored[:, 0]
    inside = (((mirrored - start[:, None]) == torch.arange(taps)).all(dim=1) & (start + taps <= in_len)).nonzero()
    if inside.numel() < 2:
        return None
    first, stop = int(inside[0]), int(inside[-1]) + 1
    step = start[first + 1:stop] - start[first:stop - 1]
    if stop - first != inside.numel() or not bool((step == step[0]).all()) or int(step[0]) < 1:
        return None
    return first, stop, int(step[0])


# Cost model for the method of each 1-D pass, in seconds. Every matrix product costs a fixed
# overhead (Python, dispatch, the copy into the output) plus its multiply-adds at a rate that
# depends on its shape. Banded: blocks of `rows` outputs, rows x window x columns multiply-adds
# each (a wider window for more rows, up to the dense matrix: one block, window = in_len), BLAS
# below its peak for few rows (rows / (rows + 8) of it). Strided: one batched (1 x P) @
# (P x columns) product per leading index (a small overhead per output row inside it), exactly P
# multiply-adds per output value, at a matrix-vector rate, plus the two border blocks. Rough
# figures for one CPU thread, float64 (float32 twice as fast), measured on x1/4 and x4 resizes
# from 128 to 4000 pixels on the 2-core development machine; other devices launch kernels (dense
# products are cheap there, launches are not). A wrong choice costs speed, never accuracy: both
# plans give the same values (to rounding, ~1e-13 on 0-255 data).
_CALL_S = {"cpu": 2e-5}
_BANDED_MAC_PER_S = {"cpu": 1e10}
_STRIDED_MAC_PER_S = {"cpu": 3.5e9}
_GEMV_S = 3e-7  # strided: bmm's cost per (1 x P) @ (P x columns) product inside one call
_OTHER_CALL_S, _OTHER_MAC_PER_S = 5e-5, 1e12


def _span(in_len: int, scale: float, antialias: bool, rows: int) -> int:
    """The input window a block of `rows` outputs reads (without mirroring), for the cost model."""
    taps = int(math.ceil(_KERNEL_WIDTH / scale if (scale < 1 and antialias) else _KERNEL_WIDTH)) + 2
    return min(in_len, int(math.ceil((rows - 1) / scale)) + taps)


def _choose_method(in_len: int, out_len: int, scale: float, antialias: bool, batch: int, columns: int,
                   device_type: str, itemsize: int, grad: bool) -> int:
    """Output pixels per block of the cheapest banded plan, or 0 for the strided plan."""
    cpu = device_type == "cpu"
    call = _CALL_S.get(device_type, _OTHER_CALL_S)
    speed = 8 / max(itemsize, 4) if cpu else 1.0
    banded_rate = _BANDED_MAC_PER_S.get(device_type, _OTHER_MAC_PER_S) * speed
    values = batch * columns  # values per output row of this pass
    best, best_cost, rows = out_len, math.inf, 1
    while True:
        rows = min(rows, out_len)
        blocks = -(-out_len // rows)
        efficiency = rows / (rows + 8) if cpu else 1.0
        cost = blocks * (call + rows * _span(in_len, scale, antialias, rows) * values / (banded_rate * efficiency))
        if cost < best_cost:
            best, best_cost = rows, cost
        if rows == out_len:
            break
        rows *= 2
    # The strided plan writes into slices of one tensor (bmm's out=), which autograd does not
    # support (and slice writes would cost a full-size copy each in the backward pass): with
    # autograd the banded plan, which then concatenates its blocks, is always taken.
    found = None if grad else _find_stride(in_len, out_len, scale, antialias)
    if found is not None:
        first, stop, _ = found
        taps = int(math.ceil(_KERNEL_WIDTH / scale if (scale < 1 and antialias) else _KERNEL_WIDTH)) + 2
        strided_rate = _STRIDED_MAC_PER_S.get(device_type, _OTHER_MAC_PER_S) * speed
        interior, border = stop - first, out_len - (stop - first)
        cost = ((batch + 2) * call + batch * interior * (_GEMV_S if cpu else 0.0)
                + interior * taps * values / strided_rate
                + border * _span(in_len, scale, antialias, max(border, 1)) * values / banded_rate)
        if cost < best_cost:
            return 0
    return best


@lru_cache(maxsize=128)
def _plan_cpu(in_len: int, out_len: int, scale: float, antialias: bool, rows: int) -> _Banded | _Strided:
    """The float64 CPU plan: banded with `rows` outputs per block, or strided for rows == 0."""
    if rows:
        return _Banded(in_len, out_len, scale, antialias, rows)
    found = _find_stride(in_len, out_len, scale, antialias)
    assert found is not None, "strided plan for taps that are not equally spaced"
    return _Strided(in_len, out_len, scale, antialias, *found)


_device_cache: dict[tuple, tuple] = {}


def _plan(in_len: int, out_len: int, scale: float, antialias: bool, batch: int, columns: int,
          device: torch.device, dtype: torch.dtype, grad: bool) -> tuple:
    """The plan and its weights on `device` in `dtype` (cached): ("banded", plan, block weights)
    or ("strided", plan, interior weights, border block weights)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    rows = _choose_method(in_len, out_len, float(scale), antialias, batch, columns, device.type, itemsize, grad=grad)
    key = (in_len, out_len, float(scale), antialias, rows, str(device), dtype)
    entry = _device_cache.get(key)
    if entry is None:
        plan = _plan_cpu(in_len, out_len, float(scale), antialias, rows)
        if isinstance(plan, _Banded):
            weights = list(plan.weights.to(device=device, dtype=dtype).unbind(0))
            weights[-1] = weights[-1][: out_len - (len(weights) - 1) * rows]  # the last block may be short
            entry = ("banded", plan, tuple(weights))
        else:
            entry = ("strided", plan, plan.weights.to(device=device, dtype=dtype),
                     tuple(m.to(device=device, dtype=dtype) for *_, m in plan.borders))
        if len(_device_cache) > 128:
            _device_cache.clear()
        _device_cache[key] = entry
    return entry


def _resize_rows(x: torch.Tensor, in_len: int, out_len: int, scale: float, antialias: bool) -> torch.Tensor:
    """Resize dim 1 of a 3-D (batch, in_len, columns) tensor; x may be a transposed view (its
    windows are then column-major matrices, which BLAS takes as they are). Contiguous result."""
    batch, _, columns = x.shape
    grad = x.requires_grad and torch.is_grad_enabled()
    kind, plan, *weights = _plan(in_len, out_len, scale, antialias, batch, columns, x.device, x.dtype, grad)
    if kind == "banded":
        (blocks,) = weights
        window, rows = plan.window, plan.rows
        if len(blocks) == 1:
            return torch.matmul(blocks[0], x.narrow(1, plan.starts[0], window))
        if grad:
            # One cat (writing into slices of one tensor would record a full-size copy per block).
            return torch.cat([torch.matmul(w, x.narrow(1, s, window)) for w, s in zip(blocks, plan.starts)], dim=1)
        out = x.new_empty(batch, out_len, columns)
        for k, (w, s) in enumerate(zip(blocks, plan.starts)):
            out[:, k * rows:k * rows + w.shape[0]] = torch.matmul(w, x.narrow(1, s, window))
        return out
    interior, borders = weights
    out = x.new_empty(batch, out_len, columns)
    for (o0, o1, low, _), w in zip(plan.borders, borders):
        out[:, o0:o1] = torch.matmul(w, x.narrow(1, low, w.shape[1]))
    count, taps, stride = plan.stop - plan.first, plan.taps, plan.stride
    # (batch, count, P, columns) view, no copy: window m starts at start + m * stride.
    windows = x.narrow(1, plan.start, stride * (count - 1) + taps).unfold(1, taps, stride).transpose(2, 3)
    for b in range(batch):  # (a 4-D matmul would copy the overlapping windows)
        torch.bmm(interior, windows[b], out=out[b, plan.first:plan.stop].unsqueeze(1))
    return out


def output_size(
    in_size: tuple[int, int], scale: float | Sequence[float] | None = None,
    size: Sequence[int] | None = None,
) -> tuple[tuple[int, int], tuple[float, float]]:
    """MATLAB's rule: from a scale, size = ceil(in * scale); from a size, scale = out / in."""
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale or size")
    if size is not None:
        out = (int(size[0]), int(size[1]))
        if min(out) < 1:
            raise ValueError(f"output size must be positive, got {tuple(size)}")
        return out, (out[0] / in_size[0], out[1] / in_size[1])
    scales = (float(scale), float(scale)) if not isinstance(scale, Sequence) else (float(scale[0]), float(scale[1]))
    if min(scales) <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    # The tiny epsilon guards against in * scale landing a hair above an integer in floating point
    # (e.g. 3 * (1/3)); MATLAB computes the same product in double and would get the integer.
    out = tuple(int(math.ceil(n * s - 1e-9)) for n, s in zip(in_size, scales))
    return (out[0], out[1]), scales


def imresize(
    image, scale: float | Sequence[float] | None = None, *,
    size: Sequence[int] | None = None, antialias: bool = True, round_uint8: bool = False,
):
    """MATLAB `imresize(image, scale_or_size, 'bicubic')` on (..., H, W) float tensors.

    Also takes what users hold, and returns the same kind: a numpy array (H, W) or (H, W, C), and
    a PIL image. Integer arrays (uint8, uint16) and images are resized in float64 and rounded and
    clamped back to their type, as MATLAB does for integer inputs; float arrays keep their dtype.

    `round_uint8` clamps to [0, 255] and rounds half away from zero, as MATLAB does when its
    input is uint8; the values stay in the input's float dtype.

    The resize runs in the input's dtype: float32 inputs (training pyramids, `make_pyramid`) stay
    float32, which is about twice as fast. The benchmark LR images (`dualsr.data.benchmark`,
    `evaluate`) pass float64 with `round_uint8=True` and must stay float64: on the Set5 + Set14 +
    B100 HR images at x1/4, float32 changes some of the 3.59 million rounded values (18 in the
    run in benchmarks/REPORT.md: Set5 1, Set14 1, B100 16; the count moves by a few with the plan
    the cost model picks; float32 is off by up to 7e-5 before rounding, enough to cross a .5
    boundary), while float64 reproduces the previous dense implementation's rounded values
    exactly, at x1/4 and for the x4 bicubic baseline up from those LR images
    (benchmarks/bench_imresize.py counts the float32 changes on every run).
    """
    if not isinstance(image, torch.Tensor):
        return _imresize_other(image, scale, size, antialias)
    if not torch.is_floating_point(image):
        raise TypeError(f"imresize expects a float tensor, got {image.dtype}")
    if image.dim() < 2:
        raise ValueError("imresize expects a tensor with at least 2 dimensions (..., H, W)")
    in_h, in_w = image.shape[-2:]
    (out_h, out_w), (scale_h, scale_w) = output_size((in_h, in_w), scale, size)
    lead = image.shape[:-2]
    x = image.reshape(math.prod(lead), in_h, in_w)  # (an empty batch stays empty)
    # MATLAB resizes the dimension with the smaller scale first (height first on ties). The width
    # pass runs on the transposed view, so both passes resize dim 1 of a 3-D tensor.
    if scale_h <= scale_w:
        x = _resize_rows(x, in_h, out_h, scale_h, antialias)                  # (B, out_h, in_w)
        x = _resize_rows(x.transpose(1, 2), in_w, out_w, scale_w, antialias)  # (B, out_w, out_h)
        out = x.transpose(1, 2).contiguous()
    else:
        x = _resize_rows(x.transpose(1, 2), in_w, out_w, scale_w, antialias)  # (B, out_w, in_h)
        out = _resize_rows(x.transpose(1, 2), in_h, out_h, scale_h, antialias)
    out = out.reshape(*lead, out_h, out_w)
    if round_uint8:
        out = torch.floor(out.clamp(0, 255) + 0.5)
    return out


def _imresize_numpy(array, scale, size, antialias: bool):
    import numpy as np

    if array.ndim not in (2, 3):
        raise ValueError(f"imresize expects a numpy image (H, W) or (H, W, C), got shape {array.shape}")
    if array.dtype.kind not in "uif":
        raise TypeError(f"imresize expects an integer or float numpy array, got {array.dtype}")
    hwc = array[:, :, None] if array.ndim == 2 else array
    out = None
    for c in range(hwc.shape[2]):  # one plane at a time: the float copy stays a plane's size
        plane = torch.from_numpy(np.array(hwc[:, :, c]))  # own, writable copy
        if array.dtype.kind in "ui":
            info = np.iinfo(array.dtype)
            resized = imresize(plane.to(torch.float64), scale, size=size, antialias=antialias)
            resized = torch.floor(resized.clamp(info.min, info.max) + 0.5).numpy().astype(array.dtype)
        else:
            resized = imresize(plane, scale, size=size, antialias=antialias).numpy()
        if out is None:
            out = np.empty((*resized.shape, hwc.shape[2]), dtype=resized.dtype)
        out[:, :, c] = resized
    return out[:, :, 0] if array.ndim == 2 else out


def _imresize_other(image, scale, size, antialias: bool):
    """numpy arrays and PIL images, through the tensor implementation."""
    import numpy as np

    if isinstance(image, np.ndarray):
        return _imresize_numpy(image, scale, size, antialias)
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        mode = image.mode
        if mode in ("P", "PA", "1", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "La", "RGBa"):
            image = image.convert("RGBA" if "A" in mode or "a" in mode or "transparency" in image.info
                                  else "L" if mode == "1" else "RGB")
        array = np.asarray(image)
        if image.mode == "I":  # 32-bit integer pixels: resize as float64 and round back
            out = _imresize_numpy(array.astype(np.float64), scale, size, antialias)
            return Image.fromarray(np.floor(out + 0.5).astype(np.int32), mode="I")
        out = _imresize_numpy(array, scale, size, antialias)
        return Image.fromarray(out)  # the array's dtype and channels give the mode back (I;16, F, L, RGB, ...)
    raise TypeError(f"imresize expects a torch tensor, numpy array or PIL image, got {type(image).__name__}")
