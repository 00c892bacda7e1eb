"""`dualsr profile`: parameters (primal and dual, separately) and MACs of a model."""
from __future__ import annotations

import argparse
import math

from dualsr.cli import CommandError, add_model_arguments, load_model

HD_OUTPUT = (720, 1280)  # (h, w) of the second operating point: a 1280x720 output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--lr-size", type=int, nargs=2, default=(96, 96), metavar=("H", "W"),
                        help="LR input size for the first MAC figure (default: 96 96, the papers' convention)")


def _build(args: argparse.Namespace):
    """(model, scale, label): from --weights through the loader, else --model at --scale."""
    import torch

    from dualsr.checkpoint import read_widths_file
    from dualsr.models import get_spec

    if args.weights:
        loaded = load_model(args.weights, args.model, args.scale, args.widths)
        return loaded.model, loaded.scale, loaded.label
    if not args.model:
        raise CommandError("give --model NAME (with --scale) or --weights FILE")
    try:
        spec = get_spec(args.model)
        scale = spec.default_scale_value if args.scale is None else args.scale
        widths = read_widths_file(args.widths) if args.widths else None
        with torch.device("meta"):  # sizes and MACs only: no weights are needed
            model = spec.build(scale, **({"widths": widths} if widths is not None else {}))
    except KeyError as exc:
        raise CommandError(str(exc.args[0])) from None
    except (ValueError, TypeError) as exc:
        raise CommandError(str(exc).splitlines()[0]) from None
    config = model.config()
    return model, scale, spec.label(scale, config) + (" (pruned widths)" if config.get("widths") else "")


def run(args: argparse.Namespace) -> int:
    from dualsr.models import create_dual, spec_of
    from dualsr.profile import count_dual_macs, count_macs, count_parameters

    model, s, label = _build(args)
    duals = create_dual(model, s)
    lr_hd = (math.ceil(HD_OUTPUT[0] / s), math.ceil(HD_OUTPUT[1] / s))
    n_primal = count_parameters(model)
    n_dual = count_parameters(duals)
    print(f"model: {label}")
    views = spec_of(model).parameter_views
    others = "".join(f"; {count:,} {label}" for label, count in (views(model) if views else {}).items())
    print(f"primal parameters: {n_primal:,} ({n_primal / 1e6:.3f} M){others}")
    per_dual = ", ".join(f"{count_parameters(d):,}" for d in duals)
    print(f"dual parameters:   {n_dual:,} ({len(duals)} dual model{'s' if len(duals) > 1 else ''}: {per_dual})")
    products = " + attention q.k and attn.v" if spec_of(model).extra_macs else ""
    print(f"MACs: Conv/Linear multiply-adds + bias adds{products}; no bicubic, PixelShuffle, norms or "
          "activations; 1 G = 1e9")
    for lr in (tuple(args.lr_size), lr_hd):
        primal = count_macs(model, lr)
        dual = count_dual_macs(model, duals, lr)
        print(f"  input LR {lr[1]}x{lr[0]} (WxH) -> output {lr[1] * s}x{lr[0] * s}: "
              f"primal {primal / 1e9:.2f} G, duals {dual / 1e9:.2f} G (training only)")
    return 0
