"""Train (optionally) and evaluate the DRN-T x4 CPU preset with and without dual regression.

    python benchmarks/bench_drn_t.py --train   # trains both presets side by side (one core each), then evaluates
    python benchmarks/bench_drn_t.py           # evaluates the runs already under experiments/

Both runs use the configs in configs/ (drn_t_x4.yaml: lambda = 0.1; drn_t_x4_nodual.yaml: lambda = 0),
which hold out 10 of the training images for validation; the weights evaluated are the
best-on-validation ones, never chosen on the test sets. Writes the `drn_t_training` section of
benchmarks/REPORT.md: training wall time, iterations, and Set5/Set14/B100 x4 PSNR/SSIM beside bicubic.
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
from _report import machine_line, same_tensors, write_section  # noqa: E402

RUNS = {"drn_t_x4": "configs/drn_t_x4.yaml", "drn_t_x4_nodual": "configs/drn_t_x4_nodual.yaml"}
SETS = ("Set5", "Set14", "B100")


def train_side_by_side(experiments: Path) -> dict[str, float]:
    """Start both trainings at once, one core each, and return each one's wall time in seconds."""
    procs, started, walls = {}, {}, {}
    for name, config in RUNS.items():
        log = open(experiments / f"{name}.stdout.log", "w")
        procs[name] = subprocess.Popen([sys.executable, "-m", "dualsr", "train", "-c", config],
                                       cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        started[name] = time.monotonic()
    for name, proc in procs.items():
        if proc.wait() != 0:
            raise SystemExit(f"training {name} failed; see {experiments / (name + '.stdout.log')}")
        walls[name] = time.monotonic() - started[name]
    return walls


def run_facts(root: Path) -> dict:
    """Iterations, training seconds and best-validation figures from a run's last training state."""
    from dualsr.train.state import latest_state, load_state

    state_path = latest_state(root / "training_states")
    if state_path is None:
        raise SystemExit(f"{root}: no training state; train first (--train)")
    state = load_state(state_path)
    return {"iteration": int(state["iteration"]), "train_s": float(state.get("elapsed_s", float("nan"))),
            "best": state.get("best", {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="train both presets first (about an hour)")
    parser.add_argument("--experiments", type=Path, default=REPO / "experiments")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "benchmark")
    parser.add_argument("--note", default="", help="a sentence on how the runs were made, added to the section")
    args = parser.parse_args()

    from dualsr.checkpoint import load
    from dualsr.data.benchmark import BenchmarkSet
    from dualsr.evaluate import evaluate

    walls = {}
    if args.train:
        args.experiments.mkdir(parents=True, exist_ok=True)
        walls = train_side_by_side(args.experiments)
    sets = [BenchmarkSet(args.data / name, 4) for name in SETS]

    rows = {"bicubic": {s.name: (s.psnr, s.ssim) for s in evaluate(None, sets, 4)}}
    facts = {}
    for name in RUNS:
        root = args.experiments / name
        weights = root / "models" / "net_g_best.safetensors"
        model = load(weights, "drn-t", 4).model.eval()
        facts[name] = {**run_facts(root), "params": sum(p.numel() for p in model.parameters())}
        rows[name] = {s.name: (s.psnr, s.ssim) for s in evaluate(model, sets, 4)}

    lines = [
        "## DRN-T x4 trained on this CPU, with and without dual regression",
        "",
        "Command: `python benchmarks/bench_drn_t.py --train` (runs `dualsr train -c configs/drn_t_x4.yaml` and "
        "`dualsr train -c configs/drn_t_x4_nodual.yaml` side by side, one core each, on T91 + BSD200 minus 10 "
        "held-out validation images; weights = best on that validation split). "
        "`python benchmarks/bench_drn_t.py` re-evaluates existing runs.",
        f"Machine: {machine_line()}." + (f" {args.note}" if args.note else ""),
        "",
        "| run | lambda | params (primal) | iterations | training time | best val PSNR (held-out train imgs) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, f in facts.items():
        wall = f" (wall {walls[name] / 60:.1f} min)" if name in walls else ""
        lam = "0.1" if name == "drn_t_x4" else "0"
        lines.append(f"| {name} | {lam} | {f['params']:,} | {f['iteration']:,} | {f['train_s'] / 60:.1f} min{wall} | "
                     f"{f['best'].get('psnr', float('nan')):.3f} dB @ {f['best'].get('iter', '?')} |")
    lines += ["", "Test sets, x4, PSNR (dB) / SSIM on Y, `scale` pixels shaved (Set14's gray image replicated to RGB):",
              "", "| method | " + " | ".join(SETS) + " |", "| --- |" + " --- |" * len(SETS)]
    for name, scores in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{scores[s][0]:.2f} / {scores[s][1]:.4f}" for s in SETS) + " |")
    shipped = REPO / "src" / "dualsr" / "weights" / "drn_t_x4.safetensors"
    if shipped.is_file():
        same = same_tensors(args.experiments / "drn_t_x4" / "models" / "net_g_best.safetensors", shipped)
        lines += ["", f"The shipped default model (`src/dualsr/weights/drn_t_x4.safetensors`) "
                  f"{'is' if same else 'is NOT'} the drn_t_x4 row's weights (compared tensor by tensor)."]
    gain = rows["drn_t_x4"]["Set5"][0] - rows["bicubic"]["Set5"][0]
    dual_gain = rows["drn_t_x4"]["Set5"][0] - rows["drn_t_x4_nodual"]["Set5"][0]
    lines += ["", f"Set5 gain over bicubic: {gain:+.2f} dB (dual regression); dual minus no-dual on Set5: "
              f"{dual_gain:+.2f} dB (one seed each: differences of a few 0.01 dB are within run-to-run noise)."]
    text = "\n".join(lines)
    print(text)
    write_section("drn_t_training", text)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
