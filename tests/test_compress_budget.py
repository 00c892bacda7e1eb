"""The search's cost model and budget: exact costs of width configs, budget fitting, logits that move."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from dualsr.compress.baselines import scaled_widths
from dualsr.compress.cost import WidthCost
from dualsr.compress.layers import prunable_layers, rebuild, width_step
from dualsr.compress.search import SearchConfig, WidthSearch, auto_alpha_lr, fit_to_budget, search_widths
from dualsr.models import create_dual, create_model
from dualsr.profile import count_macs, count_parameters

TINY = {
    "rlfn": dict(n_feats=16, n_blocks=2, esa_width=8),
    "drn-t": dict(n_blocks=1, n_feats=8),
    "smfanet": dict(dim=8, n_blocks=2),
    "swinir-light": dict(depths=[2], embed_dim=12, num_heads=[2], window_size=4, img_size=16),
}


def _exact(model, widths, kind):
    with torch.device("meta"):
        candidate = rebuild(model, widths)
    return count_parameters(candidate) if kind == "params" else count_macs(candidate, (96, 96))


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("kind", ["params", "macs"])
def test_cost_of_any_width_config_is_exact(name, kind):
    model = create_model(name, 4, **TINY[name])
    cost = WidthCost.fit(model, kind)
    layers = prunable_layers(model)
    rng = np.random.default_rng(1)
    for _ in range(3):  # random configs, counted by rebuilding (not by the fitted polynomial)
        widths = [int(rng.integers(1, layer.full // width_step(layer) + 1)) * width_step(layer)
                  if layer.full >= width_step(layer) else layer.full for layer in layers]
        assert float(cost(torch.tensor(widths, dtype=torch.float64))) == pytest.approx(_exact(model, widths, kind),
                                                                                      rel=1e-9)


@pytest.mark.parametrize("name", ["rlfn", "smfanet"])
def test_expected_cost_equals_cost_of_expected_widths(name):
    model = create_model(name, 4, **TINY[name])
    cost = WidthCost.fit(model, "params")
    layers = prunable_layers(model)[:6]  # 2^6 combinations below; the other layers stay full
    rest = [layer.full for layer in prunable_layers(model)[6:]]
    rng = np.random.default_rng(0)
    options = [[width_step(layer), layer.full] for layer in layers]
    assert all(a < b for a, b in options)
    probs = [rng.dirichlet(np.ones(2)) for _ in options]
    expectation = 0.0  # by enumeration of every combination, each counted exactly
    for combo in itertools.product(range(2), repeat=len(options)):
        weight = float(np.prod([p[i] for p, i in zip(probs, combo)]))
        expectation += weight * _exact(model, [o[i] for o, i in zip(options, combo)] + rest, "params")
    mean_widths = torch.tensor([float(np.dot(p, o)) for p, o in zip(probs, options)] + rest, dtype=torch.float64)
    assert float(cost(mean_widths)) == pytest.approx(expectation, rel=1e-9)


def test_fit_to_budget_spends_the_budget_where_the_probabilities_point():
    class Linear:  # cost = sum of widths
        def __call__(self, w):
            return w.sum()

    candidates = [[4, 8, 12, 16]] * 3
    probs = [torch.tensor(p) for p in ([0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25])]
    picks = fit_to_budget([3, 0, 0], candidates, probs, Linear(), target=28.0)
    widths = [c[i] for c, i in zip(candidates, picks)]
    assert sum(widths) <= 28 and sum(widths) + 4 > 28  # at the budget: no single step up still fits
    assert widths[0] == 16 and widths[1] == 4  # layer 0 wants width, layer 1 does not
    over = fit_to_budget([3, 3, 3], candidates, probs, Linear(), target=28.0)
    assert sum(c[i] for c, i in zip(candidates, over)) <= 28
    assert candidates[0][over[0]] == 16  # the cuts fall on the layers that care least


@pytest.fixture(scope="module")
def data(compress_data):
    return compress_data


def test_budgeted_search_moves_its_logits_and_lands_on_the_uniform_cost(data):
    torch.manual_seed(0)
    model = create_model("rlfn", 4, **TINY["rlfn"])
    fractions = (0.6, 0.8, 1.0, 1.2, 1.4)
    steps = 12
    base = SearchConfig(rate=0.5, steps=steps, batch_size=1, fractions=fractions)
    tuned = SearchConfig(rate=0.5, steps=steps, batch_size=1, fractions=fractions, alpha_lr=auto_alpha_lr(steps),
                         budget_weight=10.0, temperature=0.5)
    assert auto_alpha_lr(steps) == pytest.approx(3e-4 * 10_000 / steps) and auto_alpha_lr(10**6) == 3e-4
    _, paper = search_widths(create_model("rlfn", 4, **TINY["rlfn"]), None, data, base)
    widths, search = search_widths(model, create_dual(model), data, tuned)
    moved, still = search.movement(), paper.movement()
    # the paper's rate at 12 steps leaves the probabilities where they started; the scaled rate does not
    assert still["top_probability_mean"] < still["uniform_probability_mean"] + 0.02
    assert moved["top_probability_mean"] > still["top_probability_mean"] + 0.2
    uniform = scaled_widths(prunable_layers(model), 0.5)
    target = _exact(model, uniform, "params")
    assert moved["target_cost"] == pytest.approx(target)
    assert _exact(model, widths, "params") <= target
    assert widths != uniform  # it traded channels between layers


def test_annealed_temperature_falls_geometrically_and_sharpens_the_same_logits():
    model = create_model("rlfn", 4, **TINY["rlfn"])
    config = SearchConfig(rate=0.5, steps=10, temperature=2.0, final_temperature=0.02)
    search = WidthSearch(model, None, config)
    with torch.no_grad():
        for alpha in search.alphas:
            alpha.copy_(torch.linspace(0.0, 0.3, len(alpha)))
    seen = []
    for step in (0, 5, 10, 20):
        search.step = step
        seen.append((search.temperature, min(p[-1] for p in search.probabilities() if len(p) > 1)))
    assert [t for t, _ in seen] == pytest.approx([2.0, 0.2, 0.02, 0.02])  # 2 * (0.01)^(step/10), then held
    tops = [top for _, top in seen]
    assert tops[0] < 0.6 and tops[0] < tops[1] < tops[2] and tops[2] > 0.95
    constant = WidthSearch(model, None, SearchConfig(rate=0.5, steps=10, temperature=2.0))
    constant.step = 10
    assert constant.temperature == 2.0
    with pytest.raises(ValueError, match="final_temperature must be > 0"):
        SearchConfig(final_temperature=0.0)


def test_annealed_search_ends_near_the_discrete_widths_it_picks(data):
    fractions = (0.6, 0.8, 1.0, 1.2, 1.4)
    steps = 12

    def gap(final_temperature):
        torch.manual_seed(0)
        model = create_model("rlfn", 4, **TINY["rlfn"])
        config = SearchConfig(rate=0.5, steps=steps, batch_size=1, fractions=fractions,
                              alpha_lr=auto_alpha_lr(steps), budget_weight=10.0,
                              final_temperature=final_temperature)
        _, search = search_widths(model, create_dual(model), data, config)
        picked = [int(torch.tensor(p).argmax()) for p in search.probabilities()]
        expected = search.expected_widths().detach()
        discrete = torch.tensor([c[i] for c, i in zip(search.candidates, picked)], dtype=torch.float64)
        return float((expected - discrete).abs().mean())

    # the relaxed model a constant temperature ends on blends widths; annealed, it is nearly the argmax
    constant, annealed = gap(None), gap(0.05)
    assert annealed < 0.25 * constant
