"""The weights shipped in the package: one default per scale, small, loaded strictly, with notices."""
from __future__ import annotations

import numpy as np
import pytest

import dualsr.weights as shipped
from dualsr import Upscaler


@pytest.mark.parametrize("scale", sorted(shipped.DEFAULTS))
def test_each_default_loads_strictly_at_its_scale(scale):
    found = shipped.default_weights(scale)
    assert found.scale == scale
    assert found.path.stat().st_size < 2 * 1024**2
    upscaler = Upscaler(scale=scale)  # strict load, or it raises
    assert upscaler.scale == scale and upscaler.name == found.model
    out = upscaler.upscale(np.full((20, 24, 3), 100, np.uint8))
    assert out.shape == (20 * scale, 24 * scale, 3)
    # a flat grey image stays close to flat grey: a wrong value range or a broken file would not
    assert abs(float(out.mean()) - 100) < 3


def test_x4_is_the_default_without_a_scale():
    assert shipped.default_weights().scale == 4 == Upscaler().scale


def test_every_shipped_file_is_named_in_the_notice():
    notice = (shipped.WEIGHTS_DIR / "NOTICE.md").read_text()
    files = sorted(p.name for p in shipped.WEIGHTS_DIR.glob("*.safetensors"))
    assert files
    missing = [name for name in files if f"`{name}`" not in notice]
    assert not missing, f"NOTICE.md does not say where these come from: {missing}"


def test_derived_files_ship_their_upstream_license():
    notice = (shipped.WEIGHTS_DIR / "NOTICE.md").read_text()
    for license_file in ("LICENSE-RLFN.txt",):
        if license_file in notice:
            text = (shipped.WEIGHTS_DIR / license_file).read_text()
            assert "Apache License" in text and "Version 2.0" in text
    assert "bytedance/RLFN" in notice
