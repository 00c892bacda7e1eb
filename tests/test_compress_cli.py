"""`dualsr compress`: stages, resumption, and outputs that the other commands load."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from dualsr.cli import main
from dualsr.compress.search import candidate_widths
from dualsr.checkpoint import load, read_widths_file
from dualsr.compress.layers import prunable_layers
from dualsr.models import create_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    hr = root / "hr"
    hr.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)).resize((64, 64), Image.BICUBIC).save(
            hr / f"img{i}.png")
    from dualsr.checkpoint import save_weights

    weights = root / "drnt.safetensors"
    save_weights(create_model("drn-t", 4), weights)
    return root, hr, weights


def _common(weights, hr, out):
    return ["compress", "--weights", str(weights), "--rate", "0.5", "--data", str(hr), "--out", str(out),
            "--finetune-steps", "2", "--dual-warmup-steps", "2", "--batch-size", "1", "--gt-size", "32", "--quiet"]


def test_l1_compress_writes_a_model_that_the_loaders_rebuild(setup):
    root, hr, weights = setup
    out = root / "l1"
    assert main(_common(weights, hr, out) + ["--method", "l1"]) == 0
    widths = read_widths_file(out / "widths.txt")
    model = load(out / "compressed.safetensors").model
    assert model.widths == widths

    assert load(str(out / "compressed.safetensors"), "drn-t", 4).model.widths == widths
    summary = json.loads((out / "summary.json").read_text())
    assert summary["params"] < summary["original_params"]
    assert set(summary["seconds"]) >= {"prune", "finetune"}


def test_rerun_skips_finished_stages(setup):
    root, hr, weights = setup
    out = root / "resume"
    assert main(_common(weights, hr, out) + ["--method", "random"]) == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.safetensors")}
    assert main(_common(weights, hr, out) + ["--method", "random"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.safetensors")} == stamps


def test_search_only_writes_candidate_widths_and_stops(setup):
    root, hr, weights = setup
    out = root / "search"
    assert main(_common(weights, hr, out) + ["--method", "drc", "--search-only", "--search-steps", "2"]) == 0
    widths = read_widths_file(out / "widths.txt")
    layers = prunable_layers(create_model("drn-t", 4))
    assert all(w in candidate_widths(layer.full, 0.5) for w, layer in zip(widths, layers))
    assert not (out / "pruned.safetensors").exists()


def test_wrong_width_file_is_a_one_line_error(setup, capsys):
    root, hr, weights = setup
    bad = root / "bad.txt"
    bad.write_text("4\n4\n")
    assert main(_common(weights, hr, root / "bad") + ["--method", "l1", "--widths", str(bad)]) == 2
    assert "prunable layers" in capsys.readouterr().err
