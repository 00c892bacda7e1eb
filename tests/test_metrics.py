"""PSNR/SSIM with the papers' conventions: uint8 rounding, BT.601 Y, border crop, Wang's SSIM."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dualsr.metrics import psnr, psnr_per_image, rgb_to_y, ssim

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _random_rgb(seed: int, h: int = 24, w: int = 20) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (3, h, w)).astype(np.float32))


def test_identical_images_give_infinite_psnr_and_unit_ssim():
    image = _random_rgb(0)
    assert psnr(image, image, 4) == math.inf
    assert ssim(image, image, 4) == pytest.approx(1.0, abs=1e-12)
    assert psnr(image, image, 0, y_channel=False) == math.inf
    assert ssim(image, image, 0, y_channel=False) == pytest.approx(1.0, abs=1e-12)


def test_rgb_psnr_of_one_changed_sample_by_hand():
    hr = torch.full((3, 4, 4), 100.0)
    sr = hr.clone()
    sr[0, 1, 2] = 110.0  # one red sample off by 10: MSE = 100 / 48
    assert psnr(sr, hr, 0, y_channel=False) == pytest.approx(10 * math.log10(255**2 * 48 / 100), abs=1e-10)


def test_y_psnr_of_one_changed_sample_by_hand():
    hr = torch.full((3, 4, 4), 100.0)
    sr = hr.clone()
    sr[0, 1, 2] = 110.0  # Y moves by 10 * 65.481 / 255 at one of 16 pixels
    mse = (10 * 65.481 / 255) ** 2 / 16
    assert psnr(sr, hr, 0) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-10)


def test_y_is_matlab_rgb2ycbcr_luma_unrounded():
    rgb = torch.tensor([[[[0.0]], [[0.0]], [[0.0]]], [[[255.0]], [[255.0]], [[255.0]]],
                        [[[255.0]], [[0.0]], [[0.0]]]], dtype=torch.float64)
    y = rgb_to_y(rgb).flatten().tolist()
    assert y == pytest.approx([16.0, 235.0, 16 + 65.481], abs=1e-12)


def test_sr_is_clamped_and_rounded_to_uint8_before_scoring():
    hr = torch.full((3, 6, 6), 100.0)
    assert psnr(hr + 0.49, hr, 0, y_channel=False) == math.inf          # rounds back to 100
    assert psnr(hr + 0.5, hr, 0, y_channel=False) == pytest.approx(20 * math.log10(255))  # rounds up to 101
    white = torch.full((3, 6, 6), 255.0)
    assert psnr(white + 80, white, 0) == math.inf                       # clamped to 255


def test_ssim_of_constant_images_by_hand():
    # Constant planes: zero variance and covariance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b = 100.0, 120.0
    sr, hr = torch.full((3, 15, 15), a), torch.full((3, 15, 15), b)
    expected = (2 * a * b + C1) / (a * a + b * b + C1)
    assert ssim(sr, hr, 0, y_channel=False) == pytest.approx(expected, abs=1e-12)


def _naive_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang's ssim_index, one 11x11 window at a time, with the explicit 2-D Gaussian."""
    coords = np.arange(11) - 5
    window = np.exp(-(coords[:, None] ** 2 + coords[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i:i + 11, j:j + 11], y[i:i + 11, j:j + 11]
            mx, my = (window * px).sum(), (window * py).sum()
            vx = (window * px * px).sum() - mx * mx
            vy = (window * py * py).sum() - my * my
            cov = (window * px * py).sum() - mx * my
            values.append(((2 * mx * my + C1) * (2 * cov + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2)))
    return float(np.mean(values))


def test_ssim_matches_windowed_definition_on_y_and_rgb():
    hr = _random_rgb(1, 16, 18)
    sr = (hr + torch.from_numpy(np.random.default_rng(2).normal(0, 20, hr.shape)).float()).clamp(0, 255).round()
    sr64, hr64 = sr.double().numpy(), hr.double().numpy()
    y_sr = 16 + (65.481 * sr64[0] + 128.553 * sr64[1] + 24.966 * sr64[2]) / 255
    y_hr = 16 + (65.481 * hr64[0] + 128.553 * hr64[1] + 24.966 * hr64[2]) / 255
    assert ssim(sr, hr, 0) == pytest.approx(_naive_ssim(y_sr, y_hr), abs=1e-10)
    per_channel = [_naive_ssim(sr[c].double().numpy(), hr[c].double().numpy()) for c in range(3)]
    assert ssim(sr, hr, 0, y_channel=False) == pytest.approx(np.mean(per_channel), abs=1e-10)
    cropped = _naive_ssim(y_sr[2:-2, 2:-2], y_hr[2:-2, 2:-2])
    assert ssim(sr, hr, 2) == pytest.approx(cropped, abs=1e-10)


def test_border_crop_ignores_differences_in_the_border():
    hr = _random_rgb(3, 30, 30)
    sr = hr.clone()
    sr[:, :4, :] = 0
    sr[:, :, -4:] = 255
    assert psnr(sr, hr, 4) == math.inf
    assert ssim(sr, hr, 4) == pytest.approx(1.0, abs=1e-12)
    assert psnr(sr, hr, 3) < 40


def test_grayscale_inputs_are_replicated_to_rgb():
    rng = np.random.default_rng(4)
    gray_hr = rng.integers(0, 256, (20, 22)).astype(np.uint8)
    gray_sr = np.clip(gray_hr.astype(int) + rng.integers(-9, 10, gray_hr.shape), 0, 255).astype(np.uint8)
    rgb_hr = torch.from_numpy(gray_hr).float().expand(3, -1, -1)
    rgb_sr = torch.from_numpy(gray_sr).float().expand(3, -1, -1)
    for y_channel in (True, False):
        expected = psnr(rgb_sr, rgb_hr, 2, y_channel)
        assert psnr(gray_sr, gray_hr, 2, y_channel) == pytest.approx(expected, abs=1e-12)  # numpy (H, W)
        assert psnr(rgb_sr[:1], rgb_hr[:1], 2, y_channel) == pytest.approx(expected, abs=1e-12)  # (1, H, W)
        assert ssim(gray_sr, gray_hr, 2, y_channel) == pytest.approx(ssim(rgb_sr, rgb_hr, 2, y_channel), abs=1e-12)


def test_numpy_hwc_equals_tensor_chw():
    hr, sr = _random_rgb(5), _random_rgb(6)
    hr_np, sr_np = hr.permute(1, 2, 0).numpy().astype(np.uint8), sr.permute(1, 2, 0).numpy().astype(np.uint8)
    assert psnr(sr_np, hr_np, 2) == pytest.approx(psnr(sr, hr, 2), abs=1e-12)
    assert ssim(sr_np, hr_np, 2) == pytest.approx(ssim(sr, hr, 2), abs=1e-12)


def test_y_psnr_exceeds_full_range_luma_psnr_by_255_over_219():
    # For gray images Y - 16 = 219/255 * gray while 0.299/0.587/0.114 luma = gray, so every error
    # shrinks by 219/255 and the PSNR rises by exactly 20 log10(255/219) dB.
    rng = np.random.default_rng(7)
    hr = torch.from_numpy(rng.integers(0, 256, (16, 16)).astype(np.float32)).expand(3, -1, -1)
    sr = (hr + torch.from_numpy(rng.integers(-12, 13, (16, 16)).astype(np.float32))).clamp(0, 255)
    luma = lambda t: 0.299 * t[0].double() + 0.587 * t[1].double() + 0.114 * t[2].double()  # noqa: E731
    luma_psnr = 10 * math.log10(255**2 / ((luma(sr) - luma(hr)) ** 2).mean().item())
    assert psnr(sr, hr, 0) - luma_psnr == pytest.approx(20 * math.log10(255 / 219), abs=1e-9)


def test_batch_score_is_mean_of_per_image_scores():
    hr = torch.stack([_random_rgb(8), _random_rgb(9)])
    sr = torch.stack([_random_rgb(10), _random_rgb(11)])
    singles = [psnr(sr[i], hr[i], 2) for i in range(2)]
    assert psnr_per_image(sr, hr, 2) == pytest.approx(singles, abs=1e-12)
    assert psnr(sr, hr, 2) == pytest.approx(np.mean(singles), abs=1e-12)
    assert ssim(sr, hr, 2) == pytest.approx(np.mean([ssim(sr[i], hr[i], 2) for i in range(2)]), abs=1e-12)


def test_mismatched_shapes_and_too_small_images_are_rejected():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(torch.zeros(3, 8, 8), torch.zeros(3, 8, 9))
    with pytest.raises(ValueError, match="nothing left"):
        psnr(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8), crop_border=4)
    with pytest.raises(ValueError, match="SSIM needs"):
        ssim(torch.zeros(3, 12, 12), torch.zeros(3, 12, 12), crop_border=1)
