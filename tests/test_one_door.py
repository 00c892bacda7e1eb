"""One door per model: every command reads a weights file the same way (issue 8's four disagreements).

Before the loader was shared, `profile` labelled a drn-t file as drn-s, `test` and `compress`
could not infer an x2 file's scale, `test` did not recognise the official DRN-S layout without
--model, and train, export and compress wrote three metadata layouts.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dualsr.checkpoint import SCHEMA_VERSION, read_metadata, save_weights
from dualsr.cli import main
from dualsr.models import create_model
from test_checkpoint import _official_drn_s_x4_state
from test_train import make_images, tiny_overrides


def _set(folder, side: int = 48):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((side, side), Image.BICUBIC).save(
        folder / "a.png")
    return folder


def _errors(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_a_drn_t_file_is_never_taken_for_drn_s(tmp_path, capsys):
    weights = save_weights(create_model("drn-t", 4), tmp_path / "drn_t.safetensors")
    assert main(["profile", "--weights", str(weights)]) == 0
    assert "model: drn-t x4 (n_blocks=4, n_feats=8)" in capsys.readouterr().out
    data = _set(tmp_path / "Set")
    for command in (["profile"], ["test", "--data", str(data)], ["upscale", str(data / "a.png"), "-o",
                                                                  str(tmp_path / "out")], ["export", "-o", str(tmp_path / "e.safetensors")]):
        assert main([*command, "--model", "drn-s", "--weights", str(weights)]) == 2, command
        err = _errors(capsys)
        assert len(err) == 1 and "drn-t" in err[0] and "drn-s" in err[0] and "wrong preset" in err[0], command


@pytest.mark.parametrize("name, config", [("drn-t", {"n_blocks": 1, "n_feats": 4}),
                                          ("rlfn", {"n_feats": 8, "n_blocks": 1, "esa_width": 4})])
@pytest.mark.parametrize("kind", ["dualsr", "release"])
def test_x2_files_are_x2_for_every_command(name, config, kind, tmp_path, capsys):
    model = create_model(name, 2, **config)
    if kind == "dualsr":
        weights = save_weights(model, tmp_path / "x2.safetensors")
    else:
        weights = tmp_path / "x2.pth"
        torch.save({"params": model.state_dict()}, weights)
    data = _set(tmp_path / "Set", side=40)
    capsys.readouterr()
    assert main(["profile", "--weights", str(weights)]) == 0
    assert f"model: {name} x2" in capsys.readouterr().out
    assert main(["test", "--weights", str(weights), "--data", str(data), "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["scale"] == 2
    assert main(["upscale", str(data / "a.png"), "-o", str(tmp_path / "up.png"), "--weights", str(weights), "-q"]) == 0
    assert Image.open(tmp_path / "up.png").size == (80, 80)
    assert main(["export", "--weights", str(weights), "-o", str(tmp_path / "e.safetensors")]) == 0
    assert read_metadata(tmp_path / "e.safetensors")["scale"] == "2"
    train = make_images(tmp_path / "train", count=4)
    capsys.readouterr()
    if name == "rlfn":  # a patch too small for the model is a one-line error, not a crash mid-way
        assert main(["compress", "--weights", str(weights), "--data", str(train), "--gt-size", "16",
                     "--out", str(tmp_path / "small"), "--quiet"]) == 2
        err = _errors(capsys)
        assert len(err) == 1 and "too small for rlfn" in err[0]
    out = tmp_path / "compressed"
    assert main(["compress", "--weights", str(weights), "--data", str(train), "--method", "l1", "--out", str(out),
                 "--finetune-steps", "1", "--dual-warmup-steps", "1", "--batch-size", "1", "--gt-size", "32",
                 "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["model"], summary["scale"]) == (name, 2)


def test_the_official_drn_s_layout_is_recognised_without_model(tmp_path, capsys):
    # small random weights: with unit-variance ones 60 RCABs overflow (and that output is refused)
    torch.save({k: 0.01 * v for k, v in _official_drn_s_x4_state().items()}, tmp_path / "DRNS4x.pt")
    data = _set(tmp_path / "Set", side=32)
    assert main(["test", "--weights", str(tmp_path / "DRNS4x.pt"), "--data", str(data)]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("drn-s x4")
    assert main(["profile", "--weights", str(tmp_path / "DRNS4x.pt")]) == 0
    assert "primal parameters: 4,804,065" in capsys.readouterr().out


def test_train_export_and_compress_write_one_metadata_schema(tmp_path):
    from dualsr.config import resolve
    from dualsr.train.trainer import train

    start = save_weights(create_model("drn-t", 4, n_blocks=1, n_feats=4), tmp_path / "start.safetensors")
    data = make_images(tmp_path / "data")
    train(resolve({}, tiny_overrides(data, tmp_path / "exp", total=2)))
    trained = tmp_path / "exp" / "run" / "models" / "net_g_latest.safetensors"
    assert main(["export", "--weights", str(start), "-o", str(tmp_path / "exported.safetensors")]) == 0
    out = tmp_path / "compressed"
    assert main(["compress", "--weights", str(start), "--data", str(data), "--method", "uniform", "--out", str(out),
                 "--finetune-steps", "1", "--dual-weight", "0", "--batch-size", "1", "--gt-size", "16",
                 "--quiet"]) == 0
    schema = {"format", "dualsr", "role", "model", "scale", "config"}
    for path in (trained, tmp_path / "exported.safetensors", out / "pruned.safetensors", out / "compressed.safetensors"):
        meta = read_metadata(path)
        assert schema <= set(meta), path
        assert (meta["dualsr"], meta["role"], meta["model"], meta["scale"]) == (SCHEMA_VERSION, "model", "drn-t", "4")
        assert {"n_blocks": 1, "n_feats": 4}.items() <= json.loads(meta["config"]).items()
    duals = read_metadata(tmp_path / "exp" / "run" / "models" / "net_dual_latest.safetensors")
    assert (duals["role"], duals["model"], duals["scale"]) == ("duals", "drn-t", "4")
