"""Blind degradations: kernels, the degrade pipeline, blind test sets and `dualsr degrade`."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dualsr.data.degrade import (
    DegradationError, blur, delta_kernel, downsample, gaussian_kernel, kernel_moments, load_kernel,
    parse_degradation, save_kernel,
)
from dualsr.data.resize import imresize

REPO = Path(__file__).resolve().parents[1]


def _covariance(sx, sy, theta):
    c, s = math.cos(theta), math.sin(theta)
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    return rot @ torch.diag(torch.tensor([sx * sx, sy * sy], dtype=torch.float64)) @ rot.T


@pytest.mark.parametrize("sx, sy, theta", [(1.0, 1.0, 0.0), (2.5, 1.0, 0.6), (3.0, 0.8, -2.0), (1.5, 2.8, 1.2)])
def test_gaussian_kernel_has_the_stated_shape_sum_and_covariance(sx, sy, theta):
    k = gaussian_kernel(31, sx, sy, theta)
    assert k.shape == (31, 31) and abs(float(k.sum()) - 1) < 1e-12 and float(k.min()) > 0
    # 31 taps = +-15 pixels >= 5 sigma here: truncation moves the moments by far less than 1%
    assert torch.allclose(kernel_moments(k), _covariance(sx, sy, theta), rtol=0.01, atol=0.01)
    # the sigma_x axis really is rotated by theta: a wrong sign or axis order fails here
    if sx != sy:
        assert not torch.allclose(kernel_moments(k), _covariance(sx, sy, -theta), rtol=0.01, atol=0.01)
        assert not torch.allclose(kernel_moments(k), _covariance(sy, sx, theta), rtol=0.01, atol=0.01)


def test_setting2_kernels_sum_to_one_and_track_their_parameters_despite_tap_noise():
    d = parse_degradation({"type": "aniso"})
    assert d.size == 31 and d.tap_noise() == [1.0, 1.25]
    rng = np.random.default_rng(0)
    for _ in range(20):
        k, p = d.sample_kernel(rng)
        assert k.shape == (31, 31) and abs(float(k.sum()) - 1) < 1e-12
        assert 0.6 <= p["sigma_x"] <= 5 and 0.6 <= p["sigma_y"] <= 5 and -math.pi <= p["theta"] <= math.pi
        clean = gaussian_kernel(31, p["sigma_x"], p["sigma_y"], p["theta"])
        # taps x U(1, 1.25) renormalised: each tap within [1/1.25, 1.25] of the clean one
        ratio = k / clean
        assert float(ratio.min()) >= 1 / 1.25 - 1e-9 and float(ratio.max()) <= 1.25 + 1e-9
        # moments: the noise is independent per tap, so they stay within a few % (truncation at sigma 5: ~3%)
        big = max(p["sigma_x"], p["sigma_y"])
        assert torch.allclose(kernel_moments(k), kernel_moments(clean), atol=0.05 * big * big)
    fixed = parse_degradation({"type": "aniso", "sigma_x": 2.5, "sigma_y": 1.0, "theta": 0.6})
    assert fixed.tap_noise() is None
    k1, _ = fixed.sample_kernel(np.random.default_rng(1))
    k2, _ = fixed.sample_kernel(np.random.default_rng(2))
    assert torch.equal(k1, k2) and torch.equal(k1, gaussian_kernel(31, 2.5, 1.0, 0.6))


def test_kernel_saves_and_reads_back(tmp_path):
    k, _ = parse_degradation("aniso").sample_kernel(np.random.default_rng(3))
    assert torch.equal(load_kernel(save_kernel(k, tmp_path / "k.npy")), k)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("size", [1, 31])
def test_blur_with_a_delta_then_bicubic_is_plain_bicubic_exactly(dtype, size):
    hr = torch.floor(torch.rand(2, 3, 48, 40, dtype=torch.float64) * 256).to(dtype)
    d = parse_degradation({"type": "delta", "size": size})
    lr = d.apply(hr, delta_kernel(size)[None].expand(2, -1, -1), 4)
    assert torch.equal(lr, imresize(hr, 0.25, round_uint8=True))
    assert torch.equal(blur(hr, delta_kernel(size)), hr)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_batch_of_degradations_equals_per_sample_degradations(dtype):
    d = parse_degradation({"type": "aniso"})
    hr = (torch.rand(4, 3, 64, 48, dtype=torch.float64) * 255).to(dtype)
    kernels, _ = d.sample_kernels(np.random.default_rng(0), 4)
    batch = d.apply(hr, kernels, 4)
    single = torch.cat([d.apply(hr[i:i + 1], kernels[i:i + 1], 4) for i in range(4)])
    assert torch.equal(batch, single)
    assert torch.equal(batch, batch.round()) and batch.min() >= 0 and batch.max() <= 255
    # and the blur really is a convolution: against conv2d with the flipped kernel
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(hr[:1].double(), (15,) * 4, mode="reflect"),
                                     kernels[0].flip(-1).flip(-2).expand(3, 1, 31, 31), groups=3)
    assert torch.allclose(blur(hr[:1].double(), kernels[:1]), ref, atol=1e-9)
    # a degradation draws one kernel per sample: every sample differs from its neighbour's kernel
    lr, drawn = d.degrade(hr, 4, np.random.default_rng(5))
    assert lr.shape == (4, 3, 16, 12) and not torch.equal(drawn[0], drawn[1])


def test_bd_is_a_7x7_gaussian_then_matlab_nearest_decimation():
    d = parse_degradation("bd")
    assert d.options["size"] == 7 and d.options["sigma"] == 1.6 and d.options["downsample"] == "decimate"
    x = torch.arange(36, dtype=torch.float64).reshape(1, 1, 6, 6)
    # MATLAB imresize(x, 1/3, 'nearest') keeps rows/columns 2, 5 (1-based), i.e. 1, 4
    assert torch.equal(downsample(x, 3, "decimate")[0, 0], x[0, 0, 1::3, 1::3])
    assert torch.equal(downsample(x, 2, "decimate")[0, 0], x[0, 0, 1::2, 1::2])
    k, _ = d.sample_kernel(np.random.default_rng(0))
    assert torch.allclose(k, gaussian_kernel(7, 1.6))


def test_noise_and_jpeg_stages_are_seeded_and_off_by_default():
    hr = torch.rand(2, 3, 64, 64, dtype=torch.float64) * 255
    plain = parse_degradation({"type": "iso", "sigma": 1.0})
    staged = parse_degradation({"type": "iso", "sigma": 1.0, "noise": [5, 10], "jpeg": [60, 90]})
    a, _ = staged.degrade(hr, 4, np.random.default_rng(1))
    b, _ = staged.degrade(hr, 4, np.random.default_rng(1))
    c, _ = plain.degrade(hr, 4, np.random.default_rng(1))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_degradation_options_are_one_line_errors():
    with pytest.raises(DegradationError, match="unknown degradation type 'gauss'"):
        parse_degradation({"type": "gauss"})
    with pytest.raises(DegradationError, match="sigma_z"):
        parse_degradation({"type": "aniso", "sigma_z": 1})
    with pytest.raises(DegradationError, match="odd"):
        parse_degradation({"type": "aniso", "size": 30})
    with pytest.raises(DegradationError, match="smaller than the 31x31"):
        blur(torch.rand(1, 3, 20, 40), gaussian_kernel(31, 2.0))


def _images(folder: Path, sizes=((40, 48), (36, 44), (44, 40)), gray_first=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        yy, xx = np.mgrid[0:h, 0:w]
        image = np.stack([127 + 120 * np.sin(0.2 * yy + 0.13 * xx * (c + 1) + i) for c in range(3)], -1)
        image = (image + rng.normal(0, 5, image.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(image[:, :, 0] if (gray_first and i == 0) else image).save(folder / f"im{i}.png")
    return folder


def test_a_blind_set_regenerates_bit_for_bit_from_its_manifest(tmp_path):
    from dualsr.data.blindset import check_blind_set, make_blind_set

    out = tmp_path / "blind"
    manifest = make_blind_set(_images(tmp_path / "hr"), out, 4, "aniso", seed=0)
    assert [r["index"] for r in manifest["images"]] == [0, 1, 2]
    assert sorted(p.name for p in out.iterdir()) == ["HR", "LR", "kernels", "manifest.json"]
    assert check_blind_set(out) == (3, [])
    # the same command again gives the same files
    again = make_blind_set(tmp_path / "hr", tmp_path / "again", 4, "aniso", seed=0)
    assert [r["sha256"] for r in again["images"]] == [r["sha256"] for r in manifest["images"]]
    other = make_blind_set(tmp_path / "hr", tmp_path / "seed1", 4, "aniso", seed=1)
    assert all(a["sha256"] != b["sha256"] for a, b in zip(other["images"], manifest["images"]))
    # a tampered LR file and a tampered manifest are both caught
    lr_file = out / manifest["images"][1]["lr"]
    array = np.asarray(Image.open(lr_file)).copy()
    array[0, 0, 0] ^= 1
    Image.fromarray(array).save(lr_file)
    count, problems = check_blind_set(out)
    assert count == 3 and len(problems) == 1 and "LR file differs" in problems[0]
    data = json.loads((out / "manifest.json").read_text())
    data["images"][2]["seed"] = 5
    (out / "manifest.json").write_text(json.dumps(data))
    _, problems = check_blind_set(out)
    assert any("kernel re-derived" in p for p in problems) and any("LR re-derived" in p for p in problems)


def _cli(args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "dualsr", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_degrade_and_test_commands_on_a_generated_folder(tmp_path):
    _images(tmp_path / "Set" / "HR")
    made = _cli(["degrade", "--data", "Set", "--out", "blind/Set_aniso", "--scale", "4", "--kernel", "aniso",
                 "--seed", "0"], tmp_path)
    assert made.returncode == 0, made.stderr
    fixed = _cli(["degrade", "--data", "Set", "--out", "blind/Set_fixed", "--kernel", "aniso", "--sigma-x", "2.5",
                  "--sigma-y", "1.0", "--theta", "0.6"], tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    kernels = [load_kernel(p) for p in sorted((tmp_path / "blind" / "Set_fixed" / "kernels").iterdir())]
    assert all(torch.equal(k, gaussian_kernel(31, 2.5, 1.0, 0.6)) for k in kernels)
    assert _cli(["degrade", "--data", "Set", "--out", "blind/Set_bd", "--kernel", "bd"], tmp_path).returncode == 0
    checked = _cli(["degrade", "--check", "blind/Set_aniso"], tmp_path)
    assert checked.returncode == 0 and "bit for bit" in checked.stdout
    scored = _cli(["test", "--model", "bicubic", "--scale", "4", "--data", "blind/Set_aniso", "Set",
                   "--json", "r.json"], tmp_path)
    assert scored.returncode == 0, scored.stderr
    sets = {s["name"]: s for s in json.loads((tmp_path / "r.json").read_text())["sets"]}
    assert sets["Set_aniso"]["n"] == 3 and sets["Set_aniso"]["psnr"] < sets["Set"]["psnr"] - 0.5
    wrong = _cli(["test", "--model", "bicubic", "--scale", "2", "--data", "blind/Set_aniso"], tmp_path)
    assert wrong.returncode != 0 and "made for X4, not X2" in wrong.stderr


def _one_line_error(result, needle):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr


def test_degrade_bad_inputs_are_one_line_errors_and_leave_nothing(tmp_path):
    _one_line_error(_cli(["degrade", "--data", "nowhere/", "--out", "o1"], tmp_path), "no such folder")
    _images(tmp_path / "notes")
    (tmp_path / "notes" / "readme.txt").write_text("x")
    _one_line_error(_cli(["degrade", "--data", "notes", "--out", "o2"], tmp_path), "not an image file")
    _images(tmp_path / "broken")
    (tmp_path / "broken" / "zz.png").write_bytes(b"not a png")
    _one_line_error(_cli(["degrade", "--data", "broken", "--out", "o3"], tmp_path), "zz.png")
    _images(tmp_path / "small", sizes=((40, 48), (24, 40)))
    _one_line_error(_cli(["degrade", "--data", "small", "--out", "o4"], tmp_path), "smaller than the 31x31 kernel")
    _one_line_error(_cli(["degrade", "--check", "small"], tmp_path), "no manifest.json")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("o", ".o"))]
    (tmp_path / "exists").mkdir()
    _one_line_error(_cli(["degrade", "--data", "small", "--out", "exists"], tmp_path), "already exists")


def test_training_patches_are_degraded_on_the_fly_deterministically(tmp_path):
    from dualsr.data.datasets import PatchSampler, build_pyramid_cache, find_images

    images = build_pyramid_cache(find_images(_images(tmp_path / "hr", sizes=((64, 72), (68, 64)))), 4)
    d = parse_degradation("aniso")
    blind, plain = PatchSampler(images, 4, 32, seed=1, degradation=d), PatchSampler(images, 4, 32, seed=1)
    a, b, p = blind.batch(3, 0, 4), blind.batch(3, 0, 4), plain.batch(3, 0, 4)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert torch.equal(a[-1], p[-1]) and torch.equal(a[1], p[1])  # same crops, clean intermediate levels
    assert not torch.equal(a[0], p[0]) and not torch.equal(blind.batch(4, 0, 4)[0], a[0])
    kernels, _ = d.sample_kernels(np.random.default_rng([1, 0, 3, 7]), 4)
    assert torch.equal(a[0], d.apply(a[-1], kernels, 4))
