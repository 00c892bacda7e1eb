"""Degradations that turn an HR image into the LR inputs a model is trained on.

`make_pyramid` is the bicubic setting of the DRN paper: every level is MATLAB `imresize` of the
HR image rounded to uint8 values, exactly as the published LR files (DIV2K X2/X4/X8) are made.
Blind degradations sit beside it (`parse_degradation`, `Degradation`): a blur kernel at HR
(anisotropic Gaussian as in the blind "setting 2" of DAN/DCLS, isotropic Gaussian, the BD
protocol's 7x7 Gaussian, or a delta), the same MATLAB bicubic x1/s, rounding to uint8 values,
then optional Gaussian noise and JPEG stages. See the comments above `_TYPE_DEFAULTS`.
"""
from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dualsr.data.resize import imresize
from dualsr.fileio import write_bytes_atomic


def num_levels(scale: int) -> int:
    """log2(scale) for a power-of-two scale; other scales have a two-level pyramid [LR, HR]."""
    phases = int(round(math.log2(scale))) if scale > 1 else 0
    return phases if scale >= 2 and 2**phases == scale else 1


def modcrop(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """Crop (..., H, W) at the bottom/right to multiples of `multiple`, as the SR benchmarks do."""
    h, w = image.shape[-2:]
    return image[..., : h - h % multiple, : w - w % multiple]


def make_pyramid(hr: torch.Tensor, scale: int) -> list[torch.Tensor]:
    """[LR_s, LR_{s/2}, ..., LR_2, HR] from a (..., H, W) HR tensor on 0-255 with H, W multiples of s.

    Each level is resized from HR directly (not from the next level), rounded to integers in
    [0, 255] as a uint8 image file would hold. A non-power-of-two scale gives [LR_s, HR].
    """
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"HR size {h}x{w} is not a multiple of scale {scale}; modcrop it first")
    hr = hr.float() if not torch.is_floating_point(hr) else hr
    levels = num_levels(scale)
    factors = [scale // 2**i for i in range(levels)] if 2**levels == scale else [scale]
    pyramid = [imresize(hr, size=(h // f, w // f), round_uint8=True) for f in factors]
    return pyramid + [hr]


# ---------------------------------------------------------------------------------------------- blind
# Blur kernels and the blind degradation  LR = round_uint8(down_s(k * pad(HR))) [+ noise] [+ JPEG].
#
# A kernel is a float64 (size, size) tensor summing to 1; `save_kernel`/`load_kernel` keep it in .npy.
# Kernels are drawn from numpy Generators: every random number of a degradation comes from a
# generator the caller seeds (training: (seed, rank, iteration); test sets: (seed, image index)), so
# both are reproducible bit for bit.

DEGRADATION_TYPES = ("bicubic", "aniso", "iso", "bd", "delta")

# Defaults per type. Ranges are [low, high] (drawn uniformly), numbers are fixed values.
# aniso: the blind "setting 2" of DAN/DCLS (x4): 31x31 anisotropic Gaussian, standard deviations
#   sigma_x, sigma_y ~ U(0.6, 5) independently, rotation theta ~ U(-pi, pi), every tap multiplied by
#   U(1, 1.25), then normalised. tap_noise "auto": on while any parameter is a range, off for a fixed
#   kernel (all three numbers).
# iso: isotropic Gaussian (DCLS "setting 1" x4: 21x21, sigma ~ U(0.2, 4)).
# bd: the BD protocol of RDN/SRMD test sets: 7x7 Gaussian, sigma 1.6, replicate padding (MATLAB
#   imfilter 'replicate') and decimation (MATLAB imresize 'nearest': pixel floor(s/2) of every s x s
#   block), as RDN's Prepare_TestData_HR_LR.m does at x3 (its comment says "bicubic", the code is
#   'nearest'); downsample: bicubic gives the blur-then-bicubic variant.
# delta: the identity kernel (size 1): exactly the bicubic pipeline, useful as a check.
_TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "aniso": {"size": 31, "sigma_x": [0.6, 5.0], "sigma_y": [0.6, 5.0], "theta": [-math.pi, math.pi],
              "tap_noise": "auto", "pad": "reflect", "downsample": "bicubic"},
    "iso": {"size": 21, "sigma": [0.2, 4.0], "tap_noise": None, "pad": "reflect", "downsample": "bicubic"},
    "bd": {"size": 7, "sigma": 1.6, "tap_noise": None, "pad": "replicate", "downsample": "decimate"},
    "delta": {"size": 1, "tap_noise": None, "pad": "reflect", "downsample": "bicubic"},
    "bicubic": {},
}
_STAGE_KEYS = {"noise": None, "jpeg": None}  # noise: sigma [lo, hi] on 0-255; jpeg: quality [lo, hi]
_SETTING2_TAP_NOISE = [1.0, 1.25]


class DegradationError(ValueError):
    """A bad degradation option (unknown type or key, bad range); a one-line message."""


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0,
                    dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(size, size) Gaussian with covariance R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T, sum 1.

    Column offsets are x, row offsets y, both from the centre (size - 1) / 2; theta rotates the
    sigma_x axis from the x axis towards y. sigma_y None is isotropic.
    """
    sigma_y = sigma_x if sigma_y is None else sigma_y
    if size < 1 or min(sigma_x, sigma_y) <= 0:
        raise DegradationError(f"kernel size must be >= 1 and sigmas > 0 (got {size}, {sigma_x}, {sigma_y})")
    c, s = math.cos(theta), math.sin(theta)
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    cov = rot @ torch.diag(torch.tensor([sigma_x**2, sigma_y**2], dtype=torch.float64)) @ rot.T
    inv = torch.linalg.inv(cov)
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    q = inv[0, 0] * x * x + (inv[0, 1] + inv[1, 0]) * x * y + inv[1, 1] * y * y
    k = torch.exp(-0.5 * q)
    return (k / k.sum()).to(dtype)


def delta_kernel(size: int = 1, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The identity kernel: 1 at the centre of an odd (size, size) grid."""
    if size < 1 or size % 2 == 0:
        raise DegradationError(f"a delta kernel needs an odd size, got {size}")
    k = torch.zeros(size, size, dtype=dtype)
    k[size // 2, size // 2] = 1
    return k


def kernel_moments(kernel: torch.Tensor) -> torch.Tensor:
    """The 2x2 second-moment matrix [[E xx, E xy], [E xy, E yy]] of a kernel about its centre of mass."""
    k = kernel.double() / kernel.double().sum()
    n = k.shape[-1]
    r = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    mx, my = (k * x).sum(), (k * y).sum()
    dx, dy = x - mx, y - my
    exy = (k * dx * dy).sum()
    return torch.stack([torch.stack([(k * dx * dx).sum(), exy]), torch.stack([exy, (k * dy * dy).sum()])])


def save_kernel(kernel: torch.Tensor, path: str | os.PathLike) -> Path:
    """Write a kernel as a float64 .npy file (atomically)."""
    buffer = io.BytesIO()
    np.save(buffer, kernel.detach().cpu().double().numpy(), allow_pickle=False)
    return write_bytes_atomic(path, buffer.getvalue())


def load_kernel(path: str | os.PathLike) -> torch.Tensor:
    """Read a kernel written by `save_kernel` (no pickles)."""
    array = np.load(Path(path), allow_pickle=False)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise DegradationError(f"{path}: not a square 2-D kernel (shape {array.shape})")
    return torch.from_numpy(array.astype(np.float64))


def _is_range(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _check_param(name: str, value: Any, low: float = 0.0, strict: bool = True) -> Any:
    values = list(value) if _is_range(value) else [value]
    if _is_range(value) and len(values) != 2:
        raise DegradationError(f"degradation.{name} must be a number or [low, high], got {value!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise DegradationError(f"degradation.{name} must be a number or [low, high], got {value!r}")
        if v < low or (strict and v == low):
            raise DegradationError(f"degradation.{name}={value!r} is out of range (must be {'>' if strict else '>='} {low})")
    if _is_range(value) and values[0] > values[1]:
        raise DegradationError(f"degradation.{name}={value!r}: low is above high")
    return [float(v) for v in values] if _is_range(value) else float(value)


def _draw(rng: np.random.Generator, value: Any) -> float:
    """A range draws U(low, high) (always one draw, so the stream does not depend on the values)."""
    u = float(rng.uniform(0.0, 1.0))
    return value[0] + (value[1] - value[0]) * u if _is_range(value) else float(value)


@dataclass(frozen=True)
class Degradation:
    """A named degradation with resolved options (see `parse_degradation`); `bicubic` is the default.

    `sample_kernel(rng)` draws one kernel and its parameters; `degrade(hr, scale, rng)` degrades a
    batch (one kernel per sample, drawn in order from rng); `apply(hr, kernels, scale, rng)` uses
    given kernels. Noise and JPEG stages draw from rng after the kernels.
    """

    options: dict

    @property
    def type(self) -> str:
        return self.options["type"]

    @property
    def is_bicubic(self) -> bool:
        return self.type == "bicubic"

    @property
    def size(self) -> int:
        return int(self.options.get("size", 1))

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.options.items())

    def tap_noise(self) -> list[float] | None:
        noise = self.options.get("tap_noise")
        if noise == "auto":
            fixed = not any(_is_range(self.options[k]) for k in ("sigma_x", "sigma_y", "theta"))
            return None if fixed else list(_SETTING2_TAP_NOISE)
        return noise

    def sample_kernel(self, rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """(float64 kernel, {sigma_x, sigma_y, theta}) drawn from rng."""
        o, t = self.options, self.type
        if t in ("bicubic", "delta"):
            return delta_kernel(self.size), {"sigma_x": 0.0, "sigma_y": 0.0, "theta": 0.0}
        if t == "aniso":
            sx, sy, th = _draw(rng, o["sigma_x"]), _draw(rng, o["sigma_y"]), _draw(rng, o["theta"])
        else:
            sx = sy = _draw(rng, o["sigma"])
            th = 0.0
        kernel = gaussian_kernel(self.size, sx, sy, th)
        noise = self.tap_noise()
        if noise is not None:
            taps = rng.uniform(noise[0], noise[1], size=(self.size, self.size))
            kernel = kernel * torch.from_numpy(taps)
            kernel = kernel / kernel.sum()
        return kernel, {"sigma_x": sx, "sigma_y": sy, "theta": th}

    def sample_kernels(self, rng: np.random.Generator, n: int) -> tuple[torch.Tensor, list[dict]]:
        drawn = [self.sample_kernel(rng) for _ in range(n)]
        return torch.stack([k for k, _ in drawn]), [p for _, p in drawn]

    def apply(self, hr: torch.Tensor, kernels: torch.Tensor, scale: int,
              rng: np.random.Generator | None = None) -> torch.Tensor:
        """LR of a (N, C, H, W) 0-255 batch with kernels (N, k, k) (or one (k, k) for all)."""
        if self.is_bicubic:
            return imresize(hr, 1.0 / scale, round_uint8=True)
        x = blur(hr, kernels, pad=self.options["pad"])
        x = downsample(x, scale, self.options["downsample"])
        return self._stages(x, rng)

    def degrade(self, hr: torch.Tensor, scale: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR, kernels) of a (N, C, H, W) batch, one kernel per sample drawn from rng."""
        if self.is_bicubic:
            return imresize(hr, 1.0 / scale, round_uint8=True), delta_kernel(1)[None].expand(hr.shape[0], 1, 1)
        kernels, _ = self.sample_kernels(rng, hr.shape[0])
        return self.apply(hr, kernels, scale, rng), kernels

    def _stages(self, lr: torch.Tensor, rng: np.random.Generator | None) -> torch.Tensor:
        noise, jpeg = self.options.get("noise"), self.options.get("jpeg")
        if (noise is not None or jpeg is not None) and rng is None:
            raise DegradationError("the noise and JPEG stages need a random generator")
        if noise is not None:
            sigmas = [_draw(rng, noise) for _ in range(lr.shape[0])]
            values = rng.standard_normal(size=tuple(lr.shape))
            values = values * np.asarray(sigmas).reshape(-1, *([1] * (lr.dim() - 1)))
            lr = torch.floor((lr + torch.from_numpy(values).to(lr.dtype)).clamp(0, 255) + 0.5)
        if jpeg is not None:
            qualities = [int(round(_draw(rng, jpeg))) for _ in range(lr.shape[0])]
            lr = torch.stack([jpeg_roundtrip(image, q) for image, q in zip(lr, qualities)])
        return lr


def jpeg_roundtrip(image: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode a (3, H, W) 0-255 image as JPEG at `quality` (Pillow, 4:2:0) and decode it."""
    from PIL import Image

    array = image.detach().cpu().round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        out = np.asarray(decoded.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(out.copy()).permute(2, 0, 1).to(image.dtype)


def blur(hr: torch.Tensor, kernels: torch.Tensor, pad: str = "reflect") -> torch.Tensor:
    """Convolve each sample of (N, C, H, W) with its own kernel (N, k, k) (or one (k, k)), same size.

    True convolution (the kernel is flipped), `pad` ("reflect" or "replicate") by k // 2 at every
    border. Written as a sum of shifted copies, element by element: every output value is computed
    the same way whatever the batch, so a batch equals its samples degraded one by one, and a
    delta kernel returns the input exactly. One kernel per sample, shared by its channels.
    """
    if hr.dim() != 4:
        raise ValueError(f"blur expects (N, C, H, W), got {tuple(hr.shape)}")
    n, _, h, w = hr.shape
    kernels = kernels.to(hr.dtype)
    if kernels.dim() == 2:
        kernels = kernels[None].expand(n, -1, -1)
    if kernels.shape[0] != n or kernels.shape[-1] != kernels.shape[-2] or kernels.shape[-1] % 2 == 0:
        raise ValueError(f"need {n} odd square kernels, got {tuple(kernels.shape)}")
    size = kernels.shape[-1]
    r = size // 2
    if r == 0:
        return hr * kernels.reshape(n, 1, 1, 1)
    if min(h, w) <= r or min(h, w) < size:
        raise DegradationError(f"image {w}x{h} is smaller than the {size}x{size} blur kernel")
    if pad not in ("reflect", "replicate"):
        raise DegradationError(f"degradation.pad must be reflect or replicate, got {pad!r}")
    padded = F.pad(hr, (r, r, r, r), mode=pad)
    flipped = kernels.flip(-1).flip(-2)
    out = torch.zeros_like(hr)
    for i in range(size):
        for j in range(size):
            out.addcmul_(padded[..., i:i + h, j:j + w], flipped[:, i, j].reshape(n, 1, 1, 1))
    return out


def downsample(x: torch.Tensor, scale: int, method: str = "bicubic") -> torch.Tensor:
    """x1/scale, rounded to uint8 values: MATLAB bicubic `imresize`, or decimation ('nearest')."""
    if method == "bicubic":
        return imresize(x, 1.0 / scale, round_uint8=True)
    if method == "decimate":
        # MATLAB imresize(x, 1/s, 'nearest') for an integer s keeps pixel floor(s / 2) of each block
        h, w = x.shape[-2:]
        start = scale // 2
        out = x[..., start::scale, start::scale][..., : h // scale, : w // scale]
        return torch.floor(out.clamp(0, 255) + 0.5)
    raise DegradationError(f"degradation.downsample must be bicubic or decimate, got {method!r}")


def parse_degradation(options: dict | str | None) -> Degradation:
    """Resolve a degradation mapping {type: NAME, ...parameters} (or a bare name) over its defaults.

    Unknown keys are an error naming them. `None`/{} is bicubic.
    """
    if options is None:
        options = {}
    if isinstance(options, str):
        options = {"type": options}
    if not isinstance(options, dict):
        raise DegradationError(f"degradation must be a mapping with a type, got {options!r}")
    kind = options.get("type", "bicubic")
    if kind not in DEGRADATION_TYPES:
        raise DegradationError(f"unknown degradation type {kind!r} (one of {', '.join(DEGRADATION_TYPES)})")
    defaults = {"type": kind, **_TYPE_DEFAULTS[kind], **(_STAGE_KEYS if kind != "bicubic" else {})}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise DegradationError(f"unknown option(s) {', '.join(unknown)} for degradation type {kind!r} "
                               f"(known: {', '.join(sorted(defaults))})")
    o = {**defaults, **options}
    if kind == "bicubic":
        return Degradation(o)
    size = o["size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise DegradationError(f"degradation.size must be an odd positive integer, got {size!r}")
    for key in ("sigma_x", "sigma_y", "sigma"):
        if key in o:
            o[key] = _check_param(key, o[key])
    if "theta" in o:
        o["theta"] = _check_param("theta", o["theta"], low=-math.inf, strict=False)
    if o["tap_noise"] not in (None, "auto"):
        o["tap_noise"] = _check_param("tap_noise", o["tap_noise"])
        if not _is_range(o["tap_noise"]):
            raise DegradationError(f"degradation.tap_noise must be [low, high] or null, got {o['tap_noise']!r}")
    if o["noise"] is not None:
        o["noise"] = _check_param("noise", o["noise"], strict=False)
    if o["jpeg"] is not None:
        o["jpeg"] = _check_param("jpeg", o["jpeg"])
        if max(o["jpeg"] if _is_range(o["jpeg"]) else [o["jpeg"]]) > 100:
            raise DegradationError(f"degradation.jpeg quality must be within 1..100, got {o['jpeg']!r}")
    if o["pad"] not in ("reflect", "replicate"):
        raise DegradationError(f"degradation.pad must be reflect or replicate, got {o['pad']!r}")
    if o["downsample"] not in ("bicubic", "decimate"):
        raise DegradationError(f"degradation.downsample must be bicubic or decimate, got {o['downsample']!r}")
    return Degradation(o)
