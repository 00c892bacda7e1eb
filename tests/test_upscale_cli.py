"""`dualsr upscale`: outputs keep mode/size/bit depth; every bad input is one line, the rest still runs."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dualsr.checkpoint import save_weights
from dualsr.cli import main
from dualsr.models import create_model


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A tiny random drn-t x4; its safetensors metadata carries n_blocks/n_feats for the CLI."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny_x4.safetensors"
    return save_weights(create_model("drn-t", 4, n_blocks=1, n_feats=4), path)


def _rgb(path: Path, h: int = 6, w: int = 5, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def upscale(capsys, weights: Path, *args: str) -> tuple[int, list[str]]:
    """Run the CLI in-process; return the exit status and the stderr lines (progress bars are off)."""
    status = main(["upscale", *args, "--model", "drn-t", "--weights", str(weights), "-q"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return status, err


def _errors(lines: list[str]) -> list[str]:
    return [line for line in lines if ": error: " in line]


def _no_partial_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".") or p.suffix in (".part", ".tmp")]


def test_folder_upscaled_with_modes_and_sizes_kept(tmp_path, capsys, weights):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(1)
    _rgb(src / "rgb.png")
    Image.fromarray(rng.integers(0, 256, (6, 5, 4), dtype=np.uint8), "RGBA").save(src / "rgba.png")
    Image.fromarray(rng.integers(0, 256, (6, 5), dtype=np.uint8), "L").save(src / "gray.png")
    Image.fromarray(rng.integers(0, 65536, (6, 5), dtype=np.uint16)).save(src / "gray16.png")
    status, err = upscale(capsys, weights, str(src), "-o", str(tmp_path / "out"))
    assert status == 0, err
    modes = {}
    for name in ("rgb.png", "rgba.png", "gray.png", "gray16.png"):
        with Image.open(tmp_path / "out" / name) as image:
            assert image.size == (20, 24), name
            modes[name] = image.mode
    assert modes == {"rgb.png": "RGB", "rgba.png": "RGBA", "gray.png": "L", "gray16.png": "I;16"}
    deep = np.asarray(Image.open(tmp_path / "out" / "gray16.png"))
    assert len(np.unique(deep % 257)) > 10  # real 16-bit samples, not 8-bit ones scaled


def test_16bit_colour_in_gives_16bit_colour_out(tmp_path, capsys, weights):
    import png

    rng = np.random.default_rng(5)
    values = rng.integers(0, 65536, (6, 5, 4), dtype=np.uint16)
    with open(tmp_path / "deep.png", "wb") as f:
        png.Writer(5, 6, bitdepth=16, greyscale=False, alpha=True).write(f, values.reshape(6, -1))
    status, err = upscale(capsys, weights, str(tmp_path / "deep.png"), "-o", str(tmp_path / "out.png"))
    assert status == 0 and not [line for line in err if "warning" in line], err
    with open(tmp_path / "out.png", "rb") as f:
        width, height, rows, info = png.Reader(file=f).asDirect()
        out = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(height, width, 4)
    assert (width, height, info["bitdepth"]) == (20, 24, 16)
    assert len(np.unique(out % 257)) > 10  # real 16-bit samples, not 8-bit ones scaled


def test_one_input_to_named_output_file_with_tiles(tmp_path, capsys, weights):
    src = _rgb(tmp_path / "a.png", 20, 17)
    status, err = upscale(capsys, weights, str(src), "-o", str(tmp_path / "sub" / "big.png"), "--tile", "8")
    assert status == 0, err
    assert Image.open(tmp_path / "sub" / "big.png").size == (68, 80)


def test_missing_path_is_reported_and_others_processed(tmp_path, capsys, weights):
    good = _rgb(tmp_path / "good.png")
    status, err = upscale(capsys, weights, str(tmp_path / "nope.png"), str(good), "-o", str(tmp_path / "out"))
    assert status == 1
    assert len(_errors(err)) == 1 and "nope.png" in _errors(err)[0] and "no such file" in _errors(err)[0]
    assert (tmp_path / "out" / "good.png").is_file()


@pytest.mark.parametrize("kind", ["empty", "truncated", "text"])
def test_unreadable_file_is_one_line_and_leaves_no_output(tmp_path, capsys, weights, kind):
    src = tmp_path / "in"
    src.mkdir()
    good = _rgb(src / "good.png", 8, 8)
    bad = src / "bad.png"
    if kind == "empty":
        bad.write_bytes(b"")
    elif kind == "truncated":
        data = good.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    else:
        bad.write_text("this is not a picture\n")
    out = tmp_path / "out"
    status, err = upscale(capsys, weights, str(src), "-o", str(out))
    assert status == 1
    errors = _errors(err)
    assert len(errors) == 1 and "bad.png" in errors[0]
    reason = {"empty": "empty", "truncated": "truncated", "text": "not an image"}[kind]
    assert reason in errors[0]
    assert (out / "good.png").is_file() and not (out / "bad.png").exists()
    assert _no_partial_files(out)


def test_cmyk_jpeg_and_palette_png_are_converted(tmp_path, capsys, weights):
    rng = np.random.default_rng(2)
    rgb = Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))
    rgb.convert("CMYK").save(tmp_path / "cmyk.jpg")
    rgb.convert("P").save(tmp_path / "palette.png")
    status, err = upscale(capsys, weights, str(tmp_path / "cmyk.jpg"), str(tmp_path / "palette.png"),
                          "-o", str(tmp_path / "out"))
    assert status == 0, err
    for name in ("cmyk.jpg", "palette.png"):
        with Image.open(tmp_path / "out" / name) as image:
            assert image.mode == "RGB" and image.size == (20, 24)


def test_one_pixel_image_becomes_four_by_four(tmp_path, capsys, weights):
    src = _rgb(tmp_path / "dot.png", 1, 1)
    status, err = upscale(capsys, weights, str(src), "-o", str(tmp_path / "dot_x4.png"))
    assert status == 0, err
    assert Image.open(tmp_path / "dot_x4.png").size == (4, 4)


def test_folder_mixing_images_and_other_files(tmp_path, capsys, weights):
    src = tmp_path / "in"
    src.mkdir()
    _rgb(src / "a.png")
    _rgb(src / "b.jpg", seed=3)
    (src / "notes.txt").write_text("hello")
    (src / "sub").mkdir()
    status, err = upscale(capsys, weights, str(src), "-o", str(tmp_path / "out"))
    assert status == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.jpg"]
    assert any("notes.txt" in line and "skipped" in line for line in err)


def test_unwritable_output_folder_is_one_line(tmp_path, capsys, weights):
    src = _rgb(tmp_path / "a.png")
    _rgb(tmp_path / "b.png")
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    status, err = upscale(capsys, weights, str(src), str(tmp_path / "b.png"), "-o", str(blocker / "out"))
    assert status == 2
    assert len(err) == 1 and "file.txt" in err[0] and "cannot create" in err[0]


def test_unwritable_output_file_fails_that_file_only(tmp_path, capsys, weights):
    src = tmp_path / "in"
    src.mkdir()
    _rgb(src / "a.png")
    _rgb(src / "b.png")
    out = tmp_path / "out"
    (out / "a.png").mkdir(parents=True)  # a folder sits where the output file should go
    status, err = upscale(capsys, weights, str(src), "-o", str(out))
    assert status == 1
    assert len(_errors(err)) == 1 and "a.png" in _errors(err)[0]
    assert (out / "b.png").is_file() and _no_partial_files(out)


def test_output_never_overwrites_an_input(tmp_path, capsys, weights):
    src = _rgb(tmp_path / "a.png")
    before = src.read_bytes()
    status, err = upscale(capsys, weights, str(src), "-o", str(tmp_path), "--suffix", "")
    assert status == 1 and "overwrite" in _errors(err)[0]
    assert src.read_bytes() == before
    # without --suffix, writing into the input's folder marks the result instead
    status, err = upscale(capsys, weights, str(src), "-o", str(tmp_path))
    assert status == 0 and (tmp_path / "a_x4.png").is_file() and src.read_bytes() == before


def test_weights_of_the_wrong_scale_are_refused(tmp_path, capsys, weights):
    src = _rgb(tmp_path / "a.png")
    x2 = save_weights(create_model("drn-t", 2, n_blocks=1, n_feats=4), tmp_path / "x2.safetensors")
    status, err = upscale(capsys, x2, str(src), "-o", str(tmp_path / "out"), "--scale", "4")
    assert status == 2
    assert len(err) == 1 and "x2.safetensors" in err[0] and "wrong scale" in err[0]
    assert not (tmp_path / "out" / "a.png").exists()


@pytest.mark.parametrize("model, problem", [("drn-s", "wrong preset"), ("rlfn", "wrong model")])
def test_weights_of_another_architecture_are_refused(tmp_path, capsys, weights, model, problem):
    src = _rgb(tmp_path / "a.png")
    status = main(["upscale", str(src), "-o", str(tmp_path / "out"), "--model", model, "--weights",
                   str(weights), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and "tiny_x4.safetensors" in err[0] and problem in err[0]
    assert not (tmp_path / "out" / "a.png").exists()


class _Payload:
    """Unpickling this would import and call code."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_checkpoint_carrying_code_is_refused(tmp_path, capsys):
    src = _rgb(tmp_path / "a.png")
    evil = tmp_path / "evil.pt"
    torch.save({"head.weight": torch.zeros(1), "payload": _Payload()}, evil)
    status, err = upscale(capsys, evil, str(src), "-o", str(tmp_path / "out"))
    assert status == 2
    assert len(err) == 1 and "evil.pt" in err[0] and "refused" in err[0]
    assert not (tmp_path / "out" / "a.png").exists()


def test_demo_writes_side_by_side_with_psnrs(tmp_path, weights, capsys):
    from dualsr.demo import run_demo

    scores = run_demo(tmp_path / "demo", model="drn-t", weights=str(weights))
    out = capsys.readouterr().out
    assert set(scores) == {"bicubic", "drn-t"} and all(10 < v < 60 for v in scores.values())
    sheet = Image.open(tmp_path / "demo" / "side_by_side.png")
    upscaled = Image.open(tmp_path / "demo" / "upscaled_x4.png")
    assert upscaled.size == Image.open(tmp_path / "demo" / "ground_truth.png").size
    assert sheet.width > 4 * upscaled.width and "side_by_side.png" in out and "PSNR bicubic" in out


def test_several_inputs_into_one_file_name_is_refused(tmp_path, capsys, weights):
    a, b = _rgb(tmp_path / "a.png"), _rgb(tmp_path / "b.png")
    status, err = upscale(capsys, weights, str(a), str(b), "-o", str(tmp_path / "out.png"))
    assert status == 2 and len(err) == 1 and "output folder" in err[0]
    assert not (tmp_path / "out.png").exists()


def test_no_model_option_uses_the_shipped_default(tmp_path, capsys, monkeypatch, weights):
    import shutil

    import dualsr.weights as shipped_weights

    monkeypatch.setattr(shipped_weights, "WEIGHTS_DIR", tmp_path / "pkg")
    status = main(["upscale", str(_rgb(tmp_path / "a.png")), "-o", str(tmp_path / "out"), "-q"])
    assert status == 2 and "not installed" in capsys.readouterr().err
    (tmp_path / "pkg").mkdir()
    shutil.copy(weights, tmp_path / "pkg" / f"{shipped_weights.DEFAULTS[4]}.safetensors")
    status = main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "-q"])
    assert status == 0 and Image.open(tmp_path / "out" / "a.png").size == (20, 24)
