"""`torchrun --nproc_per_node 2 -m dualsr train` on the gloo backend: same weights, one writer, resumable."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from test_train import REPO, make_images, tiny_overrides

pytestmark = pytest.mark.slow


def _torchrun(args: list[str], env: dict, nproc: int = 2) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           str(REPO / "tests" / "train_driver.py"), str(REPO / "configs" / "drn_t_x4.yaml"), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, cwd=REPO)


def test_two_gloo_processes_keep_identical_weights_and_only_rank0_writes(tmp_path):
    from dualsr.models import create_dual, create_model
    from dualsr.train.step import PrimalDualStep
    from train_driver import weights_checksum

    data = make_images(tmp_path / "data", count=8)
    sums = tmp_path / "sums"
    sums.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["--checksums", str(sums)] + tiny_overrides(data, tmp_path / "exp", total=6) + [
        "datasets.train.batch_size=4", "num_threads=1"]
    result = _torchrun(args, env)
    assert result.returncode == 0, result.stderr[-3000:]

    rank0, rank1 = (sums / "rank0.sha256").read_text(), (sums / "rank1.sha256").read_text()
    assert rank0 == rank1
    # and the saved weights are those weights
    model = create_model("drn-t", 4, n_blocks=1, n_feats=4)
    duals = create_dual(model, 4)
    root = tmp_path / "exp" / "run"
    model.load_state_dict(load_file(root / "models" / "net_g_latest.safetensors"))
    duals.load_state_dict(load_file(root / "models" / "net_dual_latest.safetensors"))
    assert weights_checksum(PrimalDualStep(model, duals, 0.1)) == rank0

    # one writer: exactly the expected files, and every log line once (a second writer would repeat them)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == ["config.yaml", "models/net_dual_4.safetensors", "models/net_dual_6.safetensors",
                     "models/net_dual_best.safetensors", "models/net_dual_latest.safetensors",
                     "models/net_g_4.safetensors", "models/net_g_6.safetensors", "models/net_g_best.safetensors",
                     "models/net_g_latest.safetensors", "train.log", "training_states/4.state",
                     "training_states/6.state"]
    log = (root / "train.log").read_text()
    assert log.count("saved checkpoint at iteration 4") == 1 and log.count("validation at iter 4") == 1
    assert "2 process(es)" in log

    # resume the 2-process run in one process (world size changed), two more iterations
    from dualsr.cli import main

    assert main(["train", "-c", str(REPO / "configs" / "drn_t_x4.yaml"),
                 *tiny_overrides(data, tmp_path / "exp", total=8), "datasets.train.batch_size=4", "--resume"]) == 0
    log = (root / "train.log").read_text()
    assert "at iteration 6 (saved by 2 process(es), now 1)" in log
    assert (root / "training_states" / "8.state").is_file()
