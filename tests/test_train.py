"""The trainer: data sampling, checkpoints, time budget and bit-exact resume after a kill."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from dualsr.config import ConfigError, resolve
from dualsr.data.datasets import PatchSampler, build_pyramid_cache, find_images, split_holdout
from dualsr.train.state import load_state

REPO = Path(__file__).resolve().parents[1]


def make_images(folder: Path, count: int = 6, size: tuple[int, int] = (44, 52)) -> Path:
    """Smooth random colour images (noise would be unlearnable) as PNG and BMP, in a subfolder too."""
    rng = np.random.default_rng(0)
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]]
    for i in range(count):
        f = rng.uniform(0.05, 0.3, size=(3, 2))
        image = np.stack([127 + 120 * np.sin(f[c, 0] * yy + f[c, 1] * xx + i) for c in range(3)], -1)
        target = folder / ("sub" if i % 2 else "") / f"img{i}.{'bmp' if i % 3 == 0 else 'png'}"
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(target)
    return folder


def tiny_overrides(data: Path, root: Path, name: str = "run", total: int = 8) -> list[str]:
    return [f"name={name}", "scale=4", "network_g.type=drn-t", "network_g.n_blocks=1", "network_g.n_feats=4",
            f"datasets.train.dataroot={data}", "datasets.train.gt_size=32", "datasets.train.batch_size=2",
            "datasets.val.holdout_every=3", f"train.total_iter={total}", "train.optim_g.lr=1e-3",
            "val.val_freq=4", "logger.print_freq=2", "logger.save_checkpoint_freq=4", "logger.keep_checkpoints=0",
            "logger.progress_bar=false", f"path.experiments_root={root}", "device=cpu"]


def run_cli(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "dualsr", "train", "-c", str(REPO / "configs" / "drn_t_x4.yaml"), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def run_driver(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """tests/train_driver.py: the trainer with test-only controls (abrupt exit, weight checksums)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(REPO / "tests" / "train_driver.py"), str(REPO / "configs" / "drn_t_x4.yaml"), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_images_are_found_recursively_and_split_deterministically(tmp_path):
    files = find_images(make_images(tmp_path / "data", count=7))
    assert len(files) == 7 and {f.suffix for f in files} == {".png", ".bmp"}
    train, val = split_holdout(files, every=3)
    assert val == [files[0], files[3], files[6]] and len(train) == 4
    assert split_holdout(list(reversed(files))[::-1], every=3) == (train, val)


def test_batch_is_a_function_of_seed_rank_and_iteration_with_aligned_levels(tmp_path):
    images = build_pyramid_cache(find_images(make_images(tmp_path / "data")), 4)
    sampler = PatchSampler(images, 4, 32, seed=1)
    a, b = sampler.batch(5, 0, 3), sampler.batch(5, 0, 3)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(sampler.batch(6, 0, 3)[-1], a[-1])
    assert not torch.equal(sampler.batch(5, 1, 3)[-1], a[-1])
    assert [tuple(x.shape) for x in a] == [(3, 3, 8, 8), (3, 3, 16, 16), (3, 3, 32, 32)]
    # every level of a patch is the crop of that level's full image: same flips, aligned offsets
    from dualsr.data.resize import imresize

    lr_from_patch = imresize(a[-1], 0.25, round_uint8=True)
    interior = (slice(None), slice(None), slice(2, -2), slice(2, -2))  # away from the crop's border
    assert (lr_from_patch[interior] - a[0][interior]).abs().max() <= 1


def test_processes_draw_from_disjoint_shards_of_the_images(tmp_path):
    from dualsr.data.datasets import PyramidImage

    flat = [PyramidImage(Path(f"{v}.png"), [torch.full((3, 8 * f, 8 * f), v, dtype=torch.uint8) for f in (1, 2, 4)])
            for v in (10, 20, 30, 40, 50)]
    sampler = PatchSampler(flat, 4, 32, seed=0)
    seen = {rank: {int(v) for i in range(30) for v in sampler.batch(i, rank, 4, world_size=2)[-1][:, 0, 0, 0]}
            for rank in (0, 1)}
    assert seen == {0: {10, 30, 50}, 1: {20, 40}}


def test_existing_experiment_is_not_overwritten_without_resume(tmp_path):
    from dualsr.train.trainer import Trainer

    data = make_images(tmp_path / "data")
    (tmp_path / "exp" / "run" / "training_states").mkdir(parents=True)
    (tmp_path / "exp" / "run" / "training_states" / "4.state").write_bytes(b"x")
    config = resolve({}, tiny_overrides(data, tmp_path / "exp"))
    with pytest.raises(ConfigError, match="already has training states"):
        Trainer(config)
    with pytest.raises(ConfigError, match="not a readable training state"):
        Trainer(config, resume="auto")


def test_time_budget_ends_with_weights_and_a_state(tmp_path):
    from dualsr.train.trainer import train

    data = make_images(tmp_path / "data")
    config = resolve({}, tiny_overrides(data, tmp_path / "exp", total=100_000)
                     + ["train.max_minutes=0.03", "train.time_annealing=true", "val.val_freq=1000000"])
    summary = train(config)
    assert summary["stopped_early"] and 0 < summary["iteration"] < 100_000
    models = tmp_path / "exp" / "run" / "models"
    assert (models / "net_g_latest.safetensors").is_file() and (models / "net_g_best.safetensors").is_file()
    state = load_state(tmp_path / "exp" / "run" / "training_states" / f"{summary['iteration']}.state")
    assert state["iteration"] == summary["iteration"] and state["elapsed_s"] >= 0.03 * 60


def test_cosine_rate_is_closed_form_and_time_budget_can_only_advance_it():
    from dualsr.train.schedule import CosineSchedule

    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = CosineSchedule(opt, total=100, eta_min=1e-7)
    assert sched.set_iteration(1) == pytest.approx(1e-3)
    assert sched.set_iteration(51) == pytest.approx(1e-7 + (1e-3 - 1e-7) * 0.5)
    assert sched.set_iteration(101) == pytest.approx(1e-7)
    assert sched.set_iteration(11, min_progress=0.5) == pytest.approx(sched.rate(1e-3, 51))
    assert sched.set_iteration(51, min_progress=0.1) == pytest.approx(sched.rate(1e-3, 51))


def _trainer_for(tmp_path, total: int, extra: list[str]):
    """A Trainer on tiny data, with copies of its primal and dual weights as they start."""
    from dualsr.config import load_config
    from dualsr.train.trainer import Trainer

    data = make_images(tmp_path / "data")
    config = load_config(REPO / "configs" / "drn_t_x4.yaml", tiny_overrides(data, tmp_path / "exp", total=total) + extra)
    trainer = Trainer(config)
    primal0 = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    duals0 = {k: v.clone() for k, v in trainer.duals.state_dict().items()}
    return trainer, primal0, duals0


def _unchanged(module, start: dict) -> bool:
    return all(torch.equal(start[k], v) for k, v in module.state_dict().items())


def test_dual_learning_rate_zero_freezes_the_duals_through_the_schedule(tmp_path):
    trainer, primal0, duals0 = _trainer_for(tmp_path, 4, ["train.optim_dual.lr=0"])
    try:
        for iteration in (1, 2, 3, 4):  # the cosine schedule's eta_min must not thaw them
            trainer.train_step(iteration)
        assert _unchanged(trainer.duals, duals0)
        assert not _unchanged(trainer.model, primal0)
    finally:
        trainer.close()


def _states_equal(a: dict, b: dict) -> bool:
    def flat(x, prefix=""):
        if isinstance(x, dict):
            for k, v in x.items():
                yield from flat(v, f"{prefix}.{k}")
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                yield from flat(v, f"{prefix}[{i}]")
        else:
            yield prefix, x

    fa, fb = dict(flat(a)), dict(flat(b))
    if fa.keys() != fb.keys():
        return False
    return all(torch.equal(fa[k], fb[k]) if isinstance(fa[k], torch.Tensor) else fa[k] == fb[k] for k in fa)


@pytest.mark.slow
def test_resume_after_kill_is_bitwise_equal_to_a_straight_run(tmp_path):
    from dualsr.cli import main

    config = str(REPO / "configs" / "drn_t_x4.yaml")
    data = make_images(tmp_path / "data")
    assert main(["train", "-c", config, *tiny_overrides(data, tmp_path / "exp", name="straight")]) == 0

    args = tiny_overrides(data, tmp_path / "exp", name="killed")
    killed = run_driver(["--exit-at", "6", *args])  # a separate process that dies at 6, last state at 4
    assert killed.returncode == 3, killed.stderr[-2000:]
    states = tmp_path / "exp" / "killed" / "training_states"
    assert sorted(p.name for p in states.iterdir()) == ["4.state"]
    assert main(["train", "-c", config, *args, "--resume"]) == 0
    assert "resumed from" in (tmp_path / "exp" / "killed" / "train.log").read_text()

    for stem in ("net_g_latest", "net_dual_latest", "net_g_8", "net_dual_8"):
        a = load_file(tmp_path / "exp" / "straight" / "models" / f"{stem}.safetensors")
        b = load_file(tmp_path / "exp" / "killed" / "models" / f"{stem}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), stem
    sa = load_state(tmp_path / "exp" / "straight" / "training_states" / "8.state")
    sb = load_state(tmp_path / "exp" / "killed" / "training_states" / "8.state")
    for key in ("models", "optimizers", "schedulers", "best", "iteration"):
        assert _states_equal({key: sa[key]}, {key: sb[key]}), key
    # and the run really moved: the weights differ from the state the resume started from
    start = load_state(states / "4.state")
    assert not _states_equal({"m": start["models"]}, {"m": sb["models"]})


def test_cli_reports_unknown_option_in_one_line(tmp_path):
    result = run_cli(["name=x", "train.no_such_key=1"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        next(line for line in result.stderr.splitlines() if "train.no_such_key" in line)]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_channels_last_and_grad_clip_train_without_nan(tmp_path, amp):
    from dualsr.train.trainer import train

    data = make_images(tmp_path / "data")
    config = resolve({}, tiny_overrides(data, tmp_path / "exp", total=2)
                     + [f"train.amp={amp}", "train.channels_last=true", "val.val_freq=2", "train.grad_clip=1.0"])
    summary = train(config)
    assert summary["iteration"] == 2 and np.isfinite(summary["best_psnr"])
    weights = load_file(tmp_path / "exp" / "run" / "models" / "net_g_latest.safetensors")
    assert all(torch.isfinite(t).all() and t.dtype == torch.float32 for t in weights.values())


def test_unpaired_lr_images_take_a_share_of_the_batch(tmp_path):
    from dualsr.train.trainer import Trainer, train

    data = make_images(tmp_path / "data")
    unpaired = make_images(tmp_path / "lr_only", count=3, size=(20, 24))
    args = tiny_overrides(data, tmp_path / "exp", total=2) + [
        f"datasets.unpaired.dataroot={unpaired}", "datasets.train.batch_size=4", "datasets.unpaired.ratio=0.25",
        "logger.print_freq=1"]
    assert train(resolve({}, args))["iteration"] == 2
    log = (tmp_path / "exp" / "run" / "train.log").read_text()
    assert "unpaired: 3 LR images, 1 of the 4 patches per iteration (8px LR), dual path tap" in log
    assert " unpaired " in log
    t = Trainer(resolve({}, args + ["name=explicit", "datasets.unpaired.batch_size=2"]))
    try:
        assert (t.batch_per_rank, t.unpaired_per_rank) == (2, 2)
    finally:
        t.close()
    with pytest.raises(ConfigError, match="dual_weight"):
        train(resolve({}, args + ["name=nodual", "train.dual_weight=0"]))
    with pytest.raises(ConfigError, match="at least one of each"):
        train(resolve({}, args + ["name=all", "datasets.unpaired.batch_size=4"]))
    with pytest.raises(ConfigError, match="ratio"):
        resolve({}, args + ["datasets.unpaired.ratio=1"])
    with pytest.raises(ConfigError, match="dual_path"):
        resolve({}, args + ["datasets.unpaired.dual_path=loop"])


def test_degradation_is_chosen_by_name_in_the_config_and_checked():
    config = resolve({"datasets": {"train": {"degradation": {"type": "aniso", "sigma_x": 2.5}}}})
    assert config["datasets"]["train"]["degradation"]["sigma_x"] == 2.5
    assert config["datasets"]["train"]["degradation"]["size"] == 31
    assert resolve({})["datasets"]["train"]["degradation"] == {"type": "bicubic"}
    with pytest.raises(ConfigError, match="datasets.train.degradation.size"):
        resolve({}, ["datasets.train.degradation.type=iso", "datasets.train.degradation.size=4"])
    with pytest.raises(ConfigError, match="unknown degradation type"):
        resolve({}, ["datasets.train.degradation.type=blurry"])


@pytest.mark.slow
def test_resume_is_bitwise_with_degradation_on_and_unpaired_data_mixed_in(tmp_path):
    from dualsr.cli import main

    config = str(REPO / "configs" / "drn_t_x4.yaml")
    data = make_images(tmp_path / "data")
    unpaired = make_images(tmp_path / "lr_only", count=3, size=(20, 24))
    extra = [f"datasets.unpaired.dataroot={unpaired}", "datasets.train.batch_size=3", "datasets.unpaired.ratio=0.34",
             "datasets.train.degradation.type=aniso", "datasets.train.degradation.size=7",
             "datasets.train.degradation.sigma_x=[0.6,2]", "datasets.train.degradation.sigma_y=[0.6,2]"]
    assert main(["train", "-c", config, *tiny_overrides(data, tmp_path / "exp", name="straight"), *extra]) == 0
    args = tiny_overrides(data, tmp_path / "exp", name="killed") + extra
    killed = run_driver(["--exit-at", "6", *args])
    assert killed.returncode == 3, killed.stderr[-2000:]
    assert main(["train", "-c", config, *args, "--resume"]) == 0
    log = (tmp_path / "exp" / "killed" / "train.log").read_text()
    assert "resumed from" in log and "degradation: type=aniso" in log and "1 of the 3 patches" in log
    for stem in ("net_g_latest", "net_dual_latest"):
        a = load_file(tmp_path / "exp" / "straight" / "models" / f"{stem}.safetensors")
        b = load_file(tmp_path / "exp" / "killed" / "models" / f"{stem}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), stem
    sa = load_state(tmp_path / "exp" / "straight" / "training_states" / "8.state")
    sb = load_state(tmp_path / "exp" / "killed" / "training_states" / "8.state")
    for key in ("models", "optimizers", "best"):
        assert _states_equal({key: sa[key]}, {key: sb[key]}), key
    # and the mixed-in data matters: without it (same seed, same degradation) the weights differ
    plain = [a for a in extra if not a.startswith("datasets.unpaired")]
    assert main(["train", "-c", config, *tiny_overrides(data, tmp_path / "exp", name="paired"), *plain]) == 0
    c = load_file(tmp_path / "exp" / "paired" / "models" / "net_g_latest.safetensors")
    a = load_file(tmp_path / "exp" / "straight" / "models" / "net_g_latest.safetensors")
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_resume_flag_before_overrides_does_not_swallow_one(monkeypatch):
    import dualsr.train.trainer as trainer_module
    from dualsr.cli import main

    seen = {}
    monkeypatch.setattr(trainer_module, "train", lambda config, resume=None: seen.update(
        config=config, resume=resume) or {"rank": 1})
    assert main(["train", "-c", str(REPO / "configs" / "drn_t_x4.yaml"), "--resume", "train.total_iter=7",
                 "seed=3"]) == 0
    assert seen["resume"] == "auto"
    assert seen["config"]["train"]["total_iter"] == 7 and seen["config"]["seed"] == 3


def test_budget_stop_right_after_a_periodic_checkpoint_still_validates(tmp_path, monkeypatch):
    from dualsr.train import trainer as trainer_module

    data = make_images(tmp_path / "data")
    config = resolve({}, tiny_overrides(data, tmp_path / "exp", total=100)
                     + ["train.max_minutes=1", "val.val_freq=1000"])
    t = trainer_module.Trainer(config)
    monkeypatch.setattr(t, "elapsed_s", lambda: 0.0 if t.sampler_calls < 4 else 1e9)
    t.sampler_calls = 0
    original = t.train_step

    def counting_step(*a, **k):
        t.sampler_calls += 1
        return original(*a, **k)

    monkeypatch.setattr(t, "train_step", counting_step)
    try:
        summary = t.fit()
    finally:
        t.close()
    assert summary["iteration"] == 4 and summary["stopped_early"]  # checkpoint freq is 4
    assert (tmp_path / "exp" / "run" / "models" / "net_g_best.safetensors").is_file()
    assert load_state(tmp_path / "exp" / "run" / "training_states" / "4.state")["best"]["iter"] == 4


def test_pruned_model_trains_from_its_file_without_restating_widths(tmp_path):
    from dualsr.checkpoint import save_weights
    from dualsr.models import create_model
    from dualsr.models.drn import full_widths
    from dualsr.train.trainer import train

    widths = [max(1, w // 2) for w in full_widths(4, n_blocks=1, n_feats=4)]
    pruned = create_model("drn-t", 4, n_blocks=1, n_feats=4, widths=widths)
    start = save_weights(pruned, tmp_path / "pruned.safetensors")
    data = make_images(tmp_path / "data")
    config = resolve({}, tiny_overrides(data, tmp_path / "exp", total=2) + [f"path.pretrain_network_g={start}"])
    train(config)
    trained = load_file(tmp_path / "exp" / "run" / "models" / "net_g_latest.safetensors")
    assert {k: tuple(v.shape) for k, v in trained.items()} == {k: tuple(v.shape) for k, v in pruned.state_dict().items()}
    assert any(not torch.equal(trained[k], v) for k, v in pruned.state_dict().items())


def test_multistep_rate_halves_after_each_milestone_and_rejects_unknown_options():
    from dualsr.train.schedule import make_schedule

    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    sched = make_schedule(opt, {"type": "MultiStepLR", "milestones": [4, 6], "gamma": 0.5}, 8)
    assert [sched.rate(2e-4, i) for i in range(1, 9)] == [2e-4] * 4 + [1e-4] * 2 + [5e-5] * 2
    assert sched.rate(2e-4, 1, min_progress=0.9) == 5e-5  # a time budget moves the steps ahead too
    with pytest.raises(ConfigError, match="milestones"):
        make_schedule(opt, {"type": "MultiStepLR"}, 8)
    with pytest.raises(ConfigError, match="gama"):
        make_schedule(opt, {"type": "MultiStepLR", "milestones": [2], "gama": 0.1}, 8)


def test_overrides_after_options_are_still_overrides(capsys):
    from dualsr.cli import main

    assert main(["train", "-c", str(REPO / "configs" / "drn_t_x4.yaml"), "--print-config", "--resume-if-possible",
                 "seed=5", "train.total_iter=7"]) == 0
    printed = capsys.readouterr().out
    assert "seed: 5" in printed and "total_iter: 7" in printed
    with pytest.raises(SystemExit):
        main(["train", "-c", str(REPO / "configs" / "drn_t_x4.yaml"), "--print-config", "--bogus"])


def _eta_seconds(text: str) -> float:
    """Seconds of a `format_duration` text such as '45s', '2m30s', '20m', '1h05m'."""
    import re

    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([dhms])", text))


def test_log_without_a_terminal_has_one_line_per_interval_and_one_closing_line(tmp_path):
    data = make_images(tmp_path / "data")
    # the bar is on (the default) but stderr is a pipe here: no tqdm frame may reach it
    args = [a for a in tiny_overrides(data, tmp_path / "exp", total=8) if not a.startswith("logger.progress_bar")]
    result = run_cli(args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "\r" not in result.stderr and "it/s]" not in result.stderr
    lines = result.stderr.splitlines()
    progress = [line for line in lines if line.startswith("iter ")]
    assert [line.split(" lr ")[0] for line in progress] == [
        "iter 2/8 (25%)", "iter 4/8 (50%)", "iter 6/8 (75%)", "iter 8/8 (100%)"]  # logger.print_freq=2
    assert all("it/s, elapsed " in line and ", eta " in line for line in progress)
    closing = [line for line in lines if line.startswith(("done", "stopped", "finished"))]
    assert closing == [lines[-1]] and lines[-1].startswith("done at iteration 8 of 8 ")
    assert "outputs in" in lines[-1] and result.stdout == ""
    log = (tmp_path / "exp" / "run" / "train.log").read_text()
    assert log.count(" INFO iter ") == 4 and log.count("done at iteration 8") == 1


def test_time_budget_caps_the_eta_and_ends_with_one_closing_line(tmp_path):
    data = make_images(tmp_path / "data")
    args = tiny_overrides(data, tmp_path / "exp", total=100_000) + [
        "train.max_minutes=0.02", "logger.print_freq=5", "val.val_freq=1000000", "logger.save_checkpoint_freq=0"]
    result = run_cli(args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "\r" not in result.stderr
    lines = result.stderr.splitlines()
    closing = [line for line in lines if line.startswith(("done", "stopped", "finished", "time budget"))]
    assert closing == [lines[-1]]
    assert lines[-1].startswith("stopped by the time budget (train.max_minutes=0.02) at iteration ")
    stopped_at = int(lines[-1].split(" at iteration ")[1].split()[0])
    progress = [line for line in lines if line.startswith("iter ")]
    assert len(progress) == stopped_at // 5 > 0
    # 100,000 iterations would take hours; the 1.2 s budget ends the run first
    etas = [_eta_seconds(line.rsplit(", eta ", 1)[1]) for line in progress]
    assert max(etas) <= 2, progress


def test_dual_warmup_holds_the_primal_then_trains_it(tmp_path):
    from dualsr.config import load_config

    trainer, primal0, duals0 = _trainer_for(tmp_path, 6, ["train.dual_warmup_iter=3"])
    try:
        for iteration in (1, 2, 3):
            trainer.train_step(iteration)
        assert _unchanged(trainer.model, primal0)
        assert not _unchanged(trainer.duals, duals0)
        trainer.train_step(4)
        assert not _unchanged(trainer.model, primal0)
    finally:
        trainer.close()
    data = tmp_path / "data"
    for bad, message in ((["train.dual_warmup_iter=2", "train.dual_weight=0"], "dual_weight > 0"),
                         (["train.dual_warmup_iter=8"], "no primal update")):
        with pytest.raises(ConfigError, match=message):
            load_config(REPO / "configs" / "drn_t_x4.yaml", tiny_overrides(data, tmp_path / "exp", total=8) + bad)
