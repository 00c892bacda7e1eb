"""SwinIR: official layout and sizes, detection, padding, and attention checked against a direct form."""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from conftest import shared_path
from dualsr.checkpoint import WeightsMismatchError, load, read_widths_file
from dualsr.models import create_dual, create_model, detect
from dualsr.models.swinir import SwinBlock, pad_like_official_test, parameter_views
from dualsr.profile import count_macs, count_parameters


def _counts(model) -> tuple[int, int]:
    return count_parameters(model), next(iter(parameter_views(model).values()))


@pytest.mark.parametrize("name, scale, total, without_tables", [
    ("swinir-light", 4, 929_628, 897_228),
    ("swinir-light", 2, 910_152, 877_752),
    ("swinir-classical", 4, 11_900_199, 11_851_599),
    ("swinir-classical", 2, 11_752_487, 11_703_887),
])
def test_parameter_counts_with_and_without_bias_tables(name, scale, total, without_tables):
    with torch.device("meta"):
        model = create_model(name, scale)
    assert _counts(model) == (total, without_tables)


def test_release_layout_has_the_official_keys():
    with torch.device("meta"):
        state = create_model("swinir-light", 4).state_dict()
    assert len(state) == 366  # parameters plus relative_position_index and (shifted blocks) attn_mask
    assert "layers.3.residual_group.blocks.5.attn_mask" in state and "upsample.0.weight" in state
    assert "layers.0.residual_group.blocks.0.attn_mask" not in state and "mean" not in state
    assert tuple(state["layers.0.residual_group.blocks.1.attn_mask"].shape) == (64, 64, 64)  # 64x64 patch


def test_dual_model_and_the_papers_pruned_size():
    assert count_parameters(create_dual(create_model("swinir-light", 4))) == 3_168
    path = shared_path("drc_configs", "swinir_light_drc_channel_config.txt")
    widths = read_widths_file(path)
    with torch.device("meta"):
        pruned = create_model("swinir-light", 4, widths=widths)
    assert _counts(pruned) == (631_632, 599_232)  # + the 3,168-parameter dual: the paper's "635K"


@pytest.mark.parametrize("name", ["swinir-light", "swinir-classical"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_detect_finds_each_preset_from_the_state_dict_alone(name, scale):
    with torch.device("meta"):
        model = create_model(name, scale)
    found = detect(model.state_dict())
    assert (found.name, found.scale) == (name, scale)
    assert found.config == {k: v for k, v in model.config().items() if k != "scale"}


def test_macs_count_the_attention_products():
    with torch.device("meta"):
        model = create_model("swinir-light", 4)
    total, per_layer = count_macs(model, (96, 96), per_layer=True)
    # q.k and attn.v: 2 x 9216 tokens x 64 keys x 60 channels, in each of the 24 blocks
    assert per_layer["(matrix products outside layers)"] == 24 * 2 * 96 * 96 * 64 * 60
    assert 9.7e9 < total < 10.0e9  # the paper quotes 10.0 G for SwinIR-light x4


# ------------------------------------------------------------------------------------ any input size


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (8, 8), (16, 24), (9, 17), (7, 8)])
def test_any_input_size_gives_size_times_scale(size):
    torch.manual_seed(0)
    model = create_model("swinir-light", 3, embed_dim=12, depths=[2], num_heads=[2], img_size=16).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, *size))
    assert tuple(out.shape[-2:]) == (3 * size[0], 3 * size[1]) and torch.isfinite(out).all()


def test_official_test_padding_adds_up_to_a_full_window():
    x = torch.arange(2 * 13, dtype=torch.float32).view(1, 1, 2, 13)
    padded = pad_like_official_test(x, 8)
    assert tuple(padded.shape[-2:]) == (8, 16)  # 2 -> 8 (a flipped copy, repeated), 13 -> 16
    assert torch.equal(padded[..., :2, :13], x) and torch.equal(padded[..., 2:4, :13], x.flip(-2))
    aligned = torch.zeros(1, 1, 8, 8)
    assert tuple(pad_like_official_test(aligned, 8).shape[-2:]) == (16, 16)  # aligned: one more window


# ------------------------------------------------------------------------------------ attention


def _direct_block(block: SwinBlock, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The block written without windows: full attention over all tokens, disallowed pairs at -inf.

    Two tokens may attend to each other when they fall into the same window of the grid shifted
    by `shift`; pairs that the cyclic shift brings together from opposite borders get -100.
    """
    win, shift, attn = block.window, block.shift, block.attn
    heads, inner = attn.heads, attn.inner
    ii, jj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    si, sj = (ii - shift) % h, (jj - shift) % w  # coordinates in the shifted frame
    window_id = (si // win) * (w // win) + sj // win

    def region(c, n):
        return (c >= n - win).long() + (c >= n - shift).long() if shift else torch.zeros_like(c)

    region_id = region(si, h) * 3 + region(sj, w)
    ai, aj = (si % win).flatten(), (sj % win).flatten()
    rel = (ai[:, None] - ai[None, :] + win - 1) * (2 * win - 1) + (aj[:, None] - aj[None, :] + win - 1)
    bias = attn.relative_position_bias_table[rel].permute(2, 0, 1)  # heads, HW, HW
    same_window = window_id.flatten()[:, None] == window_id.flatten()[None, :]
    cross_region = region_id.flatten()[:, None] != region_id.flatten()[None, :]
    logits_mask = torch.where(same_window, torch.where(cross_region, -100.0, 0.0), float("-inf"))

    y = block.norm1(x)
    q, k, v = F.linear(y, attn.qkv.weight, attn.qkv.bias).view(1, h * w, 3, heads, inner // heads).unbind(2)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    logits = (q @ k.transpose(-2, -1)) * (inner // heads) ** -0.5 + bias + logits_mask
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(1, h * w, inner)
    x = x + F.linear(out, attn.proj.weight, attn.proj.bias)
    return x + block.mlp(block.norm2(x))


@pytest.mark.parametrize("shift", [0, 4])
def test_windowed_attention_equals_direct_masked_attention(shift):
    torch.manual_seed(0)
    block = SwinBlock(dim=12, heads=2, window=8, shift=shift, hidden=24, inner=12, patch=(16, 16)).eval()
    with torch.no_grad():
        block.attn.relative_position_bias_table.normal_()  # make the bias matter
        for h, w in ((16, 16), (16, 24)):
            x = torch.randn(1, h * w, 12)
            torch.testing.assert_close(block(x, (h, w)), _direct_block(block, x, h, w), rtol=1e-4, atol=1e-5)


def test_rebuilt_buffers_are_deterministic_and_checked_on_load(tmp_path):
    from dualsr.checkpoint import save_weights

    config = {"embed_dim": 12, "depths": [2], "num_heads": [2], "img_size": 16}
    a, b = create_model("swinir-light", 2, **config), create_model("swinir-light", 2, **config)
    for key, value in a.state_dict().items():
        if key.endswith(("relative_position_index", "attn_mask")):
            assert torch.equal(value, b.state_dict()[key]), key
    state = a.state_dict()
    state["layers.0.residual_group.blocks.0.attn.relative_position_index"] = torch.zeros(64, 64, dtype=torch.long)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsMismatchError, match="wrong buffers.*relative_position_index"):
        load(tmp_path / "bad.pth")


def test_the_stored_mask_size_does_not_matter():
    torch.manual_seed(0)
    small = create_model("swinir-light", 2, embed_dim=12, depths=[2], num_heads=[2], img_size=16).eval()
    large = create_model("swinir-light", 2, embed_dim=12, depths=[2], num_heads=[2], img_size=32).eval()
    params = {k: v for k, v in small.state_dict().items() if not k.endswith("attn_mask")}
    large.load_state_dict(params, strict=False)
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        torch.testing.assert_close(large(x), small(x))


def test_a_small_swinir_trains_with_the_dual_term_and_loads_back(tmp_path):
    from dualsr.config import resolve
    from dualsr.train.trainer import train
    from test_train import make_images, tiny_overrides

    data = make_images(tmp_path / "data")
    overrides = tiny_overrides(data, tmp_path / "exp", total=2) + [
        "network_g.type=swinir-light", "network_g.embed_dim=12", "network_g.depths=[2]", "network_g.num_heads=[2]",
        "network_g.img_size=8", "datasets.train.gt_size=32",
        "train.scheduler={type: MultiStepLR, milestones: [1], gamma: 0.5}"]
    overrides = [o for o in overrides if not o.startswith(("network_g.n_blocks", "network_g.n_feats"))]
    summary = train(resolve({}, overrides))
    assert summary["iteration"] == 2
    loaded = load(tmp_path / "exp" / "run" / "models" / "net_g_latest.safetensors")
    assert (loaded.name, loaded.scale, loaded.config["embed_dim"]) == ("swinir-light", 4, 12)
    log = (tmp_path / "exp" / "run" / "train.log").read_text()
    assert "(1 duals)" in log and re.search(r"iter 2/2 \(100%\) lr 5\.000e-04 dual \d", log)  # 1e-3 halved at milestone 1


def test_benchmark_evaluation_pads_as_the_official_test_script(tmp_path):
    from dualsr.evaluate import super_resolve

    torch.manual_seed(0)
    model = create_model("swinir-light", 2, embed_dim=12, depths=[2], num_heads=[2], img_size=16).eval()
    lr = torch.rand(1, 3, 16, 13) * 255
    with torch.no_grad():
        ours = super_resolve(model, lr, 2)
        official = model(pad_like_official_test(lr / 255, 8))[..., :32, :26] * 255  # 16 -> 24 rows, 13 -> 16
        internal = model(lr / 255) * 255  # the model's own reflection padding gives other values
    assert tuple(ours.shape[-2:]) == (32, 26)
    torch.testing.assert_close(ours, official, rtol=1e-5, atol=1e-3)
    assert (ours - internal).abs().max() > 1e-3


def test_drc_and_l1_compress_a_small_swinir_keeping_heads_equal(tmp_path):
    from dualsr.checkpoint import save_weights
    from dualsr.cli import main
    from dualsr.compress.layers import prunable_layers
    from dualsr.compress.search import layer_candidates
    from test_train import make_images

    torch.manual_seed(0)
    model = create_model("swinir-light", 2, embed_dim=12, depths=[2], num_heads=[3], img_size=8)
    attention = [layer for layer in prunable_layers(model) if layer.kind == "qkv"]
    assert all(k % 3 == 0 for layer in attention for k in layer_candidates(layer, 0.5))
    weights = save_weights(model, tmp_path / "swinir.safetensors")
    data = make_images(tmp_path / "data", count=4)
    for method in ("drc", "l1"):
        out = tmp_path / method
        assert main(["compress", "--weights", str(weights), "--data", str(data), "--method", method, "--rate", "0.5",
                     "--out", str(out), "--search-steps", "2", "--finetune-steps", "2", "--dual-warmup-steps", "2",
                     "--batch-size", "2", "--gt-size", "16", "--channels-per-step", "2", "--quiet", "--distill"]) == 0
        compressed = load(out / "compressed.safetensors")
        widths = compressed.config["widths"]
        assert widths is not None and all(w % 3 == 0 for w in widths[0::2])  # attention widths: whole heads
        assert count_parameters(compressed.model) < count_parameters(model)


def test_tiling_is_reported_as_approximate_and_warned():
    import warnings

    from dualsr.inference import Upscaler

    torch.manual_seed(0)
    model = create_model("swinir-light", 2, embed_dim=12, depths=[2], num_heads=[2], img_size=8)
    upscaler = Upscaler(model, tile=8)
    assert not upscaler.exact_tiling and upscaler.receptive_radius == 1 + 1 + 1 + 1 + 2 * 8
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        upscaler.upscale(torch.rand(3, 20, 20) * 255)
    assert any("approximates" in str(w.message) for w in caught)
