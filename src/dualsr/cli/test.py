"""`dualsr test`: PSNR/SSIM of a model (or bicubic) on benchmark sets, as the papers report them.

    dualsr test --model bicubic --scale 4 --data Set5 Set14 B100
    dualsr test --model drn-s --weights DRNS4x.pt --scale 4 --data benchmark/Set5 --per-image

Without --model, a dualsr --weights file names its model, else bicubic is used; `--model default`
is the model shipped with the package. Without --data, the sets come from $DUALSR_BENCHMARK_DIR, or
else from the `shared/data/benchmark` folder beside the source checkout, and the command says which
folder it used. Results are
printed as one table; --json FILE writes them as JSON too (with --save-dir and no --json, to
SAVE_DIR/results.json). Unreadable files and folders are reported one line each and skipped, the
others are still scored, and the exit status is 1 when anything failed (as for `upscale`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from dualsr.cli import CommandError
from dualsr.fileio import write_text_atomic

BENCHMARK_ENV = "DUALSR_BENCHMARK_DIR"
# Conventional order of the usual sets in tables; other folders follow alphabetically.
_SET_ORDER = ["Set5", "Set14", "B100", "BSD100", "Urban100", "Manga109", "DIV2K"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="'bicubic', 'default' (the shipped model) or a registered model name; default: "
                             "the model the --weights file holds, else bicubic")
    parser.add_argument("--scale", type=int, default=None,
                        help="upscaling factor (default: the weights file's, 4 for bicubic)")
    parser.add_argument("--data", nargs="+", metavar="DIR",
                        help="set folders (each with HR/ or flat images), a folder of set folders, or bare set "
                             "names (Set5) looked up in the benchmark folder; "
                             f"default: all sets of ${BENCHMARK_ENV} or shared/data/benchmark beside the checkout")
    parser.add_argument("--weights", metavar="FILE", help="weights for --model (.pt, .pth, .safetensors)")
    parser.add_argument("--widths", metavar="FILE", help="width config of a pruned model (one width per line)")
    parser.add_argument("--per-image", action="store_true", help="add one row per image to the table")
    parser.add_argument("--save-dir", metavar="DIR", help="write the SR images to DIR/<set>/<name>.png")
    parser.add_argument("--json", metavar="FILE",
                        help="write results as JSON (default with --save-dir: SAVE_DIR/results.json)")
    parser.add_argument("--self-ensemble", action="store_true", help="average the 8 flips/transposes (x8 slower)")
    parser.add_argument("--gray-as-y", action="store_true",
                        help="score grayscale images on their gray values (the published Set14 convention) "
                             "instead of the Y of the replicated RGB image")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    # kept so that scripts written for the former opt-in keep working: any failure is now fatal
    parser.add_argument("--strict", action="store_true", help=argparse.SUPPRESS)


def _repo_benchmark_dir() -> Path:
    # src/dualsr/cli/test.py -> the checkout root is three levels above the package folder.
    return Path(__file__).resolve().parents[3].parent / "shared" / "data" / "benchmark"


def default_benchmark_dir() -> Path | None:
    """Where the standard sets are when --data is not given, or None."""
    env = os.environ.get(BENCHMARK_ENV)
    if env:
        return Path(env)
    candidate = _repo_benchmark_dir()
    return candidate if candidate.is_dir() else None


def resolve_set(text: str) -> Path:
    """A --data entry: a path as given, or a bare set name ("Set5") found in the default benchmark folder."""
    path = Path(text)
    if path.exists() or len(path.parts) != 1:
        return path
    root = default_benchmark_dir()
    if root is not None and root.is_dir():
        matches = [c for c in root.iterdir() if c.is_dir() and c.name.lower() == text.lower()]
        if matches:
            return matches[0]
        raise CommandError(f"{text}: no such folder here nor a set of that name in {root} "
                           f"(it holds {', '.join(sorted(c.name for c in root.iterdir() if c.is_dir())) or 'nothing'})")
    raise CommandError(f"{text}: no such folder (a bare set name is looked up in ${BENCHMARK_ENV}, which is unset, "
                       f"and {_repo_benchmark_dir()} does not exist)")


def _is_set_folder(folder: Path) -> bool:
    return (folder / "HR").is_dir() or any(
        f.is_file() and not f.name.startswith(".") for f in folder.iterdir())


def expand_sets(folders: list[Path]) -> list[Path]:
    """A folder holding set folders (and no images) expands to those sets, in the usual table order."""
    from dualsr.data.imageio import is_image_name

    expanded = []
    for folder in folders:
        if folder.is_dir() and not (folder / "HR").is_dir() and not any(
                is_image_name(f) for f in folder.iterdir() if f.is_file()):
            children = [c for c in folder.iterdir() if c.is_dir() and not c.name.startswith(".") and _is_set_folder(c)]
            if children:
                rank = {name.lower(): i for i, name in enumerate(_SET_ORDER)}
                children.sort(key=lambda c: (rank.get(c.name.lower(), len(rank)), c.name.lower()))
                expanded.extend(children)
                continue
        expanded.append(folder)
    return expanded


def _resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CommandError(f"unknown device {name!r} (use cpu, cuda, cuda:N or auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CommandError(f"device {name!r} requested but CUDA is not available on this machine")
    return device


def _load_model(args: argparse.Namespace):
    """(model or None for bicubic, name, label, scale): the model with its weights loaded strictly."""
    from dualsr.cli import load_model

    name = args.model
    if name is None:
        name = "bicubic" if not args.weights else None
    if name is not None and name.lower() == "bicubic":
        if args.weights:
            raise CommandError("--weights makes no sense with --model bicubic")
        return None, "bicubic", "bicubic", 4 if args.scale is None else args.scale
    weights = args.weights
    if name is not None and name.lower() == "default":
        from dualsr.weights import DefaultWeightsMissing, default_weights

        try:
            shipped = default_weights(args.scale)
        except DefaultWeightsMissing as exc:
            raise CommandError(str(exc)) from None
        name, weights = shipped.model, weights or shipped.path
    if not weights:
        from dualsr.weights import WeightsRequiredError, weights_for

        try:
            weights = str(weights_for(name, args.scale))
        except KeyError as exc:  # an unknown name: the registry's message lists the known ones
            raise CommandError(str(exc.args[0] if exc.args else exc)) from None
        except WeightsRequiredError as exc:
            raise CommandError(f"--weights FILE is required for model {name!r} (dualsr ships {exc.shipped}; "
                               "or use --model default / bicubic)") from None
    loaded = load_model(weights, name, args.scale, args.widths)
    return loaded.model, loaded.name, loaded.label, loaded.scale


def _fmt_psnr(value: float) -> str:
    return "inf" if math.isinf(value) else ("n/a" if math.isnan(value) else f"{value:.2f}")


def _fmt_ssim(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def format_table(results, per_image: bool) -> str:
    """The plain-text table: one row per set, optionally indented rows per image."""
    rows = [("set", "n", "PSNR", "SSIM")]
    for result in results:
        rows.append((result.name, str(result.n), _fmt_psnr(result.psnr), _fmt_ssim(result.ssim)))
        if per_image:
            for image in result.images:
                rows.append(("  " + image.name, "", _fmt_psnr(image.psnr), _fmt_ssim(image.ssim)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>{widths[3]}}" for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _write_json(path: Path, payload: dict) -> None:
    try:
        write_text_atomic(path, json.dumps(payload, indent=2) + "\n")
    except OSError as exc:
        raise CommandError(f"{path}: cannot write results ({exc.strerror or exc})") from None


def run(args: argparse.Namespace) -> int:
    from dualsr.data.benchmark import BenchmarkError, BenchmarkSet
    from dualsr.evaluate import evaluate

    if args.scale is not None and args.scale < 1:
        raise CommandError(f"--scale must be a positive integer, got {args.scale}")
    if args.data:
        folders = [resolve_set(d) for d in args.data]
    else:
        root = default_benchmark_dir()
        if root is None or not root.is_dir():
            where = f"${BENCHMARK_ENV}={root}" if root else f"${BENCHMARK_ENV} is unset and {_repo_benchmark_dir()}"
            raise CommandError(f"no --data given and no benchmark folder found ({where} does not exist); "
                               "pass --data DIR [DIR ...]")
        folders = [root]
    folders = expand_sets(folders)
    if not args.data:
        print(f"using benchmark sets from {folders[0].parent if folders else ''}: "
              f"{', '.join(f.name for f in folders)}", file=sys.stderr)
    device = _resolve_device(args.device)
    model, name, label, scale = _load_model(args)
    args.scale = scale

    problems: list[str] = []
    sets = []
    for folder in folders:
        try:
            sets.append(BenchmarkSet(folder, args.scale))
        except BenchmarkError as exc:
            problems.append(str(exc))
    for line in problems:
        print(f"dualsr test: {line}", file=sys.stderr)
    results = evaluate(model, sets, args.scale, self_ensemble=args.self_ensemble, save_dir=args.save_dir,
                       device=device, gray_as_y=args.gray_as_y, progress=sys.stderr.isatty()) if sets else []
    for result in results:
        for path, reason in result.skipped:
            print(f"dualsr test: {path}: {reason}", file=sys.stderr)
        for path, reason in result.problems:
            line = f"{path}: {reason}"
            problems.append(line)
            print(f"dualsr test: {line}", file=sys.stderr)

    evaluated = [r for r in results if r.n > 0]
    extras = " self-ensemble x8," if args.self_ensemble else ""
    gray_rule = "gray as Y" if args.gray_as_y else "gray replicated to RGB"
    title = label if model is not None else f"bicubic x{args.scale}"
    print(f"{title},{extras} PSNR/SSIM on Y (BT.601), {args.scale}-pixel border, {gray_rule}")
    print(format_table(results, args.per_image))
    gray_counts = [(r.name, sum(i.grayscale for i in r.images)) for r in results]
    gray_sets = [f"{name} ({count})" for name, count in gray_counts if count]
    if gray_sets and not args.gray_as_y:
        print(f"note: grayscale images in {', '.join(gray_sets)} are scored as replicated RGB; "
              "--gray-as-y follows the published tables instead", file=sys.stderr)

    json_path = Path(args.json) if args.json else (Path(args.save_dir) / "results.json" if args.save_dir else None)
    if json_path is not None:
        payload = {
            "model": name, "label": label, "weights": args.weights, "scale": args.scale,
            "self_ensemble": args.self_ensemble,
            "metric": {"channel": "Y (BT.601, MATLAB rgb2ycbcr)", "crop_border": args.scale,
                       "gray": "as Y" if args.gray_as_y else "replicated to RGB"},
            "sets": [r.to_dict() for r in results], "problems": problems,
        }
        _write_json(json_path, payload)
        print(f"results written to {json_path}", file=sys.stderr)

    if not evaluated:
        print("dualsr test: nothing could be evaluated", file=sys.stderr)
        return 1
    return 1 if problems else 0
