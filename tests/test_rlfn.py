"""RLFN x4: the official weights load strictly and score as released with dualsr's evaluation."""
from __future__ import annotations

import pytest
import torch
from conftest import shared_path

from dualsr.models import create_model


def _official_rlfn_x4():
    model = create_model("rlfn", 4).eval()
    state = torch.load(shared_path("weights", "rlfn", "rlfn_x4.pth"), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model


def test_rlfn_x4_has_the_published_parameter_count():
    model = create_model("rlfn", 4)
    assert sum(p.numel() for p in model.parameters()) == 543_740


def test_rlfn_official_weights_load_strictly():
    _official_rlfn_x4()  # raises on any missing/unexpected/mis-shaped key


def test_rlfn_full_widths_equal_default_model():
    from dualsr.models.rlfn import full_widths

    default = create_model("rlfn", 4)
    explicit = create_model("rlfn", 4, widths=full_widths())
    explicit.load_state_dict(default.state_dict(), strict=True)
    x = torch.rand(1, 3, 20, 24) * 255
    with torch.no_grad():
        assert torch.equal(default(x), explicit(x))


def _mean_psnr_y(model, set_name: str, scale: int = 4) -> float:
    """Y-PSNR with dualsr's evaluation (MATLAB bicubic LR in uint8, rounded SR, border = scale)."""
    from dualsr.evaluate import evaluate

    (score,) = evaluate(model, [shared_path("data", "benchmark", set_name)], scale)
    assert score.n > 0 and not score.problems
    return score.psnr


@pytest.mark.parametrize("set_name, expected", [("Set5", 32.24), ("Set14", 28.62)])
def test_rlfn_x4_scores_as_released(set_name, expected):
    psnr = _mean_psnr_y(_official_rlfn_x4(), set_name)
    assert abs(psnr - expected) <= 0.03, f"{set_name}: {psnr:.3f} dB, expected {expected} +- 0.03"
