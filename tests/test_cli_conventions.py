"""The conventions users bring from Real-ESRGAN, chaiNNer and BasicSR, each tried through the real
command in a subprocess: output factor, format, suffix, pipes, usage on a typo, precision flags."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dualsr.checkpoint import save_weights
from dualsr.data.resize import imresize
from dualsr.models import create_model, get_spec, list_models

REPO = Path(__file__).resolve().parents[1]


def dualsr(*args: str, stdin: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "dualsr", *args], input=stdin, capture_output=True,
                          env=full_env, timeout=120, cwd=REPO)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny_x4.safetensors"
    return save_weights(create_model("drn-t", 4, n_blocks=1, n_feats=4), path)


def _image(path: Path, h: int = 9, w: int = 7, mode: str = "RGB", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4}[mode]
    Image.fromarray(rng.integers(0, 256, (h, w, channels), dtype=np.uint8), mode).save(path)
    return path


def _pixels(path_or_bytes) -> np.ndarray:
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    return np.asarray(Image.open(source))


def _err(result: subprocess.CompletedProcess) -> str:
    return result.stderr.decode()


def test_models_lists_every_registered_scale_with_size_shipping_and_tiling():
    result = dualsr("models", "--json")
    assert result.returncode == 0, _err(result)
    rows = json.loads(result.stdout)
    names = list(dict.fromkeys(r["model"] for r in rows))  # (a test may have registered a toy model here)
    assert names == [n for n in list_models() if n in names]
    assert {"drn-s", "drn-l", "drn-t", "rlfn", "swinir-light", "swinir-classical"} <= set(names)
    assert [(r["model"], r["scale"]) for r in rows] == [(n, s) for n in names for s in get_spec(n).scales]
    drn_s = next(r for r in rows if (r["model"], r["scale"]) == ("drn-s", 4))
    assert drn_s["params"] == 4_804_065 and drn_s["shipped"] is None
    from dualsr.weights import DEFAULTS

    defaults = [r for r in rows if r["default"]]  # one per scale with a default, each a shipped file
    assert sorted(r["scale"] for r in defaults) == sorted(DEFAULTS) and all(r["shipped"] for r in defaults)
    assert {r["tiling"] for r in rows} >= {"approximate", "exact (whole-image means)"}
    table = dualsr("models").stdout.decode()
    assert "4,804,065" in table and "default" in table and "tiling" in table.splitlines()[0]


def test_outscale_resizes_the_model_output_with_matlab_bicubic(tmp_path, weights):
    src = _image(tmp_path / "in.png", 9, 7)
    for factor in ("4", "3.5", "2"):
        result = dualsr("upscale", str(src), "-o", str(tmp_path / f"x{factor}.png"), "-s", factor,
                        "--weights", str(weights), "-q")
        assert result.returncode == 0, _err(result)
    native = _pixels(tmp_path / "x4.png")
    assert native.shape == (36, 28, 3)
    for factor, size in (("3.5", (31, 24)), ("2", (18, 14))):
        out = _pixels(tmp_path / f"x{factor}.png")
        assert out.shape[:2] == size  # int(factor x input size), as Real-ESRGAN
        expected = imresize(native, size=size)
        assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    bad = dualsr("upscale", str(src), "-o", str(tmp_path / "y.png"), "-s", "0", "--weights", str(weights))
    assert bad.returncode == 2 and "usage: dualsr upscale" in _err(bad) and "positive" in _err(bad)


def test_ext_picks_the_format_and_alpha_is_never_dropped(tmp_path, weights):
    (tmp_path / "in").mkdir()
    _image(tmp_path / "in" / "rgb.png", mode="RGB")
    _image(tmp_path / "in" / "alpha.png", mode="RGBA")
    result = dualsr("upscale", str(tmp_path / "in"), "-o", str(tmp_path / "jpg"), "--ext", "jpg",
                    "--weights", str(weights), "-q")
    assert result.returncode == 0, _err(result)
    assert sorted(p.name for p in (tmp_path / "jpg").iterdir()) == ["alpha.png", "rgb.jpg"]
    assert "has alpha, written as PNG" in _err(result)
    assert Image.open(tmp_path / "jpg" / "rgb.jpg").format == "JPEG"
    result = dualsr("upscale", str(tmp_path / "in"), "-o", str(tmp_path / "webp"), "--ext", "webp",
                    "--weights", str(weights), "-q")
    assert result.returncode == 0, _err(result)
    assert {Image.open(p).format for p in (tmp_path / "webp").iterdir()} == {"WEBP"}
    assert Image.open(tmp_path / "webp" / "alpha.webp").mode == "RGBA"


def test_output_into_the_input_folder_gets_a_suffix_by_default(tmp_path, weights):
    src = _image(tmp_path / "photo.png")
    before = src.read_bytes()
    result = dualsr("upscale", str(src), "-o", str(tmp_path), "--weights", str(weights), "-q")
    assert result.returncode == 0, _err(result)
    assert (tmp_path / "photo_x4.png").is_file() and src.read_bytes() == before
    result = dualsr("upscale", str(src), "-o", str(tmp_path), "-s", "2.5", "--weights", str(weights), "-q")
    assert (tmp_path / "photo_x2.5.png").is_file(), _err(result)
    # an explicit empty suffix asks for the input's own name: refused, and the summary claims no file
    refused = dualsr("upscale", str(src), "-o", str(tmp_path), "--suffix", "", "--weights", str(weights), "-q")
    assert refused.returncode == 1 and "would overwrite an input image" in _err(refused)
    assert "no image upscaled" in _err(refused) and "->" not in _err(refused)
    assert src.read_bytes() == before
    # another folder: names are kept
    other = dualsr("upscale", str(src), "-o", str(tmp_path / "out"), "--weights", str(weights), "-q")
    assert other.returncode == 0 and (tmp_path / "out" / "photo.png").is_file()


def test_dash_reads_stdin_and_writes_stdout(tmp_path, weights):
    src = _image(tmp_path / "in.png", 8, 6)
    reference = dualsr("upscale", str(src), "-o", str(tmp_path / "ref.png"), "--weights", str(weights), "-q")
    assert reference.returncode == 0, _err(reference)
    piped = dualsr("upscale", "-", "-o", "-", "--weights", str(weights), "-q", stdin=src.read_bytes())
    assert piped.returncode == 0, _err(piped)
    assert piped.stdout[:8] == b"\x89PNG\r\n\x1a\n"  # the image only: messages go to stderr
    assert np.array_equal(_pixels(piped.stdout), _pixels(tmp_path / "ref.png"))
    as_jpg = dualsr("upscale", "-", "-o", "-", "--ext", "jpg", "--weights", str(weights), "-q",
                    stdin=src.read_bytes())
    assert Image.open(io.BytesIO(as_jpg.stdout)).format == "JPEG"
    into_folder = dualsr("upscale", "-", "-o", str(tmp_path / "folder"), "--weights", str(weights), "-q",
                         stdin=src.read_bytes())
    assert into_folder.returncode == 0 and (tmp_path / "folder" / "stdin.png").is_file(), _err(into_folder)
    empty = dualsr("upscale", "-", "-o", "-", "--weights", str(weights), stdin=b"")
    assert empty.returncode == 2 and "stdin is empty" in _err(empty) and empty.stdout == b""
    junk = dualsr("upscale", "-", "-o", "-", "--weights", str(weights), stdin=b"not an image")
    assert junk.returncode == 2 and "stdin" in _err(junk) and junk.stdout == b""
    other = _image(tmp_path / "other.png", seed=1)
    two = dualsr("upscale", str(src), str(other), "-o", "-", "--weights", str(weights))
    assert two.returncode == 2 and "one image to stdout" in _err(two)


def test_unknown_option_prints_the_subcommand_usage():
    required = {"upscale": ["x.png", "-o", "y"], "train": ["-c", "configs/drn_t_x4.yaml"],
                "compress": ["--weights", "w.pt", "--data", "d", "--out", "o"], "export": ["--weights", "w.pt", "-o", "x"]}
    for command in ("upscale", "test", "train", "compress", "export", "profile", "models"):
        result = dualsr(command, "--no-such-option", *required.get(command, []))
        assert result.returncode == 2
        err = _err(result)
        assert f"usage: dualsr {command}" in err and "--no-such-option" in err, command


def test_precision_flags_on_a_cpu_are_an_error_or_a_note(tmp_path, weights):
    src = _image(tmp_path / "in.png")
    half = dualsr("upscale", str(src), "-o", str(tmp_path / "h.png"), "--half", "--weights", str(weights))
    assert half.returncode == 2 and "--half" in _err(half) and not (tmp_path / "h.png").exists()
    bf16 = dualsr("upscale", str(src), "-o", str(tmp_path / "b.png"), "--bf16", "--weights", str(weights))
    assert bf16.returncode == 0 and "--bf16 on the CPU" in _err(bf16) and (tmp_path / "b.png").is_file()


def test_messages_name_command_line_flags(tmp_path):
    src = _image(tmp_path / "in.png")
    result = dualsr("upscale", str(src), "-o", str(tmp_path / "o.png"), "--model", "swinir-light")  # not shipped
    assert result.returncode == 2
    assert "--weights" in _err(result) and "weights=" not in _err(result)


def test_bare_set_names_resolve_in_the_benchmark_folder(tmp_path):
    root = tmp_path / "benchmark"
    for name in ("Set5", "Set14"):
        (root / name / "HR").mkdir(parents=True)
        _image(root / name / "HR" / "a.png", 24, 24)
    env = {"DUALSR_BENCHMARK_DIR": str(root)}
    result = dualsr("test", "--model", "bicubic", "--scale", "4", "--data", "Set5", "set14", env=env)
    assert result.returncode == 0, _err(result)
    lines = result.stdout.decode().splitlines()
    assert any(line.startswith("Set5 ") for line in lines) and any(line.startswith("Set14 ") for line in lines)
    missing = dualsr("test", "--model", "bicubic", "--data", "Urban100", env=env)
    assert missing.returncode == 2 and "Set14, Set5" in _err(missing) and "Urban100" in _err(missing)


def test_startup_imports_nothing_the_command_does_not_need(tmp_path, weights):
    src = _image(tmp_path / "in.png", 16, 16)
    probe = ("import sys; from dualsr.cli import main; status = main(sys.argv[1:]); "
             "print(' '.join(sorted(sys.modules))); sys.exit(status)")
    result = subprocess.run([sys.executable, "-c", probe, "upscale", str(src), "-o", str(tmp_path / "o.png"),
                             "--weights", str(weights), "-q"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    baseline = set(subprocess.run([sys.executable, "-c", "import sys, torch; print(' '.join(sys.modules))"],
                                  capture_output=True, text=True, timeout=120).stdout.split())
    extra_packages = {m.split(".")[0] for m in loaded - baseline} - set(sys.stdlib_module_names)
    assert extra_packages <= {"dualsr", "PIL", "safetensors", "tqdm"}, extra_packages
    unneeded = {"dualsr.train", "dualsr.compress", "dualsr.evaluate", "dualsr.config", "dualsr.models.rlfn",
                "dualsr.models.swinir", "torch._dynamo", "yaml", "png", "onnx", "onnxruntime", "torch_pruning"}
    assert not unneeded & loaded, unneeded & loaded


def test_imresize_takes_numpy_and_pil_and_returns_the_same_kind():
    import dualsr

    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (13, 11, 3), dtype=np.uint8)
    tensor = imresize(torch.from_numpy(array).permute(2, 0, 1).double(), 1 / 2, round_uint8=True)
    out = dualsr.imresize(array, 1 / 2)
    assert out.dtype == np.uint8 and np.array_equal(out, tensor.permute(1, 2, 0).numpy().astype(np.uint8))
    floats = dualsr.imresize(array.astype(np.float32) / 255, 2)
    assert floats.dtype == np.float32 and floats.shape == (26, 22, 3)
    assert dualsr.imresize(array[:, :, 0], size=(5, 4)).shape == (5, 4)
    wide = (array[:, :, 0].astype(np.uint16) * 257)
    assert dualsr.imresize(wide, 3).dtype == np.uint16
    for mode in ("RGB", "RGBA", "L", "LA", "I;16", "F"):
        image = Image.fromarray(wide) if mode == "I;16" else Image.fromarray(array).convert(mode)
        resized = dualsr.imresize(image, 2)
        assert isinstance(resized, Image.Image) and resized.mode == mode and resized.size == (22, 26), mode
    with pytest.raises(TypeError, match="numpy array or PIL image"):
        dualsr.imresize([[1, 2], [3, 4]], 2)


def test_dir_shows_the_public_api():
    import dualsr

    names = dir(dualsr)
    assert {"load", "Upscaler", "imresize", "create_model", "register_model", "save_weights"} <= set(names)
    assert set(dualsr.__all__) <= set(names)


def test_upscale_progress_in_a_log_has_no_bar_frames(tmp_path, weights):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(3):
        _image(folder / f"{i}.png", 24, 20, seed=i)
    result = dualsr("upscale", str(folder), "-o", str(tmp_path / "out"), "--tile", "8", "--weights", str(weights))
    assert result.returncode == 0, _err(result)
    err = _err(result)
    assert "\r" not in err and "\x1b[" not in err  # stderr is a pipe: plain lines only
    assert err.strip().splitlines()[-1].startswith("dualsr upscale: upscaled 3 of 3 images")
