"""RLFN x4: the official weights load strictly and score as released with dualsr's evaluation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import shared_path
from PIL import Image

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
    """Y-PSNR as the papers: MATLAB bicubic LR rounded to uint8, output rounded, border = scale."""
    try:
        from dualsr.evaluate import evaluate  # the project's evaluation, once it exists
    except ImportError:
        evaluate = None
    if evaluate is not None:
        results = evaluate(model, [str(shared_path("data", "benchmark", set_name))], scale)
        return float(_extract_psnr(results, set_name))
    from dualsr.data.resize import imresize

    values = []
    for path in sorted(shared_path("data", "benchmark", set_name, "HR").glob("*.png")):
        image = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
        h, w = image.shape[0] // scale * scale, image.shape[1] // scale * scale
        hr = torch.from_numpy(image[:h, :w].copy()).permute(2, 0, 1)[None]
        lr = imresize(hr, 1 / scale).round().clamp(0, 255)
        with torch.no_grad():
            sr = model(lr).round().clamp(0, 255)
        weights = torch.tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1) / 255
        diff = ((sr - hr) * weights).sum(1)[..., scale:-scale, scale:-scale]
        values.append(10 * np.log10(255.0**2 / diff.pow(2).mean().item()))
    return float(np.mean(values))


def _extract_psnr(results, set_name):
    if isinstance(results, dict):
        entry = results.get(set_name, next(iter(results.values())))
        if isinstance(entry, dict):
            return entry.get("psnr", entry.get("PSNR"))
        return entry[0] if isinstance(entry, (tuple, list)) else entry
    return getattr(results[0], "psnr", results[0])


@pytest.mark.parametrize("set_name, expected", [("Set5", 32.24), ("Set14", 28.62)])
def test_rlfn_x4_scores_as_released(set_name, expected):
    psnr = _mean_psnr_y(_official_rlfn_x4(), set_name)
    assert abs(psnr - expected) <= 0.03, f"{set_name}: {psnr:.3f} dB, expected {expected} +- 0.03"
