"""The dual-regression objective: which outputs meet which targets, and where gradients flow."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dualsr.data.degrade import make_pyramid
from dualsr.models import create_dual, create_model
from dualsr.objective import closed_loop_loss, dual_regression_loss


def _tiny(scale: int):
    model = create_model("drn-t", scale, n_blocks=1, n_feats=4)
    return model, create_dual(model, scale)


@pytest.mark.parametrize("scale", [4, 8])
def test_outputs_pyramid_and_duals_line_up_in_size(scale):
    model, duals = _tiny(scale)
    hr = torch.rand(2, 3, 8 * scale, 8 * scale) * 255
    pyramid = make_pyramid(hr, scale)
    outputs = model(pyramid[0])
    assert [o.shape for o in outputs] == [p.shape for p in pyramid]
    assert len(duals) == len(outputs) - 1
    for k, dual in enumerate(duals):
        assert dual(outputs[k + 1]).shape == pyramid[k].shape
    losses = dual_regression_loss(outputs, pyramid, duals, 0.1)
    assert set(losses) == {"total", "primal", "dual"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    assert torch.allclose(losses["total"], losses["primal"] + 0.1 * losses["dual"])


@pytest.mark.parametrize("scale", [4, 8])
def test_zero_dual_weight_is_the_multiscale_l1(scale):
    model, duals = _tiny(scale)
    pyramid = make_pyramid(torch.rand(1, 3, 8 * scale, 8 * scale) * 255, scale)
    outputs = model(pyramid[0])
    # written out by hand: SR vs HR, every intermediate output vs the pyramid level of its size
    expected = sum(F.l1_loss(out, target) for out, target in zip(outputs, pyramid))
    losses = dual_regression_loss(outputs, pyramid, duals, dual_weight=0.0)
    assert torch.allclose(losses["total"], expected)
    assert float(losses["dual"]) == 0.0


def test_dual_term_is_l1_of_each_dual_against_the_next_smaller_level():
    model, duals = _tiny(4)
    pyramid = make_pyramid(torch.rand(1, 3, 32, 32) * 255, 4)
    outputs = model(pyramid[0])
    expected = F.l1_loss(duals[0](outputs[1]), pyramid[0]) + F.l1_loss(duals[1](outputs[2]), pyramid[1])
    assert torch.allclose(dual_regression_loss(outputs, pyramid, duals)["dual"], expected)


def test_dual_term_gradient_reaches_the_primal_model():
    model, duals = _tiny(4)
    pyramid = make_pyramid(torch.rand(1, 3, 32, 32) * 255, 4)
    dual_regression_loss(model(pyramid[0]), pyramid, duals)["dual"].backward()
    grads = [p.grad for p in model.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    # the last tail (SR output) only feeds the dual term here, so its gradient must come from it
    assert model.tail[-1].weight.grad.abs().sum() > 0


def test_single_output_model_gets_one_dual_from_sr_to_lr():
    class Bicubic4(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.conv(F.interpolate(x, scale_factor=4, mode="bicubic"))

    model = Bicubic4()
    duals = create_dual(model, 4)
    assert len(duals) == 1
    pyramid = make_pyramid(torch.rand(2, 3, 32, 32) * 255, 4)
    sr = model(pyramid[0])
    losses = dual_regression_loss(sr, pyramid, duals)
    assert torch.allclose(losses["primal"], F.l1_loss(sr, pyramid[-1]))
    assert torch.allclose(losses["dual"], F.l1_loss(duals[0](sr), pyramid[0]))


def test_unlabelled_lr_batch_uses_only_the_dual_term_whose_target_exists():
    model, duals = _tiny(4)
    lr = torch.rand(2, 3, 8, 8) * 255
    outputs = model(lr)
    losses = dual_regression_loss(outputs, [lr], duals, 0.1)
    assert float(losses["primal"]) == 0.0
    # DRN: dual 0 maps the 2x output back to the input size; the SR -> LR_2 dual has no target here
    expected = F.l1_loss(duals[0](outputs[1]), lr)
    assert torch.allclose(losses["dual"], expected)
    assert torch.allclose(losses["total"], 0.1 * expected)
    chained = dual_regression_loss(outputs, [lr], duals, 0.1, dual_path="chain")
    assert torch.allclose(chained["dual"], F.l1_loss(duals[0](duals[1](outputs[-1])), lr))
    assert not torch.allclose(chained["dual"], expected)


def test_mixed_batch_is_the_per_sample_mean_of_each_sample_s_own_terms():
    model, duals = _tiny(4)
    pyramid = make_pyramid(torch.rand(3, 3, 32, 32) * 255, 4)
    lr_u = torch.rand(1, 3, 8, 8) * 255
    outputs, outputs_u = model(pyramid[0]), model(lr_u)
    paired = dual_regression_loss(outputs, pyramid, duals)
    both = dual_regression_loss(outputs, pyramid, duals, unpaired=(outputs_u, lr_u))
    assert torch.allclose(both["unpaired"], F.l1_loss(duals[0](outputs_u[1]), lr_u))
    assert torch.allclose(both["dual"], paired["dual"]) and torch.allclose(both["primal"], paired["primal"])
    assert torch.allclose(both["total"], (3 * paired["total"] + 1 * 0.1 * both["unpaired"]) / 4)
    chained = dual_regression_loss(outputs, pyramid, duals, unpaired=(outputs_u, lr_u), dual_path="chain")
    assert torch.allclose(chained["unpaired"], closed_loop_loss(outputs_u, lr_u, duals))


def _grads(model, duals, lr_u, dual_weight, paired=True):
    from dualsr.objective import model_loss

    torch.manual_seed(0)
    pyramid = make_pyramid(torch.rand(2, 3, 64, 64) * 255, 4)
    for p in list(model.parameters()) + list(duals.parameters()):
        p.grad = None
    if paired:
        model_loss(model, duals, pyramid, dual_weight, unpaired_lr=lr_u)["total"].backward()
    else:
        model_loss(model, duals, [lr_u], dual_weight)["total"].backward()
    return [None if p.grad is None else p.grad.clone() for p in model.parameters()], \
        [None if p.grad is None else p.grad.clone() for p in duals.parameters()]


@pytest.mark.parametrize("name", ["drn-t", "rlfn"])
def test_an_unpaired_sample_enters_only_the_dual_term(name):
    options = {"n_blocks": 1, "n_feats": 4} if name == "drn-t" else {}
    model = create_model(name, 4, **options)
    duals = create_dual(model, 4)
    a, b = torch.rand(1, 3, 16, 16) * 255, torch.rand(1, 3, 16, 16) * 255
    # lambda = 0: what the unpaired sample holds changes no gradient at all
    ga, gb = _grads(model, duals, a, 0.0), _grads(model, duals, b, 0.0)
    assert all((x is None and y is None) or torch.equal(x, y) for x, y in zip(ga[0] + ga[1], gb[0] + gb[1]))
    # lambda > 0: it does, and on its own its gradient reaches the primal network through the dual
    ga, gb = _grads(model, duals, a, 0.1), _grads(model, duals, b, 0.1)
    assert any(x is not None and not torch.equal(x, y) for x, y in zip(ga[0], gb[0]))
    primal, dual = _grads(model, duals, a, 0.1, paired=False)
    assert sum(float(g.abs().sum()) for g in primal if g is not None) > 0
    assert sum(float(g.abs().sum()) for g in dual if g is not None) > 0
    # a single-output model: the SR tail itself gets gradient, from the dual term alone
    if name == "rlfn":
        assert all(g is not None and float(g.abs().sum()) > 0 for g in primal[-2:])


def test_mismatched_pyramid_is_an_error_naming_the_sizes():
    model, duals = _tiny(4)
    pyramid = make_pyramid(torch.rand(1, 3, 32, 32) * 255, 4)
    outputs = model(pyramid[0])
    with pytest.raises(ValueError, match="no pyramid image matches"):
        dual_regression_loss(outputs, [pyramid[0], pyramid[2]], duals)


def test_pyramid_levels_are_matlab_resizes_of_hr_rounded_to_integers():
    from dualsr.data.resize import imresize

    hr = torch.rand(1, 3, 24, 16) * 255
    pyramid = make_pyramid(hr, 8)
    assert [tuple(p.shape[-2:]) for p in pyramid] == [(3, 2), (6, 4), (12, 8), (24, 16)]
    for level, factor in zip(pyramid[:-1], (8, 4, 2)):
        assert torch.equal(level, imresize(hr, 1 / factor, round_uint8=True))
        assert torch.equal(level, level.round()) and level.min() >= 0 and level.max() <= 255
    with pytest.raises(ValueError, match="multiple of scale"):
        make_pyramid(torch.rand(1, 3, 30, 32), 4)
