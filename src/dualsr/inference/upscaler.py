"""Upscaling images of any size with a super-resolution model: tiled, memory-bounded, exact.

Everything model-specific comes from the model's spec: the size multiple and minimum input (the
LR is replicate-padded to them and the output cropped), the receptive radius (the default tile
padding), and the tiling kind: "local" models tile exactly once the padding covers the radius,
"global_pool" models (DRN's channel attention) too when their pooling layers get whole-image
means (`tiling.WholeImageMeans`, one partial pass per pooling layer), "approximate" ones (RLFN:
its ESA max-pools with stride 3 and interpolates back to the tile size, measured up to 100 grey
levels off at small pads, benchmarks/REPORT.md) never. `Upscaler.exact_tiling` says which case
applies, a warning is issued when an approximate model is tiled, and `tile="auto"` only tiles
when the image does not fit in memory.

Values: models see RGB on the 0-255 scale (`run_model` converts to the model's own range).
Grayscale images run as three equal channels and the result is folded back with the channel
*mean* (the least-squares projection onto the grey axis; BT.601 luma would favour green for no
reason on a grey input). 16-bit images run on v/257 (the same 0-255 scale, fractions kept) and
are written back x257. Alpha is resized with the MATLAB bicubic (`dualsr.data.resize.imresize`),
tile by tile as well.

The model itself is a small backend that runs one padded window: `TorchBackend` (an nn.Module)
or `dualsr.onnx.OnnxBackend` (an exported .onnx file through onnxruntime, chosen by the file's
suffix; its metadata carries the spec's fields). Everything else, padding, tiles, colour, alpha,
formats, is shared. An ONNX graph cannot take whole-image statistics, so a "global_pool" model
(DRN) from an ONNX file tiles approximately (a warning says so when it is tiled).
"""
from __future__ import annotations

import contextlib
import math
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dualsr.data.resize import imresize
from dualsr.inference import memory
from dualsr.inference.formats import FORMAT_FLOAT1, FORMAT_FLOAT255, FORMAT_UINT8, FORMAT_UINT16, OutputFormat
from dualsr.inference.tiling import StopForward, WholeImageMeans, make_tiles
from dualsr.models.spec import TileWindow, model_scale, pooling_layers, spec_of, sr_image, window_layers
from dualsr.weights import WeightsRequiredError, weights_for

ImageInput = Union["Image.Image", np.ndarray, torch.Tensor]  # noqa: F821 (PIL imported lazily)

# LR pixels of context for the alpha channel: the bicubic kernel reaches 2 LR pixels.
_ALPHA_PAD = 4
# Fraction of the free memory `tile="auto"` may plan for (the rest is for the process itself).
_AUTO_MEMORY_FRACTION = 0.5
# Peak memory of a forward relative to its largest single activation: about 3.3x measured with
# ru_maxrss on drn-t x4 (skip copies, concatenations and the upsampled input coexist); 6 leaves margin.
_PEAK_ACTIVATION_FACTOR = 6.0
# Tile padding for a module whose spec gives no receptive radius (its tiling is approximate anyway).
_UNKNOWN_RADIUS = 16
_DTYPES = {"float32": torch.float32, "float": torch.float32, "fp32": torch.float32,
           "float16": torch.float16, "half": torch.float16, "fp16": torch.float16,
           "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


class NonFiniteOutputError(RuntimeError):
    """The model produced NaN or infinity for an image: nothing is written for it."""


def _parse_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"dtype must be float32, float16 or bfloat16, got {dtype}")
        return dtype
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"dtype must be float32, float16 or bfloat16, got {dtype!r}") from None


class TorchBackend:
    """A torch module run on one window: (1, 3, h, w) float 0-255 (padded) -> SR (1, 3, sh, sw) 0-255.

    Holds what the upscaler asks a backend: `model`, `spec`, `scale`, `name`, `pool_layers` (the
    global pooling layers whose whole-image means tiling can supply) and the activation size.
    """

    whole_image_means = True  # its GlobalMeanPool layers take the hooks of `tiling.WholeImageMeans`

    def __init__(self, model: nn.Module, scale: int, name: str, device: torch.device, dtype: torch.dtype):
        self.device, self.dtype = device, dtype
        # channels_last: oneDNN's convolutions run 1.4x (DRN-S) to 1.75x (drn-t) faster on this CPU
        self.model = model.to(device=device, dtype=dtype, memory_format=torch.channels_last).eval()
        self.spec = spec_of(self.model)
        self.scale, self.name = scale, name
        self.pool_layers = pooling_layers(self.model) if self.spec.tiling == "global_pool" else []
        self.window_layers = window_layers(self.model) if self.spec.tiling == "placed" else []
        activation_per_px = memory.activation_per_lr_pixel(self.model, device, dtype)
        self.activation_bytes_per_lr_pixel = activation_per_px * torch.finfo(dtype).bits / 8

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(device=self.device, dtype=self.dtype).contiguous(memory_format=torch.channels_last)
        return sr_image(self.model, x)


def _onnx_backend(model, weights, scale, config, device: torch.device, dtype: torch.dtype):
    """The backend for an exported .onnx file; the other arguments may only confirm what it holds."""
    from dualsr.onnx import OnnxBackend

    if isinstance(model, nn.Module):
        raise ValueError(f"{weights}: an ONNX file is the whole model; give it without a module")
    if dtype != torch.float32:
        raise ValueError(f"{weights}: ONNX files compute in float32 (the graph is float32); "
                         "--half/--bf16 apply to torch weights only")
    if config:
        raise ValueError(f"{weights}: model options ({', '.join(config)}) do not apply to an ONNX file")
    backend = OnnxBackend(weights, device)
    if model is not None:
        from dualsr.models import get_spec

        if get_spec(model).name != backend.name:
            raise ValueError(f"{weights}: the file holds {backend.name} x{backend.scale}, not {model}")
    if scale is not None and int(scale) != backend.scale:
        raise ValueError(f"{weights}: wrong scale: the file holds {backend.name} x{backend.scale}, not x{scale}")
    return backend


def _resolve_model(model, weights, scale, config) -> tuple[nn.Module, int, str]:
    """(module, scale, name) for the Upscaler's arguments, through `dualsr.checkpoint.load`."""
    from dualsr.checkpoint import load, load_weights

    if isinstance(model, nn.Module):
        if weights is not None:
            load_weights(model, weights, strict=True)
        found = model_scale(model) or scale
        if found is None:
            raise ValueError("give scale= for a model that does not say its scale")
        if scale is not None and found != scale:
            raise ValueError(f"the model is x{found}, not x{scale}")
        spec = spec_of(model)
        return model, int(found), spec.name if spec.name != "module" else type(model).__name__
    if weights is None:  # the default for this scale, or the named model's shipped file
        weights = weights_for(model, scale)
    loaded = load(weights, name=model, scale=scale, **config)
    return loaded.model, loaded.scale, loaded.name


class Upscaler:
    """Super-resolve images with a model, tiled so that memory is bounded by the tile.

    model: None (the shipped default model), a registry name (with `weights`), or an nn.Module.
    weights: a weights file (safetensors, official .pt/.pth, BasicSR) loaded strictly, or a .onnx
        file written by `dualsr.onnx.export_onnx`, run by onnxruntime (float32 only; `model` and
        `scale` may only confirm what it holds; onnxruntime uses torch's thread count).
    scale: the model's scale; guessed from the weights when omitted (the scale whose
        architecture the file fits), else 4.
    tile: None (whole image at once), an LR tile size in pixels, or "auto" (from free memory).
    tile_pad: LR pixels of context around each tile; default: the model's receptive radius, which
        makes tiles exact (up to float rounding) for local models and, with `global_stats`, DRN.
    global_stats: compute channel-attention means over the whole image when tiling (exact, one
        extra partial pass per attention layer); False uses per-tile means (faster, approximate).
    dtype: float32, float16 or bfloat16 for the model's arithmetic (float32 for ONNX files).
    progress: report tiles on stderr (`dualsr.progress`: a bar on a terminal, periodic lines otherwise).
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
        config = dict(model_kwargs or {})
        from dualsr.onnx import is_onnx_path

        if is_onnx_path(weights):
            self.backend = _onnx_backend(model, weights, scale, config, self.device, self.dtype)
        else:
            module, found_scale, name = _resolve_model(model, weights, scale, config)
            self.backend = TorchBackend(module, found_scale, name, self.device, self.dtype)
        self.model = self.backend.model  # the torch module (None for an ONNX file)
        self.spec = spec = self.backend.spec
        self.scale, self.name = self.backend.scale, self.backend.name
        if self.dtype != torch.float32 and not spec.half_safe:
            warnings.warn(f"{spec.name} is not marked safe in {self.dtype}; expect degraded output", stacklevel=2)
        radius = spec.receptive_radius(self.model) if spec.receptive_radius is not None else _UNKNOWN_RADIUS
        self.receptive_radius = int(math.ceil(radius))
        if tile_pad is None and spec.default_tile_pad is not None:
            tile_pad = spec.default_tile_pad(self.model)
        self.tile_pad = self.receptive_radius if tile_pad is None else int(tile_pad)
        if self.tile_pad < 0:
            raise ValueError(f"tile_pad must be >= 0, got {tile_pad}")
        self.bytes_per_lr_pixel = self.backend.activation_bytes_per_lr_pixel * _PEAK_ACTIVATION_FACTOR
        if not (tile is None or tile == "auto" or (isinstance(tile, int) and tile > 0)):
            raise ValueError(f"tile must be None, 'auto' or a positive int, got {tile!r}")
        self.tile = tile
        self.global_stats = global_stats
        self.progress = progress
        # layers that pool over the whole image; each needs one statistics pass when tiling exactly
        # (none for an ONNX graph, which cannot take whole-image means)
        self.pool_layers = self.backend.pool_layers
        self._warned_approximate = False

    @property
    def exact_tiling(self) -> bool:
        """Whether tiled output equals untiled output up to float rounding (with the current settings)."""
        if self.spec.tiling == "approximate":
            return False
        if self.spec.tiling == "global_pool" and not self.backend.whole_image_means:  # ONNX: per-tile means
            return False
        if self.spec.tiling == "placed" and not self.backend.window_layers:  # ONNX: windows not placed
            return False
        if self.pool_layers and not self.global_stats:
            return False
        return self.tile_pad >= self.receptive_radius

    def tile_for(self, height: int, width: int) -> int | None:
        """The LR tile size used for an image of this size (None: the whole image at once)."""
        if self.tile != "auto":
            return self.tile
        budget = memory.available_memory(self.device) * _AUTO_MEMORY_FRACTION
        if height * width * self.bytes_per_lr_pixel <= budget:
            return None
        side = int(math.sqrt(budget / self.bytes_per_lr_pixel)) - 2 * self.tile_pad
        return max(32, side // 16 * 16)

    # -------------------------------------------------------------------- running

    def _forward(self, window: torch.Tensor) -> torch.Tensor:
        """(3, h, w) float 0-255 -> (3, h*s, w*s) float32 on CPU."""
        h, w = window.shape[-2:]
        x = window[None]
        # pad bottom/right by replication to the model's size multiple and minimum size; cropped below
        pad_h, pad_w = self.spec.padded_size(h) - h, self.spec.padded_size(w) - w
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        out = self.backend(x)
        if not bool(torch.isfinite(out).all()):
            hint = " (try float32)" if self.dtype != torch.float32 else ""
            raise NonFiniteOutputError(f"the model produced non-finite values (NaN/inf){hint}; nothing was written")
        s = self.scale
        return out[0, :, : h * s, : w * s].to(device="cpu", dtype=torch.float32)

    def _forward_window(self, rgb: torch.Tensor, t, image_size: tuple[int, int], tiled: bool) -> torch.Tensor:
        """`_forward` of tile t's window; a "placed" model's layers are told where it lies meanwhile."""
        window = rgb[:, t.wy0:t.wy1, t.wx0:t.wx1]
        layers = self.backend.window_layers if tiled else []
        placement = TileWindow(*image_size, t.wy0, t.wx0, t.wy1 - t.wy0, t.wx1 - t.wx0)
        for layer in layers:
            layer.window = placement
        try:
            return self._forward(window)
        finally:
            for layer in layers:
                layer.window = None

    def _progress(self, total: int, desc: str):
        from dualsr.progress import Progress

        # a bar on a terminal; in a log, one plain line every 30 s for an image that takes that long
        return Progress(total=total, desc=desc, unit="tile", leave=False, interval=30.0,
                        disable=not self.progress or total <= 1)

    def upscale_planes(
        self,
        rgb: torch.Tensor,
        alpha: torch.Tensor | None = None,
        grayscale: bool = False,
        fmt: OutputFormat = FORMAT_UINT8,
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
        tiles = make_tiles(height, width, tile, self.tile_pad)
        if len(tiles) > 1:
            # untiled, the model sees the image replicate-padded to its size multiple; so must the
            # tiles at the bottom and right edge, or they would see the convolutions' zeros there.
            # Windows are then aligned to the multiple: no padding inside the image.
            padded = self.spec.padded_size(height), self.spec.padded_size(width)
            if padded != (height, width):
                rgb = F.pad(rgb[None], (0, padded[1] - width, 0, padded[0] - height), mode="replicate")[0]
            tiles = make_tiles(*padded, tile, self.tile_pad, multiple=self.spec.size_multiple,
                               phase=self.spec.tile_phase, min_size=self.spec.min_input)
        if len(tiles) > 1 and not self.exact_tiling and not self._warned_approximate:
            self._warned_approximate = True
            hint = ""
            if self.spec.tiling == "global_pool" and not self.backend.whole_image_means:
                why = "per-tile attention means: an ONNX graph cannot take whole-image means"
            elif self.spec.tiling == "placed" and not self.backend.window_layers:
                why = "an ONNX graph cannot be told where a tile lies"
            elif self.spec.tiling == "placed":
                why = f"less context than the receptive radius {self.receptive_radius}"
                hint = "; dualsr's benchmarks/REPORT.md measures the error, a larger tile_pad lowers it"
            else:
                why = "per-tile attention means" if self.pool_layers else "non-local layers"
            warnings.warn(f"{self.name}: tiled output only approximates the untiled one ({why}, "
                          f"tile_pad {self.tile_pad}){hint}", stacklevel=2)
        image_size = tuple(rgb.shape[-2:])  # the (padded) image the windows are cut from
        use_stats = len(tiles) > 1 and self.global_stats and bool(self.pool_layers)
        n_passes = (len(self.pool_layers) if use_stats else 0) + 1
        with torch.inference_mode(), self._progress(len(tiles) * n_passes, desc) as bar:
            pooling = WholeImageMeans(self.pool_layers) if use_stats else None
            with pooling if pooling is not None else contextlib.nullcontext():
                while pooling is not None and not pooling.complete:
                    pooling.start_pass()
                    for t in tiles:
                        pooling.window = (t.wy1 - t.wy0, t.wx1 - t.wx0, *t.core_in_window())
                        try:
                            self._forward_window(rgb, t, image_size, len(tiles) > 1)
                        except StopForward:
                            pass
                        bar.update()
                    pooling.finish_pass()
                for t in tiles:
                    sr = self._forward_window(rgb, t, image_size, len(tiles) > 1)
                    cy0, cy1, cx0, cx1 = t.core_in_window()
                    y1, x1 = min(t.y1, height), min(t.x1, width)  # cores in the padding are dropped
                    core = sr[:, cy0 * s:(cy0 + y1 - t.y0) * s, cx0 * s:(cx0 + x1 - t.x0) * s]
                    if grayscale:
                        core = core.mean(dim=0, keepdim=True)
                    out[t.y0 * s:y1 * s, t.x0 * s:x1 * s, :colour_channels] = fmt.convert(core)
                    del sr, core
                    bar.update()
        if alpha is not None:
            out[:, :, colour_channels:] = self._resize_alpha(alpha, tile, fmt)
        return out

    def _resize_alpha(self, alpha: torch.Tensor, tile: int | None, fmt: OutputFormat) -> np.ndarray:
        """MATLAB-bicubic upscaling of a (1, H, W) 0-255 plane, tile by tile, into (sH, sW, 1)."""
        alpha = alpha.detach().to("cpu", torch.float32)
        height, width = alpha.shape[-2:]
        s = self.scale
        out = np.empty((height * s, width * s, 1), dtype=fmt.dtype)
        for t in make_tiles(height, width, tile, _ALPHA_PAD):
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


__all__ = ["NonFiniteOutputError", "Upscaler", "WeightsRequiredError"]
