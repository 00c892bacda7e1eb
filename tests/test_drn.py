"""DRN architecture: the official parameter counts, key layout, output shapes and dual models."""
from __future__ import annotations

import pytest
import torch

from dualsr.models import create_dual, create_model
from dualsr.models.drn import DRN, drn_t, full_widths


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "name,scale,expected",
    [("drn-s", 4, 4_804_065), ("drn-s", 8, 5_403_000), ("drn-l", 4, 9_825_893), ("drn-l", 8, 10_004_018)],
)
def test_parameter_count_matches_paper_release(name, scale, expected):
    with torch.device("meta"):
        model = create_model(name, scale)
    assert _n_params(model) == expected


@pytest.mark.parametrize("name,scale,n_feats", [("drn-s", 4, 16), ("drn-s", 8, 8), ("drn-l", 4, 20), ("drn-l", 8, 10)])
def test_dual_models_have_54F_parameters_each(name, scale, n_feats):
    duals = create_dual(name, scale)
    assert len(duals) == {4: 2, 8: 3}[scale]
    assert [_n_params(d) for d in duals] == [54 * n_feats] * len(duals)
    assert set(duals[0].state_dict()) == {"dual_module.0.0.weight", "dual_module.1.weight"}


def test_state_dict_keys_follow_official_layout():
    model = create_model("drn-s", 4)
    keys = set(model.state_dict())
    expected = {"sub_mean.weight", "sub_mean.bias", "head.weight", "head.bias", "add_mean.weight", "add_mean.bias"}
    for p in range(2):
        expected |= {f"down.{p}.dual_module.0.0.weight", f"down.{p}.dual_module.1.weight"}
    for i in range(2):
        for k in range(30):
            for part in ("body.0", "body.2", "body.3.conv_du.0", "body.3.conv_du.2"):
                expected |= {f"up_blocks.{i}.{k}.{part}.weight", f"up_blocks.{i}.{k}.{part}.bias"}
        expected |= {f"up_blocks.{i}.30.0.weight", f"up_blocks.{i}.30.0.bias"}
        expected |= {f"up_blocks.{i}.31.weight", f"up_blocks.{i}.31.bias"}
    for j in range(3):
        expected |= {f"tail.{j}.weight", f"tail.{j}.bias"}
    assert keys == expected
    # official x4 widths (F = 16): RCAB 64 in both stages, 1x1 convs 64->32 and 64->16, tails 64/64/32
    sd = model.state_dict()
    assert sd["up_blocks.0.0.body.0.weight"].shape == (64, 64, 3, 3)
    assert sd["up_blocks.1.0.body.0.weight"].shape == (64, 64, 3, 3)
    assert sd["up_blocks.0.31.weight"].shape == (32, 64, 1, 1)
    assert sd["up_blocks.1.31.weight"].shape == (16, 64, 1, 1)
    assert [sd[f"tail.{j}.weight"].shape[1] for j in range(3)] == [64, 64, 32]
    assert sd["up_blocks.0.0.body.3.conv_du.0.weight"].shape == (4, 64, 1, 1)


def test_mean_shift_is_identity_plus_dataset_mean():
    model = drn_t(4)
    assert torch.equal(model.sub_mean.weight.view(3, 3), torch.eye(3))
    assert torch.allclose(model.add_mean.bias, 255 * torch.tensor([0.4488, 0.4371, 0.4040]))
    assert torch.allclose(model.sub_mean.bias, -model.add_mean.bias)
    assert model.sub_mean.weight.requires_grad  # trainable, as in the official code


@pytest.mark.parametrize("scale,lr_size", [(2, (5, 7)), (4, (6, 6)), (4, (7, 9)), (8, (5, 3))])
def test_outputs_form_a_pyramid_for_any_lr_size(scale, lr_size):
    model = drn_t(scale).eval()
    h, w = lr_size
    with torch.no_grad():
        outputs = model(torch.rand(2, 3, h, w) * 255)
    steps = {2: 1, 4: 2, 8: 3}[scale]
    assert [tuple(o.shape) for o in outputs] == [(2, 3, h * 2**k, w * 2**k) for k in range(steps + 1)]


def test_full_widths_reproduce_unpruned_model():
    full = full_widths(4, 30, 16)
    assert len(full) == 64 and full[:2] == [16, 32] and set(full[2:]) == {64}
    assert len(full_widths(8, 30, 8)) == 96
    torch.manual_seed(1)
    a = drn_t(4)
    torch.manual_seed(1)
    b = drn_t(4, widths=full_widths(4, 4, 8))
    x = torch.rand(1, 3, 6, 5) * 255
    assert all(torch.equal(u, v) for u, v in zip(a(x), b(x)))


def test_pruned_widths_shape_the_prunable_layers_only():
    # full: down 8, 16; stage 0: 2 RCABs of 32 + Upsampler 32; stage 1: the same
    widths = [4, 12, 20, 24, 16, 32, 28, 8]
    model = DRN(4, n_blocks=2, n_feats=8, widths=widths)
    sd = model.state_dict()
    assert sd["down.0.dual_module.0.0.weight"].shape == (4, 8, 3, 3)
    assert sd["down.0.dual_module.1.weight"].shape == (16, 4, 3, 3)
    assert sd["up_blocks.0.1.body.0.weight"].shape == (24, 32, 3, 3)
    assert sd["up_blocks.0.1.body.2.weight"].shape == (32, 24, 3, 3)
    assert sd["up_blocks.0.2.0.weight"].shape == (4 * 16, 32, 3, 3)
    assert sd["up_blocks.0.3.weight"].shape == (16, 16, 1, 1)
    assert sd["up_blocks.1.3.weight"].shape == (8, 8, 1, 1)
    assert model(torch.rand(1, 3, 4, 4))[-1].shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="prunable widths"):
        DRN(4, n_blocks=2, n_feats=8, widths=widths[:-1])


def test_single_output_dual_maps_sr_to_lr():
    for scale in (2, 3, 4):
        (dual,) = create_dual(torch.nn.Conv2d(3, 3, 3), scale=scale, n_feats=8)
        assert dual(torch.rand(1, 3, 12 * scale, 6 * scale)).shape == (1, 3, 12, 6)
