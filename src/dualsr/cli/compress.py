"""`dualsr compress`: DRC (search widths, dual-regression channel pruning, fine-tuning) or a baseline.

    dualsr compress --model drn-s --weights DRNS4x.pt --duals DRNS4x_dual.pt --rate 0.5 \\
        --data train/T91 --method drc --out runs/drns_p05
    dualsr compress --model rlfn --weights rlfn_x4.pth --rate 0.5 --data train/T91 --method l1 \\
        --widths runs/rlfn_drc/widths.txt --out runs/rlfn_l1

Stages, each written to --out and skipped when its output exists (rerun the same command to
resume; search, pruning and fine-tuning also resume mid-way from their *_state.pt):
  duals.safetensors   the dual models (given by --duals, else warmed up on the data)
  widths.txt          the width config (DRC search, --widths FILE, or uniform scaling)
  pruned.safetensors  the physically pruned model (DRC: DR pruning; l1/random/uniform: selection)
  compressed.safetensors  after fine-tuning; loads in `dualsr test/upscale/profile --weights`
  summary.json        parameters, MACs (LR 96x96), wall time per stage, validation PSNR
Methods: drc (search + DR pruning), l1 / random (channel choice at the given or uniform widths),
uniform (uniform width scaling, at --rate or at the parameter budget of --budget-from, L1 choice).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

from dualsr.cli import CommandError
from dualsr.fileio import write_text_atomic

METHODS = ("drc", "l1", "random", "uniform")
_PACKAGE = Path(__file__).resolve().parents[1]  # src/dualsr: warnings issued from here are dualsr's


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model name (default: read from the weights file)")
    parser.add_argument("--scale", type=int, help="upscaling factor (default: read from the weights file)")
    parser.add_argument("--weights", required=True, metavar="FILE", help="weights of the model to compress")
    parser.add_argument("--duals", metavar="FILE", help="weights of its dual models (else warmed up on --data)")
    parser.add_argument("--rate", type=float, default=0.5, help="compression rate r in [0, 1) (default 0.5)")
    parser.add_argument("--data", nargs="+", required=True, metavar="DIR", help="folder(s) of HR training images")
    parser.add_argument("--method", choices=METHODS, default="drc", help="compression method (default drc)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for stage outputs (resumable)")
    stage = parser.add_mutually_exclusive_group()
    stage.add_argument("--search-only", action="store_true", help="stop after writing widths.txt")
    stage.add_argument("--widths", metavar="FILE", help="use this width config instead of searching")
    parser.add_argument("--budget-from", metavar="FILE",
                        help="uniform: match the parameter count of this width config instead of --rate")
    parser.add_argument("--dual-weight", type=float, default=0.1, help="lambda of L_dual (0 = no dual term)")
    parser.add_argument("--search-dual-weight", type=float, default=None,
                        help="lambda in search and pruning only (default: --dual-weight); 0 = the no-dual ablation")
    parser.add_argument("--search-steps", type=int, default=200, help="alpha+weight step pairs (default 200)")
    parser.add_argument("--second-order", action="store_true", help="second-order (unrolled) DARTS alpha step")
    parser.add_argument("--alpha-lr", default="3e-4", metavar="LR|auto",
                        help="Adam rate of the architecture logits (default 3e-4, the paper's); auto: "
                             "3e-4 * 10000 / --search-steps (at least 3e-4), so that short searches move them as far")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="softmax temperature of the candidate probabilities (default 1)")
    parser.add_argument("--final-temperature", type=float, default=None, metavar="T",
                        help="anneal the temperature geometrically from --temperature to T over the search steps, "
                             "so that the search ends near the discrete widths it picks (default: constant)")
    parser.add_argument("--budget-weight", type=float, default=0.0,
                        help="> 0: penalise the expected cost's distance from the uniform model's at --rate, and fit "
                             "the searched widths to that cost (default 0: the paper's search)")
    parser.add_argument("--budget-cost", choices=("params", "macs"), default="params",
                        help="what --budget-weight budgets: parameters or MACs at LR 96x96 (default params)")
    parser.add_argument("--search-fractions", type=float, nargs="+", metavar="P",
                        help="candidate widths as fractions of the kept width (1 - rate) x full (default "
                             "0.5 0.6 ... 1.0; with --budget-weight: 0.6 0.8 1.0 1.2 1.4)")
    parser.add_argument("--finetune-steps", type=int, default=500, help="fine-tuning steps (default 500)")
    parser.add_argument("--finetune-lr", type=float, default=1e-4, help="fine-tuning Adam lr (default 1e-4)")
    parser.add_argument("--distill", nargs="?", const="feature", choices=("feature", "output"), default=None,
                        help="distil from the uncompressed model while fine-tuning: feature (channel-mean MSE of "
                             "the last conv's input, the DRN/DRC recipe; the default of a bare --distill) or output "
                             "(L1 to the teacher's SR, the SwinIR-DRC recipe)")
    parser.add_argument("--distill-weight", type=float, default=1.0, help="weight of the distillation term (default 1)")
    parser.add_argument("--teacher", metavar="FILE",
                        help="weights of the distillation teacher, any model of the same scale (default: the "
                             "uncompressed model); another architecture needs --distill output")
    parser.add_argument("--finetune-schedule", choices=("constant", "cosine"), default="constant",
                        help="fine-tuning learning rate: constant (DRC's, default) or cosine to 1e-6")
    parser.add_argument("--channels-last", action="store_true",
                        help="fine-tune in channels-last memory layout (faster convolutions on CPUs with oneDNN)")
    parser.add_argument("--val-every", type=int, default=0, metavar="STEPS",
                        help="score on the held-out training images every STEPS fine-tuning steps and keep the "
                             "best weights (default 0: the last ones)")
    parser.add_argument("--sub-steps", type=int, default=1, help="SGD steps after each kept channel (default 1)")
    parser.add_argument("--channels-per-step", type=int, default=1,
                        help="channels added per pruning step (1 = the paper; more = faster)")
    parser.add_argument("--dual-warmup-steps", type=int, default=300,
                        help="steps to fit the duals when --duals is not given (default 300)")
    parser.add_argument("--batch-size", type=int, default=8, help="patches per step (default 8)")
    parser.add_argument("--gt-size", type=int, default=96, help="HR patch side (default 96)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data order and random choices")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--progress-every", type=float, default=30.0, metavar="SECONDS",
                        help="without a terminal: a progress line (with the stage's ETA) at most this often "
                             "(default 30; 0: every step); on a terminal a bar is drawn instead")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or stage messages")


def _load_primal(args):
    from dualsr.cli import load_model

    return load_model(args.weights, args.model, args.scale)


def _load_teacher(args: argparse.Namespace, primal):
    """The distillation teacher: --teacher (checked against the primal's scale and patches), else the primal."""
    from dualsr.cli import load_model

    if not args.teacher:
        return primal.model
    found = load_model(args.teacher, None, None)
    if found.scale != primal.scale:
        raise CommandError(f"--teacher {args.teacher} is x{found.scale}, the model to compress x{primal.scale}")
    if args.distill == "feature" and found.name != primal.name:
        raise CommandError(f"--distill feature compares {primal.name}'s own features; a {found.name} teacher "
                           "needs --distill output")
    problem = found.spec.patch_problem(args.gt_size, found.scale)
    if problem:
        raise CommandError(f"--teacher {args.teacher}: --gt-size {args.gt_size}: {problem}")
    return found.model.eval()


def _read_widths(path: str, model) -> list[int]:
    import torch

    from dualsr.checkpoint import read_widths_file
    from dualsr.compress.layers import current_widths, head_count, prunable_layers, rebuild

    if not Path(path).is_file():
        raise CommandError(f"{path}: no such width file")
    try:
        widths = read_widths_file(path)
    except ValueError as exc:
        raise CommandError(str(exc).splitlines()[0]) from None
    full = current_widths(model)
    if len(widths) != len(full):
        try:  # a model may still read an older, shorter list (RLFN's before its stream was prunable)
            with torch.device("meta"):
                widths = current_widths(rebuild(model, widths))
        except (ValueError, TypeError):
            raise CommandError(f"{path}: {len(widths)} widths, but the model has {len(full)} prunable layers") from None
    bad = [i + 1 for i, (w, c) in enumerate(zip(widths, full)) if not 1 <= w <= c]
    if bad:
        raise CommandError(f"{path}: widths out of range [1, full width] on lines {bad[:5]}")
    layers = prunable_layers(model)
    uneven = [i + 1 for i, (w, layer) in enumerate(zip(widths, layers)) if w % head_count(layer)]
    if uneven:
        raise CommandError(f"{path}: widths not a multiple of the layer's head count on lines {uneven[:5]}")
    return widths


def _check_arguments(args: argparse.Namespace) -> list[Path]:
    """Everything that can be checked without the model: numbers, combinations, files and folders;
    returns the image files of --data."""
    if not 0 <= args.rate < 1:
        raise CommandError(f"--rate must be in [0, 1), got {args.rate}")
    if args.search_only and args.method != "drc":
        raise CommandError("--search-only is the DRC width search; use it with --method drc")
    if args.budget_from and args.method != "uniform":
        raise CommandError("--budget-from sets the budget of --method uniform; use it with that method")
    if args.budget_from and args.widths:
        raise CommandError("--budget-from and --widths both set the widths; give one")
    if args.teacher and not args.distill:
        raise CommandError("--teacher is the distillation teacher; give --distill output (or feature) with it")
    for option, value, low in (("--search-steps", args.search_steps, 1), ("--finetune-steps", args.finetune_steps, 0),
                               ("--dual-warmup-steps", args.dual_warmup_steps, 0), ("--batch-size", args.batch_size, 1),
                               ("--gt-size", args.gt_size, 1), ("--sub-steps", args.sub_steps, 0),
                               ("--channels-per-step", args.channels_per_step, 1), ("--threads", args.threads, 0),
                               ("--val-every", args.val_every, 0)):
        if value < low:
            raise CommandError(f"{option} must be >= {low}, got {value}")
    for option, value in (("--dual-weight", args.dual_weight), ("--search-dual-weight", args.search_dual_weight),
                          ("--distill-weight", args.distill_weight)):
        if value is not None and not value >= 0:
            raise CommandError(f"{option} must be >= 0, got {value}")
    if args.alpha_lr != "auto":
        try:
            alpha_lr = float(args.alpha_lr)
        except ValueError:
            raise CommandError(f"--alpha-lr must be a number or auto, got {args.alpha_lr!r}") from None
        if not alpha_lr > 0:
            raise CommandError(f"--alpha-lr must be > 0, got {args.alpha_lr}")
    if not args.temperature > 0:
        raise CommandError(f"--temperature must be > 0, got {args.temperature}")
    if args.final_temperature is not None and not args.final_temperature > 0:
        raise CommandError(f"--final-temperature must be > 0, got {args.final_temperature}")
    if not args.budget_weight >= 0:
        raise CommandError(f"--budget-weight must be >= 0, got {args.budget_weight}")
    if args.search_fractions is not None and not all(0 < f <= 10 for f in args.search_fractions):
        raise CommandError(f"--search-fractions must be in (0, 10], got {args.search_fractions}")
    if not args.finetune_lr > 0:
        raise CommandError(f"--finetune-lr must be > 0, got {args.finetune_lr}")
    if not args.progress_every >= 0:
        raise CommandError(f"--progress-every must be >= 0 seconds, got {args.progress_every}")
    if not Path(args.weights).is_file():
        raise CommandError(f"{args.weights}: no such weights file")
    for option, value in (("--duals", args.duals), ("--widths", args.widths), ("--budget-from", args.budget_from),
                          ("--teacher", args.teacher)):
        if value and not Path(value).is_file():
            raise CommandError(f"{option} {value}: no such file")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".dualsr-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CommandError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    return _find_data(args.data)


def _find_data(roots: list[str]) -> list[Path]:
    """The image files of the data folders (an error when a folder is missing or none holds images)."""
    from dualsr.data.datasets import find_images

    try:
        return find_images(roots)
    except FileNotFoundError as exc:
        raise CommandError(f"--data: {exc}") from None


def _check_data(files: list[Path], roots: list[str], scale: int, gt_size: int) -> None:
    """Some image is at least as large as a patch (read from the headers, nothing decoded)."""
    from dualsr.data.imageio import declared_size

    sizes = [size for size in map(declared_size, files) if size is not None]
    if not sizes:
        raise CommandError(f"--data: none of the {len(files)} image files under {', '.join(roots)} can be read")
    if not any(min(w - w % scale, h - h % scale) >= gt_size for w, h in sizes):
        raise CommandError(f"--data: no image under {', '.join(roots)} is at least {gt_size}x{gt_size} "
                           f"(--gt-size {gt_size}); the largest is {max(sizes, key=min)[0]}x{max(sizes, key=min)[1]}")


def _warning_note(message, category, filename, lineno, file=None, line=None) -> None:
    """dualsr's own warnings as one-line notes; third-party ones (torch, torch-pruning) silenced."""
    text = str(message).strip()
    if os.environ.get("DUALSR_SHOW_WARNINGS"):
        from dualsr.progress import write

        write(f"dualsr compress: warning: {category.__name__} from {filename}:{lineno}: {text}")
        return
    ours = Path(filename).resolve().is_relative_to(_PACKAGE) and "Triggered internally" not in text
    if ours and text:
        _note(f"warning: {text.splitlines()[0]}")


def _note(message: str) -> None:
    from dualsr.progress import write

    write(f"dualsr compress: {message}")


def run(args: argparse.Namespace) -> int:
    """Check every argument, then run the stages; library warnings do not reach the user."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _warning_note
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    # every argument is checked before anything expensive (decoding data, fitting duals, searching)
    files = _check_arguments(args)

    import torch

    from dualsr.checkpoint import WeightsError, load, load_weights, save_weights, write_widths_file
    from dualsr.compress import baselines, common
    from dualsr.compress.finetune import FinetuneConfig, distill_point, finetune, validation_psnr
    from dualsr.compress.layers import current_widths, prunable_layers, rebuild
    from dualsr.compress.prune import PruneConfig, dr_prune
    from dualsr.compress.search import (
        BUDGET_FRACTIONS,
        FRACTIONS,
        SearchConfig,
        auto_alpha_lr,
        layer_candidates,
        search_widths,
    )
    from dualsr.models import create_dual
    from dualsr.profile import count_macs, count_parameters

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    summary_path = out / "summary.json"
    try:
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    except (OSError, ValueError) as exc:
        raise CommandError(f"{summary_path}: unreadable ({exc}); delete it or use another --out") from None

    loaded = _load_primal(args)
    model, name, scale = loaded.model.eval(), loaded.name, loaded.scale
    problem = loaded.spec.patch_problem(args.gt_size, scale)
    if problem:
        raise CommandError(f"--gt-size {args.gt_size}: {problem}")
    if args.distill == "feature":
        try:
            distill_point(model)
        except TypeError as exc:
            raise CommandError(f"--distill: {exc}") from None
    teacher = _load_teacher(args, loaded) if args.distill else None
    _check_data(files, args.data, scale, args.gt_size)

    # widths given or from an earlier run, checked against the model (and each other) up front
    widths_path = out / "widths.txt"
    given = _read_widths(args.widths, model) if args.widths else None
    earlier = _read_widths(str(widths_path), model) if widths_path.exists() else None
    if given is not None and earlier is not None and given != earlier:
        raise CommandError(f"--widths {args.widths} differs from {widths_path} of an earlier run in this --out "
                           "(its later stages follow those); use another --out")
    budget_widths = _read_widths(args.budget_from, model) if args.budget_from else None
    search_lambda = args.dual_weight if args.search_dual_weight is None else args.search_dual_weight
    try:
        search_state = common.load_state(out / "search_state.pt") if given is None and earlier is None else None
    except Exception as exc:  # a torn or foreign file
        raise CommandError(f"{out / 'search_state.pt'}: unreadable ({type(exc).__name__}); delete it to search "
                           "again") from None
    fractions = tuple(args.search_fractions or (BUDGET_FRACTIONS if args.budget_weight else FRACTIONS))
    if args.method == "drc" and search_state is not None:
        candidates = [layer_candidates(layer, args.rate, fractions) for layer in prunable_layers(model)]
        if search_state.get("candidates") != candidates:
            raise CommandError(f"{out / 'search_state.pt'}: made for another model or --rate; delete it to search "
                               "again or use another --out")

    # the duals: given, or from an earlier run (fitted below otherwise)
    duals = create_dual(model)
    duals_path = out / "duals.safetensors"
    need_duals = args.dual_weight != 0 or search_lambda != 0
    duals_source = args.duals or (duals_path if duals_path.exists() else None)
    if need_duals and duals_source is not None:
        try:
            load_weights(duals, str(duals_source), strict=True)
        except WeightsError as exc:
            raise CommandError(str(exc).splitlines()[0]) from None

    summary.update({"method": args.method, "rate": args.rate, "dual_weight": args.dual_weight,
                    "search_dual_weight": args.search_dual_weight, "distill": args.distill,
                    "distill_weight": args.distill_weight if args.distill else None,
                    "teacher": str(args.teacher) if args.distill and args.teacher else None,
                    "finetune_schedule": args.finetune_schedule,
                    "weights": str(args.weights), "seed": args.seed})
    times = summary.setdefault("seconds", {})
    progress = None if args.quiet else common.stage_progress(interval=args.progress_every)

    def log(message: str) -> None:
        if not args.quiet:
            _note(message)

    def save_summary() -> None:
        write_text_atomic(summary_path, json.dumps(summary, indent=2) + "\n")

    def save_compressed(pruned, path, stage: str) -> None:
        save_weights(pruned, path, metadata={"compress": {"stage": stage, "method": args.method,
                                                          "widths": current_widths(pruned)}})

    summary.update({"model": name, "scale": scale, "original_params": count_parameters(model),
                    "original_gmacs_96": count_macs(model, (96, 96)) / 1e9})
    try:
        data = common.load_data(args.data, scale, gt_size=args.gt_size, seed=args.seed)
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None

    # --- duals
    if need_duals and duals_source is None:
        started = time.time()
        log(f"fitting the dual models ({args.dual_warmup_steps} steps; give --duals to skip)")
        common.warm_up_duals(model, duals, data, args.dual_warmup_steps, args.batch_size, progress=progress)
        save_weights(duals, duals_path, duals_of=model)
        times["duals"] = time.time() - started

    # --- widths
    if given is not None:
        widths = given
    elif earlier is not None:
        widths = earlier
        log(f"widths from {widths_path} (stage done)")
    elif args.method == "drc":
        started = time.time()
        alpha_lr = auto_alpha_lr(args.search_steps) if args.alpha_lr == "auto" else float(args.alpha_lr)
        config = SearchConfig(rate=args.rate, steps=args.search_steps, batch_size=args.batch_size,
                              dual_weight=search_lambda, second_order=args.second_order, seed=args.seed,
                              alpha_lr=alpha_lr, temperature=args.temperature,
                              final_temperature=args.final_temperature, budget_weight=args.budget_weight,
                              cost=args.budget_cost, fractions=fractions)
        log(f"searching widths ({config.steps} steps, {'second' if config.second_order else 'first'}-order, "
            f"alpha lr {alpha_lr:.3g}" + (f", {config.cost} budget" if config.budget_weight else "") + ")")
        widths, search = search_widths(copy.deepcopy(model), copy.deepcopy(duals), data, config,
                                       state_path=str(out / "search_state.pt"), progress=progress)
        summary["search_probabilities"] = search.probabilities()
        summary["search_movement"] = search.movement()
        summary["search_config"] = {"alpha_lr": alpha_lr, "temperature": args.temperature,
                                    "final_temperature": args.final_temperature,
                                    "budget_weight": args.budget_weight, "budget_cost": args.budget_cost,
                                    "fractions": list(fractions)}
        times["search"] = times.get("search", 0.0) + time.time() - started
    elif budget_widths is not None:
        with torch.device("meta"):
            budget = count_parameters(rebuild(model, budget_widths))
        widths = baselines.uniform_widths(model, target_params=budget)
    else:
        widths = baselines.uniform_widths(model, rate=args.rate)
    if not widths_path.exists():
        write_widths_file(widths_path, widths)
    summary["widths"] = widths
    save_summary()
    if args.search_only:
        log(f"widths written to {widths_path}")
        return 0

    # --- pruning
    pruned_path = out / "pruned.safetensors"
    if pruned_path.exists():
        pruned = load(pruned_path).model
        log(f"pruned model from {pruned_path} (stage done)")
    else:
        started = time.time()
        if args.method == "drc":
            config = PruneConfig(batch_size=args.batch_size, sub_steps=args.sub_steps, dual_weight=search_lambda,
                                 channels_per_step=args.channels_per_step)
            log("dual-regression channel pruning")
            try:
                pruned, _keep = dr_prune(model, duals, widths, data, config, state_path=str(out / "prune_state.pt"),
                                         progress=progress)
            except ValueError as exc:  # e.g. a prune_state.pt of other widths
                raise CommandError(str(exc).splitlines()[0]) from None
        else:
            pruned = baselines.prune_with(model, widths, "random" if args.method == "random" else "l1", args.seed)
        save_compressed(pruned, pruned_path, "pruned")
        times["prune"] = times.get("prune", 0.0) + time.time() - started
    summary.update({"pruned_params": count_parameters(pruned), "pruned_gmacs_96": count_macs(pruned, (96, 96)) / 1e9,
                    "pruned_val_psnr": validation_psnr(pruned, data)})
    save_summary()

    # --- fine-tuning
    final_path = out / "compressed.safetensors"
    if final_path.exists():
        log(f"fine-tuned model already at {final_path}")
        final = load(final_path).model
    else:
        started = time.time()
        config = FinetuneConfig(steps=args.finetune_steps, batch_size=args.batch_size, lr=args.finetune_lr,
                                dual_weight=args.dual_weight, distill=args.distill or "feature",
                                distill_weight=args.distill_weight, schedule=args.finetune_schedule,
                                val_every=args.val_every, channels_last=args.channels_last)
        log(f"fine-tuning ({config.steps} steps" + (f", {args.distill} distillation" if args.distill else "") + ")")
        best: dict = {}
        final = finetune(pruned, duals if args.dual_weight else None, data, config,
                         teacher=teacher, state_path=str(out / "finetune_state.pt"),
                         progress=progress, report=best)
        if args.val_every:
            summary["finetune_best"] = best
        save_compressed(final, final_path, "finetuned")
        times["finetune"] = times.get("finetune", 0.0) + time.time() - started
    summary.update({"params": count_parameters(final), "gmacs_96": count_macs(final, (96, 96)) / 1e9,
                    "val_psnr": validation_psnr(final, data)})
    save_summary()
    print(f"{final_path}: {name} x{scale}, {summary['params']:,} parameters "
          f"({summary['params'] / summary['original_params']:.1%} of the original), "
          f"{summary['gmacs_96']:.2f} G MACs at LR 96x96"
          + (f", validation PSNR {summary['val_psnr']:.2f} dB" if summary["val_psnr"] is not None else ""))
    return 0
