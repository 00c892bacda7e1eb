"""SMFANet / SMFANet+: the released files load strictly without a name and score as published."""
from __future__ import annotations

import pytest
import torch
from conftest import shared_path

import dualsr
from dualsr.models import create_model, detect

# file -> (scale, dim, n_blocks, parameters in MANIFEST.tsv)
RELEASED = {
    "SMFANet_DF2K_100w_x4SR.pth": (4, 36, 8, 197_328),
    "SMFANet_DF2K_100w_x2SR.pth": (2, 36, 8, 185_628),
    "SMFANet_plus_DF2K_100w_x4SR.pth": (4, 48, 12, 495_888),
    "SMFANet_plus_DF2K_100w_x2SR.pth": (2, 48, 12, 480_300),
    "SMFANet_plus_DIV2K_100w_x4SR.pth": (4, 48, 12, 495_888),
}


@pytest.mark.parametrize("scale, dim, n_blocks, params", sorted(set(RELEASED.values())))
def test_parameter_counts_equal_the_released_files(scale, dim, n_blocks, params):
    model = create_model("smfanet", scale, dim=dim, n_blocks=n_blocks)
    assert sum(p.numel() for p in model.parameters()) == params


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_files_load_strictly_without_a_model_name(name):
    scale, dim, n_blocks, _ = RELEASED[name]
    path = shared_path("weights", "smfanet", name)
    loaded = dualsr.load(path)  # detection from keys and shapes, then a strict load
    assert (loaded.name, loaded.scale) == ("smfanet", scale)
    assert loaded.config == {"scale": scale, "dim": dim, "n_blocks": n_blocks, "ffn_scale": 2, "widths": None}
    state = torch.load(path, map_location="cpu", weights_only=True)["params"]
    model = create_model("smfanet", scale, dim=dim, n_blocks=n_blocks)
    model.load_state_dict(state, strict=True)


@pytest.mark.parametrize("folder", ["rlfn", "bsrn", "vapsr", "imdn", "pan"])
def test_other_families_are_not_taken_for_smfanet(folder):
    root = shared_path("weights", folder)
    for path in sorted(root.glob("*.pth")):
        state = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("params_ema", "params"):
            if isinstance(state, dict) and key in state:
                state = state[key]
                break
        state = {k.removeprefix("module."): v for k, v in state.items()}
        found = detect(state)
        assert found is None or found.name != "smfanet", path.name


def test_training_and_eval_modes_compute_the_same_output():
    torch.manual_seed(0)
    model = create_model("smfanet", 2, dim=8, n_blocks=2)
    x = torch.rand(1, 3, 19, 26)
    with torch.no_grad():
        train_out = model.train()(x)
        eval_out = model.eval()(x)
    assert torch.equal(train_out, eval_out)
    assert eval_out.shape == (1, 3, 38, 52)


def test_smallest_input_is_eight_pixels():
    from dualsr.models import get_spec

    spec = get_spec("smfanet")
    assert spec.padded_size(3) == 8 and spec.padded_size(13) == 13  # any size from 8 on, no multiple
    model = create_model("smfanet", 4, dim=8, n_blocks=1).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 8, 11)).shape == (1, 3, 32, 44)
        with pytest.raises(RuntimeError):
            model(torch.rand(1, 3, 7, 11))  # adaptive_max_pool2d to (7 // 8, ...) = 0 rows


def test_pruned_lde_widths_round_trip_through_detect():
    from dualsr.models.smfanet import full_widths

    full = full_widths(8, 2)
    model = create_model("smfanet", 3, dim=8, n_blocks=2, widths=[8, 12])
    found = detect(model.state_dict())
    assert found.name == "smfanet" and found.scale == 3 and full == [16, 16]
    assert found.config == {"dim": 8, "n_blocks": 2, "ffn_scale": 2, "widths": [8, 12]}


def test_set5_x4_scores_as_published():
    """Published (SMFANet README table): Set5 x4 32.25 dB; dualsr's evaluation gives 32.243."""
    from dualsr.evaluate import evaluate

    loaded = dualsr.load(shared_path("weights", "smfanet", "SMFANet_DF2K_100w_x4SR.pth"))
    (score,) = evaluate(loaded.model.eval(), [shared_path("data", "benchmark", "Set5")], 4)
    assert score.n == 5 and not score.problems
    assert abs(score.psnr - 32.25) <= 0.05, f"Set5 x4: {score.psnr:.3f} dB, published 32.25"
