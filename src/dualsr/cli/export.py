"""`dualsr export`: convert weights to this project's safetensors, or export the model to ONNX.

The weights go through the loader first (strictly), so a file that does not fit is refused
rather than converted. safetensors (the default format): the output carries dualsr's metadata
(model, scale, config with pruned widths), so every command reads it without --model or --scale.
ONNX (`--format onnx`, or an output ending in .onnx): the primal network's SR path only, float32
NCHW RGB 0-255 in and out, dynamic batch/height/width, with the metadata `dualsr upscale` needs
(`dualsr.onnx`). Without --weights the shipped default model is exported.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from dualsr.cli import CommandError, add_model_arguments, load_model

FORMATS = {".safetensors": "safetensors", ".onnx": "onnx"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("-o", "--output", required=True, help="output file: .safetensors or .onnx")
    parser.add_argument("--format", choices=sorted(set(FORMATS.values())),
                        help="output format (default: from the output's suffix, else safetensors)")
    parser.add_argument("--opset", type=int, help="ONNX opset (default 17)")
    parser.add_argument("--dual-weights", help="dual models to export too (e.g. an official *_dual_model.pt list)")
    parser.add_argument("--dual-output", help="output for the duals (default: <output stem>_dual.safetensors)")


def _output_format(requested: str | None, out: Path) -> str:
    from_suffix = FORMATS.get(out.suffix.lower())
    if requested is None and from_suffix is None:
        raise CommandError(f"{out}: the output must end in {' or '.join(FORMATS)}")
    fmt = requested or from_suffix
    suffix = next(s for s, f in FORMATS.items() if f == fmt)
    if out.suffix.lower() != suffix:
        raise CommandError(f"{out}: the output of --format {fmt} must end in {suffix}")
    return fmt


def _check_writable(out: Path) -> None:
    """One-line error now, before loading anything, for an output that cannot be written."""
    if out.is_dir():
        raise CommandError(f"{out}: is a folder, not an output file name")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:  # atomic_write creates missing folders
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise CommandError(f"{out}: cannot write there ({parent} is not a writable folder)")


def _weights(args: argparse.Namespace) -> str:
    if args.weights:
        return args.weights
    from dualsr.weights import DefaultWeightsMissing, default_weights

    try:
        return str(default_weights(args.scale).path)
    except DefaultWeightsMissing as exc:
        raise CommandError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    from dualsr.checkpoint import WeightsError, load_duals, save_weights

    out = Path(args.output)
    fmt = _output_format(args.format, out)
    if fmt == "onnx":
        from dualsr.onnx import DEFAULT_OPSET, check_opset

        if args.dual_weights or args.dual_output:
            raise CommandError("ONNX export writes the primal network only: --dual-weights/--dual-output "
                               "are for safetensors")
        try:
            opset = check_opset(DEFAULT_OPSET if args.opset is None else args.opset)
        except ValueError as exc:
            raise CommandError(f"--opset: {exc}") from None
    elif args.opset is not None:
        raise CommandError("--opset is for --format onnx")
    _check_writable(out)
    weights = _weights(args)
    loaded = load_model(weights, args.model, args.scale, args.widths)
    source = {"source": Path(weights).name}
    if fmt == "onnx":
        return _export_onnx(loaded, out, opset, source)
    duals = None
    if args.dual_weights:
        try:
            duals = load_duals(args.dual_weights, loaded.model)
        except WeightsError as exc:
            raise CommandError(str(exc).splitlines()[0]) from None
    save_weights(loaded.model, out, metadata=source)
    print(f"wrote {out}: {loaded.label}")
    if duals is not None:
        dual_out = Path(args.dual_output) if args.dual_output else out.with_name(f"{out.stem}_dual.safetensors")
        save_weights(duals, dual_out, metadata={"source": Path(args.dual_weights).name}, duals_of=loaded.model)
        print(f"wrote {dual_out}")
    return 0


def _export_onnx(loaded, out: Path, opset: int, metadata: dict) -> int:
    from dualsr.onnx import check_exportable, export_onnx

    try:
        check_exportable(loaded.model)
        export_onnx(loaded.model, out, opset=opset, metadata=metadata)
    except ValueError as exc:  # non-exportable model, onnx missing, a graph that fails its check
        raise CommandError(str(exc).strip().splitlines()[0]) from None
    except OSError as exc:
        raise CommandError(f"{out}: cannot write ({exc.strerror or exc})") from None
    print(f"wrote {out}: {loaded.label}, ONNX opset {opset} (float32 NCHW RGB 0-255 in and out, "
          "dynamic batch, height and width)")
    return 0
