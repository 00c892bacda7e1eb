"""`dualsr compress`: stages, resumption, and outputs that the other commands load."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
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


def test_output_distillation_and_held_out_selection_are_recorded_in_the_summary(setup):
    root, hr, weights = setup
    out = root / "distill_output"
    assert main(_common(weights, hr, out) + ["--method", "l1", "--distill", "output", "--distill-weight", "0.5",
                                             "--finetune-schedule", "cosine", "--val-every", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["distill"], summary["distill_weight"], summary["finetune_schedule"]) == ("output", 0.5, "cosine")
    best = summary["finetune_best"]
    assert best["best_step"] in (1, 2)
    assert summary["val_psnr"] == pytest.approx(best["best_val_psnr"], abs=1e-9)  # the kept weights are the best


def test_a_teacher_of_another_architecture_distils_the_output(setup, capsys):
    from safetensors.torch import load_file

    from dualsr.checkpoint import save_weights

    root, hr, weights = setup
    teacher = root / "teacher_rlfn.safetensors"
    save_weights(create_model("rlfn", 4, n_feats=8, n_blocks=1, esa_width=4), teacher)
    flags = ["--method", "l1", "--distill", "output", "--gt-size", "64"]
    assert main(_common(weights, hr, root / "own_teacher") + flags) == 0
    assert main(_common(weights, hr, root / "rlfn_teacher") + flags + ["--teacher", str(teacher)]) == 0
    summary = json.loads((root / "rlfn_teacher" / "summary.json").read_text())
    assert summary["teacher"] == str(teacher)
    own, other = (load_file(root / run / "compressed.safetensors") for run in ("own_teacher", "rlfn_teacher"))
    assert any(not torch.equal(own[k], other[k]) for k in own)  # same run otherwise: the teacher was used
    capsys.readouterr()
    x2 = root / "teacher_x2.safetensors"
    save_weights(create_model("drn-t", 2), x2)
    for extra, message in (([], "--teacher is the distillation teacher"),
                           (["--distill", "output", "--teacher", str(x2)], "is x2, the model to compress x4"),
                           (["--distill", "feature", "--teacher", str(teacher)], "needs --distill output"),
                           (["--distill", "output", "--teacher", str(root / "none.pt")], f"--teacher {root / 'none.pt'}: no such file")):
        teacher_flag = [] if extra else ["--teacher", str(teacher)]
        assert main(_common(weights, hr, root / "bad_teacher") + ["--gt-size", "64"] + extra + teacher_flag) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not any((root / "bad_teacher").iterdir())  # refused before any work


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


def test_budgeted_search_records_how_far_it_moved_and_keeps_the_uniform_cost(setup, capsys):
    from dualsr.compress.baselines import scaled_widths
    from dualsr.compress.layers import rebuild
    from dualsr.compress.search import BUDGET_FRACTIONS
    from dualsr.profile import count_parameters

    root, hr, weights = setup
    out = root / "budget"
    assert main(_common(weights, hr, out) + ["--method", "drc", "--search-only", "--search-steps", "3",
                                             "--alpha-lr", "auto", "--temperature", "0.5",
                                             "--final-temperature", "0.1", "--budget-weight", "10"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["search_config"]["alpha_lr"] == pytest.approx(1.0)  # 3e-4 * 10000 / 3
    assert summary["search_config"]["fractions"] == list(BUDGET_FRACTIONS)
    assert summary["search_config"]["final_temperature"] == 0.1
    moved = summary["search_movement"]
    assert moved["top_probability_mean"] > moved["uniform_probability_mean"]
    model = create_model("drn-t", 4)
    widths = read_widths_file(out / "widths.txt")
    assert all(w in candidate_widths(layer.full, 0.5, BUDGET_FRACTIONS)
               for w, layer in zip(widths, prunable_layers(model)))
    target = count_parameters(rebuild(model, scaled_widths(prunable_layers(model), 0.5)))
    assert moved["target_cost"] == target and count_parameters(rebuild(model, widths)) <= target
    for bad, message in ((["--alpha-lr", "fast"], "--alpha-lr must be a number or auto"),
                         (["--temperature", "0"], "--temperature must be > 0"),
                         (["--final-temperature", "-1"], "--final-temperature must be > 0"),
                         (["--budget-weight", "-1"], "--budget-weight must be >= 0")):
        capsys.readouterr()
        assert main(_common(weights, hr, root / "bad_search") + ["--method", "drc", *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1


def test_wrong_width_file_is_a_one_line_error(setup, capsys):
    root, hr, weights = setup
    bad = root / "bad.txt"
    bad.write_text("4\n4\n")
    assert main(_common(weights, hr, root / "bad") + ["--method", "l1", "--widths", str(bad)]) == 2
    assert "prunable layers" in capsys.readouterr().err


def test_an_rlfn_width_file_without_stream_widths_is_read_as_full_streams(setup):
    root, hr, _ = setup
    from dualsr.checkpoint import save_weights

    weights = root / "rlfn_tiny.safetensors"
    save_weights(create_model("rlfn", 4, n_feats=8, n_blocks=2, esa_width=4), weights)
    old = root / "old_widths.txt"
    old.write_text("4\n4\n4\n8\n4\n2\n")  # 3 inner widths per block, as written before the stream
    out = root / "rlfn_old_widths"
    assert main(_common(weights, hr, out) + ["--method", "l1", "--widths", str(old), "--gt-size", "64"]) == 0
    assert load(str(out / "compressed.safetensors")).model.widths == [4, 4, 4, 8, 4, 2, 8, 8, 8]


def _compress(args, timeout=120):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "dualsr", "compress", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _loud(weights, hr, out):
    """_common without --quiet: stage messages and progress would show."""
    return [a for a in _common(weights, hr, out) if a != "--quiet"][1:] + ["--threads", "1"]


@pytest.mark.parametrize("case", ["missing", "count", "malformed", "range", "no-data", "empty-data"])
def test_bad_arguments_fail_in_one_line_before_any_fitting(setup, tmp_path, capsys, case):
    _root, hr, weights = setup
    widths = tmp_path / "widths.txt"
    n = len(prunable_layers(create_model("drn-t", 4)))
    widths.write_text({"count": "4\n4\n", "malformed": "4\nfour\n", "range": "4\n" * (n - 1) + "100000\n"}.get(case, ""))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    out = tmp_path / "out"
    args = _loud(weights, hr, out)  # --method drc (the default) without --duals: duals would be fitted first
    if case in ("missing", "count", "malformed", "range"):
        args += ["--widths", str(widths if case != "missing" else tmp_path / "nope.txt")]
    else:
        data = str(tmp_path / ("nope" if case == "no-data" else "empty"))
        args[args.index("--data") + 1] = data
    if case in ("missing", "empty-data"):  # the real command (two cases only: each start costs seconds)
        result = _compress(args)
        status, stdout, stderr = result.returncode, result.stdout, result.stderr
    else:
        status = main(["compress", *args])
        stdout, stderr = capsys.readouterr()
    assert status == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("dualsr compress: error: ")
    expected = {"missing": "no such file", "count": "prunable layers", "malformed": "not an integer width",
                "range": "out of range", "no-data": "not found", "empty-data": "no images"}[case]
    assert expected in stderr
    assert stdout == ""  # and no stage message on stderr: nothing was fitted or decoded
    assert not (out / "duals.safetensors").exists() and not (out / "summary.json").exists()


def test_drc_log_has_per_stage_eta_lines_and_no_library_warnings(setup, tmp_path):
    _root, hr, weights = setup
    out = tmp_path / "drc"
    result = _compress(_loud(weights, hr, out) + ["--search-steps", "3", "--dual-warmup-steps", "3",
                                                 "--finetune-steps", "3", "--channels-per-step", "8",
                                                 "--progress-every", "0"])
    assert result.returncode == 0, result.stderr[-2000:]
    err = result.stderr
    assert "\r" not in err and "warning" not in err.lower() and "Triggered" not in err
    lines = err.splitlines()
    for stage in ("duals", "search", "finetune"):  # a line per step (the first starts the clock), one closing
        assert [line.split(" ")[1] for line in lines if line.startswith(f"{stage}: ")] == ["2/3", "3/3"], err
        assert f"{stage}: 2/3 (67%) " in err and f"{stage}: 3/3 (100%) in " in err
    assert sum(line.startswith("prune: ") and " (100%) in " in line for line in lines) == 1
    assert all(", eta " in line for line in lines if line.startswith(("duals: ", "search: ", "prune: "))
               and " (100%) in " not in line)
    assert all(line.startswith(("dualsr compress: ", "duals: ", "search: ", "prune: ", "finetune: "))
               for line in lines), err
    assert result.stdout.count("\n") == 1 and "compressed.safetensors" in result.stdout


def test_only_dualsr_warnings_become_one_line_notes(capsys):
    import dualsr.cli.compress as compress
    import torch

    compress._warning_note(UserWarning("Converting a tensor (Triggered internally at x.cpp)"), UserWarning,
                           str(compress._PACKAGE / "compress" / "common.py"), 1)
    compress._warning_note(UserWarning("a torch warning\nsecond line"), UserWarning, torch.__file__, 1)
    compress._warning_note(UserWarning("widths look odd\ndetails"), UserWarning, compress.__file__, 1)
    assert capsys.readouterr().err == "dualsr compress: warning: widths look odd\n"
