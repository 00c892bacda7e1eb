"""Degradations that turn an HR image into the LR inputs a model is trained on.

`make_pyramid` is the bicubic setting of the DRN paper: every level is MATLAB `imresize` of the
HR image rounded to uint8 values, exactly as the published LR files (DIV2K X2/X4/X8) are made.
Blind degradations (blur kernels, noise, JPEG) will plug in beside `make_pyramid`.
"""
from __future__ import annotations

import math

import torch

from dualsr.data.resize import imresize


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
