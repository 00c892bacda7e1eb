"""A small SwinIR on this CPU: dual regression on and off (2 seeds), then DRC vs L1 at about 30%.

    python benchmarks/bench_swinir.py --train      # 4 trainings of configs/swinir_t_x4.yaml, two at a time
    python benchmarks/bench_swinir.py --compress   # DRC and L1 (DRC's widths) on each dual run, same budget
    python benchmarks/bench_swinir.py              # evaluates what exists and writes the REPORT section

Trainings run two at a time, one core each, for the config's wall-clock budget (`--minutes`
overrides it); an interrupted run continues where its last checkpoint left it when the command
is given again (`--resume-if-possible`). The weights evaluated are the best on 10 held-out
training images, never chosen on the test sets. Writes the `swinir_small` section of
benchmarks/REPORT.md: Set5/Set14/B100 x4 PSNR/SSIM, parameters, MACs at LR 96x96 and the CPU time
of one 256x256 -> 1024x1024 upscale.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _report import machine_line, median_ms, write_section  # noqa: E402

CONFIG = "configs/swinir_t_x4.yaml"
SEEDS = (0, 1)
SETS = ("Set5", "Set14", "B100")


def run_name(seed: int, dual: bool) -> str:
    return f"swinir_t_x4_s{seed}_{'dual' if dual else 'nodual'}"


def train_all(experiments: Path, minutes: float | None) -> None:
    """Every (seed, dual) run, two processes at a time; each resumes its own checkpoints if any."""
    jobs = [(seed, dual) for seed in SEEDS for dual in (True, False)]
    for pair in (jobs[i:i + 2] for i in range(0, len(jobs), 2)):
        procs = {}
        for seed, dual in pair:
            name = run_name(seed, dual)
            args = [sys.executable, "-m", "dualsr", "train", "-c", CONFIG, f"name={name}", f"seed={seed}",
                    f"train.dual_weight={0.1 if dual else 0}", f"path.experiments_root={experiments}",
                    "logger.progress_bar=false", "--resume-if-possible"]
            if minutes:
                args.append(f"train.max_minutes={minutes}")
            log = open(experiments / f"{name}.stdout.log", "a")
            procs[name] = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        for name, proc in procs.items():
            if proc.wait() != 0:
                raise SystemExit(f"training {name} failed; see {experiments / (name + '.stdout.log')}")


def compress_all(experiments: Path, args) -> None:
    """DRC at --rate, then L1 at DRC's widths, from each dual run's best weights; same fine-tuning."""
    from dualsr.cli import main as dualsr

    for seed in SEEDS:
        weights = experiments / run_name(seed, True) / "models" / "net_g_best.safetensors"
        duals = experiments / run_name(seed, True) / "models" / "net_dual_best.safetensors"
        common = ["--weights", str(weights), "--duals", str(duals), "--data", *args.data, "--rate", str(args.rate),
                  "--seed", str(seed), "--search-steps", str(args.search_steps), "--finetune-steps",
                  str(args.finetune_steps), "--batch-size", "8", "--gt-size", "96", "--threads", "2", "--quiet",
                  "--channels-per-step", str(args.channels_per_step)]
        drc = experiments / f"compress_s{seed}" / "drc"
        if dualsr(["compress", *common, "--method", "drc", "--out", str(drc)]) != 0:
            raise SystemExit(f"DRC failed for seed {seed}")
        out = experiments / f"compress_s{seed}" / "l1"
        if dualsr(["compress", *common, "--method", "l1", "--widths", str(drc / "widths.txt"), "--out", str(out)]) != 0:
            raise SystemExit(f"L1 failed for seed {seed}")


def measure(path: Path, sets) -> dict:
    from dualsr.checkpoint import load
    from dualsr.evaluate import evaluate
    from dualsr.models import sr_image
    from dualsr.profile import count_macs, count_parameters

    model = load(path).model.eval()
    scores = {name: (s.psnr, s.ssim) for name, s in zip(SETS, evaluate(model, sets, 4))}
    lr = torch.rand(1, 3, 256, 256) * 255
    with torch.inference_mode():
        ms = median_ms(lambda: sr_image(model, lr), 3)
    return {"scores": scores, "params": count_parameters(model), "gmacs": count_macs(model, (96, 96)) / 1e9,
            "ms": ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="train the four runs first (two hours at 55 min each)")
    parser.add_argument("--compress", action="store_true", help="compress each dual run with DRC and L1")
    parser.add_argument("--minutes", type=float, default=None, help="training budget per run (default: the config's)")
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--search-steps", type=int, default=200)
    parser.add_argument("--finetune-steps", type=int, default=500)
    parser.add_argument("--channels-per-step", type=int, default=1)
    parser.add_argument("--experiments", type=Path, default=REPO / "experiments")
    parser.add_argument("--data", nargs="+", default=[str(REPO.parent / "shared" / "data" / "train")])
    parser.add_argument("--benchmark", type=Path, default=REPO.parent / "shared" / "data" / "benchmark")
    parser.add_argument("--note", default="", help="a sentence on how the runs were made, added to the section")
    args = parser.parse_args()
    args.experiments.mkdir(parents=True, exist_ok=True)
    if args.train:
        train_all(args.experiments, args.minutes)
    if args.compress:
        compress_all(args.experiments, args)

    from dualsr.data.benchmark import BenchmarkSet
    from dualsr.evaluate import evaluate
    from dualsr.train.state import latest_state, load_state

    sets = [BenchmarkSet(args.benchmark / name, 4) for name in SETS]
    rows = [("bicubic", None, {"scores": {name: (s.psnr, s.ssim) for name, s in zip(SETS, evaluate(None, sets, 4))}})]
    for seed in SEEDS:
        for dual in (True, False):
            root = args.experiments / run_name(seed, dual)
            state = latest_state(root / "training_states")
            if state is None:
                continue
            facts = load_state(state)
            label = f"{run_name(seed, dual)} ({int(facts['iteration']):,} it, {facts['elapsed_s'] / 60:.0f} min)"
            rows.append((label, 0.1 if dual else 0.0, measure(root / "models" / "net_g_best.safetensors", sets)))
        for method in ("drc", "l1"):
            path = args.experiments / f"compress_s{seed}" / method / "compressed.safetensors"
            if path.is_file():
                rows.append((f"seed {seed}, {method.upper()} at rate {args.rate}", 0.1, measure(path, sets)))
    lines = [
        "## A small SwinIR x4 on this CPU: dual regression, then DRC vs L1",
        "",
        "Commands: `python benchmarks/bench_swinir.py --train --compress` (configs/swinir_t_x4.yaml: swinir-light "
        "with 24 features, 2x2 Swin blocks, 2 heads, window 8; T91 + BSD200 minus 10 held-out validation images; "
        "two runs at a time, one core each; weights = best on the validation split; compression from each dual "
        f"run at rate {args.rate}, L1 at DRC's widths, {args.finetune_steps} fine-tuning steps each).",
        f"Machine: {machine_line()}." + (f" {args.note}" if args.note else ""),
        "",
        "| model | lambda | params | G MACs (LR 96x96) | 256x256 x4 (ms) | " + " | ".join(SETS) + " |",
        "| --- | --- | --- | --- | --- |" + " --- |" * len(SETS),
    ]
    for label, lam, m in rows:
        cells = " | ".join(f"{m['scores'][s][0]:.2f} / {m['scores'][s][1]:.4f}" for s in SETS)
        if lam is None:
            lines.append(f"| {label} | - | - | - | - | {cells} |")
        else:
            lines.append(f"| {label} | {lam:g} | {m['params']:,} | {m['gmacs']:.2f} | {m['ms']:.0f} | {cells} |")
    text = "\n".join(lines)
    print(text)
    write_section("swinir_small", text)


if __name__ == "__main__":
    torch.set_num_threads(1)
    started = time.time()
    main()
    print(f"({time.time() - started:.0f} s)")
