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


# ------------------------------------------------------------------------------------ placed tiling

def _tiling_case():
    import numpy as np

    torch.manual_seed(0)
    model = create_model("rlfn", 2, n_feats=8, n_blocks=1, esa_width=4).eval()
    rng = np.random.default_rng(0)
    coarse = torch.from_numpy(rng.uniform(0, 255, (3, 20, 19))).float()[None]
    image = torch.nn.functional.interpolate(coarse, size=(160, 150), mode="bilinear", align_corners=False)[0]
    return model, image.round()


def test_esa_told_the_whole_image_as_its_window_computes_the_untiled_gate():
    from dualsr.models.spec import TileWindow, window_layers

    model, image = _tiling_case()
    with torch.no_grad():
        plain = model(image[None])
        (esa,) = window_layers(model)
        esa.window = TileWindow(160, 150, 0, 0, 160, 150)
        try:
            placed = model(image[None])
        finally:
            esa.window = None
    torch.testing.assert_close(placed, plain, rtol=0, atol=1e-3)


def test_placed_windows_make_rlfn_tiles_exact_and_without_placement_they_are_not():
    import warnings

    from dualsr.inference import Upscaler

    model, image = _tiling_case()
    whole = Upscaler(model).upscale(image)
    radius = Upscaler(model).receptive_radius
    tiled = Upscaler(model, tile=32, tile_pad=radius)  # windows of about 100 px: much smaller than the image
    assert tiled.exact_tiling and radius < 40
    assert (tiled.upscale(image) - whole).abs().max() <= 1
    unplaced = Upscaler(model, tile=32, tile_pad=radius)
    unplaced.backend.window_layers = []  # what an ONNX graph gets: the gate resampled to each window
    assert not unplaced.exact_tiling
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (unplaced.upscale(image) - whole).abs().max() > 1  # measured 4.1 (placed: 5e-5)
    default = Upscaler(model, tile=32)  # the spec's default context: less than the radius, warned about
    assert default.tile_pad == 32 < radius and not default.exact_tiling
    with pytest.warns(UserWarning, match="receptive radius"):
        default.upscale(image)


def test_windows_start_at_the_tile_phase():
    from dualsr.inference.tiling import make_tiles

    for t in make_tiles(160, 150, 32, 33, phase=6):
        assert t.wy0 % 6 == 0 and t.wx0 % 6 == 0
        assert t.wy0 <= max(0, t.y0 - 33) and t.wy1 >= min(160, t.y1 + 33) and t.wy1 <= 160 and t.wx1 <= 150
    for t in make_tiles(160, 152, 32, 5, multiple=4, phase=6):
        assert t.wy0 % 12 == 0 and t.wx0 % 12 == 0 and (t.wy1 - t.wy0) % 4 == 0 and t.wx1 <= 152


def test_rlfn_stream_widths_are_prunable_one_per_block_boundary():
    from dualsr.compress.layers import prunable_layers

    model = create_model("rlfn", 4, n_feats=12, n_blocks=2, esa_width=4)
    names = [layer.name for layer in prunable_layers(model)]
    assert names[-3:] == ["stream.0", "stream.1", "stream.2"] and len(names) == 3 * 2 + 3
    narrow = create_model("rlfn", 4, n_feats=12, n_blocks=2, esa_width=4,
                          widths=[12, 12, 4, 12, 12, 4, 8, 6, 4])
    assert narrow.conv_1.out_channels == 8 and narrow.block_1.c3_r.out_channels == 8  # added to conv_1's
    assert narrow.block_1.c5.out_channels == 6 and narrow.block_2.c3_r.out_channels == 6  # out of block 1
    assert narrow.block_2.c5.out_channels == 4 and narrow.conv_2.in_channels == 4 and narrow.conv_2.out_channels == 8


def test_rlfn_width_lists_saved_before_the_stream_was_prunable_still_build():
    old = [12, 8, 4, 12, 8, 4]  # inner widths only, as compressed files were saved before
    model = create_model("rlfn", 4, n_feats=12, n_blocks=2, esa_width=4, widths=old)
    assert model.widths == old + [12, 12, 12]


def test_a_stream_pruned_rlfn_loads_strictly_from_a_plain_state_dict(tmp_path):
    from dualsr.checkpoint import load
    from dualsr.compress.layers import prunable_layers
    from dualsr.compress.surgery import remove_channels

    model = create_model("rlfn", 4, n_feats=12, n_blocks=2, esa_width=4).eval()
    keep = {layer.name: list(range(0, layer.full, 2)) for layer in prunable_layers(model)
            if layer.name in ("stream.1", "stream.2", "block_2.c1_r")}
    pruned = remove_channels(model, keep)
    path = tmp_path / "plain.pth"
    torch.save(pruned.state_dict(), path)  # no dualsr metadata: the widths come from the shapes
    loaded = load(path).model.eval()
    assert loaded.widths == pruned.widths
    x = torch.rand(1, 3, 20, 24) * 255
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))
