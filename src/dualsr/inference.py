"""Upscaling images of any size with a super-resolution model: tiled, memory-bounded, exact.

Tiling. The LR image is cut into `tile` x `tile` cores; each core is run with `tile_pad` LR
pixels of real image context on every side (clipped at the image border, never mirrored, so the
zero padding of the convolutions at the border is the same as untiled), and only the core of the
result is kept. With a padding at least the receptive radius of the model, every output pixel of
a local network is then computed from exactly the same inputs as untiled.

DRN (and RCAN-style models) are not local: every RCAB has channel attention, a sigmoid gate
computed from the *global* mean of a feature map, so a tile's output depends on the whole image.
With per-tile means, a partly trained drn-t x4 (6+6 RCABs) drifted by up to 8 grey levels at
pad 2, 2 at pad 4-8 and 1 from pad 12 on (tiles of 32, benchmarks/REPORT.md): close, but only
by measurement, for one model and one image. The Upscaler therefore computes those means over
the whole image in streaming passes before the output pass: pass k runs every tile up to the
k-th attention layer (earlier layers already use their global means) and sums the layer's input
over the tile cores, which partition the image. Tiles are then exact up to float rounding for
any image once `tile_pad` covers the receptive radius (the default). Memory stays bounded by the
tile; the cost is one partial forward per attention layer: 3.5-4.7x the untiled time (two runs
on the shared CPU) for a 4000x3000 x4 output with drn-t (8 attention layers, tiles of 256). For
DRN-S (60 attention layers, about 30 plain passes, estimated) `global_stats=False` is the
practical choice, an approximation reported by `exact_tiling` and a warning. A single tile (the whole image) needs no extra pass.

Models with other non-local layers tile only approximately, and badly for RLFN: its ESA blocks
max-pool with stride 3 and interpolate back to the tile size, and tiles of 32 LR pixels came out
up to 100 grey levels off (benchmarks/REPORT.md). `Upscaler.exact_tiling` says which case
applies (a whitelist of layers known to be local), a warning is issued when an approximate
model is tiled, and `tile="auto"` only tiles when the image does not fit in memory.

Values: models see RGB on the 0-255 scale. Grayscale images run as three equal channels and the
result is folded back with the channel *mean* (the least-squares projection onto the grey axis;
BT.601 luma would favour green for no reason on a grey input). 16-bit images run on v/257 (the
same 0-255 scale, fractions kept) and are written back x257. Alpha is resized with the MATLAB
bicubic (`dualsr.data.resize.imresize`), tile by tile as well.
"""
from __future__ import annotations

import math
import os
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dualsr.data.resize import imresize

ImageInput = Union["Image.Image", np.ndarray, torch.Tensor]  # noqa: F821 (PIL imported lazily)

# LR pixels of context for the alpha channel: the bicubic kernel reaches 2 LR pixels.
_ALPHA_PAD = 4
# Fraction of the free memory `tile="auto"` may plan for (the rest is for the process itself).
_AUTO_MEMORY_FRACTION = 0.5
# Peak memory of a forward relative to its largest single activation: about 3.3x measured with
# ru_maxrss on drn-t x4 (skip copies, concatenations and the upsampled input coexist); 6 leaves margin.
_PEAK_ACTIVATION_FACTOR = 6.0
_DTYPES = {"float32": torch.float32, "float": torch.float32, "fp32": torch.float32,
           "float16": torch.float16, "half": torch.float16, "fp16": torch.float16,
           "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


# ------------------------------------------------------------------------------------ model helpers


def _parse_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"dtype must be float32, float16 or bfloat16, got {dtype}")
        return dtype
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"dtype must be float32, float16 or bfloat16, got {dtype!r}") from None


def _final_output(out) -> torch.Tensor:
    """The SR image of a model's output: multi-output models (DRN) return a list, last = SR."""
    return out[-1] if isinstance(out, (list, tuple)) else out


def _global_pool_modules(model: nn.Module) -> list[nn.Module]:
    """Modules whose output depends on a global mean of their input (DRN/RCAN channel attention)."""
    from dualsr.models.drn import ChannelAttention

    return [m for m in model.modules() if isinstance(m, ChannelAttention)]


def _local_module_types() -> tuple[type, ...]:
    """Module types known to be local and translation-equivariant (on the stride grid of the tiles).

    A whitelist, because a forward can call anything functionally: RLFN's ESA max-pools with
    stride 3 and interpolates back to the input size inside its forward, so no module type
    reveals that its output depends on the tile grid (measured: up to 100 grey levels apart).
    DRN's own blocks are listed after reading their forwards; ChannelAttention is handled by the
    whole-image statistics passes.
    """
    from dualsr.models import drn

    return (nn.Conv2d, nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Identity,
            nn.PixelShuffle, nn.Sequential, nn.ModuleList, drn.DRN, drn.MeanShift, drn.DownBlock, drn.RCAB,
            drn.Upsampler, drn.ChannelAttention)


def _has_unhandled_nonlocal_layers(model: nn.Module) -> bool:
    """True unless every module is known to be local (or is channel attention, handled separately)."""
    local = _local_module_types()
    return any(type(m) not in local for m in model.modules())


def _probe(model: nn.Module, scale: int, device, dtype, size: int = 16) -> tuple[float, float]:
    """Run a small LR input once and return (receptive radius, largest activation per LR pixel).

    The radius is an upper bound in LR pixels: every conv adds its half kernel at the resolution it
    runs on (the U-Net's parallel branches are counted as if chained), strided convs and pixel
    shuffles add one pixel of grid misalignment, and the input interpolation of DRN adds 2.
    """
    radius = 3.0  # bicubic input upsampling (2 LR px) + rounding margin
    largest = 0
    hooks = []

    def on_conv(module: nn.Conv2d, inputs, output):
        nonlocal radius
        factor = inputs[0].shape[-2] / size  # resolution of this conv relative to the LR input
        kh = (module.kernel_size[0] - 1) * module.dilation[0] / 2
        radius += kh / factor + (1.0 / factor if module.stride[0] > 1 else 0.0)

    def on_shuffle(module: nn.Module, inputs, output):
        nonlocal radius
        radius += 1.0 / (output.shape[-2] / size)

    def on_any(module: nn.Module, inputs, output):
        nonlocal largest
        for tensor in (output if isinstance(output, (list, tuple)) else [output]):
            if isinstance(tensor, torch.Tensor):
                largest = max(largest, tensor.numel())

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(on_conv))
        elif isinstance(m, nn.PixelShuffle):
            hooks.append(m.register_forward_hook(on_shuffle))
        hooks.append(m.register_forward_hook(on_any))
    try:
        with torch.inference_mode():
            model(torch.full((1, 3, size, size), 128.0, device=device, dtype=dtype))
    finally:
        for h in hooks:
            h.remove()
    return radius, largest / (size * size)


def _min_input_size(model: nn.Module, device, dtype) -> int:
    """The smallest square LR input the model accepts (RLFN's ESA needs 15 pixels, DRN any)."""
    for size in (1, 2, 4, 8, 16, 32, 64):
        try:
            with torch.inference_mode():
                model(torch.full((1, 3, size, size), 128.0, device=device, dtype=dtype))
            return size
        except RuntimeError:
            continue
    raise ValueError("the model fails on every input size up to 64x64")


def available_memory(device: torch.device | str = "cpu") -> int:
    """Free memory in bytes for `device`: CUDA's free memory, else MemAvailable of /proc/meminfo."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    free = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:  # a container's cgroup (v2) limit can be far below the host's free memory
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            room = int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
            free = room if free is None else min(free, room)
    except (OSError, ValueError):
        pass
    return free if free is not None else 2 * 1024**3  # unknown platform: plan for a modest 2 GiB


class _StopForward(Exception):
    """Raised inside a statistics pass once the attention layer being measured has been reached."""


class _GlobalPooling:
    """Makes channel attention use means taken over the whole image instead of over one tile.

    While active, each attention module's forward is replaced: a module whose global mean is
    known gates with it; the first module reached without one adds its input's sum over the
    current tile's core to an accumulator and stops the forward (see the module docstring).
    """

    def __init__(self, modules: list[nn.Module], image_hw: tuple[int, int]):
        self.modules = modules
        self.image_hw = image_hw
        self.means: dict[int, torch.Tensor] = {}
        self.collecting: int | None = None
        self.sum: torch.Tensor | None = None
        self.count = 0
        self.window: tuple[int, int, int, int, int, int] | None = None  # h, w, core y0, y1, x0, x1

    def __enter__(self) -> "_GlobalPooling":
        for index, module in enumerate(self.modules):
            module.forward = types.MethodType(self._make_forward(index), module)
        return self

    def __exit__(self, *exc) -> None:
        for module in self.modules:
            module.__dict__.pop("forward", None)

    @property
    def complete(self) -> bool:
        return len(self.means) == len(self.modules)

    def start_pass(self) -> None:
        self.collecting, self.sum, self.count = None, None, 0

    def finish_pass(self) -> None:
        if self.collecting is not None:
            self.means[self.collecting] = (self.sum / self.count)[None, :, None, None]
        elif not self.complete:  # attention layers the forward never reaches: nothing to measure
            for index in range(len(self.modules)):
                self.means.setdefault(index, None)

    def _make_forward(self, index: int) -> Callable:
        pooling = self

        def forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
            if index in pooling.means:
                mean = pooling.means[index]
                if mean is None:  # never reached while measuring: keep the module's own pooling
                    mean = x.mean(dim=(2, 3), keepdim=True)
                return x * module.conv_du(mean.to(x.dtype))
            if pooling.collecting not in (None, index):
                raise RuntimeError("channel attention reached out of order during a statistics pass")
            pooling.collecting = index
            h, w, y0, y1, x0, x1 = pooling.window
            fy, fx = x.shape[-2] / h, x.shape[-1] / w
            if fy != fx or any(abs(v * fy - round(v * fy)) > 1e-9 for v in (y0, y1, x0, x1)):
                raise RuntimeError(f"cannot map the tile core onto a feature map of size {tuple(x.shape[-2:])}")
            core = x[0, :, round(y0 * fy):round(y1 * fy), round(x0 * fx):round(x1 * fx)]
            part = core.sum(dim=(1, 2), dtype=torch.float64)
            pooling.sum = part if pooling.sum is None else pooling.sum + part
            pooling.count += core.shape[-2] * core.shape[-1]
            raise _StopForward

        return forward


# ------------------------------------------------------------------------------------ tiles


@dataclass(frozen=True)
class _Tile:
    """A core [y0, y1) x [x0, x1) of the LR image and the window [wy0, wy1) x [wx0, wx1) run for it."""

    y0: int
    y1: int
    x0: int
    x1: int
    wy0: int
    wy1: int
    wx0: int
    wx1: int

    def core_in_window(self) -> tuple[int, int, int, int]:
        return self.y0 - self.wy0, self.y1 - self.wy0, self.x0 - self.wx0, self.x1 - self.wx0


def _tiles(height: int, width: int, tile: int | None, pad: int) -> list[_Tile]:
    """Cores covering the image (row by row) and their windows with `pad` pixels of context."""
    if tile is None or (tile >= height and tile >= width):
        return [_Tile(0, height, 0, width, 0, height, 0, width)]
    out = []
    for y0 in range(0, height, tile):
        y1 = min(y0 + tile, height)
        for x0 in range(0, width, tile):
            x1 = min(x0 + tile, width)
            out.append(_Tile(y0, y1, x0, x1, max(0, y0 - pad), min(height, y1 + pad),
                             max(0, x0 - pad), min(width, x1 + pad)))
    return out


@dataclass(frozen=True)
class _OutputFormat:
    """How model values (0-255 floats) become output samples."""

    dtype: np.dtype
    factor: float  # output = value * factor
    maximum: float
    rounded: bool

    def convert(self, values: torch.Tensor) -> np.ndarray:
        """(C, h, w) float 0-255 -> (h, w, C) array of the output dtype (clamped, rounded half up)."""
        scaled = values.to(torch.float32) * self.factor if self.factor != 1 else values.to(torch.float32, copy=True)
        scaled = scaled.clamp_(0, self.maximum)
        if self.rounded:
            scaled = torch.floor_(scaled.add_(0.5))
        return scaled.permute(1, 2, 0).numpy().astype(self.dtype, copy=False)


FORMAT_UINT8 = _OutputFormat(np.dtype(np.uint8), 1.0, 255.0, True)
FORMAT_UINT16 = _OutputFormat(np.dtype(np.uint16), 257.0, 65535.0, True)
FORMAT_FLOAT255 = _OutputFormat(np.dtype(np.float32), 1.0, 255.0, False)
FORMAT_FLOAT1 = _OutputFormat(np.dtype(np.float32), 1.0 / 255.0, 1.0, False)


# ------------------------------------------------------------------------------------ the upscaler


class Upscaler:
    """Super-resolve images with a model, tiled so that memory is bounded by the tile.

    model: None (the shipped default model), a registry name (with `weights`), or an nn.Module.
    weights: a weights file (safetensors, official .pt/.pth, BasicSR) loaded strictly.
    scale: the model's scale; guessed from the weights when omitted (the scale whose
        architecture the file fits), else 4.
    tile: None (whole image at once), an LR tile size in pixels, or "auto" (from free memory).
    tile_pad: LR pixels of context around each tile; default: the model's receptive radius, which
        makes tiles exact (up to float rounding) for local models and, with `global_stats`, DRN.
    global_stats: compute channel-attention means over the whole image when tiling (exact, one
        extra partial pass per attention layer); False uses per-tile means (faster, approximate).
    dtype: float32, float16 or bfloat16 for the model's arithmetic.
    progress: show a tqdm bar over tiles on stderr.
    """

    def __init__(
        self,
        model: nn.Module | str | None = None,
        weights: str | os.PathLike | None = None,
        scale: int | None = None,
        device: torch.device | str = "cpu",
        tile: int | str | None = None,
        tile_pad: int | None = None,
        dtype: torch.dtype | str = torch.float32,
        global_stats: bool = True,
        progress: bool = False,
        model_kwargs: dict | None = None,
    ):
        self.device = torch.device(device)
        self.dtype = _parse_dtype(dtype)
        self.model, self.scale, self.name = self._build(model, weights, scale, dict(model_kwargs or {}))
        # channels_last: oneDNN's convolutions run 1.4x (DRN-S) to 1.75x (drn-t) faster on this CPU
        self.model = self.model.to(device=self.device, dtype=self.dtype, memory_format=torch.channels_last).eval()
        spec = getattr(self.model, "spec", None)
        self.size_multiple = int(getattr(spec, "size_multiple", 1) or 1)
        if self.dtype != torch.float32 and spec is not None and not spec.half_safe:
            warnings.warn(f"{spec.name} is not marked safe in {self.dtype}; expect degraded output", stacklevel=2)
        self.min_size = _min_input_size(self.model, self.device, self.dtype)
        radius, activation_per_px = _probe(self.model, self.scale, self.device, self.dtype,
                                           size=max(16, self.min_size))
        self.receptive_radius = int(math.ceil(radius))
        self.tile_pad = self.receptive_radius if tile_pad is None else int(tile_pad)
        if self.tile_pad < 0:
            raise ValueError(f"tile_pad must be >= 0, got {tile_pad}")
        self.bytes_per_lr_pixel = activation_per_px * _PEAK_ACTIVATION_FACTOR * torch.finfo(self.dtype).bits / 8
        if not (tile is None or tile == "auto" or (isinstance(tile, int) and tile > 0)):
            raise ValueError(f"tile must be None, 'auto' or a positive int, got {tile!r}")
        self.tile = tile
        self.global_stats = global_stats
        self.progress = progress
        self._pool_modules = _global_pool_modules(self.model)
        self._warned_approximate = False

    # -------------------------------------------------------------------- construction

    @staticmethod
    def _build(model, weights, scale, kwargs) -> tuple[nn.Module, int, str]:
        if isinstance(model, nn.Module):
            if weights is not None:
                from dualsr.checkpoint import load_weights

                load_weights(model, weights, strict=True)
            found = getattr(model, "scale", None) or scale
            if found is None:
                raise ValueError("give scale= for a model without a .scale attribute")
            if scale is not None and found != scale:
                raise ValueError(f"the model is x{found}, not x{scale}")
            return model, int(found), getattr(getattr(model, "spec", None), "name", type(model).__name__)
        if model is None and weights is not None:
            model = _guess_model_name(weights)
        elif model is None:
            from dualsr.weights import default_weights

            shipped = default_weights()
            if scale is not None and scale != shipped.scale:
                raise ValueError(f"the default model is x{shipped.scale}; for x{scale} give a model and weights")
            model, weights, scale = shipped.model, shipped.path, shipped.scale
            kwargs = {**shipped.kwargs, **kwargs}
        if weights is None:
            try:
                from dualsr.weights import default_weights

                shipped = default_weights()
            except FileNotFoundError:
                shipped = None
            same = shipped is not None and _same_name(shipped.model, model) and scale in (None, shipped.scale)
            if not same:
                raise ValueError(f"model {model!r} needs weights= (a random model would produce noise)")
            weights, scale, kwargs = shipped.path, shipped.scale, {**shipped.kwargs, **kwargs}
        return _build_named(str(model), weights, scale, kwargs)

    @property
    def exact_tiling(self) -> bool:
        """Whether tiled output equals untiled output up to float rounding (with the current settings)."""
        if _has_unhandled_nonlocal_layers(self.model):
            return False
        if self._pool_modules and not self.global_stats:
            return False
        return self.tile_pad >= self.receptive_radius

    def tile_for(self, height: int, width: int) -> int | None:
        """The LR tile size used for an image of this size (None: the whole image at once)."""
        if self.tile != "auto":
            return self.tile
        budget = available_memory(self.device) * _AUTO_MEMORY_FRACTION
        if height * width * self.bytes_per_lr_pixel <= budget:
            return None
        side = int(math.sqrt(budget / self.bytes_per_lr_pixel)) - 2 * self.tile_pad
        return max(32, side // 16 * 16)

    # -------------------------------------------------------------------- running

    def _forward(self, window: torch.Tensor) -> torch.Tensor:
        """(3, h, w) float 0-255 -> (3, h*s, w*s) float32 on CPU."""
        h, w = window.shape[-2:]
        x = window[None].to(device=self.device, dtype=self.dtype).contiguous(memory_format=torch.channels_last)
        # pad bottom/right by replication to the model's size multiple and minimum size; cropped below
        m = self.size_multiple
        pad_h = max((-h) % m, self.min_size - h, 0)
        pad_w = max((-w) % m, self.min_size - w, 0)
        pad_h += (-(h + pad_h)) % m
        pad_w += (-(w + pad_w)) % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate").contiguous(memory_format=torch.channels_last)
        out = _final_output(self.model(x))
        s = self.scale
        return out[0, :, : h * s, : w * s].to(device="cpu", dtype=torch.float32)

    def _progress(self, total: int, desc: str):
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="tile", leave=False,
                    disable=True if not self.progress or total <= 1 else None, dynamic_ncols=True)

    def upscale_planes(
        self,
        rgb: torch.Tensor,
        alpha: torch.Tensor | None = None,
        grayscale: bool = False,
        fmt: _OutputFormat = FORMAT_UINT8,
        desc: str = "tiles",
    ) -> np.ndarray:
        """Upscale a (3, H, W) 0-255 image (+ (1, H, W) alpha) into an (sH, sW, C) array.

        C is 1 (grayscale) or 3, plus 1 for alpha; samples follow `fmt` (uint8, uint16 or float).
        The output is preallocated and filled tile by tile; no full-size float image is held.
        """
        if rgb.dim() != 3 or rgb.shape[0] != 3:
            raise ValueError(f"rgb must be (3, H, W), got {tuple(rgb.shape)}")
        rgb = rgb.detach().to("cpu", torch.float32)
        height, width = rgb.shape[-2:]
        s = self.scale
        colour_channels = 1 if grayscale else 3
        channels = colour_channels + (alpha is not None)
        out = np.empty((height * s, width * s, channels), dtype=fmt.dtype)
        tile = self.tile_for(height, width)
        tiles = _tiles(height, width, tile, self.tile_pad)
        if len(tiles) > 1 and not self.exact_tiling and not self._warned_approximate:
            self._warned_approximate = True
            warnings.warn(f"{self.name}: tiled output only approximates the untiled one "
                          f"({'per-tile attention means' if self._pool_modules else 'non-local layers'}, "
                          f"tile_pad {self.tile_pad})", stacklevel=2)
        use_stats = len(tiles) > 1 and self.global_stats and bool(self._pool_modules)
        n_passes = (len(self._pool_modules) if use_stats else 0) + 1
        with torch.inference_mode(), self._progress(len(tiles) * n_passes, desc) as bar:
            pooling = _GlobalPooling(self._pool_modules, (height, width)) if use_stats else None
            with pooling if pooling is not None else _null_context():
                while pooling is not None and not pooling.complete:
                    pooling.start_pass()
                    for t in tiles:
                        pooling.window = (t.wy1 - t.wy0, t.wx1 - t.wx0, *t.core_in_window())
                        try:
                            self._forward(rgb[:, t.wy0:t.wy1, t.wx0:t.wx1])
                        except _StopForward:
                            pass
                        bar.update()
                    pooling.finish_pass()
                for t in tiles:
                    sr = self._forward(rgb[:, t.wy0:t.wy1, t.wx0:t.wx1])
                    cy0, cy1, cx0, cx1 = t.core_in_window()
                    core = sr[:, cy0 * s:cy1 * s, cx0 * s:cx1 * s]
                    if grayscale:
                        core = core.mean(dim=0, keepdim=True)
                    out[t.y0 * s:t.y1 * s, t.x0 * s:t.x1 * s, :colour_channels] = fmt.convert(core)
                    del sr, core
                    bar.update()
        if alpha is not None:
            out[:, :, colour_channels:] = self._resize_alpha(alpha, tile, fmt)
        return out

    def _resize_alpha(self, alpha: torch.Tensor, tile: int | None, fmt: _OutputFormat) -> np.ndarray:
        """MATLAB-bicubic upscaling of a (1, H, W) 0-255 plane, tile by tile, into (sH, sW, 1)."""
        alpha = alpha.detach().to("cpu", torch.float32)
        height, width = alpha.shape[-2:]
        s = self.scale
        out = np.empty((height * s, width * s, 1), dtype=fmt.dtype)
        for t in _tiles(height, width, tile, _ALPHA_PAD):
            window = alpha[:, t.wy0:t.wy1, t.wx0:t.wx1].to(torch.float64)
            big = imresize(window, s)
            cy0, cy1, cx0, cx1 = t.core_in_window()
            out[t.y0 * s:t.y1 * s, t.x0 * s:t.x1 * s] = fmt.convert(big[:, cy0 * s:cy1 * s, cx0 * s:cx1 * s])
        return out

    def upscale(self, image: ImageInput) -> ImageInput:
        """Upscale a PIL image, a numpy array (HW/HWC, uint8, uint16 or float 0-1) or a tensor.

        Returns the same kind: PIL in the same mode family (palette/CMYK come back as RGB(A)),
        numpy with the same dtype and layout, tensors ((C,H,W) or (N,C,H,W), float on the 0-255
        scale or uint8) on the same device.
        """
        if isinstance(image, torch.Tensor):
            return self._upscale_tensor(image)
        if isinstance(image, np.ndarray):
            return self._upscale_numpy(image)
        from PIL import Image

        if isinstance(image, Image.Image):
            return self._upscale_pil(image)
        raise TypeError(f"cannot upscale a {type(image).__name__}: give a PIL image, numpy array or tensor")

    __call__ = upscale

    def upscale_file(self, src: str | os.PathLike, dst: str | os.PathLike, desc: str | None = None) -> Path:
        """Read `src`, upscale it keeping alpha/grayscale/bit depth, write `dst` atomically."""
        from dualsr.data.imageio import read_image, write_array

        loaded = read_image(src)
        fmt = FORMAT_UINT16 if loaded.bit_depth == 16 else FORMAT_UINT8
        array = self.upscale_planes(loaded.rgb, loaded.alpha, grayscale=loaded.grayscale, fmt=fmt,
                                    desc=desc or Path(src).name)
        return write_array(dst, array)

    # -------------------------------------------------------------------- input kinds

    def _planes_from_hwc(self, array: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
        """(H, W, C) float 0-255 -> rgb (3,H,W), alpha (1,H,W) or None, grayscale flag."""
        channels = array.shape[2]
        planes = torch.from_numpy(np.array(array.transpose(2, 0, 1), dtype=np.float32))  # own, writable copy
        if channels in (1, 2):
            return planes[:1].expand(3, -1, -1), (planes[1:] if channels == 2 else None), True
        if channels in (3, 4):
            return planes[:3], (planes[3:] if channels == 4 else None), False
        raise ValueError(f"images must have 1, 2, 3 or 4 channels, got {channels}")

    def _upscale_numpy(self, array: np.ndarray) -> np.ndarray:
        if array.ndim not in (2, 3):
            raise ValueError(f"numpy images must be (H, W) or (H, W, C), got shape {array.shape}")
        hwc = array[:, :, None] if array.ndim == 2 else array
        if array.dtype == np.uint8:
            values, fmt = hwc.astype(np.float32), FORMAT_UINT8
        elif array.dtype == np.uint16:
            values, fmt = hwc.astype(np.float32) / 257.0, FORMAT_UINT16
        elif np.issubdtype(array.dtype, np.floating):
            values, fmt = hwc.astype(np.float32) * 255.0, FORMAT_FLOAT1  # float arrays are 0-1
        else:
            raise ValueError(f"numpy images must be uint8, uint16 or float (0-1), got {array.dtype}")
        rgb, alpha, gray = self._planes_from_hwc(values)
        out = self.upscale_planes(rgb, alpha, grayscale=gray, fmt=fmt)
        if array.ndim == 2:
            out = out[:, :, 0]
        return out.astype(array.dtype, copy=False)

    def _upscale_tensor(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.dim() == 4:
            return torch.stack([self._upscale_tensor(item) for item in tensor])
        if tensor.dim() != 3:
            raise ValueError(f"tensors must be (C, H, W) or (N, C, H, W), got {tuple(tensor.shape)}")
        if tensor.dtype == torch.uint8:
            fmt = FORMAT_UINT8
        elif tensor.is_floating_point():
            fmt = FORMAT_FLOAT255
        else:
            raise ValueError(f"tensors must be float (0-255) or uint8, got {tensor.dtype}")
        hwc = tensor.detach().to("cpu", torch.float32).permute(1, 2, 0).numpy()
        rgb, alpha, gray = self._planes_from_hwc(hwc)
        out = self.upscale_planes(rgb, alpha, grayscale=gray, fmt=fmt)
        result = torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))
        return result.to(device=tensor.device, dtype=tensor.dtype if tensor.is_floating_point() else torch.uint8)

    def _upscale_pil(self, image):
        from PIL import Image, ImageOps

        image = ImageOps.exif_transpose(image) or image
        mode = image.mode
        if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
            values = np.asarray(image, dtype=np.float64)
            out = self._upscale_numpy(np.clip(values, 0, 65535).astype(np.uint16))
            return Image.fromarray(out.astype(np.int32) if mode == "I" else out)  # mode I or I;16
        if mode == "F":
            values = np.asarray(image, dtype=np.float32)
            out = self.upscale_planes(*self._planes_from_hwc(values[:, :, None])[:2], grayscale=True,
                                      fmt=FORMAT_FLOAT255)
            return Image.fromarray(out[:, :, 0])  # float32 -> mode F
        if mode in ("1", "L"):
            target = "L"
        elif mode in ("LA", "La"):
            target = "LA"
        elif mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in image.info):
            target = "RGBA"
        else:
            target = "RGB"
        array = np.asarray(image.convert(target))
        out = self._upscale_numpy(array)
        return Image.fromarray(out)  # the uint8 layout gives the mode back: L, LA, RGB or RGBA


class _null_context:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return None


def _same_name(a: str, b: str) -> bool:
    return a.lower().replace("_", "-") == b.lower().replace("_", "-")


def _guess_model_name(weights) -> str:
    """The registry name of the model a weights file was saved from (dualsr metadata or DRN keys)."""
    from dualsr.checkpoint import WeightsError, describe_drn, read_metadata, read_weights

    name = read_metadata(weights).get("model")
    if name:
        return name
    state = read_weights(weights)  # safe: refuses pickled code
    drn = describe_drn(state) if isinstance(state, dict) else None
    if drn is not None:
        from dualsr.models.drn import DRN_L, DRN_S

        preset = (drn["n_blocks"], drn["n_feats"])
        if DRN_S.get(drn["scale"]) == preset:
            return "drn-s"
        if DRN_L.get(drn["scale"]) == preset:
            return "drn-l"
    raise WeightsError(f"{weights}: cannot tell which model these weights are for; give --model NAME")


def _build_named(name: str, weights, scale: int | None, kwargs: dict) -> tuple[nn.Module, int, str]:
    """Build registry model `name` for `weights`; the scale and DRN config come from the file if needed."""
    import json

    from dualsr.checkpoint import WeightsMismatchError, load_weights, read_metadata
    from dualsr.models import create_model, get_spec

    spec = get_spec(name)
    meta = read_metadata(weights) if weights is not None else {}
    # Our safetensors carry the architecture (n_blocks, n_feats, widths); it only applies to the
    # model it was saved from: `--model drn-s` with a drn-t file must fail as a wrong preset.
    if meta.get("config") and _same_name(meta.get("model", spec.name), spec.name):
        config = json.loads(meta["config"])
        scale = scale or config.get("scale")
        kwargs = {**{k: v for k, v in config.items() if k != "scale" and v is not None}, **kwargs}
    kwargs.pop("scale", None)
    candidates = [scale] if scale else sorted(spec.scales, key=lambda s: (s != 4, s))
    first_error: Exception | None = None
    for candidate in candidates:
        try:
            model = create_model(spec.name, candidate, **kwargs)
        except (TypeError, ValueError) as exc:
            raise WeightsMismatchError(f"cannot build {spec.name} x{candidate}: {exc}") from None
        try:
            load_weights(model, weights, strict=True)
        except WeightsMismatchError as exc:
            first_error = first_error or exc
            continue
        return model, int(candidate), spec.name
    assert first_error is not None
    raise first_error


def iter_tiles(height: int, width: int, tile: int | None, pad: int) -> Iterator[tuple[int, int, int, int]]:
    """The (y0, y1, x0, x1) LR cores the Upscaler runs for an image (for tests and benchmarks)."""
    for t in _tiles(height, width, tile, pad):
        yield t.y0, t.y1, t.x0, t.x1


__all__ = ["FORMAT_FLOAT1", "FORMAT_FLOAT255", "FORMAT_UINT16", "FORMAT_UINT8", "Upscaler", "available_memory",
           "iter_tiles"]
