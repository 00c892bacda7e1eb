"""Blind SR and unpaired adaptation of the released RLFN x4 (issue 13), through `dualsr train`.

    python benchmarks/bench_blind.py                      # both parts, defaults (hours; resumable)
    python benchmarks/bench_blind.py --part blind --jobs 2   # two trainings at a time, one core each
    python benchmarks/bench_blind.py --smoke              # tiny settings: checks the pipeline in minutes

Part 1, blind ("setting 2"): fine-tune the bicubic-trained RLFN x4 on setting-2 degradations of
../shared/data/train (configs/rlfn_x4_blind.yaml) with lambda = 0.1 and lambda = 0, --seeds each,
at the same budget; test on Set5/Set14/B100 degraded by `dualsr degrade --kernel aniso --seed 0`.
Rows: bicubic interpolation, RLFN unchanged, the two fine-tuned models (mean and per seed). The
weights tested are each run's best on its held-out TRAINING images (never the test sets).

Part 2, adaptation: one fixed anisotropic kernel (sigma 2.5 / 1.0, theta 0.6; `--target bd` for the
BD kernel) that the model never saw. The training images are split in two halves by sorted index:
the even half is the paired (HR) data, the odd half only gives LR-only target-domain images (made
by `dualsr degrade`; their HR never enters training). Every arm starts from the same point: RLFN
plus a dual first trained for --dual-warmup iterations on paired bicubic data (0: a fresh dual), and
runs the same steps, once per --seeds:
  control     paired bicubic data only;
  adapted     paired bicubic + unpaired target LR, rho = 0.3, dual path `tap` (and `chain` when the
              model has more than one dual; for RLFN both are the same single SR -> LR dual);
  oracle dual as adapted, but the dual was warmed up on paired TARGET-domain data and stays frozen
              (train.optim_dual.lr=0): what the unpaired term does when D knows the degradation;
  upper bound paired target-domain data (the even half degraded with the target kernel).
Tested on B100 degraded the same way; the weights tested are the last ones (no selection: the
held-out images of these runs are bicubic or target-paired, not what the adaptation sees).
It also logs the unpaired dual loss L1(D(P(x)), x) before and after adaptation next to two
references: the same loss with the true target degradation as D (what the dual should become) and
with MATLAB bicubic as D, to show how far the dual term is from its minimum when adaptation starts.

Runs live in experiments/blind/ (git-ignored); rerunning continues unfinished trainings
(--resume-if-possible) and reuses finished ones and generated sets. Writes the REPORT sections
`blind_setting2` and `blind_adaptation` (not with --smoke, which only prints).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _report import machine_line, write_section  # noqa: E402

SHARED = REPO.parent / "shared"
RLFN = SHARED / "weights" / "rlfn" / "rlfn_x4.pth"
TRAIN = SHARED / "data" / "train"
BENCH = SHARED / "data" / "benchmark"
TARGETS = {
    "fixed": ["--kernel", "aniso", "--sigma-x", "2.5", "--sigma-y", "1.0", "--theta", "0.6"],
    "bd": ["--kernel", "bd"],
}
TARGET_DEGRADATION = {
    "fixed": {"type": "aniso", "sigma_x": 2.5, "sigma_y": 1.0, "theta": 0.6},
    "bd": {"type": "bd"},
}


def sh(cmd: list[str], log: Path | None = None) -> None:
    """Run a command from the repository root (PYTHONPATH inherited); fail loudly with its log."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if log is None:
        result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(f"failed: {' '.join(cmd)}\n{result.stderr[-3000:]}")
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as handle:
        if subprocess.run(cmd, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT).returncode:
            raise SystemExit(f"failed: {' '.join(cmd)} (see {log})")


def blind_set(source: Path, out: Path, flags: list[str]) -> Path:
    """`dualsr degrade` once (an existing set is checked bit for bit instead of rebuilt)."""
    if out.is_dir():
        sh([sys.executable, "-m", "dualsr", "degrade", "--check", str(out)])
    else:
        sh([sys.executable, "-m", "dualsr", "degrade", "--data", str(source), "--out", str(out), "--scale", "4",
            *flags])
    return out


def finished(root: Path, total: int) -> bool:
    from dualsr.train.state import latest_state, load_state

    state = latest_state(root / "training_states")
    return state is not None and int(load_state(state)["iteration"]) >= total


def train(runs: Path, name: str, config: str, overrides: list[str], total: int) -> Path:
    """`dualsr train -c config overrides --resume-if-possible`, unless the run is already complete."""
    root = runs / name
    if not finished(root, total):
        t0 = time.monotonic()
        sh([sys.executable, "-m", "dualsr", "train", "-c", config, f"name={name}",
            f"path.experiments_root={runs}", f"train.total_iter={total}", *overrides, "--resume-if-possible"],
           log=runs / f"{name}.stdout.log")
        spent = time.monotonic() - t0
        (runs / f"{name}.wall_s").write_text(f"{wall_s(runs, name) + spent:.1f}\n")  # summed over resumes
        print(f"trained {name} in {spent / 60:.1f} min", file=sys.stderr)
    return root


def wall_s(runs: Path, name: str) -> float:
    """Seconds `dualsr train` ran for this run, over all its invocations (0 if unknown)."""
    path = runs / f"{name}.wall_s"
    return float(path.read_text()) if path.is_file() else 0.0


def command_line() -> str:
    """This script's command as it was run (its figures depend on every flag)."""
    return " ".join(["python benchmarks/bench_blind.py", *sys.argv[1:]])


def budget(args) -> list[str]:
    return [f"datasets.train.batch_size={args.batch}", f"datasets.train.gt_size={args.patch}",
            f"train.optim_g.lr={args.lr}", f"val.val_freq={args.val_freq}",
            f"logger.save_checkpoint_freq={args.val_freq}", f"logger.print_freq={max(1, min(50, args.iters))}",
            "logger.progress_bar=false", "train.channels_last=true"] + (["datasets.val.max_images=2", "datasets.val.center_crop=64"]
                                            if args.smoke else [])


def scores(weights: Path | None, sets: list[Path], cache: Path) -> dict[str, float]:
    """{set name: PSNR} of weights (None: bicubic), cached in a JSON file beside the runs."""
    key = str(weights) if weights else "bicubic"
    table = json.loads(cache.read_text()) if cache.is_file() else {}
    stamp = f"{weights.stat().st_mtime_ns}" if weights else "0"
    names = [s.name for s in sets]
    hit = table.get(key)
    if hit and hit.get("stamp") == stamp and all(n in hit["psnr"] for n in names):
        return {n: hit["psnr"][n] for n in names}
    from dualsr.checkpoint import load
    from dualsr.data.benchmark import BenchmarkSet
    from dualsr.evaluate import evaluate

    model = load(weights).model.eval() if weights else None
    result = {r.name: r.psnr for r in evaluate(model, [BenchmarkSet(s, 4) for s in sets], 4)}
    table[key] = {"stamp": stamp, "psnr": {**(hit or {}).get("psnr", {}), **result}}
    cache.write_text(json.dumps(table, indent=1))
    return result


def _cosine_share(warm: int, iters: int) -> float:
    """The cosine rate (relative to its base) at the first primal update after `warm` held iterations."""
    import math

    return 0.5 * (1 + math.cos(math.pi * warm / (warm + iters)))


def _rate_mass(warm: int, iters: int) -> float:
    """Summed primal rate of a warmed-up arm over that of an arm with the cosine over `iters` alone."""
    import math

    total = warm + iters
    warmed = sum(0.5 * (1 + math.cos(math.pi * t / total)) for t in range(warm, total))
    plain = sum(0.5 * (1 + math.cos(math.pi * t / iters)) for t in range(iters))
    return warmed / plain


def fmt_row(label: str, values: dict[str, float], names: list[str], extra: str = "") -> str:
    return f"| {label} | " + " | ".join(f"{values[n]:.2f}" for n in names) + f" |{extra}"


def seed_rows(mean_label: str, per_seed: dict[int, dict[str, float]], minutes: dict[int, float],
              names: list[str]) -> list[str]:
    """An arm's rows: the mean over its seeds (`mean_label`), then each seed with its wall minutes."""
    mean = {n: statistics.mean(v[n] for v in per_seed.values()) for n in names}
    return [fmt_row(mean_label, mean, names)] + [
        fmt_row(f"&nbsp;&nbsp;seed {seed}", values, names, f" {minutes[seed]:.0f} min |")
        for seed, values in per_seed.items()]


def psnr_table(names: list[str], rows: list[str]) -> list[str]:
    """The PSNR table of a section: one column per test set and the training wall time."""
    return ["PSNR (dB) on Y, x4, 4-pixel border:", "",
            "| method | " + " | ".join(names) + " | training wall time (one thread) |",
            "| --- |" + " --- |" * (len(names) + 1), *rows]


def part_blind(args, root: Path) -> None:
    sets_dir, runs = root / "sets", root / "runs"
    sets = [blind_set(BENCH / name, sets_dir / f"{name}_aniso_s0", ["--kernel", "aniso", "--seed", "0"])
            for name in args.sets]
    names = [s.name for s in sets]
    cache = root / "scores.json"
    warm = args.blind_dual_warmup
    common = [f"path.pretrain_network_g={RLFN}", *budget(args)]
    # arms: (label, run name, overrides, total iterations, seed). RLFN ships no dual, so the
    # lambda > 0 arms start from a dual fitted alone for `warm` iterations (primal held):
    #   fitted: in a separate run whose primal is discarded; the arm then has lambda = 0's schedule
    #   held:   inside the arm (train.dual_warmup_iter), whose cosine then spans warm + iters
    arms = {"0": [(f"blind_l0_s{seed}", [f"seed={seed}", "train.dual_weight=0", *common], args.iters, seed)
                  for seed in args.seeds]}
    fits = [(f"blind_dualfit_s{seed}", [f"seed={seed}", "train.dual_weight=0.1", f"train.dual_warmup_iter={warm}",
                                        *common], warm + 1, seed) for seed in args.seeds]
    fitted_dual = {seed: runs / name / "models" / "net_dual_latest.safetensors" for name, _, _, seed in fits}
    arms["0.1, dual fitted first"] = [
        (f"blind_l01_fitted_s{seed}", [f"seed={seed}", "train.dual_weight=0.1",
                                       f"path.pretrain_network_dual={fitted_dual[seed]}", *common], args.iters, seed)
        for seed in args.seeds]
    arms["0.1, dual warm-up inside the run"] = [
        (f"blind_l01_s{seed}", [f"seed={seed}", "train.dual_weight=0.1", f"train.dual_warmup_iter={warm}", *common],
         args.iters + warm, seed) for seed in args.seeds]
    chosen = ["0", "0.1, dual fitted first" if args.blind_dual_start == "fitted" else "0.1, dual warm-up inside the run"]
    # the other lambda = 0.1 variant is reported too when an earlier run of this script finished it
    shown = chosen + [k for k in arms if k not in chosen and all(finished(runs / a[0], a[2]) for a in arms[k])]
    with ThreadPoolExecutor(args.jobs) as pool:
        if args.blind_dual_start == "fitted":
            list(pool.map(lambda j: train(runs, j[0], "configs/rlfn_x4_blind.yaml", j[1], j[2]), fits))
        jobs = [arm for key in chosen for arm in arms[key]]
        list(pool.map(lambda j: train(runs, j[0], "configs/rlfn_x4_blind.yaml", j[1], j[2]), jobs))
    rows = [fmt_row("bicubic interpolation", scores(None, sets, cache), names),
            fmt_row("RLFN x4 (released, bicubic-trained), unchanged", scores(RLFN, sets, cache), names)]
    for key in shown:
        per_seed = {seed: scores(runs / name / "models" / "net_g_best.safetensors", sets, cache)
                    for name, _, _, seed in arms[key]}
        minutes = {seed: (wall_s(runs, name) + (wall_s(runs, f"blind_dualfit_s{seed}") if "fitted" in key else 0.0))
                   / 60 for name, _, _, seed in arms[key]}
        rows += seed_rows(f"**fine-tuned, lambda={key}, mean of {len(per_seed)} seeds**", per_seed, minutes, names)
    lines = [
        "## Blind SR, setting 2: RLFN x4 fine-tuned on anisotropic Gaussian degradations",
        "",
        f"Command: `{command_line()}` "
        f"(`dualsr train -c configs/rlfn_x4_blind.yaml` from `{RLFN.name}`; {args.iters} iterations, batch "
        f"{args.batch}, HR patch {args.patch}, Adam {args.lr}, cosine; seeds {', '.join(map(str, args.seeds))}). "
        "Test sets: `dualsr degrade --data SET --out SET_aniso_s0 --kernel aniso --seed 0` (31x31, sigma_x, "
        "sigma_y ~ U(0.6, 5), theta ~ U(-pi, pi), taps x U(1, 1.25), MATLAB bicubic x1/4), checked bit for bit "
        "with `--check`. Weights: best PSNR on the 10 held-out training images (setting-2 degraded), never the "
        f"test sets. RLFN ships no dual: the lambda = 0.1 arms start from a dual fitted alone for {warm} "
        "iterations on the same data (primal held). *Dual fitted first* (`--blind-dual-start fitted`): in a "
        f"separate run whose primal is discarded, so the arm has exactly lambda = 0's {args.iters} iterations and "
        "schedule (its wall time includes the fit). *Dual warm-up inside the run* (`held`, "
        f"`train.dual_warmup_iter={warm}`): the same number of primal updates, but the cosine spans all "
        f"{args.iters + warm} iterations, so that primal starts at {_cosine_share(warm, args.iters):.0%} of the "
        f"rate and gets {_rate_mass(warm, args.iters):.0%} of lambda = 0's summed rate: a handicap, so only the "
        "fitted variant is a fair comparison.",
        f"Machine: {machine_line()}." + (" SMOKE SETTINGS: not a result." if args.smoke else ""),
        "",
        *psnr_table(names, rows),
    ]
    text = "\n".join(lines)
    print(text)
    if not args.smoke:  # smoke figures are no results: printed only
        write_section("blind_setting2", text)


def _split(source: Path, out: Path) -> tuple[Path, Path]:
    """Symlink folders: even-indexed training images (paired HR) and odd-indexed ones (unpaired source)."""
    from dualsr.data.datasets import find_images

    paired, other = out / "paired_hr", out / "unpaired_hr"
    if not paired.is_dir():
        files = find_images(source)
        for folder, chosen in ((paired, files[0::2]), (other, files[1::2])):
            tmp = folder.with_name(folder.name + ".part")
            tmp.mkdir(parents=True, exist_ok=True)
            for f in chosen:
                link = tmp / f"{f.parent.name}_{f.name}"
                if not link.exists():
                    link.symlink_to(f.resolve())
            tmp.rename(folder)
    return paired, other


@torch.no_grad()
def unpaired_dual_gap(weights: Path, dual_weights: Path | None, lr_dir: Path, target: dict, limit: int) -> dict:
    """Mean L1(D(P(x)), x) over LR-only images: with the run's dual, the true degradation, bicubic."""
    import numpy as np

    from dualsr.checkpoint import load, load_weights
    from dualsr.data.degrade import parse_degradation
    from dualsr.data.imageio import read_image
    from dualsr.data.resize import imresize
    from dualsr.models import create_dual
    from dualsr.models.spec import run_model, spec_of
    from dualsr.objective import unpaired_dual_loss

    model = load(weights).model.eval()
    duals = create_dual(model, 4)
    if dual_weights is not None:
        load_weights(duals, dual_weights)
    duals.eval()
    degradation = parse_degradation(target)
    taps = spec_of(model).dual_taps(4)
    out = {"dual": [], "true degradation": [], "bicubic": []}
    for path in sorted(lr_dir.iterdir())[:limit]:
        lr = read_image(path).rgb[None]
        if min(lr.shape[-2:]) * 4 < max(degradation.size, 32):
            continue
        outputs = run_model(model, lr)
        sr = outputs[-1].clamp(0, 255)
        out["dual"].append(float(unpaired_dual_loss(outputs, lr, duals, taps)))
        kernel, _ = degradation.sample_kernel(np.random.default_rng(0))
        out["true degradation"].append(float((degradation.apply(sr.double(), kernel[None], 4) - lr).abs().mean()))
        out["bicubic"].append(float((imresize(sr.double(), 0.25, round_uint8=True) - lr).abs().mean()))
    return {k: statistics.mean(v) for k, v in out.items() if v}


def part_adapt(args, root: Path) -> None:
    from dualsr.models.registry import get_spec

    flags, target = TARGETS[args.target], TARGET_DEGRADATION[args.target]
    adapt = root / "adapt" / args.target
    paired_hr, unpaired_hr = _split(TRAIN, root / "adapt")
    lr_set = blind_set(unpaired_hr, adapt / "unpaired_target", flags)
    unpaired_lr = lr_set / "LR" / "X4"  # LR only: the HR copies beside it are never given to training
    test = [blind_set(BENCH / args.adapt_set, root / "sets" / f"{args.adapt_set}_{args.target}", flags)]
    names = [s.name for s in test]
    runs, cache = adapt / "runs", root / "scores.json"
    common = [f"datasets.train.dataroot=[{paired_hr}]", *budget(args)]
    on_target = [f"datasets.train.degradation.{k}={v}" for k, v in target.items()]
    # the duals the arms start from: fitted (jointly with a copy of RLFN that is then discarded) on
    # paired bicubic data, and, for the oracle arm only, on paired TARGET-domain data
    warmups = {"dual_warmup": [], "dual_warmup_target": on_target} if args.dual_warmup else {}
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda kv: train(runs, kv[0], "configs/rlfn_x4_adapt.yaml",
                                              [*common, f"path.pretrain_network_g={RLFN}", *kv[1]], args.dual_warmup),
                             warmups.items()))
    duals = {name: root_ / "models" / "net_dual_latest.safetensors" for name, root_ in zip(warmups, done)}
    start_g = [f"path.pretrain_network_g={RLFN}"]
    start = start_g + ([f"path.pretrain_network_dual={duals['dual_warmup']}"] if duals else [])
    unpaired = [f"datasets.unpaired.dataroot=[{unpaired_lr}]", f"datasets.unpaired.ratio={args.rho}"]
    arms = {
        "control (paired bicubic only)": ("control", [*common, *start]),
        "adapted, dual path tap": ("adapt_tap", [*common, *start, *unpaired, "datasets.unpaired.dual_path=tap"]),
    }
    if len(get_spec("rlfn").dual_taps(4)) > 1:  # with one dual the chained path is the same loss
        arms["adapted, dual path chain"] = ("adapt_chain", [*common, *start, *unpaired,
                                                            "datasets.unpaired.dual_path=chain"])
    if duals:
        # what the dual term can do when the dual knows the target degradation: fitted on target pairs
        # (an oracle: no real adaptation has those), then frozen so that the bicubic pairs cannot pull it back
        arms["adapted, oracle dual (fitted on target pairs, frozen)"] = (
            "adapt_oracle_dual", [*common, *start_g, f"path.pretrain_network_dual={duals['dual_warmup_target']}",
                                  *unpaired, "datasets.unpaired.dual_path=tap", "train.optim_dual.lr=0"])
    arms["upper bound (paired target-domain data)"] = ("upper", [*common, *start, *on_target])
    jobs = [(label, f"{name}_s{seed}", [f"seed={seed}", *overrides])
            for label, (name, overrides) in arms.items() for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda j: train(runs, j[1], "configs/rlfn_x4_adapt.yaml", j[2], args.iters), jobs))
    torch.set_num_threads(args.jobs)  # scoring runs after the trainings: every core is free
    first = f"_s{args.seeds[0]}"
    gaps = {"before adaptation (released RLFN, its start dual)": (RLFN, duals.get("dual_warmup"))}
    for label, name in (("after adaptation (tap)", "adapt_tap"),
                        ("after adaptation (oracle dual)", "adapt_oracle_dual")):
        models = runs / f"{name}{first}" / "models"
        if models.is_dir():
            gaps[f"{label}, seed {args.seeds[0]}"] = (models / "net_g_latest.safetensors",
                                                      models / "net_dual_latest.safetensors")
    gap_rows = []
    for label, (weights, dual) in gaps.items():
        gap = unpaired_dual_gap(weights, dual, unpaired_lr, target, args.gap_images)
        gap_rows.append(f"| {label} | {gap.get('dual', float('nan')):.3f} | "
                        f"{gap.get('true degradation', float('nan')):.3f} | {gap.get('bicubic', float('nan')):.3f} |")
    rows = [fmt_row("bicubic interpolation", scores(None, test, cache), names),
            fmt_row("before adaptation (released RLFN x4)", scores(RLFN, test, cache), names)]
    for label, (name, _) in arms.items():
        per_seed = {seed: scores(runs / f"{name}_s{seed}" / "models" / "net_g_latest.safetensors", test, cache)
                    for seed in args.seeds}
        minutes = {seed: wall_s(runs, f"{name}_s{seed}") / 60 for seed in args.seeds}
        rows += seed_rows(f"**{label}**, mean of {len(per_seed)} seeds", per_seed, minutes, names)
    warm_text = (f"a dual warmed up for {args.dual_warmup} iterations on paired bicubic data (with a copy of RLFN "
                 "that is then discarded)" if args.dual_warmup else "a fresh dual")
    lines = [
        f"## Unpaired adaptation of RLFN x4 to one unseen degradation (`{' '.join(flags)}`)",
        "",
        f"Command: `{command_line()}` (`dualsr train -c configs/rlfn_x4_adapt.yaml`; every arm "
        f"{args.iters} iterations, batch {args.batch} (rho = {args.rho} of it unpaired in the adapted arms), HR patch "
        f"{args.patch}, Adam {args.lr}, cosine; seeds {', '.join(map(str, args.seeds))}; start: released RLFN + "
        f"{warm_text}). Paired data: the even-indexed half of ../shared/data/train; unpaired: the LR images "
        "(`dualsr degrade`) of the odd-indexed half, whose HR never enters training. Test: "
        f"{args.adapt_set} degraded the same way. Weights: the last ones of each run (no selection).",
        f"Machine: {machine_line()}." + (" SMOKE SETTINGS: not a result." if args.smoke else ""),
        "",
        *psnr_table(names, rows),
        "",
        f"Unpaired dual loss L1(D(P(x)), x) (0-255 scale, mean over the first {args.gap_images} LR-only training "
        "images, whole images), with the run's dual as D, and with D = the true target degradation or "
        "D = MATLAB bicubic applied to the same SR output P(x):",
        "",
        "| model | the run's dual D | true degradation as D | bicubic as D |",
        "| --- | --- | --- | --- |",
        *gap_rows,
    ]
    text = "\n".join(lines)
    print(text)
    if not args.smoke:
        write_section("blind_adaptation", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["blind", "adapt", "all"], default="all")
    parser.add_argument("--iters", type=int, default=3000, help="iterations per run (default 3000, ~25 min)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=128, help="HR patch side")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--val-freq", type=int, default=500, help="validation (held-out training images) and "
                        "checkpoint interval")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14", "B100"])
    parser.add_argument("--target", choices=sorted(TARGETS), default="fixed", help="adaptation target kernel")
    parser.add_argument("--adapt-set", default="B100")
    parser.add_argument("--rho", type=float, default=0.3)
    parser.add_argument("--blind-dual-warmup", type=int, default=300,
                        help="part 1, lambda > 0: iterations in which only the fresh dual trains (default 300)")
    parser.add_argument("--blind-dual-start", choices=("fitted", "held"), default="held",
                        help="part 1, lambda > 0: fit the dual in a separate run first (fitted: the same schedule "
                             "as lambda = 0) or inside the arm (held, the default: its cosine spans the warm-up)")
    parser.add_argument("--dual-warmup", type=int, default=500,
                        help="iterations that train RLFN's dual on paired bicubic data before adaptation (0: none)")
    parser.add_argument("--gap-images", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=1, help="trainings at a time (one CPU thread each)")
    parser.add_argument("--experiments", type=Path, default=REPO / "experiments" / "blind")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny settings (4 iterations, batch 4, patch 64, Set5; runs under experiments/blind_smoke)")
    args = parser.parse_args()
    if args.smoke:
        args.iters, args.batch, args.patch, args.val_freq, args.seeds = 4, 4, 64, 2, [0, 1]
        args.sets, args.adapt_set, args.dual_warmup, args.gap_images = ["Set5"], "Set5", 2, 4
        args.blind_dual_warmup = min(args.blind_dual_warmup, 2)
        args.experiments = args.experiments.with_name(args.experiments.name + "_smoke")
    if not RLFN.is_file():
        raise SystemExit(f"{RLFN}: the released RLFN x4 weights are needed")
    args.experiments.mkdir(parents=True, exist_ok=True)
    if args.part in ("blind", "all"):
        part_blind(args, args.experiments)
    if args.part in ("adapt", "all"):
        part_adapt(args, args.experiments)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
