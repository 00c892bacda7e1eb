"""Prunable widths, physical channel removal and the on-disk format of compressed models."""
from __future__ import annotations

import pytest
import torch
from conftest import shared_path

from dualsr.compress.surgery import keep_to_masks, remove_channels
from dualsr.checkpoint import load, read_widths_file, save_weights
from dualsr.compress.layers import channel_masks, prunable_layers
from dualsr.models import create_model
from dualsr.profile import count_macs, count_parameters


def _tiny(name: str):
    if name == "rlfn":
        return create_model("rlfn", 4, n_feats=12, n_blocks=2, esa_width=8).eval()
    return create_model("drn-t", 4, n_blocks=2, n_feats=4).eval()


def _last(out):
    return out[-1] if isinstance(out, list) else out


def _random_keep(model, fraction=0.5, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {layer.name: torch.randperm(layer.full, generator=g)[: max(1, int(layer.full * fraction))].tolist()
            for layer in prunable_layers(model)}


@pytest.mark.parametrize("name", ["drn-t", "rlfn"])
def test_prunable_layers_follow_model_width_order(name):
    model = _tiny(name)
    assert [layer.full for layer in prunable_layers(model)] == model.widths


@pytest.mark.parametrize("name", ["drn-t", "rlfn"])
def test_keeping_every_channel_reproduces_original_outputs(name):
    model = _tiny(name)
    keep = {layer.name: list(range(layer.full)) for layer in prunable_layers(model)}
    same = remove_channels(model, keep)
    x = torch.rand(1, 3, 24, 24) * 255
    with torch.no_grad():
        assert torch.equal(_last(model(x)), _last(same(x)))


@pytest.mark.parametrize("name", ["drn-t", "rlfn"])
def test_physical_removal_equals_masking(name):
    model = _tiny(name)
    keep = _random_keep(model)
    pruned = remove_channels(model, keep)
    assert pruned.widths == [len(keep[layer.name]) for layer in prunable_layers(model)]
    assert count_parameters(pruned) < count_parameters(model)
    x = torch.rand(2, 3, 24, 24) * 255
    with torch.no_grad():
        with channel_masks(model, prunable_layers(model), keep_to_masks(model, keep)):
            masked = model(x)
        removed = pruned(x)
    for a, b in zip(masked if isinstance(masked, list) else [masked], removed if isinstance(removed, list) else [removed]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_pixelshuffle_upsampler_loses_four_conv_outputs_per_channel():
    model = _tiny("drn-t")
    layer = next(layer for layer in prunable_layers(model) if layer.group == 4)
    keep = {layer.name: [0, 2]}  # drop every other post-shuffle channel
    pruned = remove_channels(model, keep)
    conv = pruned.get_submodule(layer.producer)
    original = model.get_submodule(layer.producer)
    assert conv.out_channels == 2 * 4
    kept_rows = [0, 1, 2, 3, 8, 9, 10, 11]
    assert torch.equal(conv.weight, original.weight[kept_rows])
    consumer = pruned.get_submodule(layer.consumers[0])
    assert torch.equal(consumer.weight, model.get_submodule(layer.consumers[0]).weight[:, [0, 2]])


@pytest.mark.parametrize("name", ["drn-t", "rlfn"])
def test_compressed_checkpoint_rebuilds_from_its_own_metadata(name, tmp_path):
    model = _tiny(name)
    pruned = remove_channels(model, _random_keep(model, 0.25))
    path = tmp_path / "pruned.safetensors"
    save_weights(pruned, path)
    loaded = load(path).model.eval()
    assert loaded.widths == pruned.widths
    x = torch.rand(1, 3, 24, 24) * 255
    with torch.no_grad():
        assert torch.equal(_last(loaded(x)), _last(pruned(x)))


@pytest.mark.parametrize("rate, params_k, gmacs", [("03", 3117, 72.2), ("05", 2267, 53.0), ("07", 1428, 32.7)])
def test_official_drc_x4_width_files_give_published_size(rate, params_k, gmacs):
    widths = read_widths_file(shared_path("drc_configs", f"search_x4p{rate}.txt"))
    model = create_model("drn-s", 4, widths=widths)
    assert abs(count_parameters(model) / 1e3 - params_k) <= 1.0
    assert abs(count_macs(model, (96, 96)) / 1e9 - gmacs) <= 0.2


@pytest.mark.parametrize("rate", ["03", "05", "07"])
def test_official_drc_x8_width_files_fit_drn_s_x8(rate):
    widths = read_widths_file(shared_path("drc_configs", f"search_x8p{rate}.txt"))
    model = create_model("drn-s", 8, widths=widths)
    assert model.widths == widths


@pytest.mark.slow
def test_drn_s_pruned_to_official_widths_equals_its_masked_original():
    from dualsr.compress.baselines import l1_keep

    widths = read_widths_file(shared_path("drc_configs", "search_x4p05.txt"))
    model = create_model("drn-s", 4).eval()
    keep = l1_keep(model, widths)
    pruned = remove_channels(model, keep)
    assert count_parameters(pruned) == count_parameters(create_model("drn-s", 4, widths=widths))
    x = torch.rand(1, 3, 12, 12) * 255
    with torch.no_grad():
        with channel_masks(model, prunable_layers(model), keep_to_masks(model, keep)):
            masked = model(x)
        removed = pruned(x)
    torch.testing.assert_close(masked[-1], removed[-1], atol=1e-4, rtol=0)


def test_rlfn_official_weights_pruned_by_l1_equal_masking():
    from dualsr.compress.baselines import l1_keep
    from dualsr.checkpoint import load_weights

    model = load_weights(create_model("rlfn", 4), shared_path("weights", "rlfn", "rlfn_x4.pth")).eval()
    widths = [w // 2 for w in model.widths]
    keep = l1_keep(model, widths)
    # float64: the trained weights make float32 summation-order noise reach ~1e-3 on the 0-255 scale
    model, pruned = model.double(), remove_channels(model, keep).double()
    x = torch.rand(1, 3, 20, 20, dtype=torch.float64) * 255
    with torch.no_grad():
        with channel_masks(model, prunable_layers(model), keep_to_masks(model, keep)):
            masked = model(x)
        torch.testing.assert_close(masked, pruned(x), atol=1e-4, rtol=0)
