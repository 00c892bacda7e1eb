"""CPU-scale DRC experiment: one pretrained model compressed by DRC, DRC without the dual term,
L1-norm and random channel selection (at DRC's searched widths) and uniform width scaling (at
DRC's parameter budget), each fine-tuned with the same budget, for several seeds.

Every run is a `dualsr compress` command (resumable: rerun this script to continue), then
`dualsr.evaluate` on Set5 / Set14 / B100 x4 (PSNR/SSIM on Y, border = scale). Nothing is selected
on the test sets: widths come from the search on training images, each run is reported, and the
held-out training images' PSNR (`val_psnr` of `dualsr compress`) is listed, the only score a
choice between variants may rest on.

    python benchmarks/bench_compress.py --model rlfn --weights ../shared/weights/rlfn/rlfn_x4.pth \\
        --data ../shared/data/train/T91 --rate 0.4 --seeds 0 1 --out experiments/bench_compress
"""
from __future__ import annotations

import argparse
import json
import statistics
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, update_locked, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("drc", "drc_nodual", "l1", "random", "uniform", "uniform_dr", "drc_distill", "l1_distill")
DEFAULT_VARIANTS = ("drc", "drc_nodual", "l1", "random", "uniform")
# uniform_dr: uniform widths at DRC's budget (the uniform variant's widths.txt), pruned by DR pruning like
# drc, so that searched and uniform widths differ in the widths only; *_distill: fine-tuned with --distill


def _compress(args, variant: str, seed: int, root: Path) -> list[str]:
    out = root / f"seed{seed}" / variant
    drc = root / f"seed{seed}" / "drc"
    cmd = ["compress", "--weights", args.weights, "--scale", str(args.scale), "--rate", str(args.rate),
           "--data", *args.data, "--out", str(out), "--seed", str(seed), "--quiet",
           "--search-steps", str(args.search_steps), "--finetune-steps", str(args.finetune_steps),
           "--batch-size", str(args.batch_size), "--gt-size", str(args.gt_size),
           "--channels-per-step", str(args.channels_per_step), "--dual-warmup-steps", str(args.dual_warmup_steps)]
    if args.model:
        cmd += ["--model", args.model]
    if args.duals:
        cmd += ["--duals", args.duals]
    elif variant != "drc":
        cmd += ["--duals", str(drc / "duals.safetensors")]  # every variant starts from the same duals
    search = shlex.split(args.search_flags)
    widths = ["--widths", args.widths] if args.widths else search  # given widths: DR pruning only, no search
    if variant == "drc":
        cmd += ["--method", "drc", *widths]
    elif variant in args.searches:  # a DRC search with its own flags after the shared --search-flags
        cmd += ["--method", "drc", *search, *shlex.split(args.searches[variant])]
    elif variant == "drc_nodual":
        cmd += ["--method", "drc", "--search-dual-weight", "0", *widths]
    elif variant in ("l1", "random"):
        cmd += ["--method", variant, "--widths", str(drc / "widths.txt")]
    elif variant == "uniform":
        cmd += ["--method", "uniform", "--budget-from", str(drc / "widths.txt")]
    elif variant == "uniform_dr":
        cmd += ["--method", "drc", "--widths", str(root / f"seed{seed}" / "uniform" / "widths.txt")]
    elif variant == "drc_distill":
        cmd += ["--method", "drc", "--widths", str(drc / "widths.txt"), "--distill", args.distill]
    else:  # l1_distill
        cmd += ["--method", "l1", "--widths", str(drc / "widths.txt"), "--distill", args.distill]
    return cmd + shlex.split(args.finetune_flags)


def _searched(out: Path) -> tuple[list[list[int]], list[list[float]]] | None:
    """(candidate widths, their final probabilities) per layer of a run that searched, else None."""
    state, summary = out / "search_state.pt", out / "summary.json"
    if not (state.is_file() and summary.is_file()):
        return None
    import torch

    candidates = torch.load(state, map_location="cpu", weights_only=True)["candidates"]
    probabilities = json.loads(summary.read_text()).get("search_probabilities")
    return (candidates, probabilities) if probabilities else None


def _save(path: Path, base: dict, rows: list[dict], set_names: list[str]) -> list[dict]:
    """Merge `rows` into results.json and return all rows: two drivers (one seed each, one per
    core) share an out folder, and neither may drop the other's runs."""
    ours = {(r["variant"], r["seed"]) for r in rows}

    def merge(text: str | None) -> str:
        saved = json.loads(text).get("rows", []) if text else []
        kept = [r for r in saved if (r["variant"], r["seed"]) not in ours and set(r["scores"]) == set(set_names)]
        return json.dumps({"base": base, "rows": rows + kept}, indent=1)

    return json.loads(update_locked(path, merge))["rows"]


def _val(root: Path, row: dict) -> float | None:
    """The run's PSNR on the held-out training images (what a choice between variants may use)."""
    summary = root / f"seed{row['seed']}" / row["variant"] / "summary.json"
    return json.loads(summary.read_text()).get("val_psnr") if summary.is_file() else None


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _evaluate(path: Path, sets: list[Path], scale: int) -> dict:
    from dualsr.checkpoint import load
    from dualsr.evaluate import evaluate

    model = load(path).model
    return {s.name: (s.psnr, s.ssim) for s in evaluate(model, sets, scale)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rlfn")
    parser.add_argument("--weights", default=str(REPO.parent / "shared/weights/rlfn/rlfn_x4.pth"))
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--data", nargs="+", default=[str(REPO.parent / "shared/data/train/T91")])
    parser.add_argument("--benchmark", default=str(REPO.parent / "shared/data/benchmark"))
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14", "B100"])
    parser.add_argument("--rate", type=float, default=0.4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS),
                        help=f"run in this order, from {', '.join(VARIANTS)} and the --search-variant names "
                             "(uniform_dr needs uniform first; *_distill reuse drc's widths)")
    parser.add_argument("--search-variant", action="append", default=[], metavar="NAME=FLAGS",
                        help="another DRC search, named drc_*, with these `dualsr compress` flags after "
                             "--search-flags, e.g. \"drc_anneal=--final-temperature 0.1\" (repeatable)")
    parser.add_argument("--search-flags", default="", help="extra `dualsr compress` flags of the DRC searches, "
                        "e.g. '--alpha-lr auto --budget-weight 10 --budget-cost macs'")
    parser.add_argument("--finetune-flags", default="", help="extra flags of every variant's fine-tuning, "
                        "e.g. '--finetune-schedule cosine --val-every 250'")
    parser.add_argument("--distill", choices=("feature", "output"), default="output",
                        help="distillation of the *_distill variants (default output)")
    parser.add_argument("--widths", help="a width file for every variant instead of DRC's search (the variants then "
                                          "compare channel selection and fine-tuning at those widths)")
    parser.add_argument("--search-steps", type=int, default=100)
    parser.add_argument("--finetune-steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--gt-size", type=int, default=64)
    parser.add_argument("--channels-per-step", type=int, default=2)
    parser.add_argument("--dual-warmup-steps", type=int, default=200)
    parser.add_argument("--duals", help="trained dual weights for every variant (default: DRC's warmed-up duals)")
    parser.add_argument("--section", default="compress", help="REPORT.md section to write (one per model)")
    parser.add_argument("--out", default=str(REPO / "experiments" / "bench_compress"))
    parser.add_argument("--note", default="", help="a sentence added to the section (how the runs were made)")
    parser.add_argument("--no-report", action="store_true", help="print only, leave REPORT.md alone")
    args = parser.parse_args()
    args.searches = {}
    for spec in args.search_variant:
        name, _, flags = spec.partition("=")
        if not (name.startswith("drc_") and name[4:].isidentifier()) or name in VARIANTS or not flags.strip():
            parser.error(f"--search-variant must be NAME=FLAGS with a new name drc_*, got {spec!r}")
        args.searches[name] = flags
    unknown = [v for v in args.variants if v not in VARIANTS and v not in args.searches]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}: choose from {', '.join([*VARIANTS, *args.searches])}")

    from dualsr.cli import main as dualsr_main
    from dualsr.checkpoint import load
    from dualsr.evaluate import evaluate
    from dualsr.profile import count_macs, count_parameters

    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    results_path = root / "results.json"
    saved = json.loads(results_path.read_text()) if results_path.exists() else {}
    sets = [Path(args.benchmark) / s for s in args.sets]
    original = load(args.weights, name=args.model, scale=args.scale).model
    base = {k: tuple(v) for k, v in saved.get("base", {}).items()}
    if set(base) != set(args.sets):
        base = {s.name: (s.psnr, s.ssim) for s in evaluate(original, sets, args.scale)}
    base_info = (count_parameters(original), count_macs(original, (96, 96)) / 1e9)
    rows = [r for r in saved.get("rows", []) if set(r["scores"]) == set(args.sets)]
    commands = []
    for seed in args.seeds:
        for variant in args.variants:
            cmd = _compress(args, variant, seed, root)
            commands.append("dualsr " + " ".join(cmd))
            if any(r["variant"] == variant and r["seed"] == seed for r in rows):
                continue  # measured by an earlier run of this script
            started = time.time()
            status = dualsr_main(cmd)
            if status != 0:
                print(f"{variant} seed {seed}: dualsr compress exited {status}", file=sys.stderr)
                continue
            out = root / f"seed{seed}" / variant
            summary = json.loads((out / "summary.json").read_text())
            scores = _evaluate(out / "compressed.safetensors", sets, args.scale)
            pruned = _evaluate(out / "pruned.safetensors", sets[:1], args.scale)
            rows.append({"variant": variant, "seed": seed, "params": summary["params"], "gmacs": summary["gmacs_96"],
                         "scores": scores, "pruned_set5": next(iter(pruned.values()))[0],
                         "seconds": summary["seconds"], "wall": time.time() - started,
                         "movement": summary.get("search_movement")})
            print(json.dumps(rows[-1]), flush=True)
            rows = _save(results_path, base, rows, args.sets)
            _report(args, sets, base, base_info, rows, commands)
    _report(args, sets, base, base_info, rows, commands)
    return 0


def _report(args, sets, base, base_info, rows, commands) -> None:
    """Print the section and (unless --no-report) write it to REPORT.md; called after every run."""
    base_params, base_macs = base_info
    order = {v: i for i, v in enumerate(args.variants)}
    rows = sorted(rows, key=lambda r: (r["seed"], order.get(r["variant"], len(order)), r["variant"]))
    set_names = [s.name for s in sets]
    head = "| variant | seed | params | G MACs (LR 96²) | " + " | ".join(f"{n} PSNR/SSIM" for n in set_names) + \
        " | Set5 before fine-tune | held-out val PSNR | s: duals / search / prune / fine-tune |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    lines.append(f"| original | - | {base_params:,} | {base_macs:.2f} | "
                 + " | ".join(f"{base[n][0]:.2f} / {base[n][1]:.4f}" for n in set_names) + " | - | - | - |")
    root = Path(args.out)
    val = {(r["variant"], r["seed"]): _val(root, r) for r in rows}
    for r in rows:
        sec = r["seconds"]
        stage = " / ".join(f"{sec[k]:.0f}" if k in sec else "-" for k in ("duals", "search", "prune", "finetune"))
        lines.append(f"| {r['variant']} | {r['seed']} | {r['params']:,} ({r['params'] / base_params:.0%}) | "
                     f"{r['gmacs']:.2f} | " + " | ".join(f"{r['scores'][n][0]:.2f} / {r['scores'][n][1]:.4f}"
                                                         for n in set_names)
                     + f" | {r['pruned_set5']:.2f} | {_fmt(val[r['variant'], r['seed']], 2)} | {stage} |")
    moved = [r for r in rows if r.get("movement")]
    if moved:
        lines += ["", "How far each search moved (softmax over the candidates of each layer; 1/candidates is where "
                      "it starts):", "",
                  "| variant | seed | largest probability per layer: min / mean / max | 1 / candidates (mean) | "
                  "mean normalised entropy |", "|---|---|---|---|---|"]
        for r in moved:
            m = r["movement"]
            lines.append(f"| {r['variant']} | {r['seed']} | {m['top_probability_min']:.2f} / "
                         f"{m['top_probability_mean']:.2f} / {m['top_probability_max']:.2f} | "
                         f"{m['uniform_probability_mean']:.2f} | {m['normalised_entropy_mean']:.3f} |")
    from dualsr.checkpoint import read_widths_file

    lines += ["", "Widths of each run (its `widths.txt`, in the order of the model's prunable layers):", ""]
    for r in rows:
        widths = root / f"seed{r['seed']}" / r["variant"] / "widths.txt"
        if widths.is_file():
            kept = read_widths_file(widths)
            lines.append(f"- {r['variant']}, seed {r['seed']}: {' '.join(map(str, kept))}")
            searched = _searched(widths.parent)
            if searched is not None:  # how sure the search was of each width kept, and what it preferred
                candidates, probabilities = searched
                chosen = [p[c.index(w)] if w in c else float("nan") for w, c, p in zip(kept, candidates, probabilities)]
                top = [c[max(range(len(p)), key=p.__getitem__)] for c, p in zip(candidates, probabilities)]
                lines.append(f"  - the search's probability of each kept width: {' '.join(f'{x:.2f}' for x in chosen)}")
                lines.append(f"  - its most probable widths (before the budget fit): {' '.join(map(str, top))}")
    means = ["", "Mean over the seeds measured so far (PSNR, dB):", "",
             "| variant | seeds | held-out val | " + " | ".join(set_names) + " |",
             "|---|---|---|" + "---|" * len(set_names)]
    for variant in args.variants:
        picked = [r for r in rows if r["variant"] == variant]
        if picked:
            vals = [val[r["variant"], r["seed"]] for r in picked]
            mean_val = None if None in vals else statistics.mean(vals)
            means.append(f"| {variant} | {len(picked)} | {_fmt(mean_val, 3)} | " + " | ".join(
                f"{statistics.mean(r['scores'][n][0] for r in picked):.3f}" for n in set_names) + " |")
    body = "\n".join([
        f"## DRC compression of {args.model} x{args.scale} (CPU scale)",
        "",
        f"Model {args.model} x{args.scale} ({Path(args.weights).name}), rate {args.rate}, training data "
        f"{', '.join(Path(d).name for d in args.data)}; search {args.search_steps} steps, DR pruning "
        f"{args.channels_per_step} channel(s) per step, fine-tuning {args.finetune_steps} steps for every variant, "
        f"batch {args.batch_size}, HR patches {args.gt_size}px. l1/random use DRC's searched widths of the same "
        f"seed; uniform matches DRC's parameter count (uniform_dr: those uniform widths, DR-pruned like drc). "
        f"drc_nodual: lambda = 0 in search and pruning (fine-tuning keeps lambda = 0.1); *_distill: "
        f"`--distill {args.distill}` at drc's widths. Stage times are wall seconds on a CPU shared with other jobs."
        + "".join(f" {name}: a DRC search with `{flags}` added." for name, flags in args.searches.items())
        + (f" No search here: every variant is at the widths of `{args.widths}` (drc = DR channel pruning at "
           "those widths)." if args.widths else ""),
        f"Machine: {machine_line()}." + (f" {args.note}" if args.note else ""),
        "",
        *lines,
        *means,
        "",
        "Command: `python benchmarks/bench_compress.py " + shlex.join(sys.argv[1:]) + "` (resumable); each run is:",
        "",
        "```",
        *commands,
        "```",
    ])
    # show paths as a reader of the report runs them: from the repository root, shared data beside it
    body = body.replace(str(REPO) + "/", "").replace(str(REPO.parent) + "/", "../")
    print(body, flush=True)
    if not args.no_report:
        write_section(args.section, body)


if __name__ == "__main__":
    sys.exit(main())
