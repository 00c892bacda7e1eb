"""Hostile inputs and faults: refused with one line naming the problem, never a silent wrong output."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from dualsr.checkpoint import WeightsError, load, load_weights, save_weights
from dualsr.cli import main
from dualsr.models import create_model
from test_train import REPO, make_images, tiny_overrides


def _image(path, side: int = 24):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((side, side), Image.BICUBIC).save(path)
    return path


def _err_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


@pytest.fixture
def tiny_weights(tmp_path):
    torch.manual_seed(0)
    return save_weights(create_model("drn-t", 4, n_blocks=1, n_feats=4), tmp_path / "tiny.safetensors")


# ------------------------------------------------------------------------------------ non-finite values


def test_weights_with_nan_are_refused_naming_the_file_and_tensor(tmp_path, capsys):
    model = create_model("drn-t", 4, n_blocks=1, n_feats=4)
    with torch.no_grad():
        model.head.weight[0, 0, 0, 0] = float("nan")
    bad = save_weights(model, tmp_path / "nan.safetensors")
    with pytest.raises(WeightsError, match=r"nan\.safetensors.*head\.weight.*non-finite"):
        load(bad)
    with pytest.raises(WeightsError, match=r"head\.weight.*non-finite"):
        load_weights(create_model("drn-t", 4, n_blocks=1, n_feats=4), bad)
    src = _image(tmp_path / "a.png")
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.png"), "--weights", str(bad), "-q"]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "nan.safetensors" in err[0] and "head.weight" in err[0]
    assert not (tmp_path / "out.png").exists()


def test_a_non_finite_output_is_an_error_and_no_image_is_written(tmp_path, capsys):
    model = create_model("drn-t", 4, n_blocks=1, n_feats=4)
    with torch.no_grad():
        model.tail[-1].weight.fill_(3e38)  # finite weights whose output overflows float32
    weights = save_weights(model, tmp_path / "huge.safetensors")
    src = _image(tmp_path / "a.png")
    good = _image(tmp_path / "b.png")
    status = main(["upscale", str(src), str(good), "-o", str(tmp_path / "out"), "--weights", str(weights), "-q"])
    err = [line for line in _err_lines(capsys) if "error" in line]
    assert status == 1 and len(err) == 2 and all("non-finite" in line for line in err)
    assert not list((tmp_path / "out").glob("*.png"))


# ------------------------------------------------------------------------------------ broken files


@pytest.mark.parametrize("with_model", [False, True])
def test_a_truncated_safetensors_file_is_one_line_in_every_command(tmp_path, capsys, tiny_weights, with_model):
    data = tiny_weights.read_bytes()
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(data[: len(data) // 2])
    model = ["--model", "drn-t"] if with_model else []
    images = _image(tmp_path / "Set" / "a.png").parent
    train_data = make_images(tmp_path / "train")
    commands = [
        ["profile", "--weights", str(broken), *model],
        ["test", "--weights", str(broken), "--data", str(images), *model],
        ["upscale", str(images / "a.png"), "-o", str(tmp_path / "up.png"), "--weights", str(broken), *model],
        ["export", "--weights", str(broken), "-o", str(tmp_path / "e.safetensors"), *model],
        ["compress", "--weights", str(broken), "--data", str(train_data), "--out", str(tmp_path / "c"), *model],
    ]
    for command in commands:
        capsys.readouterr()
        assert main(command) == 2, command
        err = _err_lines(capsys)
        assert len(err) == 1 and "broken.safetensors" in err[0], (command, err)
    assert main(["train", "-c", str(REPO / "configs" / "drn_t_x4.yaml"),
                 *tiny_overrides(train_data, tmp_path / "exp"), f"path.pretrain_network_g={broken}"]) == 2
    err = _err_lines(capsys)
    assert "broken.safetensors" in err[-1] and err[-1].startswith("dualsr train: error:")


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_train_refuses_a_pickle_with_code_in_one_line(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"head.weight": torch.zeros(1), "payload": _Payload()}, evil)
    data = make_images(tmp_path / "data")
    cmd = [sys.executable, "-m", "dualsr", "train", "-c", str(REPO / "configs" / "drn_t_x4.yaml"),
           *tiny_overrides(data, tmp_path / "exp"), f"path.pretrain_network_g={evil}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2 and "Traceback" not in result.stderr and "pwned" not in result.stdout
    assert "evil.pth: refused" in result.stderr.strip().splitlines()[-1]


# ------------------------------------------------------------------------------------ exit status


def test_test_exits_nonzero_when_any_input_fails(tmp_path, capsys):
    folder = _image(tmp_path / "Set" / "good.png", side=32).parent
    (folder / "broken.png").write_text("nope")
    assert main(["test", "--data", str(folder)]) == 1
    captured = capsys.readouterr()
    assert "good" not in captured.err and "broken.png" in captured.err
    assert captured.out.splitlines()[0].startswith("bicubic x4")  # the good image is still scored


# ------------------------------------------------------------------------------------ resuming


def _train(args: list[str]) -> int:
    return main(["train", "-c", str(REPO / "configs" / "drn_t_x4.yaml"), *args])


def test_resume_without_a_state_is_an_error_unless_asked_to_start(tmp_path, capsys):
    data = make_images(tmp_path / "data")
    args = tiny_overrides(data, tmp_path / "exp", name="typo", total=2)
    assert _train([*args, "--resume"]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "no training state" in err[0] and "--resume-if-possible" in err[0]
    assert not (tmp_path / "exp" / "typo" / "models").exists()
    assert _train([*args, "--resume-if-possible"]) == 0
    assert (tmp_path / "exp" / "typo" / "training_states" / "2.state").is_file()
    assert _train([*tiny_overrides(data, tmp_path / "exp", name="typo", total=4), "--resume-if-possible"]) == 0
    assert "resumed from" in (tmp_path / "exp" / "typo" / "train.log").read_text()


def test_resume_skips_a_corrupt_latest_state_for_the_newest_good_one(tmp_path, capsys):
    data = make_images(tmp_path / "data")
    assert _train(tiny_overrides(data, tmp_path / "exp", total=8)) == 0
    states = tmp_path / "exp" / "run" / "training_states"
    assert sorted(p.name for p in states.iterdir()) == ["4.state", "8.state"]
    (states / "8.state").write_bytes((states / "8.state").read_bytes()[:100])  # a torn write
    assert _train([*tiny_overrides(data, tmp_path / "exp", total=10), "--resume"]) == 0
    log = (tmp_path / "exp" / "run" / "train.log").read_text()
    assert "skipped" in log and "8.state" in log and "resumed from" in log and "at iteration 4" in log
    assert (states / "10.state").is_file()


# ------------------------------------------------------------------------------------ temporary files


def test_a_stale_temporary_file_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    from dualsr.fileio import write_text_atomic

    target = tmp_path / "result.json"
    code = ("import os, sys\nfrom dualsr.fileio import atomic_write\n"
            "with atomic_write(sys.argv[1]) as f:\n    f.write(b'half')\n    f.flush()\n    os._exit(9)\n")
    subprocess.run([sys.executable, "-c", code, str(target)], timeout=60)
    stale = list(tmp_path.glob(".result.json.*.part"))
    assert len(stale) == 1 and not target.exists()  # the kill left its temporary file behind
    write_text_atomic(target, "{}")
    assert target.read_text() == "{}" and not list(tmp_path.glob(".result.json.*.part"))


# ------------------------------------------------------------------------------------ options


@pytest.mark.parametrize("override, key", [("train.optim_g.lr=-0.001", "train.optim_g.lr"),
                                           ("datasets.train.batch_size=0", "datasets.train.batch_size"),
                                           ("train.total_iter=0", "train.total_iter"),
                                           ("train.dual_weight=-1", "train.dual_weight")])
def test_out_of_range_options_fail_in_one_line_before_any_data_is_read(tmp_path, capsys, monkeypatch, override, key):
    import dualsr.train.trainer as trainer_module

    def no_data(*_a, **_k):
        raise AssertionError("the data was read before the options were checked")

    monkeypatch.setattr(trainer_module, "build_pyramid_cache", no_data)
    data = make_images(tmp_path / "data")
    assert _train([*tiny_overrides(data, tmp_path / "exp"), override]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and key in err[0] and "out of range" in err[0]


def test_a_folder_without_an_image_of_the_patch_size_is_one_line(tmp_path, capsys):
    data = make_images(tmp_path / "data")  # 44x52 images
    assert _train([*tiny_overrides(data, tmp_path / "exp"), "datasets.train.gt_size=96"]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and str(data) in err[0] and "96" in err[0]


# ------------------------------------------------------------------------------------ pixel limits


def test_a_small_file_declaring_a_huge_image_is_refused_from_its_header(tmp_path, capsys, tiny_weights):
    from dualsr.data.imageio import ImageReadError, read_image

    bomb = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(bomb)  # about 20 KB on disk, 144 MP declared
    assert bomb.stat().st_size < 200_000
    with pytest.raises(ImageReadError, match=r"12000x12000 \(144 MP\) exceeds the 50 MP limit"):
        read_image(bomb)
    good = _image(tmp_path / "good.png")
    status = main(["upscale", str(bomb), str(good), "-o", str(tmp_path / "out"), "--weights", str(tiny_weights), "-q"])
    err = [line for line in _err_lines(capsys) if "error" in line]
    assert status == 1 and len(err) == 1 and "bomb.png" in err[0] and "--max-input-mp" in err[0]
    assert (tmp_path / "out" / "good.png").is_file() and not (tmp_path / "out" / "bomb.png").exists()
    # the input limit lifted, the x4 output (2304 MP) is still refused, before any decoding
    status = main(["upscale", str(bomb), "-o", str(tmp_path / "out"), "--weights", str(tiny_weights), "-q",
                   "--max-input-mp", "0"])
    err = _err_lines(capsys)
    assert status == 1 and "x4 output of 48000x48000" in err[0] and "--max-output-mp" in err[0]
    # and raised explicitly, a limit lets a large image through
    assert main(["upscale", str(good), "-o", str(tmp_path / "small.png"), "--weights", str(tiny_weights), "-q",
                 "--max-output-mp", "0.001"]) == 1
    assert main(["upscale", str(good), "-o", str(tmp_path / "small.png"), "--weights", str(tiny_weights), "-q",
                 "--max-output-mp", "0.01"]) == 0
