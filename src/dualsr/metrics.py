"""PSNR and SSIM computed the way the SR papers (SRCNN, EDSR, RCAN, DRN) report them.

The published tables come from MATLAB scripts, and several of their details move the figures by
tenths of a dB, so each one is pinned here:

- the SR image is clamped to [0, 255] and rounded to uint8 first (half away from zero, as MATLAB's
  uint8 conversion does); so is the HR image, which normally already is uint8;
- PSNR/SSIM are measured on the BT.601 luma of MATLAB's `rgb2ycbcr`,
  Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 for R, G, B in [0, 1], scaled back to 0-255
  and *not* rounded; the "RGB" variants skip this step;
- `crop_border` pixels (the scale factor) are removed from every border first;
- SSIM is Wang et al.'s `ssim_index.m`: 11x11 Gaussian window with sigma 1.5, K = (0.01, 0.03),
  L = 255, "valid" filtering, no downsampling, in float64; on RGB it is the mean over channels.

Images may be torch tensors on the 0-255 scale shaped (3, H, W), (1, H, W), (H, W) or (N, C, H, W)
(the mean over the N per-image figures is returned, the set convention), or numpy arrays shaped
(H, W, C) or (H, W). Grayscale images are replicated to RGB before the luma conversion.
"""
from __future__ import annotations

import math

import numpy as np
import torch

ImageLike = torch.Tensor | np.ndarray

# MATLAB rgb2ycbcr, luma row, for [0, 1] inputs.
_Y_WEIGHTS = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64)
_SSIM_WINDOW, _SSIM_SIGMA, _SSIM_K = 11, 1.5, (0.01, 0.03)
_PEAK = 255.0


def _as_batch(image: ImageLike) -> torch.Tensor:
    """Any accepted layout -> float64 tensor (N, 3, H, W) on the 0-255 scale, grayscale replicated."""
    if isinstance(image, np.ndarray):
        array = np.asarray(image, dtype=np.float64)
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3:
            raise ValueError(f"numpy images must be (H, W) or (H, W, C), got shape {image.shape}")
        batch = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None]
    elif isinstance(image, torch.Tensor):
        batch = image.detach().to("cpu", torch.float64)
        if batch.dim() == 2:
            batch = batch[None]
        if batch.dim() == 3:
            batch = batch[None]
        if batch.dim() != 4:
            raise ValueError(f"tensor images must be (H, W), (C, H, W) or (N, C, H, W), got {tuple(image.shape)}")
    else:
        raise TypeError(f"expected a torch tensor or numpy array, got {type(image).__name__}")
    channels = batch.shape[1]
    if channels == 1:
        batch = batch.expand(-1, 3, -1, -1)
    elif channels != 3:
        raise ValueError(f"images must have 1 or 3 channels, got {channels}")
    return batch


def quantize_uint8(image: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 255] and round half away from zero, keeping the float dtype (MATLAB's im2uint8)."""
    return torch.floor(image.clamp(0, 255) + 0.5)


def rgb_to_y(image: torch.Tensor) -> torch.Tensor:
    """BT.601 Y of (N, 3, H, W) 0-255 RGB as MATLAB's rgb2ycbcr computes it, unrounded, (N, 1, H, W)."""
    weights = _Y_WEIGHTS.to(image.device, image.dtype).view(1, 3, 1, 1)
    return 16.0 + (image * weights).sum(dim=1, keepdim=True) / 255.0


def _prepare(sr: ImageLike, hr: ImageLike, crop_border: int, y_channel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    sr_b, hr_b = quantize_uint8(_as_batch(sr)), quantize_uint8(_as_batch(hr))
    if sr_b.shape != hr_b.shape:
        raise ValueError(f"SR and HR shapes differ: {tuple(sr_b.shape)} vs {tuple(hr_b.shape)}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border:
        height, width = sr_b.shape[-2:]
        if height <= 2 * crop_border or width <= 2 * crop_border:
            raise ValueError(f"a {height}x{width} image has nothing left after cropping {crop_border} pixels "
                             "per border")
        sr_b = sr_b[..., crop_border:-crop_border, crop_border:-crop_border]
        hr_b = hr_b[..., crop_border:-crop_border, crop_border:-crop_border]
    if y_channel:
        sr_b, hr_b = rgb_to_y(sr_b), rgb_to_y(hr_b)
    return sr_b, hr_b


def _psnr_per_image(sr: torch.Tensor, hr: torch.Tensor) -> list[float]:
    mse = ((sr - hr) ** 2).flatten(1).mean(dim=1)
    return [math.inf if m == 0 else 10.0 * math.log10(_PEAK**2 / m) for m in mse.tolist()]


def _gaussian_kernel_1d(size: int = _SSIM_WINDOW, sigma: float = _SSIM_SIGMA) -> torch.Tensor:
    # fspecial('gaussian', 11, 1.5) is the outer product of this normalised 1-D kernel with itself.
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _blur_valid(planes: torch.Tensor) -> torch.Tensor:
    """filter2(window, plane, 'valid') over the last two dims, separably, as 11 shifted adds per axis.

    Shift-and-add beats conv2d here: torch has no fast float64 convolution on CPU.
    """
    g = _gaussian_kernel_1d().tolist()
    size = len(g)
    height, width = planes.shape[-2:]
    rows = sum(g[k] * planes[..., k:height - size + 1 + k, :] for k in range(size))
    return sum(g[k] * rows[..., :, k:width - size + 1 + k] for k in range(size))


def _ssim_map_mean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Wang's ssim_index on (N, C, H, W) float64 planes: mean SSIM per (image, channel), shape (N, C)."""
    n, c, height, width = x.shape
    if height < _SSIM_WINDOW or width < _SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels after cropping, "
                         f"got {height}x{width}")
    c1, c2 = (_SSIM_K[0] * _PEAK) ** 2, (_SSIM_K[1] * _PEAK) ** 2
    mu_x, mu_y, xx, yy, xy = _blur_valid(torch.stack([x, y, x * x, y * y, x * y]))
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    numerator = (2 * mu_xy + c1) * (2 * (xy - mu_xy) + c2)
    denominator = (mu_xx + mu_yy + c1) * ((xx - mu_xx) + (yy - mu_yy) + c2)
    return (numerator / denominator).flatten(2).mean(dim=2)


def psnr_per_image(sr: ImageLike, hr: ImageLike, crop_border: int = 0, y_channel: bool = True) -> list[float]:
    """PSNR in dB of each image of a batch (inf where SR equals HR)."""
    return _psnr_per_image(*_prepare(sr, hr, crop_border, y_channel))


def ssim_per_image(sr: ImageLike, hr: ImageLike, crop_border: int = 0, y_channel: bool = True) -> list[float]:
    """SSIM of each image of a batch (on Y, or the mean over R, G, B when y_channel is False)."""
    sr_p, hr_p = _prepare(sr, hr, crop_border, y_channel)
    return _ssim_map_mean(sr_p, hr_p).mean(dim=1).tolist()


def psnr(sr: ImageLike, hr: ImageLike, crop_border: int = 0, y_channel: bool = True) -> float:
    """Paper-convention PSNR in dB (mean over the batch for (N, C, H, W) inputs)."""
    values = psnr_per_image(sr, hr, crop_border, y_channel)
    return float(np.mean(values))


def ssim(sr: ImageLike, hr: ImageLike, crop_border: int = 0, y_channel: bool = True) -> float:
    """Paper-convention SSIM (Wang's ssim_index; mean over the batch for (N, C, H, W) inputs)."""
    return float(np.mean(ssim_per_image(sr, hr, crop_border, y_channel)))


def psnr_ssim(sr: ImageLike, hr: ImageLike, crop_border: int = 0, y_channel: bool = True) -> tuple[float, float]:
    """Both paper-convention figures at once (the rounding and colour conversion are done once)."""
    sr_p, hr_p = _prepare(sr, hr, crop_border, y_channel)
    return float(np.mean(_psnr_per_image(sr_p, hr_p))), float(_ssim_map_mean(sr_p, hr_p).mean())


__all__ = ["psnr", "ssim", "psnr_ssim", "psnr_per_image", "ssim_per_image", "rgb_to_y", "quantize_uint8"]
