"""`dualsr export`: convert official .pt / BasicSR / DataParallel weights to this project's safetensors.

The weights go through the loader first (strictly), so a file that does not fit is refused
rather than converted; the output carries dualsr's metadata (model, scale, config with pruned
widths), so every command reads it without --model or --scale.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from dualsr.cli import CommandError, add_model_arguments, load_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, weights_required=True)
    parser.add_argument("-o", "--output", required=True, help="output .safetensors file")
    parser.add_argument("--dual-weights", help="dual models to export too (e.g. an official *_dual_model.pt list)")
    parser.add_argument("--dual-output", help="output for the duals (default: <output stem>_dual.safetensors)")


def run(args: argparse.Namespace) -> int:
    from dualsr.checkpoint import WeightsError, load_duals, save_weights

    out = Path(args.output)
    if out.suffix != ".safetensors":
        raise CommandError(f"{out}: the output must end in .safetensors")
    loaded = load_model(args.weights, args.model, args.scale, args.widths)
    duals = None
    if args.dual_weights:
        try:
            duals = load_duals(args.dual_weights, loaded.model)
        except WeightsError as exc:
            raise CommandError(str(exc).splitlines()[0]) from None
    save_weights(loaded.model, out, metadata={"source": Path(args.weights).name})
    print(f"wrote {out}: {loaded.label}")
    if duals is not None:
        dual_out = Path(args.dual_output) if args.dual_output else out.with_name(f"{out.stem}_dual.safetensors")
        save_weights(duals, dual_out, metadata={"source": Path(args.dual_weights).name}, duals_of=loaded.model)
        print(f"wrote {dual_out}")
    return 0
