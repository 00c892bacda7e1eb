"""Every registered model through every door, driven by `list_models()`.

A toy model defined in this file (convs, a channel MLP of nn.Linear layers, a PixelShuffle
upsampler, 0-1 value range) is registered here at import, before collection reads
`list_models()`, so the whole battery also runs on an architecture that the package has never
heard of: the proof that a backbone is one file. Nothing in src/ was changed for it.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from dualsr.checkpoint import WeightsMismatchError, identify, load, save_weights
from dualsr.cli import main
from dualsr.models import (
    Detected,
    ModelSpec,
    PrunableLayer,
    create_model,
    get_spec,
    list_models,
    register_model,
    run_model,
    sr_image,
)


# ------------------------------------------------------------------------------------ the toy model


class ToyNet(nn.Module):
    """head conv -> conv pair -> channel MLP (Linear) -> conv + PixelShuffle(2) -> conv; 0-1 RGB."""

    def __init__(self, scale: int = 2, n_feats: int = 8, widths: list[int] | None = None):
        super().__init__()
        full = [n_feats, 2 * n_feats, n_feats]
        widths = full if widths is None else [int(w) for w in widths]
        self.scale, self.n_feats, self.widths, self.full = scale, n_feats, widths, full
        self.head = nn.Conv2d(3, n_feats, 3, padding=1)
        self.body1 = nn.Conv2d(n_feats, widths[0], 3, padding=1)
        self.body2 = nn.Conv2d(widths[0], n_feats, 3, padding=1)
        self.mlp_in = nn.Linear(n_feats, widths[1])
        self.mlp_out = nn.Linear(widths[1], n_feats)
        self.up = nn.Sequential(nn.Conv2d(n_feats, 4 * widths[2], 3, padding=1), nn.PixelShuffle(2))
        self.tail = nn.Conv2d(widths[2], 3, 3, padding=1)

    def config(self) -> dict:
        return {"scale": self.scale, "n_feats": self.n_feats,
                "widths": None if self.widths == self.full else list(self.widths)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x)
        feat = feat + self.body2(F.relu(self.body1(feat)))
        mixed = self.mlp_out(F.gelu(self.mlp_in(feat.permute(0, 2, 3, 1)))).permute(0, 3, 1, 2)
        return self.tail(F.relu(self.up(feat + mixed))) + F.interpolate(x, scale_factor=2, mode="nearest")


def _toy_layers(model: ToyNet) -> list[PrunableLayer]:
    return [
        PrunableLayer("body1", "body1", ("body2",), "body1", model.full[0], model.widths[0]),
        PrunableLayer("mlp_in", "mlp_in", ("mlp_out",), "mlp_in", model.full[1], model.widths[1],
                      kind="linear", axis=-1),
        PrunableLayer("up", "up.0", ("tail",), "up.1", model.full[2], model.widths[2], group=4),
    ]


def _toy_detect(state) -> Detected | None:
    if not {"head.weight", "body1.weight", "mlp_in.weight", "up.0.weight", "tail.weight"} <= set(state):
        return None
    n_feats = int(state["head.weight"].shape[0])
    widths = [int(state["body1.weight"].shape[0]), int(state["mlp_in.weight"].shape[0]),
              int(state["tail.weight"].shape[1])]
    full = [n_feats, 2 * n_feats, n_feats]
    return Detected("toy-net", 2, {"n_feats": n_feats, "widths": None if widths == full else widths}, tuple(widths))


TOY_SPEC = ModelSpec(
    name="toy-net", builder=ToyNet, scales=(2,), description="a test's toy model", value_range=1.0,
    outputs="single", tiling="local",
    receptive_radius=lambda m: 1 + 1 + 1 + 1 + 0.5 + 0.5 + 1,  # head, body1, body2, up conv, shuffle, tail
    prunable_layers=_toy_layers, distill_feature=lambda m: "up.0", detect=_toy_detect,
)
if "toy-net" not in list_models():
    register_model(TOY_SPEC)

# Small but real configurations: the presets that `detect` must recognise keep their sizes.
SMALL = {"drn-t": {"n_blocks": 1, "n_feats": 4}, "rlfn": {"n_feats": 8, "n_blocks": 2, "esa_width": 4},
         "smfanet": {"dim": 8, "n_blocks": 2}, "toy-net": {"n_feats": 4},
         "swinir-light": {"embed_dim": 12, "depths": [2, 2], "num_heads": [2, 2], "img_size": 16},
         "swinir-classical": {"embed_dim": 12, "depths": [2], "num_heads": [2], "img_size": 16}}
SHRUNK = {"drn-s": {"n_blocks": 1}, "drn-l": {"n_blocks": 1}}  # where detection is not under test
MODELS = list_models()


def _build(name: str, config: dict | None = None, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    spec = get_spec(name)
    return spec.build(spec.default_scale_value, **(SMALL.get(name, {}) if config is None else config)).eval()


def _lr(model: nn.Module, side: int = 20) -> torch.Tensor:
    side = max(side, get_spec(model.spec.name).min_input)
    return torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(1)) * 255


# ------------------------------------------------------------------------------------ loading


@pytest.mark.parametrize("name", MODELS)
def test_save_and_load_round_trip_strictly(name, tmp_path):
    model = _build(name)
    path = save_weights(model, tmp_path / "model.safetensors")
    loaded = load(path)
    assert (loaded.name, loaded.scale, loaded.config) == (name, model.config()["scale"], model.config())
    assert loaded.model.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(), model.state_dict().values()))
    with torch.no_grad():
        assert torch.equal(sr_image(loaded.model.eval(), _lr(model)), sr_image(model, _lr(model)))


@pytest.mark.parametrize("wrap", ["plain", "params", "params_ema", "module."])
@pytest.mark.parametrize("name", MODELS)
def test_detect_reads_every_release_format_from_keys_and_shapes(name, wrap, tmp_path):
    model = _build(name)
    parameters = dict(model.named_parameters())  # values do not matter; derived buffers stay as built
    state = {k: torch.zeros(v.shape) if k in parameters else v for k, v in model.state_dict().items()}
    if wrap == "module.":
        state = {f"module.{k}": v for k, v in state.items()}
    elif wrap != "plain":
        state = {wrap: state}
    source = state
    if wrap == "plain":  # the released files are plain state dicts; the wrappers are read alike in memory
        torch.save(state, tmp_path / "release.pth")
        source = tmp_path / "release.pth"
    found = identify(source)
    config = {k: v for k, v in model.config().items() if k != "scale"}
    assert found is not None and (found.name, found.scale, found.config) == (name, model.config()["scale"], config)
    if wrap == "plain":
        loaded = load(source)  # no name, no scale
        assert (loaded.name, loaded.scale, loaded.config) == (name, model.config()["scale"], model.config())


@pytest.mark.parametrize("name", MODELS)
def test_a_name_or_scale_that_contradicts_the_file_names_both(name, tmp_path):
    path = save_weights(_build(name), tmp_path / "model.safetensors")
    other = next(n for n in MODELS if n != name)
    with pytest.raises(WeightsMismatchError, match=rf"{name}.*not {other}"):
        load(path, name=other)
    wrong_scale = next(s for s in (2, 3, 4, 8, 16) if s != get_spec(name).default_scale_value)
    with pytest.raises(WeightsMismatchError, match=rf"wrong scale.*{name} x\d.*not x{wrong_scale}"):
        load(path, scale=wrong_scale)


# ------------------------------------------------------------------------------------ the commands


def _image_folder(root, count: int = 1, side: int = 48):
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side]
    for i in range(count):
        image = np.stack([127 + 100 * np.sin(0.1 * (c + 1) * yy + 0.07 * xx + i) for c in range(3)], -1)
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(root / f"im{i}.png")
    return root


# The big presets (millions of parameters) run with their released layout only: their dualsr files
# are the same code path as every other model's, which the small ones cover.
BIG = {"drn-s", "drn-l"}


@pytest.mark.parametrize("name, kind", [(n, k) for n in MODELS for k in ("dualsr", "release")
                                        if not (n in BIG and k == "dualsr")])
def test_every_command_resolves_a_file_to_the_same_model_and_scale(name, kind, tmp_path, capsys):
    model = _build(name)
    scale = model.config()["scale"]
    if kind == "dualsr":
        weights = save_weights(model, tmp_path / "model.safetensors")
    else:  # a plain state dict without any metadata: only keys and shapes say what it is
        weights = tmp_path / "model.pth"
        torch.save(model.state_dict(), weights)
    label = get_spec(name).label(scale, model.config())
    data = _image_folder(tmp_path / "Set", side=8 * scale * max(1, get_spec(name).min_input // 8 + 1))
    capsys.readouterr()

    assert main(["profile", "--weights", str(weights)]) == 0
    assert f"model: {label}" in capsys.readouterr().out
    assert main(["test", "--weights", str(weights), "--data", str(data), "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["model"], report["scale"]) == (name, scale)
    assert main(["upscale", str(data / "im0.png"), "-o", str(tmp_path / "up.png"), "--weights", str(weights),
                 "-q"]) == 0
    assert f"x{scale} with {name}" in capsys.readouterr().err
    assert Image.open(tmp_path / "up.png").size == tuple(scale * s for s in Image.open(data / "im0.png").size)
    assert main(["export", "--weights", str(weights), "-o", str(tmp_path / "e.safetensors")]) == 0
    exported, original = identify(tmp_path / "e.safetensors"), identify(weights)
    assert (exported.name, exported.scale, exported.config) == (original.name, original.scale, original.config)


# ------------------------------------------------------------------------------------ compression


PRUNABLE = [n for n in MODELS if get_spec(n).prunable]


def _prunable(name: str) -> nn.Module:
    return _build(name, {**SMALL.get(name, {}), **SHRUNK.get(name, {})})


@pytest.mark.parametrize("name", PRUNABLE)
def test_full_widths_given_explicitly_reproduce_the_outputs(name):
    from dualsr.compress.layers import current_widths, rebuild

    model = _prunable(name)
    same = rebuild(model, current_widths(model)).eval()
    same.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(sr_image(same, _lr(model)), sr_image(model, _lr(model)))


@pytest.mark.parametrize("name", PRUNABLE)
def test_physical_pruning_equals_masking(name):
    from dualsr.compress.baselines import random_keep
    from dualsr.compress.layers import channel_masks, head_count, prunable_layers
    from dualsr.compress.surgery import keep_to_masks, remove_channels

    model = _prunable(name)
    layers = prunable_layers(model)
    half = [max(head_count(layer), layer.width // 2 // head_count(layer) * head_count(layer)) for layer in layers]
    keep = random_keep(model, half, seed=3)  # as many in every head where the layer has heads
    pruned = remove_channels(model, keep).eval()
    assert [layer.width for layer in prunable_layers(pruned)] == [len(k) for k in keep.values()]
    with torch.no_grad(), channel_masks(model, prunable_layers(model), keep_to_masks(model, keep)):
        masked = sr_image(model, _lr(model))
    with torch.no_grad():
        torch.testing.assert_close(sr_image(pruned, _lr(model)), masked, rtol=1e-4, atol=1e-3)


# ------------------------------------------------------------------------------------ tiling


@pytest.mark.parametrize("name", [n for n in MODELS if get_spec(n).tiling != "approximate"])
def test_tiled_equals_untiled_where_the_spec_says_exact(name):
    from dualsr.inference import Upscaler

    model = _prunable(name) if name in SHRUNK else _build(name)
    image = (torch.rand(3, 30, 26, generator=torch.Generator().manual_seed(5)) * 255).round()
    whole = Upscaler(model).upscale(image)
    radius = Upscaler(model).receptive_radius  # a spec may default to less context (trading a bounded error)
    tiled = Upscaler(model, tile=12, tile_pad=radius)
    assert tiled.exact_tiling
    assert (tiled.upscale(image) - whole).abs().max() <= 1.0  # float rounding can move one grey level


# ------------------------------------------------------------------------------------ the toy, end to end


def test_value_range_is_applied_by_the_caller():
    model = _build("toy-net")
    lr = _lr(model)
    with torch.no_grad():
        torch.testing.assert_close(run_model(model, lr)[0], model(lr / 255.0) * 255.0, rtol=1e-4, atol=1e-3)


def test_toy_model_loads_profiles_compresses_and_tiles_without_package_changes(tmp_path, capsys):
    from dualsr.inference import Upscaler

    model = _build("toy-net", {"n_feats": 8})
    weights = save_weights(model, tmp_path / "toy.safetensors")
    assert main(["profile", "--weights", str(weights)]) == 0
    assert "model: toy-net x2 (n_feats=8)" in capsys.readouterr().out
    data = _image_folder(tmp_path / "train", count=4, side=40)
    for method in ("drc", "l1"):
        out = tmp_path / method
        args = ["compress", "--weights", str(weights), "--data", str(data), "--method", method, "--rate", "0.5",
                "--out", str(out), "--search-steps", "2", "--finetune-steps", "2", "--dual-warmup-steps", "2",
                "--batch-size", "2", "--gt-size", "16", "--channels-per-step", "4", "--quiet", "--distill"]
        assert main(args) == 0
        compressed = load(out / "compressed.safetensors")
        assert compressed.name == "toy-net" and compressed.config["widths"] is not None
        assert sum(p.numel() for p in compressed.model.parameters()) < sum(p.numel() for p in model.parameters())
    image = (torch.rand(3, 25, 31, generator=torch.Generator().manual_seed(2)) * 255).round()
    whole = Upscaler(weights=weights).upscale(image)
    tiled = Upscaler(weights=weights, tile=8)
    assert tiled.exact_tiling and tiled.receptive_radius == 6
    assert (tiled.upscale(image) - whole).abs().max() <= 1.0


@pytest.mark.parametrize("name", PRUNABLE)
def test_a_pruned_release_needs_no_width_file(name, tmp_path):
    from dualsr.compress.layers import prunable_layers, rebuild

    model = _prunable(name) if name in SHRUNK else _build(name)
    from dualsr.compress.layers import head_count

    widths = [max(head_count(layer), layer.width // 2 // head_count(layer) * head_count(layer))
              for layer in prunable_layers(model)]
    pruned = rebuild(model, widths)
    parameters = dict(pruned.named_parameters())
    torch.save({k: torch.zeros(v.shape) if k in parameters else v for k, v in pruned.state_dict().items()},
               tmp_path / "pruned.pth")
    loaded = load(tmp_path / "pruned.pth")
    assert loaded.config["widths"] == widths and [layer.width for layer in prunable_layers(loaded.model)] == widths
