"""Benchmark evaluation: the bicubic baseline reproduces the published x4 figures, and the set layouts.

Published bicubic x4 (SRCNN/EDSR/RCAN tables, ../shared/data/README.md): Set5 28.42 / 0.8104,
Set14 26.00 / 0.7027, B100 25.96 / 0.6675; Set5 per image baby 31.78, bird 30.18, butterfly 22.10,
head 31.61, woman 26.47.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import shared_path
from dualsr.cli import main
from dualsr.data.benchmark import BenchmarkSet
from dualsr.data.resize import imresize
from dualsr.evaluate import evaluate
from dualsr.models import ModelSpec

@pytest.fixture
def one_thread():
    """Bicubic + metrics are many small ops: one torch thread is ~3x faster on a busy 2-core CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SET5_PER_IMAGE = {"baby": 31.78, "bird": 30.18, "butterfly": 22.10, "head": 31.61, "woman": 26.47}


def test_bicubic_x4_set5_matches_published_per_image_and_mean(one_thread):
    (score,) = evaluate(None, [shared_path("data", "benchmark", "Set5")], 4)
    assert score.n == 5 and not score.problems
    for image in score.images:
        assert abs(image.psnr - SET5_PER_IMAGE[image.name]) <= 0.02, (image.name, image.psnr)
    assert abs(score.psnr - 28.42) <= 0.02
    assert abs(score.ssim - 0.8104) <= 0.002


def test_bicubic_x4_set5_through_the_cli(tmp_path, capsys):
    data = shared_path("data", "benchmark", "Set5")
    report = tmp_path / "r.json"
    assert main(["test", "--model", "bicubic", "--scale", "4", "--data", str(data), "--json", str(report)]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Set5")]
    (result,) = json.loads(report.read_text())["sets"]
    assert row.split()[1:] == ["5", f"{result['psnr']:.2f}", f"{result['ssim']:.4f}"]
    assert abs(result["psnr"] - 28.42) <= 0.02 and abs(result["ssim"] - 0.8104) <= 0.002


@pytest.mark.slow
def test_bicubic_x4_b100_matches_published(one_thread):
    (score,) = evaluate(None, [shared_path("data", "benchmark", "B100")], 4)
    assert score.n == 100 and not score.problems
    assert abs(score.psnr - 25.96) <= 0.02
    assert abs(score.ssim - 0.6675) <= 0.002


@pytest.mark.slow
def test_set14_gray_image_convention(one_thread):
    # bridge.png is grayscale. Replicated to RGB (this project's default), its Y spans 16..235 and
    # its PSNR rises; scored as gray values (--gray-as-y) the set matches the published 26.00.
    data = shared_path("data", "benchmark", "Set14")
    (as_rgb,) = evaluate(None, [data], 4)
    (as_gray,) = evaluate(None, [data], 4, gray_as_y=True)
    assert abs(as_gray.psnr - 26.00) <= 0.02 and abs(as_gray.ssim - 0.7027) <= 0.002
    rgb_rows, gray_rows = {i.name: i for i in as_rgb.images}, {i.name: i for i in as_gray.images}
    assert [name for name, row in rgb_rows.items() if row.grayscale] == ["bridge"]
    for name, row in rgb_rows.items():
        if name != "bridge":
            assert row.psnr == gray_rows[name].psnr
    assert rgb_rows["bridge"].psnr > gray_rows["bridge"].psnr + 0.5


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_hr_subfolder_and_flat_folder_give_the_same_modcropped_pairs(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (38, 41, 3), dtype=np.uint8)
    _write(tmp_path / "Nested" / "HR" / "img.png", image)
    _write(tmp_path / "Flat" / "img.png", image)
    (nested,) = list(BenchmarkSet(tmp_path / "Nested", 4))
    (flat,) = list(BenchmarkSet(tmp_path / "Flat", 4))
    assert nested.hr.shape == (3, 36, 40) and nested.lr.shape == (3, 9, 10)
    assert torch.equal(nested.hr, torch.from_numpy(image[:36, :40]).permute(2, 0, 1).float())
    assert torch.equal(nested.lr, flat.lr) and torch.equal(nested.hr, flat.hr)
    expected_lr = imresize(nested.hr.double(), 0.25, round_uint8=True).float()
    assert torch.equal(nested.lr, expected_lr)


def test_lr_bicubic_folder_is_used_when_present(tmp_path):
    hr = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    _write(tmp_path / "S" / "HR" / "img.png", hr)
    (made,) = evaluate(None, [tmp_path / "S"], 4)
    stored_lr = np.full((8, 8, 3), 128, np.uint8)  # deliberately not the bicubic LR
    _write(tmp_path / "S" / "LR_bicubic" / "X4" / "imgx4.png", stored_lr)
    (pair,) = list(BenchmarkSet(tmp_path / "S", 4))
    assert torch.equal(pair.lr, torch.full((3, 8, 8), 128.0))
    (read,) = evaluate(None, [tmp_path / "S"], 4)
    assert read.psnr != made.psnr


def test_lr_file_of_the_wrong_size_is_a_problem_not_a_crash(tmp_path):
    _write(tmp_path / "S" / "HR" / "img.png", np.zeros((32, 32, 3), np.uint8))
    _write(tmp_path / "S" / "LR_bicubic" / "X4" / "imgx4.png", np.zeros((7, 8, 3), np.uint8))
    bench = BenchmarkSet(tmp_path / "S", 4)
    assert list(bench) == []
    ((path, reason),) = bench.problems
    assert path.name == "imgx4.png" and "does not match" in reason


def test_bicubic_self_ensemble_equals_plain_bicubic(tmp_path):
    # MATLAB bicubic commutes with flips and transposes, so the x8 ensemble changes nothing.
    _write(tmp_path / "S" / "a.png", np.random.default_rng(2).integers(0, 256, (36, 44, 3), dtype=np.uint8))
    (plain,) = evaluate(None, [tmp_path / "S"], 4)
    (ensemble,) = evaluate(None, [tmp_path / "S"], 4, self_ensemble=True)
    assert ensemble.psnr == pytest.approx(plain.psnr, abs=1e-3)


class _BicubicNet(nn.Module):
    """A stand-in SR model: bicubic, returned as DRN's list of outputs, demanding padded inputs."""

    def __init__(self, scale: int, multiple: int):
        super().__init__()
        self.scale, self.seen = scale, []
        self.spec = ModelSpec("bicubic-net", builder=_BicubicNet, scales=(scale,), size_multiple=multiple)

    def forward(self, x):
        self.seen.append((tuple(x.shape[-2:]), self.training, torch.is_inference_mode_enabled()))
        assert x.shape[-2] % self.spec.size_multiple == 0 and x.shape[-1] % self.spec.size_multiple == 0
        return [x, imresize(x.double(), self.scale).float()]


def test_models_use_last_output_padding_and_inference_mode(tmp_path):
    _write(tmp_path / "S" / "a.png", np.random.default_rng(3).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    (bicubic,) = evaluate(None, [tmp_path / "S"], 4)
    model = _BicubicNet(4, multiple=1)
    (scored,) = evaluate(model, [tmp_path / "S"], 4)
    assert scored.psnr == pytest.approx(bicubic.psnr, abs=1e-6)
    assert model.seen == [((10, 10), False, True)] and model.training  # eval inside, restored after
    padded = _BicubicNet(4, multiple=8)
    (score,) = evaluate(padded, [tmp_path / "S"], 4)
    assert padded.seen[0][0] == (16, 16) and score.n == 1


def test_evaluation_restores_the_torch_thread_count(tmp_path):
    _write(tmp_path / "S" / "a.png", np.random.default_rng(4).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        evaluate(None, [tmp_path / "S"], 4)
        evaluate(_BicubicNet(4, multiple=1), [tmp_path / "S"], 4)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
