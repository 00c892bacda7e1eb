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


def test_weights_for_picks_the_file_each_entry_point_loads():
    """Upscaler and `dualsr test` both ask weights_for; its choices, one by one."""
    assert shipped.weights_for(None, 2) == shipped.default_weights(2).path
    assert shipped.weights_for(None) == shipped.default_weights(4).path
    assert shipped.weights_for("DRN-T", 4).name == "drn_t_x4.safetensors"  # an alias or case spelling
    with pytest.raises(shipped.WeightsRequiredError) as err:
        shipped.weights_for("drn-t", 2)  # ships, but not at x2
    assert err.value.model == "drn-t" and "rlfn x2" in err.value.shipped
    with pytest.raises(KeyError):
        shipped.weights_for("no-such-model")


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


@pytest.mark.parametrize("scale", sorted(shipped.DEFAULTS))
def test_each_default_tiles_within_two_grey_levels_at_its_default_padding(scale):
    # a photo-like texture: smooth noise at several sizes; RLFN-based defaults tile with less context
    # than their receptive radius (a warning says so); REPORT `default_models` measures 1024x1024
    rng = np.random.default_rng(0)
    image = np.zeros((150, 170, 3), np.float64)
    for cells in (5, 17, 60):
        coarse = rng.uniform(0, 255, (cells, cells, 3)).astype(np.uint8)
        from PIL import Image

        image += np.asarray(Image.fromarray(coarse).resize((170, 150), Image.BICUBIC), np.float64) / 3
    image = image.round().astype(np.uint8)
    whole = Upscaler(scale=scale).upscale(image)
    tiler = Upscaler(scale=scale, tile=64)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiled = tiler.upscale(image)
    approximate = not tiler.exact_tiling
    assert approximate == any("approximates the untiled" in str(w.message) for w in caught)
    diff = int(np.abs(tiled.astype(np.int16) - whole.astype(np.int16)).max())
    assert diff <= (2 if approximate else 1), diff


def test_upscale_outscale_picks_the_default_made_for_it(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from dualsr.checkpoint import save_weights
    from dualsr.cli import main
    from dualsr.models import create_model

    monkeypatch.setattr(shipped, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(shipped, "DEFAULTS", {4: "small_x4", 2: "small_x2"})
    save_weights(create_model("drn-t", 4, n_blocks=1, n_feats=4), tmp_path / "small_x4.safetensors")
    save_weights(create_model("drn-t", 2, n_blocks=1, n_feats=4), tmp_path / "small_x2.safetensors")
    Image.fromarray(np.full((16, 20, 3), 90, np.uint8)).save(tmp_path / "a.png")
    notes = {}
    for factor in ("2", "3"):
        assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / f"a_{factor}.png"), "-s", factor]) == 0
        notes[factor] = capsys.readouterr().err
        assert Image.open(tmp_path / f"a_{factor}.png").size == (20 * int(factor), 16 * int(factor))
    assert "x2 with drn-t ->" in notes["2"]  # the x2 model, no resize
    assert "x3 with drn-t (x4, then bicubic)" in notes["3"]  # no x3 model: x4, then bicubic
