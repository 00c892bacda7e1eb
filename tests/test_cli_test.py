"""`dualsr test` on bad inputs: one line per problem, the rest evaluated, exit 1 only when nothing was."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from dualsr.cli import main


def _make_set(root, names=("a", "b"), size=(40, 36)):
    """A tiny flat set of random RGB images."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(names))
    for name in names:
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(root / f"{name}.png")
    return root


def _run(capsys, *argv):
    status = main(["test", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err.splitlines()


def _lines_naming(lines, path):
    return [line for line in lines if str(path) in line]


def test_missing_folder_is_reported_and_other_sets_still_evaluated(tmp_path, capsys):
    good, missing = _make_set(tmp_path / "Good"), tmp_path / "Nope"
    status, out, err = _run(capsys, "--scale", 4, "--data", missing, good)
    assert status == 1  # the named folder failed, though the other set was scored
    assert _lines_naming(err, missing) == [f"dualsr test: {missing}: no such folder"]
    assert any(line.startswith("Good ") and " 2 " in line for line in out.splitlines())


def test_only_a_missing_folder_exits_nonzero(tmp_path, capsys):
    status, _, err = _run(capsys, "--data", tmp_path / "Nope")
    assert status == 1
    assert err[-1] == "dualsr test: nothing could be evaluated"


def test_empty_folder_is_one_line_and_nonzero_when_alone(tmp_path, capsys):
    empty = tmp_path / "Empty"
    empty.mkdir()
    status, _, err = _run(capsys, "--data", empty)
    assert status == 1
    lines = _lines_naming(err, empty)
    assert len(lines) == 1 and "no image files" in lines[0]


@pytest.mark.parametrize("write_bad,reason", [
    (lambda p: p.write_bytes(p.with_name("a.png").read_bytes()[:300]), "truncated or corrupt"),
    (lambda p: p.write_text("this is not an image"), "not an image file"),
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(p), "too small for x4"),
])
def test_bad_file_is_one_line_and_the_rest_is_evaluated(tmp_path, capsys, write_bad, reason):
    folder = _make_set(tmp_path / "Mixed", names=("a", "b"), size=(64, 48))
    bad = folder / "bad.png"
    write_bad(bad)
    status, out, err = _run(capsys, "--data", folder, "--per-image")
    assert status == 1  # scored the rest, and says that something failed
    lines = _lines_naming(err, bad)
    assert len(lines) == 1 and reason in lines[0], err
    rows = out.splitlines()
    assert any(r.startswith("Mixed ") and " 2 " in r for r in rows)
    assert [r.split()[0] for r in rows if r.startswith("  ")] == ["a", "b"]


def test_non_image_extension_is_skipped_with_a_line(tmp_path, capsys):
    folder = _make_set(tmp_path / "Set")
    (folder / "notes.txt").write_text("hello")
    status, _, err = _run(capsys, "--data", folder)
    assert status == 0
    lines = _lines_naming(err, folder / "notes.txt")
    assert len(lines) == 1 and "not an image file" in lines[0]


def test_set_with_only_bad_files_exits_nonzero(tmp_path, capsys):
    folder = tmp_path / "Broken"
    folder.mkdir()
    (folder / "x.png").write_text("nope")
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(folder / "tiny.png")
    status, out, err = _run(capsys, "--data", folder)
    assert status == 1
    assert len(_lines_naming(err, folder / "x.png")) == 1 and len(_lines_naming(err, folder / "tiny.png")) == 1
    assert err[-1] == "dualsr test: nothing could be evaluated"


def test_any_problem_is_fatal_with_or_without_strict(tmp_path, capsys):
    folder = _make_set(tmp_path / "Set")
    (folder / "broken.png").write_text("nope")
    assert _run(capsys, "--data", folder, "--strict")[0] == 1
    assert _run(capsys, "--data", folder)[0] == 1


def test_json_and_save_dir_outputs(tmp_path, capsys):
    folder = _make_set(tmp_path / "Tiny", names=("x", "y"), size=(32, 40))
    save = tmp_path / "sr"
    status, _, _ = _run(capsys, "--data", folder, "--save-dir", save)
    assert status == 0
    assert sorted(p.name for p in (save / "Tiny").iterdir()) == ["x.png", "y.png"]
    assert Image.open(save / "Tiny" / "x.png").size == (32, 40)
    report = json.loads((save / "results.json").read_text())
    (set_result,) = report["sets"]
    assert report["model"] == "bicubic" and report["scale"] == 4
    assert set_result["n"] == 2 and [i["name"] for i in set_result["images"]] == ["x", "y"]
    assert set_result["psnr"] == pytest.approx(np.mean([i["psnr"] for i in set_result["images"]]))
    explicit = tmp_path / "out" / "r.json"
    _run(capsys, "--data", folder, "--json", explicit)
    assert json.loads(explicit.read_text())["sets"][0]["psnr"] == pytest.approx(set_result["psnr"])


def test_benchmark_dir_from_environment_lists_sets_in_table_order(tmp_path, capsys, monkeypatch):
    for name in ("B100", "Set5", "Custom"):
        _make_set(tmp_path / "bench" / name / "HR", names=("a",), size=(24, 24))
    monkeypatch.setenv("DUALSR_BENCHMARK_DIR", str(tmp_path / "bench"))
    status, out, err = _run(capsys)
    assert status == 0
    assert any(line.startswith("using benchmark sets from") and "Set5, B100, Custom" in line for line in err)
    names = [line.split()[0] for line in out.splitlines()[3:]]
    assert names == ["Set5", "B100", "Custom"]


def test_missing_benchmark_dir_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DUALSR_BENCHMARK_DIR", str(tmp_path / "absent"))
    status, _, err = _run(capsys)
    assert status == 2
    assert len(err) == 1 and "no benchmark folder found" in err[0] and "--data" in err[0]


def test_unknown_model_and_missing_weights_are_one_line_errors(tmp_path, capsys):
    folder = _make_set(tmp_path / "Set")
    status, _, err = _run(capsys, "--model", "no-such-net", "--weights", folder / "a.png", "--data", folder)
    assert status == 2 and len(err) == 1 and "no-such-net" in err[0]
    status, _, err = _run(capsys, "--model", "swinir-light", "--data", folder)  # named, not shipped
    assert status == 2 and len(err) == 1 and "--weights" in err[0]
    status, _, err = _run(capsys, "--model", "drn-t", "--weights", tmp_path / "none.pt", "--data", folder)
    assert status == 2 and len(err) == 1 and "no such weights file" in err[0]


def test_model_with_saved_weights_is_evaluated(tmp_path, capsys):
    from dualsr.checkpoint import save_weights
    from dualsr.models import create_model

    folder = _make_set(tmp_path / "Set", names=("a",), size=(40, 40))
    weights = save_weights(create_model("drn-t", 2), tmp_path / "drn_t_x2.safetensors")
    status, out, _ = _run(capsys, "--model", "drn-t", "--weights", weights, "--scale", 2, "--data", folder)
    assert status == 0 and out.splitlines()[0].startswith("drn-t x2")
    # The file names its model, so --model may be left out.
    status, out, _ = _run(capsys, "--weights", weights, "--scale", 2, "--data", folder)
    assert status == 0 and out.splitlines()[0].startswith("drn-t x2")
    status, _, err = _run(capsys, "--model", "drn-t", "--weights", weights, "--scale", 4, "--data", folder)
    assert status == 2 and len(err) == 1 and str(weights) in err[0]


def test_without_env_the_checkout_benchmark_folder_is_used_or_named(tmp_path, capsys, monkeypatch):
    import dualsr.cli.test as test_command

    monkeypatch.delenv("DUALSR_BENCHMARK_DIR", raising=False)
    monkeypatch.setattr(test_command, "_repo_benchmark_dir", lambda: tmp_path / "shared" / "data" / "benchmark")
    status, _, err = _run(capsys)
    assert status == 2 and len(err) == 1
    assert str(tmp_path / "shared" / "data" / "benchmark") in err[0] and "--data" in err[0]
    _make_set(tmp_path / "shared" / "data" / "benchmark" / "Set5" / "HR", names=("a",), size=(24, 24))
    status, out, err = _run(capsys)
    assert status == 0 and out.splitlines()[3].split()[:2] == ["Set5", "1"]


def test_json_of_a_set_with_nothing_evaluated_is_valid_json(tmp_path, capsys):
    folder = tmp_path / "Broken"
    folder.mkdir()
    (folder / "x.png").write_text("nope")
    report = tmp_path / "r.json"
    assert _run(capsys, "--data", folder, "--json", report)[0] == 1
    data = json.loads(report.read_text(), parse_constant=lambda name: pytest.fail(f"non-JSON constant {name}"))
    assert data["sets"][0]["n"] == 0 and data["sets"][0]["psnr"] is None and len(data["problems"]) == 1
