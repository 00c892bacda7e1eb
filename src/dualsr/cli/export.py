"""`dualsr export`: convert official .pt / BasicSR / DataParallel weights to this project's safetensors.

The weights are loaded strictly into the named model first, so a file that does not fit is
refused rather than converted; the output stores the model name, scale and (for pruned models)
the width config in its metadata.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from dualsr.cli import CommandError
from dualsr.cli.profile import read_width_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model name, e.g. drn-s")
    parser.add_argument("--scale", type=int, required=True, help="upscaling factor")
    parser.add_argument("--weights", required=True, help="input weights (.pt/.pth/.safetensors)")
    parser.add_argument("-o", "--output", required=True, help="output .safetensors file")
    parser.add_argument("--widths", help="width config file of a pruned model (one width per line)")
    parser.add_argument("--dual-weights", help="dual models to export too (e.g. an official *_dual_model.pt list)")
    parser.add_argument("--dual-output", help="output for the duals (default: <output stem>_dual.safetensors)")


def run(args: argparse.Namespace) -> int:
    from dualsr.checkpoint import WeightsError, build_for_weights, load_weights, save_weights
    from dualsr.models import create_dual

    out = Path(args.output)
    if out.suffix != ".safetensors":
        raise CommandError(f"{out}: the output must end in .safetensors")
    widths = read_width_file(args.widths) if args.widths else None
    try:
        model = build_for_weights(args.model, args.scale, args.weights, widths=widths)
        duals = None
        if args.dual_weights:
            duals = load_weights(create_dual(model, args.scale), args.dual_weights)
    except (WeightsError, KeyError) as exc:
        raise CommandError(str(exc).strip("'\"")) from None
    meta = {"scale": str(args.scale), "source": Path(args.weights).name}
    save_weights(model, out, metadata=meta)
    print(f"wrote {out}")
    if duals is not None:
        dual_out = Path(args.dual_output) if args.dual_output else out.with_name(f"{out.stem}_dual.safetensors")
        save_weights(duals, dual_out, metadata={**meta, "source": Path(args.dual_weights).name,
                                                "role": "dual", "model": model.spec.name})
        print(f"wrote {dual_out}")
    return 0
