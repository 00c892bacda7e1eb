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
import time
from pathlib import Path

from dualsr.cli import CommandError
from dualsr.fileio import write_text_atomic

METHODS = ("drc", "l1", "random", "uniform")


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
    parser.add_argument("--finetune-steps", type=int, default=500, help="fine-tuning steps (default 500)")
    parser.add_argument("--finetune-lr", type=float, default=1e-4, help="fine-tuning Adam lr (default 1e-4)")
    parser.add_argument("--distill", action="store_true", help="distil from the uncompressed model while fine-tuning")
    parser.add_argument("--sub-steps", type=int, default=1, help="SGD steps after each kept channel (default 1)")
    parser.add_argument("--channels-per-step", type=int, default=1,
                        help="channels added per pruning step (1 = the paper; more = faster)")
    parser.add_argument("--dual-warmup-steps", type=int, default=300,
                        help="steps to fit the duals when --duals is not given (default 300)")
    parser.add_argument("--batch-size", type=int, default=8, help="patches per step (default 8)")
    parser.add_argument("--gt-size", type=int, default=96, help="HR patch side (default 96)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data order and random choices")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _load_primal(args):
    from dualsr.cli import load_model

    return load_model(args.weights, args.model, args.scale)


def _read_widths(path: str, model) -> list[int]:
    from dualsr.checkpoint import read_widths_file
    from dualsr.compress.layers import current_widths

    try:
        widths = read_widths_file(path)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    full = current_widths(model)
    if len(widths) != len(full):
        raise CommandError(f"{path}: {len(widths)} widths, but the model has {len(full)} prunable layers")
    bad = [i + 1 for i, (w, c) in enumerate(zip(widths, full)) if not 1 <= w <= c]
    if bad:
        raise CommandError(f"{path}: widths out of range [1, full width] on lines {bad[:5]}")
    return widths


def _validation_psnr(model, data) -> float | None:
    import torch

    from dualsr.metrics import psnr, quantize_uint8
    from dualsr.models import sr_image

    if not data.val:
        return None
    values = []
    model.eval()
    with torch.no_grad():
        for _name, lr, hr in data.val:
            values.append(psnr(quantize_uint8(sr_image(model, lr)[0]), hr[0], data.scale))
    return sum(values) / len(values)


def run(args: argparse.Namespace) -> int:
    import torch

    from dualsr.compress import baselines, common
    from dualsr.compress.finetune import FinetuneConfig, finetune
    from dualsr.compress.prune import PruneConfig, dr_prune
    from dualsr.compress.search import SearchConfig, search_widths
    from dualsr.checkpoint import load, save_weights, write_widths_file
    from dualsr.compress.layers import current_widths, rebuild
    from dualsr.models import create_dual
    from dualsr.profile import count_macs, count_parameters

    if not 0 <= args.rate < 1:
        raise CommandError(f"--rate must be in [0, 1), got {args.rate}")
    if args.search_only and args.method != "drc":
        raise CommandError("--search-only is the DRC width search; use it with --method drc")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = None if args.quiet else common.tqdm_progress()
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary.update({"method": args.method, "rate": args.rate, "dual_weight": args.dual_weight,
                    "search_dual_weight": args.search_dual_weight,
                    "weights": str(args.weights), "seed": args.seed})
    times = summary.setdefault("seconds", {})

    def log(message: str) -> None:
        if not args.quiet:
            print(f"dualsr compress: {message}", flush=True)

    def save_summary() -> None:
        write_text_atomic(summary_path, json.dumps(summary, indent=2) + "\n")

    loaded = _load_primal(args)
    model, name, scale = loaded.model.eval(), loaded.name, loaded.scale
    problem = loaded.spec.patch_problem(args.gt_size, scale)
    if problem:
        raise CommandError(f"--gt-size {args.gt_size}: {problem}")

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
    duals = create_dual(model)
    duals_path = out / "duals.safetensors"
    search_lambda = args.dual_weight if args.search_dual_weight is None else args.search_dual_weight
    if args.dual_weight != 0 or search_lambda != 0:
        from dualsr.checkpoint import WeightsError, load_weights

        source = args.duals or (duals_path if duals_path.exists() else None)
        if source is not None:
            try:
                load_weights(duals, str(source), strict=True)
            except WeightsError as exc:
                raise CommandError(str(exc)) from None
        else:
            started = time.time()
            log(f"fitting the dual models ({args.dual_warmup_steps} steps; give --duals to skip)")
            common.warm_up_duals(model, duals, data, args.dual_warmup_steps, args.batch_size, progress=progress)
            save_weights(duals, duals_path, duals_of=model)
            times["duals"] = time.time() - started

    # --- widths
    widths_path = out / "widths.txt"
    if args.widths:
        widths = _read_widths(args.widths, model)
    elif widths_path.exists():
        widths = _read_widths(str(widths_path), model)
        log(f"widths from {widths_path} (stage done)")
    elif args.method == "drc":
        started = time.time()
        config = SearchConfig(rate=args.rate, steps=args.search_steps, batch_size=args.batch_size,
                              dual_weight=search_lambda, second_order=args.second_order, seed=args.seed)
        log(f"searching widths ({config.steps} steps, {'second' if config.second_order else 'first'}-order)")
        widths, search = search_widths(copy.deepcopy(model), copy.deepcopy(duals), data, config,
                                       state_path=str(out / "search_state.pt"), progress=progress)
        summary["search_probabilities"] = search.probabilities()
        times["search"] = times.get("search", 0.0) + time.time() - started
    elif args.method == "uniform" and args.budget_from:
        budget_widths = _read_widths(args.budget_from, model)
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
            pruned, _keep = dr_prune(model, duals, widths, data, config, state_path=str(out / "prune_state.pt"),
                                     progress=progress)
        else:
            pruned = baselines.prune_with(model, widths, "random" if args.method == "random" else "l1", args.seed)
        save_compressed(pruned, pruned_path, "pruned")
        times["prune"] = times.get("prune", 0.0) + time.time() - started
    summary.update({"pruned_params": count_parameters(pruned), "pruned_gmacs_96": count_macs(pruned, (96, 96)) / 1e9,
                    "pruned_val_psnr": _validation_psnr(pruned, data)})
    save_summary()

    # --- fine-tuning
    final_path = out / "compressed.safetensors"
    if final_path.exists():
        log(f"fine-tuned model already at {final_path}")
        final = load(final_path).model
    else:
        started = time.time()
        config = FinetuneConfig(steps=args.finetune_steps, batch_size=args.batch_size, lr=args.finetune_lr,
                                dual_weight=args.dual_weight)
        log(f"fine-tuning ({config.steps} steps)")
        final = finetune(pruned, duals if args.dual_weight else None, data, config,
                         teacher=model if args.distill else None, state_path=str(out / "finetune_state.pt"),
                         progress=progress)
        save_compressed(final, final_path, "finetuned")
        times["finetune"] = times.get("finetune", 0.0) + time.time() - started
    summary.update({"params": count_parameters(final), "gmacs_96": count_macs(final, (96, 96)) / 1e9,
                    "val_psnr": _validation_psnr(final, data)})
    save_summary()
    print(f"{final_path}: {name} x{scale}, {summary['params']:,} parameters "
          f"({summary['params'] / summary['original_params']:.1%} of the original), "
          f"{summary['gmacs_96']:.2f} G MACs at LR 96x96"
          + (f", validation PSNR {summary['val_psnr']:.2f} dB" if summary["val_psnr"] is not None else ""))
    return 0
