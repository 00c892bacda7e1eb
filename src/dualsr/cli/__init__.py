"""The `dualsr` command line tool: one subcommand per job, each a thin call into the library.

Each subcommand lives in its own module here with `add_arguments(parser)` and `run(args) -> int`.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from dualsr.fileio import first_line

# subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "test": ("dualsr.cli.test", "evaluate a model on benchmark sets (PSNR/SSIM on Y)"),
    "train": ("dualsr.cli.train", "train a model with dual regression"),
    "upscale": ("dualsr.cli.upscale", "super-resolve images"),
    "degrade": ("dualsr.cli.degrade", "make a blind test set (blur kernels, manifest) or --check one"),
    "compress": ("dualsr.cli.compress", "DRC: search widths, prune channels, fine-tune"),
    "profile": ("dualsr.cli.profile", "parameters and MACs of a model"),
    "models": ("dualsr.cli.models", "the registered models: scales, parameters, shipped weights, tiling"),
    "export": ("dualsr.cli.export", "export weights to safetensors"),
}


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def load_model(weights, name: str | None = None, scale: int | None = None, widths_file: str | None = None,
               **config):
    """`dualsr.checkpoint.load` for a command: every problem becomes a one-line CommandError."""
    from pathlib import Path

    from dualsr.checkpoint import WeightsError, load, read_widths_file

    if not Path(weights).is_file():
        raise CommandError(f"{weights}: no such weights file")
    try:
        widths = read_widths_file(widths_file) if widths_file else None
        return load(weights, name=name, scale=scale, widths=widths, **config)
    except KeyError as exc:
        raise CommandError(str(exc.args[0] if exc.args else exc)) from None
    except (WeightsError, ValueError) as exc:
        raise CommandError(first_line(exc)) from None


def add_model_arguments(parser, weights_required: bool = False, widths: bool = True) -> None:
    """--model, --scale, --weights (and --widths): the model and scale default to the file's."""
    parser.add_argument("--model", metavar="NAME", help="registered model name, e.g. drn-s, drn-t, rlfn "
                        "(default: read from the weights file)")
    parser.add_argument("--scale", type=int, help="upscaling factor (default: read from the weights file)")
    parser.add_argument("--weights", metavar="FILE", required=weights_required,
                        help="weights file (.safetensors, official .pt/.pth, BasicSR), loaded strictly")
    if widths:
        parser.add_argument("--widths", metavar="FILE",
                            help="width config of a pruned model (one width per line, e.g. a DRC search_*.txt)")


def build_parser() -> argparse.ArgumentParser:
    from dualsr import __version__

    parser = argparse.ArgumentParser(prog="dualsr", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"dualsr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # key=value overrides given after an option (argparse stops matching positionals there)
        if isinstance(getattr(args, "overrides", None), list) and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = args.overrides + extra
        else:
            # the subcommand's usage, not the top-level one: that is the parser the user was talking to
            args._parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args._run(args) or 0)
    except CommandError as exc:
        print(f"dualsr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dualsr {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`dualsr profile ... | head`): stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
