"""Reproduce, check and score the default models shipped in the package (x4 and x2).

    python benchmarks/bench_shipped.py --train x4   # runs the x4 recipe (about two hours; rerun to resume)
    python benchmarks/bench_shipped.py --train x2   # the same for x2 (both can run at once, one core each)
    python benchmarks/bench_shipped.py --ship x4    # copies the run's result into src/dualsr/weights/
    python benchmarks/bench_shipped.py              # scores the runs, checks the shipped files equal them

Each recipe is one `dualsr compress` command on a released RLFN file (Apache-2.0, ../shared/weights)
and ../shared/data/train: fit the duals, DRC channel pruning to the recipe's widths, then fine-tuning
with the dual-regression loss and L1 distillation to the uncompressed model's output, the weights
kept being the best on held-out training images (never on a test set). The widths are not searched:
they are chosen for CPU time from the measured costs of RLFN width variants (`bench_widths.py`,
REPORT `rlfn_widths`). The command is printed, and its stage times come from the run's
summary.json. Writes the `shipped_models` section of benchmarks/REPORT.md.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _report import machine_line, same_tensors, write_section  # noqa: E402

SHARED = REPO.parent / "shared"
TRAIN = [SHARED / "data" / "train" / "T91", SHARED / "data" / "train" / "BSD200"]
BENCHMARK = SHARED / "data" / "benchmark"
SHIPPED_DIR = REPO / "src" / "dualsr" / "weights"
SETS = ("Set5", "Set14", "B100")

# key -> what the shipped model is made from and how; `stem` is its file name in the package
RECIPES = {
    "x4": {
        "stem": "rlfn_drc_x4",
        "weights": SHARED / "weights" / "rlfn" / "rlfn_s_x4.pth",
        "widths": [32, 32, 16] * 6,
        "flags": ["--finetune-steps", "5000", "--finetune-lr", "2e-4", "--gt-size", "128", "--val-every", "500"],
    },
    "x2": {
        "stem": "rlfn_drc_x2",
        "weights": SHARED / "weights" / "rlfn" / "rlfn_x2.pth",
        "widths": [24, 24, 16] * 6,
        "flags": ["--finetune-steps", "2000", "--finetune-lr", "2e-4", "--gt-size", "96", "--val-every", "250"],
    },
}
# shared by every recipe
COMMON_FLAGS = ["--channels-per-step", "4", "--distill", "output", "--finetune-schedule", "cosine",
                "--channels-last", "--batch-size", "16", "--threads", "1", "--seed", "0", "--progress-every", "60"]


def run_dir(key: str) -> Path:
    return REPO / "experiments" / f"default_{key}"


def command(key: str) -> list[str]:
    recipe, root = RECIPES[key], run_dir(key)
    return ["dualsr", "compress", "--weights", str(recipe["weights"]), "--widths", str(root / "widths.txt"),
            "--data", *map(str, TRAIN), "--out", str(root / "run"), *recipe["flags"], *COMMON_FLAGS]


def shown(cmd: list[str]) -> str:
    """The command as a reader would type it from the repository root."""
    return " ".join(str(Path(a).relative_to(REPO)) if a.startswith(str(REPO) + "/")
                    else a.replace(str(SHARED), "../shared") for a in cmd)


def train(key: str) -> None:
    root = run_dir(key)
    (root / "run").mkdir(parents=True, exist_ok=True)
    (root / "widths.txt").write_text("".join(f"{w}\n" for w in RECIPES[key]["widths"]))
    cmd = command(key)
    print(shown(cmd), flush=True)
    started = time.monotonic()
    with open(root / "run.log", "a") as log:
        rc = subprocess.call([sys.executable, "-m", "dualsr", *cmd[1:]], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    if rc != 0:
        raise SystemExit(f"{key}: dualsr compress failed (exit {rc}); see {root / 'run.log'}")
    print(f"{key}: done in {(time.monotonic() - started) / 60:.1f} min this call", flush=True)


def result(key: str) -> Path:
    return run_dir(key) / "run" / "compressed.safetensors"


def ship(key: str) -> None:
    source = result(key)
    if not source.is_file():
        raise SystemExit(f"{source}: no finished run; run --train {key} first")
    target = SHIPPED_DIR / f"{RECIPES[key]['stem']}.safetensors"
    shutil.copyfile(source, target)
    print(f"{target}: {target.stat().st_size / 1e6:.2f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--train", choices=sorted(RECIPES), help="run (or resume) one recipe")
    group.add_argument("--ship", choices=sorted(RECIPES), help="copy a finished run into the package")
    args = parser.parse_args()
    if args.train:
        return train(args.train)
    if args.ship:
        return ship(args.ship)

    from dualsr.checkpoint import load
    from dualsr.data.benchmark import BenchmarkSet
    from dualsr.evaluate import evaluate
    from dualsr.profile import count_parameters

    lines = [
        "## Shipped default models: how they are made",
        "",
        f"`python benchmarks/bench_shipped.py` (after `--train x4`, `--train x2`, `--ship ...`); {machine_line()}.",
        "",
        "Each shipped model is one `dualsr compress` run from a released RLFN file (Apache-2.0) on T91 + BSD200: "
        "duals fitted, DRC channel pruning to the widths below, fine-tuning with the dual-regression loss plus "
        "L1 distillation to the uncompressed model's SR (cosine lr), keeping the weights best on held-out "
        "training images. Widths are fixed, not searched: they are multiples of 8 chosen for CPU time from the "
        "measured costs of RLFN width variants (section `rlfn_widths`, `benchmarks/bench_widths.py`), and DRC "
        "chooses which channels stay.",
        "",
        "| shipped file | from | widths (c1_r, c2_r, esa per block; stream kept) | params | stage times | fine-tuning best "
        "(held-out) | Set5 | Set14 | B100 | shipped file equals the run |",
        "|---|---|---|---:|---|---|---|---|---|---|",
    ]
    commands = []
    for key, recipe in RECIPES.items():
        path = result(key)
        if not path.is_file():
            lines.append(f"| {recipe['stem']} | — | run not found ({path.relative_to(REPO)}): `--train {key}` | | | | | | | |")
            continue
        summary = json.loads((path.parent / "summary.json").read_text())
        loaded = load(path)
        scale = loaded.scale
        sets = [BenchmarkSet(BENCHMARK / name, scale) for name in SETS] if BENCHMARK.is_dir() else []
        scores = {s.name: f"{s.psnr:.2f} / {s.ssim:.4f}" for s in evaluate(loaded.model.eval(), sets, scale)}
        seconds = summary.get("seconds", {})
        times = ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items())
        best = summary.get("finetune_best") or {}
        best_text = (f"{best['best_val_psnr']:.2f} dB at step {best['best_step']}" if best.get("best_val_psnr") else "—")
        shipped = SHIPPED_DIR / f"{recipe['stem']}.safetensors"
        equal = ("yes" if same_tensors(path, shipped) else "NO") if shipped.is_file() else "not shipped"
        width_text = "/".join(str(w) for w in recipe["widths"][:3]) + " x6"
        lines.append(f"| {recipe['stem']} (x{scale}) | `{Path(recipe['weights']).name}` | {width_text} | "
                     f"{count_parameters(loaded.model):,} | {times} | {best_text} | "
                     + " | ".join(scores.get(s, "—") for s in SETS) + f" | {equal} |")
        commands.append(f"- x{scale}: `python benchmarks/bench_shipped.py --train {key}` runs `{shown(command(key))}`")
    lines += ["", "PSNR / SSIM on Y (BT.601), border = scale, MATLAB-exact bicubic LR (dualsr's evaluation).",
              "", "Commands (rerunning one resumes it):", "", *commands]
    text = "\n".join(lines)
    print(text)
    write_section("shipped_models", text)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
