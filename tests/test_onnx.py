"""ONNX export and onnxruntime upscaling: every exportable registered model, driven by `list_models()`.

onnxruntime's output through the `Upscaler` equals the torch path within one grey level (uint8)
at three input sizes, one of them odd; tiling, alpha and 16-bit go through the shared code; the
errors are one line. Skipped (with the reason) when onnx/onnxruntime are not installed.
"""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e \".[onnx]\")")
onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install -e \".[onnx]\")")

from dualsr.checkpoint import WeightsError, save_weights  # noqa: E402
from dualsr.cli import main  # noqa: E402
from dualsr.inference import FORMAT_FLOAT255, Upscaler  # noqa: E402
from dualsr.models import ModelSpec, get_spec, list_models, register_model, unregister_model  # noqa: E402
from dualsr.onnx import export_onnx  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# Small but real configurations of the built-ins; any other registered model is built as it comes.
SMALL = {"drn-s": {"n_blocks": 1}, "drn-l": {"n_blocks": 1}, "drn-t": {"n_blocks": 1, "n_feats": 4},
         "rlfn": {"n_feats": 8, "n_blocks": 2, "esa_width": 4},
         "swinir-light": {"embed_dim": 12, "depths": [2, 2], "num_heads": [2, 2], "img_size": 16},
         "swinir-classical": {"embed_dim": 12, "depths": [2], "num_heads": [2], "img_size": 16}}
EXPORTABLE = [name for name in list_models() if get_spec(name).onnx_export]
SIZES = [(24, 24), (17, 23), (32, 40)]


def _build(name: str) -> nn.Module:
    torch.manual_seed(0)
    spec = get_spec(name)
    return spec.build(spec.default_scale_value, **SMALL.get(name, {})).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (torch model, .onnx path), each model exported once for the module."""
    cache: dict[str, tuple[nn.Module, Path]] = {}

    def get(name: str):
        if name not in cache:
            model = _build(name)
            path = export_onnx(model, tmp_path_factory.mktemp("onnx") / f"{name}.onnx")
            cache[name] = (model, path)
        return cache[name]

    return get


def _image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


@pytest.mark.parametrize("name", EXPORTABLE)
def test_onnxruntime_equals_torch_through_the_upscaler(name, exported):
    model, path = exported(name)
    with_onnx, with_torch = Upscaler(weights=path), Upscaler(model)
    assert (with_onnx.name, with_onnx.scale) == (with_torch.name, with_torch.scale)
    for height, width in SIZES:
        image = _image(height, width)
        got, want = with_onnx.upscale(image), with_torch.upscale(image)
        assert got.shape == want.shape == (height * with_torch.scale, width * with_torch.scale, 3)
        assert np.abs(got.astype(int) - want).max() <= 1, (name, height, width)


@pytest.mark.parametrize("name", EXPORTABLE)
def test_the_metadata_carries_what_the_upscaler_reads_from_the_spec(name, exported):
    model, path = exported(name)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    spec = get_spec(name)
    assert meta["model"] == name and int(meta["scale"]) == spec.default_scale_value
    assert (meta["tiling"], int(meta["size_multiple"]), int(meta["min_input"])) == \
        (spec.tiling, spec.size_multiple, spec.min_input)
    assert meta["value_range"] == "255" and "0-255" in meta["io"] and meta["dualsr_version"]
    with_onnx, with_torch = Upscaler(weights=path, tile="auto"), Upscaler(model, tile="auto")
    # tile="auto" plans with the same activation size, and tiles get the same default context
    assert with_onnx.bytes_per_lr_pixel == pytest.approx(with_torch.bytes_per_lr_pixel)
    assert (with_onnx.receptive_radius, with_onnx.tile_pad) == (with_torch.receptive_radius, with_torch.tile_pad)
    graph = onnx.load(str(path)).graph
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]  # dynamic batch, height and width


def test_swinir_padding_by_index_equals_the_eager_padding():
    from dualsr.models.swinir import _pad_to_multiple, _pad_to_multiple_by_index

    for h in range(1, 19):
        for w in (1, 3, 7, 8, 9, 17):
            x = torch.rand(1, 2, h, w)
            assert torch.equal(_pad_to_multiple_by_index(x, 8), _pad_to_multiple(x, 8)), (h, w)


# ------------------------------------------------------------------------ tiling: the shared code


class LocalNet(nn.Module):
    """conv -> ReLU -> conv + PixelShuffle(2), 0-1 value range: a local model (tiles exactly)."""

    def __init__(self, scale: int = 2, n_feats: int = 6):
        super().__init__()
        self.scale, self.n_feats = scale, n_feats
        self.head = nn.Conv2d(3, n_feats, 3, padding=1)
        self.up = nn.Conv2d(n_feats, 12, 3, padding=1)

    def config(self) -> dict:
        return {"scale": self.scale, "n_feats": self.n_feats}

    def forward(self, x):
        return F.pixel_shuffle(self.up(F.relu(self.head(x))), 2) + F.interpolate(x, scale_factor=2, mode="nearest")


def _local_spec(name: str, exportable: bool = True) -> ModelSpec:
    # size_multiple 4 on images that are not a multiple: tiles must see the untiled image's edge padding
    return ModelSpec(name=name, builder=LocalNet, scales=(2,), value_range=1.0, tiling="local", size_multiple=4,
                     receptive_radius=lambda m: 2.5, onnx_export=exportable)


@pytest.fixture
def local_model():
    spec = register_model(_local_spec("onnx-test-local"))
    try:
        torch.manual_seed(0)
        yield spec.build(2).eval()
    finally:
        unregister_model(spec.name)


def test_a_local_model_tiles_exactly_under_onnx_through_the_shared_tiling(local_model, tmp_path):
    path = export_onnx(local_model, tmp_path / "local.onnx")
    image = torch.from_numpy(_image(19, 23).transpose(2, 0, 1).astype(np.float32))
    untiled = Upscaler(weights=path).upscale_planes(image, fmt=FORMAT_FLOAT255)
    tiled = Upscaler(weights=path, tile=8)
    assert tiled.exact_tiling and tiled.tile_pad == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exact: no approximation warning
        out = tiled.upscale_planes(image, fmt=FORMAT_FLOAT255)
        torch_untiled = Upscaler(model=local_model).upscale_planes(image, fmt=FORMAT_FLOAT255)
        torch_tiled = Upscaler(model=local_model, tile=8).upscale_planes(image, fmt=FORMAT_FLOAT255)
    assert np.abs(out - untiled).max() < 1e-3
    assert np.abs(torch_tiled - torch_untiled).max() < 1e-3
    assert np.abs(untiled - Upscaler(local_model).upscale_planes(image, fmt=FORMAT_FLOAT255)).max() < 1e-3


def test_global_pool_models_tile_approximately_under_onnx_and_say_so(exported):
    name = next(n for n in EXPORTABLE if get_spec(n).tiling == "global_pool")
    _model, path = exported(name)
    upscaler = Upscaler(weights=path, tile=8)
    assert not upscaler.exact_tiling
    with pytest.warns(UserWarning, match="approximates.*ONNX"):
        upscaler.upscale(_image(20, 20))


def test_alpha_and_grayscale_follow_the_torch_path(exported):
    model, path = exported("drn-t")
    for image in (_image(13, 11, 4), _image(13, 11, 1)[:, :, 0], _image(9, 10, 2)):
        got, want = Upscaler(weights=path).upscale(image), Upscaler(model).upscale(image)
        assert got.shape == want.shape and np.abs(got.astype(int) - want).max() <= 1


# ------------------------------------------------------------------------ the command line


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "dualsr", *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=str(REPO))


def _read_png16(path: Path) -> np.ndarray:
    import png

    with open(path, "rb") as f:
        width, height, rows, info = png.Reader(file=f).asDirect()
        return np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(height, width, info["planes"])


def test_cli_export_then_upscale_with_the_onnx_file_matches_torch(tmp_path):
    """`dualsr export --format onnx` and `dualsr upscale --weights x.onnx` as processes (RGBA and
    16-bit RGB PNGs), against the torch path of the same weights."""
    import png

    weights = save_weights(_build("drn-t"), tmp_path / "drn_t.safetensors")
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_image(15, 13, 4), "RGBA").save(src / "rgba.png")
    deep = np.random.default_rng(1).integers(0, 65536, (11, 9, 3), dtype=np.uint16)
    with open(src / "deep.png", "wb") as f:
        png.Writer(9, 11, bitdepth=16, greyscale=False).write(f, deep.reshape(11, -1))
    done = _run("export", "--format", "onnx", "--weights", str(weights), "-o", str(tmp_path / "m.onnx"))
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and (tmp_path / "m.onnx").is_file()
    done = _run("upscale", str(src), "-o", str(tmp_path / "onnx"), "--weights", str(tmp_path / "m.onnx"), "-q")
    assert done.returncode == 0, done.stderr
    assert main(["upscale", str(src), "-o", str(tmp_path / "torch"), "--weights", str(weights), "-q"]) == 0
    rgba = [np.asarray(Image.open(tmp_path / kind / "rgba.png")).astype(int) for kind in ("onnx", "torch")]
    assert rgba[0].shape == (60, 52, 4) and np.abs(rgba[0] - rgba[1]).max() <= 1
    deep_out = [_read_png16(tmp_path / kind / "deep.png").astype(int) for kind in ("onnx", "torch")]
    assert deep_out[0].shape == (44, 36, 3) and np.abs(deep_out[0] - deep_out[1]).max() <= 257


def _one_error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_an_onnx_file_without_dualsr_metadata_is_a_one_line_error(exported, tmp_path, capsys):
    _model, path = exported("drn-t")
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(WeightsError, match="no dualsr metadata"):
        Upscaler(weights=bare)
    Image.fromarray(_image(8, 8)).save(tmp_path / "a.png")
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out.png"), "--weights", str(bare)]) == 2
    assert "no dualsr metadata" in _one_error(capsys) and not (tmp_path / "out.png").exists()


def test_half_or_bf16_with_an_onnx_file_is_an_error(exported, tmp_path, capsys):
    _model, path = exported("drn-t")
    Image.fromarray(_image(8, 8)).save(tmp_path / "a.png")
    for flag in ("--half", "--bf16"):
        assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out.png"), "--weights", str(path),
                     flag]) == 2
        assert "float32" in _one_error(capsys)
    with pytest.raises(ValueError, match="wrong scale"):
        Upscaler(weights=path, scale=2)


def test_a_model_whose_spec_says_no_is_not_exported(tmp_path, capsys):
    spec = register_model(_local_spec("onnx-test-closed", exportable=False))
    try:
        weights = save_weights(spec.build(2), tmp_path / "closed.safetensors")
        out = tmp_path / "closed.onnx"
        assert main(["export", "--weights", str(weights), "-o", str(out)]) == 2
        assert "cannot be exported to ONNX" in _one_error(capsys) and not out.exists()
        with pytest.raises(ValueError, match="onnx_export=False"):
            export_onnx(spec.build(2), out)
    finally:
        unregister_model(spec.name)


def test_export_options_are_checked_before_anything_is_written(tmp_path, capsys):
    weights = save_weights(_build("drn-t"), tmp_path / "m.safetensors")
    (tmp_path / "a_file").write_text("")
    cases = [(["-o", str(tmp_path / "x.onnx"), "--opset", "5"], "opset 5"),
             (["-o", str(tmp_path / "x.onnx"), "--format", "safetensors"], "must end in .safetensors"),
             (["-o", str(tmp_path / "x.safetensors"), "--format", "onnx"], "must end in .onnx"),
             (["-o", str(tmp_path / "x.safetensors"), "--opset", "17"], "--opset is for --format onnx"),
             (["-o", str(tmp_path / "a_file" / "x.onnx")], "cannot write there"),
             (["-o", str(tmp_path)  + "/"], "must end in")]
    for args, message in cases:
        assert main(["export", "--weights", str(weights), *args]) == 2, args
        assert message in _one_error(capsys), args
    assert not list(tmp_path.glob("x.*"))
