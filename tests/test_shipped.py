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


def test_a_shipped_model_named_without_weights_uses_its_file(tmp_path, monkeypatch):
    from dualsr.checkpoint import save_weights
    from dualsr.models import create_model

    monkeypatch.setattr(shipped, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(shipped, "DEFAULTS", {4: "small_rlfn_x4"})
    save_weights(create_model("rlfn", 4, n_feats=8, n_blocks=1, esa_width=4), tmp_path / "small_rlfn_x4.safetensors")
    save_weights(create_model("drn-t", 4, n_blocks=1, n_feats=4), tmp_path / "old_drn_t_x4.safetensors")
    assert Upscaler().name == "rlfn"  # the default
    named = Upscaler("drn-t")  # not the default, but it ships: its file, not an error
    assert named.name == "drn-t" and named.model.n_blocks == 1
    with pytest.raises(ValueError, match=r"needs weights.*shipped: drn-t x4, rlfn x4"):
        Upscaler("swinir-light")


def test_cli_test_finds_a_shipped_model_by_name(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from dualsr.checkpoint import save_weights
    from dualsr.cli import main
    from dualsr.models import create_model

    monkeypatch.setattr(shipped, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(shipped, "DEFAULTS", {4: "small_x4"})
    save_weights(create_model("drn-t", 4, n_blocks=1, n_feats=4), tmp_path / "small_x4.safetensors")
    folder = tmp_path / "set"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / "a.png")
    assert main(["test", "--model", "drn-t", "--data", str(folder)]) == 0
    assert capsys.readouterr().out.startswith("drn-t x4")
    assert main(["test", "--model", "rlfn", "--data", str(folder)]) == 2
    assert "dualsr ships drn-t x4" in capsys.readouterr().err
