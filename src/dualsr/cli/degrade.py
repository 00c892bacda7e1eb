"""`dualsr degrade`: make a blind test set (HR + degraded LR + kernels + manifest), or check one.

    dualsr degrade --data Set5 --out blind/Set5_aniso --scale 4 --kernel aniso --seed 0
    dualsr degrade --data B100 --out blind/B100_fixed --kernel aniso --sigma-x 2.5 --sigma-y 1.0 --theta 0.6
    dualsr degrade --data Set14 --out blind/Set14_bd --kernel bd
    dualsr degrade --check blind/Set5_aniso      # regenerate from the manifest, compare sha256

`--kernel aniso` is the blind "setting 2" (31x31, sigma_x, sigma_y ~ U(0.6, 5), theta ~ U(-pi, pi),
taps x U(1, 1.25)); fixing --sigma-x, --sigma-y and --theta gives one fixed kernel (no tap noise
unless --tap-noise). `dualsr test --data OUT` evaluates on the result.
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="DIR", help="folder of HR images (or with an HR/ subfolder), or a bare "
                        "set name (Set5) from the benchmark folder")
    parser.add_argument("--out", metavar="DIR", help="output folder (must not exist; written under a temporary "
                        "name and renamed when complete)")
    parser.add_argument("--check", metavar="DIR", help="re-derive every kernel and LR image of a set written by "
                        "this command from its manifest and compare (exit 1 on any difference)")
    parser.add_argument("--scale", type=int, default=4, help="downscaling factor (default 4)")
    parser.add_argument("--kernel", default="aniso", choices=["aniso", "iso", "bd", "delta"],
                        help="aniso (setting 2, default), iso, bd (7x7 Gaussian sigma 1.6 + decimation) or delta")
    parser.add_argument("--seed", type=int, default=0, help="image i draws from default_rng([seed, i]) (default 0)")
    parser.add_argument("--size", type=int, help="kernel side (odd; default: 31 aniso, 21 iso, 7 bd)")
    parser.add_argument("--sigma-x", type=float, help="aniso: fixed sigma_x (default: U(0.6, 5))")
    parser.add_argument("--sigma-y", type=float, help="aniso: fixed sigma_y (default: U(0.6, 5))")
    parser.add_argument("--theta", type=float, help="aniso: fixed rotation in radians (default: U(-pi, pi))")
    parser.add_argument("--sigma", type=float, nargs="+", metavar="S",
                        help="iso/bd: a fixed sigma or a range LOW HIGH (default iso 0.2 4, bd 1.6)")
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("--tap-noise", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       help="multiply each tap by U(LOW, HIGH) then renormalise (aniso default 1 1.25 "
                            "unless the kernel is fixed)")
    noise.add_argument("--no-tap-noise", action="store_true", help="no multiplicative tap noise")
    parser.add_argument("--downsample", choices=["bicubic", "decimate"],
                        help="after the blur: MATLAB bicubic (default; bd: decimate)")
    parser.add_argument("--noise", type=float, nargs="+", metavar="SIGMA",
                        help="add Gaussian noise of this sigma (or range LOW HIGH) on 0-255 after downsampling")
    parser.add_argument("--jpeg", type=float, nargs="+", metavar="Q", help="JPEG quality (or range LOW HIGH) last")


def _range(values):
    if values is None:
        return None
    return values[0] if len(values) == 1 else list(values)


def degradation_options(args: argparse.Namespace) -> dict:
    """The degradation mapping (as in a training config) that the flags describe."""
    from dualsr.cli import CommandError

    options: dict = {"type": args.kernel}
    if args.size is not None:
        options["size"] = args.size
    aniso_flags = {"sigma_x": args.sigma_x, "sigma_y": args.sigma_y, "theta": args.theta}
    if args.kernel == "aniso":
        options.update({k: v for k, v in aniso_flags.items() if v is not None})
    elif any(v is not None for v in aniso_flags.values()):
        raise CommandError("--sigma-x/--sigma-y/--theta belong to --kernel aniso (use --sigma for iso/bd)")
    if args.sigma is not None:
        if args.kernel not in ("iso", "bd"):
            raise CommandError("--sigma belongs to --kernel iso or bd (use --sigma-x/--sigma-y for aniso)")
        if len(args.sigma) > 2:
            raise CommandError("--sigma takes one value or a range LOW HIGH")
        options["sigma"] = _range(args.sigma)
    if args.tap_noise is not None:
        options["tap_noise"] = list(args.tap_noise)
    elif args.no_tap_noise:
        options["tap_noise"] = None
    if args.downsample:
        options["downsample"] = args.downsample
    for key in ("noise", "jpeg"):
        value = getattr(args, key)
        if value is not None:
            if len(value) > 2:
                raise CommandError(f"--{key} takes one value or a range LOW HIGH")
            options[key] = _range(value)
    return options


def run(args: argparse.Namespace) -> int:
    from dualsr.cli import CommandError
    from dualsr.data.blindset import BlindSetError, check_blind_set, make_blind_set
    from dualsr.data.degrade import DegradationError, parse_degradation

    if args.check:
        if args.data or args.out:
            raise CommandError("--check DIR takes no --data/--out")
        try:
            count, problems = check_blind_set(args.check)
        except (BlindSetError, DegradationError) as exc:
            raise CommandError(str(exc)) from None
        for line in problems:
            print(f"dualsr degrade: {line}", file=sys.stderr)
        if problems:
            print(f"{args.check}: {len(problems)} difference(s) in {count} images", file=sys.stderr)
            return 1
        print(f"{args.check}: all {count} images regenerate bit for bit from the manifest")
        return 0
    if not args.data or not args.out:
        raise CommandError("--data DIR and --out DIR are required (or --check DIR)")
    from dualsr.cli.test import resolve_set

    data = resolve_set(args.data)
    try:
        degradation = parse_degradation(degradation_options(args))
        tty = sys.stderr.isatty()

        def progress(done: int, total: int, name: str) -> None:
            if tty:
                print(f"\r{done}/{total} {name}\033[K", end="" if done < total else "\n", file=sys.stderr)

        manifest = make_blind_set(data, args.out, args.scale, degradation, seed=args.seed, progress=progress)
    except (BlindSetError, DegradationError) as exc:
        raise CommandError(str(exc)) from None
    print(f"{args.out}: {len(manifest['images'])} images x{args.scale}, {degradation.describe()}, seed {args.seed}")
    return 0
