"""DRC channel-number search, DR channel pruning, fine-tuning and the baselines, on tiny models."""
from __future__ import annotations

import copy

import pytest
import torch

from dualsr.compress.baselines import l1_keep, random_keep, uniform_widths
from dualsr.compress.finetune import FinetuneConfig, finetune
from dualsr.compress.prune import PruneConfig, dr_prune
from dualsr.compress.search import SearchConfig, WidthSearch, candidate_widths, search_widths
from dualsr.compress.layers import consumer_l1_norms, prunable_layers
from dualsr.models import create_dual, create_model
from dualsr.profile import count_parameters


def _tiny(name: str):
    if name == "rlfn":
        return create_model("rlfn", 4, n_feats=16, n_blocks=1, esa_width=8)
    return create_model("drn-t", 4, n_blocks=1, n_feats=4)


@pytest.fixture(scope="module")
def data(compress_data):
    return compress_data


@pytest.mark.parametrize("full, rate", [(64, 0.3), (64, 0.7), (16, 0.5), (6, 0.5)])
def test_candidates_are_rounded_fractions_of_the_kept_width(full, rate):
    cands = candidate_widths(full, rate)
    expected = {min(full, max(min(4, full), 4 * round(full * (1 - rate) * p / 4 + 1e-9)))
                for p in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)}
    assert set(cands) == expected
    assert all(min(4, full) <= k <= full for k in cands)


@pytest.mark.parametrize("name", ["drn-t", "rlfn"])
@pytest.mark.parametrize("second_order", [False, True])
def test_search_returns_only_candidate_widths(name, second_order, data):
    model = _tiny(name)
    config = SearchConfig(rate=0.5, steps=2, batch_size=1, second_order=second_order)
    widths, search = search_widths(model, create_dual(model), data, config)
    layers = prunable_layers(model)
    assert len(widths) == len(layers)
    for w, layer in zip(widths, layers):
        assert w in candidate_widths(layer.full, 0.5)
    moved = [a for a in search.alphas if len(a) > 1]
    assert moved and any(a.grad is not None and a.grad.abs().sum() > 0 for a in moved)


def test_soft_mask_keeps_top_ranked_channels_fully():
    model = _tiny("drn-t")
    search = WidthSearch(model, None, SearchConfig(rate=0.3))
    for layer, mask, cands in zip(search.layers, search.masks(), search.candidates):
        order = torch.argsort(consumer_l1_norms(model, layer), descending=True)
        assert torch.allclose(mask[order[: min(cands)]], torch.ones(min(cands)))
        assert torch.all(mask[order[max(cands):]] == 0)
        assert torch.all(mask[order][:-1] >= mask[order][1:] - 1e-7)  # nested: never grows with rank


def test_search_resumes_where_it_stopped(data, tmp_path):
    model = _tiny("drn-t")
    duals = create_dual(model)
    config = SearchConfig(rate=0.5, steps=3, batch_size=1, save_every=1)
    _, straight = search_widths(copy.deepcopy(model), copy.deepcopy(duals), data, config)
    state = tmp_path / "search.pt"
    search_widths(copy.deepcopy(model), copy.deepcopy(duals), data,
                  SearchConfig(rate=0.5, steps=2, batch_size=1, save_every=1), state_path=str(state))
    _, resumed = search_widths(copy.deepcopy(model), copy.deepcopy(duals), data, config, state_path=str(state))
    assert resumed.step == 3
    for a, b in zip(straight.alphas, resumed.alphas):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["drn-t", "rlfn"])
def test_dr_pruning_keeps_exactly_the_searched_widths(name, data, tmp_path):
    model = _tiny(name).eval()
    layers = prunable_layers(model)
    widths = [candidate_widths(layer.full, 0.5)[0] for layer in layers]
    pruned, keep = dr_prune(model, create_dual(model), widths, data, PruneConfig(batch_size=1, channels_per_step=2),
                            state_path=str(tmp_path / "prune.pt"))
    assert pruned.widths == widths
    assert [len(keep[layer.name]) for layer in layers] == widths
    assert count_parameters(pruned) < count_parameters(model)
    x = torch.rand(1, 3, 16, 16) * 255
    with torch.no_grad():
        out = pruned(x)
    assert torch.isfinite(out[-1] if isinstance(out, list) else out).all()


def test_finetune_with_teacher_updates_the_student(data):
    teacher = _tiny("rlfn")
    widths = uniform_widths(teacher, 0.5)
    inner_only = [w if not layer.name.startswith("stream") else layer.full
                  for w, layer in zip(widths, prunable_layers(teacher))]
    for distill, student_widths in (("feature", inner_only), ("output", widths)):
        student = create_model("rlfn", 4, n_feats=16, n_blocks=1, esa_width=8, widths=student_widths)
        before = copy.deepcopy(student.state_dict())
        finetune(student, create_dual(student), data, FinetuneConfig(steps=2, batch_size=1, distill=distill),
                 teacher=teacher)
        assert any(not torch.equal(before[k], v) for k, v in student.state_dict().items())
    assert all(p.requires_grad for p in teacher.parameters())  # the caller's teacher is left as it was


def test_feature_distillation_refuses_a_pruned_distill_point(data):
    teacher = _tiny("rlfn")
    student = create_model("rlfn", 4, n_feats=16, n_blocks=1, esa_width=8, widths=uniform_widths(teacher, 0.5))
    with pytest.raises(ValueError, match="use output distillation"):
        finetune(student, None, data, FinetuneConfig(steps=1, batch_size=1, distill="feature", dual_weight=0),
                 teacher=teacher)


def test_l1_selection_keeps_largest_consumer_norms():
    model = _tiny("drn-t")
    layers = prunable_layers(model)
    widths = [max(1, layer.full // 2) for layer in layers]
    keep = l1_keep(model, widths)
    for layer, w in zip(layers, widths):
        norms = consumer_l1_norms(model, layer)
        kept = norms[keep[layer.name]]
        dropped = norms[[i for i in range(layer.full) if i not in keep[layer.name]]]
        assert len(keep[layer.name]) == w and kept.min() >= dropped.max()


def test_random_selection_depends_on_seed_only():
    model = _tiny("rlfn")
    widths = [4] * len(prunable_layers(model))
    assert random_keep(model, widths, 1) == random_keep(model, widths, 1)
    assert random_keep(model, widths, 1) != random_keep(model, widths, 2)


def test_uniform_widths_meet_a_parameter_budget():
    model = create_model("drn-t", 4)
    budget = count_parameters(model) // 2
    widths = uniform_widths(model, target_params=budget)
    pruned = create_model("drn-t", 4, widths=widths)
    assert abs(count_parameters(pruned) - budget) < 0.1 * budget
