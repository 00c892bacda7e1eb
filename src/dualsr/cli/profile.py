"""`dualsr profile`: parameters (primal and dual, separately) and MACs of a model."""
from __future__ import annotations

import argparse
import math

from dualsr.cli import CommandError

HD_OUTPUT = (720, 1280)  # (h, w) of the second operating point: a 1280x720 output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model name, e.g. drn-s, drn-l, drn-t")
    parser.add_argument("--scale", type=int, required=True, help="upscaling factor")
    parser.add_argument("--weights", help="weights file to check against the model (strict); "
                        "a pruned model's stored width config is used")
    parser.add_argument("--widths", help="width config file (one width per line, e.g. a DRC search_*.txt)")
    parser.add_argument("--lr-size", type=int, nargs=2, default=(96, 96), metavar=("H", "W"),
                        help="LR input size for the first MAC figure (default: 96 96, the papers' convention)")


def read_width_file(path: str) -> list[int]:
    """One integer per line (blank lines ignored), as the official DRC width files."""
    try:
        with open(path) as f:
            return [int(line) for line in f.read().split()]
    except (OSError, ValueError) as exc:
        raise CommandError(f"{path}: not a width file ({exc})") from None


def run(args: argparse.Namespace) -> int:
    from dualsr.checkpoint import WeightsError, build_for_weights
    from dualsr.models import create_dual
    from dualsr.profile import count_dual_macs, count_macs, count_parameters

    widths = read_width_file(args.widths) if args.widths else None
    try:
        model = build_for_weights(args.model, args.scale, args.weights, widths=widths)
    except (WeightsError, KeyError) as exc:
        raise CommandError(str(exc).strip("'\"")) from None
    duals = create_dual(model, args.scale)
    s = args.scale
    lr_hd = (math.ceil(HD_OUTPUT[0] / s), math.ceil(HD_OUTPUT[1] / s))
    n_primal = count_parameters(model)
    n_dual = count_parameters(duals)
    label = f"{args.model} x{s}" + (" (pruned widths)" if getattr(model, "pruned", False) else "")
    print(f"model: {label}")
    print(f"primal parameters: {n_primal:,} ({n_primal / 1e6:.3f} M)")
    per_dual = ", ".join(f"{count_parameters(d):,}" for d in duals)
    print(f"dual parameters:   {n_dual:,} ({len(duals)} dual model{'s' if len(duals) > 1 else ''}: {per_dual})")
    print("MACs: Conv/Linear multiply-adds + bias adds; no bicubic, PixelShuffle or activations; 1 G = 1e9")
    for lr in (tuple(args.lr_size), lr_hd):
        primal = count_macs(model, lr)
        dual = count_dual_macs(duals, s, lr)
        print(f"  input LR {lr[1]}x{lr[0]} (WxH) -> output {lr[1] * s}x{lr[0] * s}: "
              f"primal {primal / 1e9:.2f} G, duals {dual / 1e9:.2f} G (training only)")
    return 0
