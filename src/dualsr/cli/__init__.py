"""The `dualsr` command line tool: one subcommand per job, each a thin call into the library.

Each subcommand lives in its own module here with `add_arguments(parser)` and `run(args) -> int`.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "test": ("dualsr.cli.test", "evaluate a model on benchmark sets (PSNR/SSIM on Y)"),
    "train": ("dualsr.cli.train", "train a model with dual regression"),
    "upscale": ("dualsr.cli.upscale", "super-resolve images"),
    "compress": ("dualsr.cli.compress", "DRC: search widths, prune channels, fine-tune"),
    "profile": ("dualsr.cli.profile", "parameters and MACs of a model"),
    "export": ("dualsr.cli.export", "export weights to safetensors"),
}


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    from dualsr import __version__

    parser = argparse.ArgumentParser(prog="dualsr", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"dualsr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except CommandError as exc:
        print(f"dualsr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dualsr {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
