"""`dualsr train -c CONFIG [key=value ...]`: train a model with dual regression.

Runs as one process, or under `torchrun --nproc_per_node N -m dualsr train ...` with
DistributedDataParallel (gloo on CPU, nccl on GPU).
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `dualsr train`."""
    parser.add_argument("-c", "--config", "-opt", dest="config", required=True,
                        help="YAML options file (see configs/)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="override options with dotted keys, e.g. train.total_iter=1000 network_g.n_feats=8")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", nargs="?", const="auto", default=None, metavar="STATE",
                        help="continue from a training state file, or (no value) from the newest readable one of "
                             "this experiment (an error when there is none)")
    resume.add_argument("--resume-if-possible", dest="resume", action="store_const", const="if-possible",
                        help="continue from the newest readable state when there is one, else start the run")
    parser.add_argument("--name", default=None, help="experiment name (overrides the config's `name`)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved options (defaults + file + overrides) as YAML and exit")


def run(args: argparse.Namespace) -> int:
    """Resolve the options and train; user errors become one-line `CommandError`s."""
    from dualsr.cli import CommandError
    from dualsr.config import ConfigError, load_config

    overrides = list(args.overrides)
    if args.resume and "=" in args.resume and not Path(args.resume).exists():
        # `--resume key=value ...`: argparse gave the first override to --resume's optional value
        overrides.insert(0, args.resume)
        args.resume = "auto"
    if args.name:
        overrides.append(f"name={args.name}")
    try:
        config = load_config(args.config, overrides)
        if args.print_config:
            from dualsr.config import dump_config

            print(dump_config(config), end="")
            return 0
        from dualsr.train.trainer import train

        train(config, resume=args.resume)  # its log ends with the one closing line (iteration, PSNR, outputs)
    except (ConfigError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from None
    return 0
