"""`dualsr upscale`: super-resolve image files, folders or globs into an output folder (or one file).

Every input is handled on its own: a file that cannot be read or written gets one line on stderr
naming it and the problem, the others are still processed, and the exit status is 1 when any
failed. Outputs are written to a hidden temporary name and renamed, so no half-written file is
ever left behind.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dualsr.cli import CommandError


def _tile_arg(text: str) -> int | str | None:
    if text.lower() == "auto":
        return "auto"
    if text.lower() in ("0", "none", "off"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a tile size in LR pixels, 'auto' or 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"tile size must be >= 0, got {value}")
    return value or None


def _megapixels_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of megapixels, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _pixels(megapixels: float) -> int | None:
    return None if megapixels == 0 else int(megapixels * 1e6)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of `dualsr upscale`."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="output folder (created if needed), or a file name when there is one input file")
    model = parser.add_argument_group("model (default: the model shipped with dualsr)")
    model.add_argument("--model", metavar="NAME", help="registry name, e.g. drn-s, drn-l, drn-t, rlfn")
    model.add_argument("--weights", metavar="FILE",
                       help="weights file (.safetensors, official .pt/.pth, BasicSR), loaded strictly")
    model.add_argument("--scale", type=int, help="upscaling factor (default: the one the weights fit)")
    run = parser.add_argument_group("running")
    run.add_argument("--tile", type=_tile_arg, default="auto", metavar="N|auto|0",
                     help="LR tile size; auto (default) picks from free memory, 0 runs the whole image at once")
    run.add_argument("--tile-pad", type=int, metavar="P",
                     help="LR pixels of context around each tile (default: the model's receptive radius)")
    run.add_argument("--tile-local-stats", action="store_true",
                     help="channel attention pools per tile instead of over the whole image: faster for "
                          "deep DRNs, but tiled output then only approximates untiled output")
    run.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    precision = run.add_mutually_exclusive_group()
    precision.add_argument("--half", action="store_true", help="float16 arithmetic (GPU)")
    precision.add_argument("--bf16", action="store_true", help="bfloat16 arithmetic")
    parser.add_argument("--suffix", default="", help="appended to each output file name's stem, e.g. _x4")
    limits = parser.add_argument_group("limits (a small file can declare a huge image)")
    limits.add_argument("--max-input-mp", type=_megapixels_arg, default=50.0, metavar="MP",
                        help="refuse inputs above this many megapixels (default 50; 0: no limit)")
    limits.add_argument("--max-output-mp", type=_megapixels_arg, default=200.0, metavar="MP",
                        help="refuse outputs above this many megapixels (default 200, about 9 minutes and 6.5 GiB "
                             "with the default model on a 2-core CPU; 0: no limit)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _error(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"dualsr upscale: error: {message}", file=sys.stderr)


def _note(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"dualsr upscale: {message}", file=sys.stderr)


def _build_upscaler(args: argparse.Namespace):
    import torch

    from dualsr.checkpoint import WeightsError
    from dualsr.inference import Upscaler
    from dualsr.weights import DefaultWeightsMissing

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise CommandError(f"--device {args.device}: CUDA is not available on this machine (use --device cpu)")
    if args.weights and not Path(args.weights).is_file():
        raise CommandError(f"{args.weights}: no such weights file")
    dtype = torch.float16 if args.half else torch.bfloat16 if args.bf16 else torch.float32
    try:
        return Upscaler(model=args.model, weights=args.weights, scale=args.scale, device=args.device,
                        tile=args.tile, tile_pad=args.tile_pad, dtype=dtype,
                        global_stats=not args.tile_local_stats, progress=not args.quiet)
    except DefaultWeightsMissing as exc:
        raise CommandError(str(exc)) from None
    except WeightsError as exc:  # messages already name the file and the mismatch
        raise CommandError(str(exc).splitlines()[0]) from None
    except (KeyError, ValueError) as exc:
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise CommandError(str(text).splitlines()[0]) from None


def _plan_outputs(args: argparse.Namespace, files: list[Path]) -> tuple[list[Path], Path | None]:
    """Output path per input file; the output folder (None when writing one named file)."""
    # The formats `write_array` can encode; an input with another suffix is written as PNG.
    from dualsr.data.imageio import IMAGE_EXTENSIONS

    output = Path(args.output)
    single_file = (
        len(files) == 1 and len(args.inputs) == 1 and Path(args.inputs[0]).is_file()
        and output.suffix.lower() in IMAGE_EXTENSIONS and not output.is_dir()
    )
    if single_file:
        return [output], None
    if output.suffix.lower() in IMAGE_EXTENSIONS and not output.is_dir():
        raise CommandError(f"{output}: {len(files)} images from {len(args.inputs)} inputs need an output folder, "
                           "not a file name")
    if output.exists() and not output.is_dir():
        raise CommandError(f"{output}: exists and is not a folder (several outputs need a folder)")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"{output}: cannot create the output folder ({exc.strerror or exc})") from None
    outs = []
    for file in files:
        suffix = file.suffix.lower() if file.suffix.lower() in IMAGE_EXTENSIONS else ".png"
        outs.append(output / f"{file.stem}{args.suffix}{suffix}")
    return outs, output


def run(args: argparse.Namespace) -> int:
    """Upscale every input; 0 when all succeeded, 1 when any input failed."""
    import warnings

    with warnings.catch_warnings():  # library warnings (e.g. approximate tiling) as one-line notes
        warnings.simplefilter("default")
        warnings.showwarning = lambda message, *rest, **kw: _note(f"warning: {message}")
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dualsr.data.imageio import (
        ImageReadError,
        ImageWriteError,
        check_pixels,
        declared_size,
        list_images,
        read_image,
        write_array,
    )
    from dualsr.inference import FORMAT_UINT8, FORMAT_UINT16, NonFiniteOutputError

    found = list_images(args.inputs)
    explicit = {str(Path(item)) for item in args.inputs}
    failed = 0
    for path, reason in found.skipped:
        if str(path) in explicit:  # named on the command line: the user expected it to be processed
            _error(f"{path}: {reason}")
            failed += 1
        else:  # a folder or pattern also holding other files
            _note(f"{path}: {reason}")
    if not found.files:
        if failed:
            return 1
        raise CommandError("no image files found in the inputs")
    outs, folder = _plan_outputs(args, found.files)
    upscaler = _build_upscaler(args)
    sources = {f.resolve() for f in found.files}
    written: set[Path] = set()
    done = 0
    # disable=None: bars only on a terminal, so logs and captured stderr keep one line per message
    bar = tqdm(total=len(found.files), desc="images", unit="img",
               disable=True if args.quiet or len(found.files) == 1 else None, file=sys.stderr, dynamic_ncols=True)
    with bar:
        for src, dst in zip(found.files, outs):
            try:
                target = dst.resolve()
                if target in sources:
                    raise ImageWriteError(dst, "would overwrite an input image (use --suffix or another folder)")
                if target in written:
                    raise ImageWriteError(dst, f"already written for another input this run ({src.name})")
                if folder is None and not dst.parent.exists():
                    try:
                        dst.parent.mkdir(parents=True, exist_ok=True)
                    except OSError as exc:
                        raise ImageWriteError(dst, f"cannot create its folder ({exc.strerror or exc})") from None
                size, s = declared_size(src), upscaler.scale
                if size is not None:  # both limits from the header, before anything is decoded
                    check_pixels(src, *size, _pixels(args.max_input_mp))
                    check_pixels(src, size[0] * s, size[1] * s, _pixels(args.max_output_mp),
                                 what=f"x{s} output", option="--max-output-mp")
                loaded = read_image(src, max_pixels=_pixels(args.max_input_mp))
                for warning in loaded.warnings:
                    _note(f"warning: {warning}")
                fmt = FORMAT_UINT16 if loaded.bit_depth == 16 else FORMAT_UINT8
                if fmt is FORMAT_UINT16 and dst.suffix.lower() not in (".png", ".tif", ".tiff"):
                    raise ImageWriteError(dst, "cannot store the 16-bit result (use a .png output)")
                array = upscaler.upscale_planes(loaded.rgb, loaded.alpha, grayscale=loaded.grayscale, fmt=fmt,
                                                desc=src.name)
                write_array(dst, array)
                written.add(target)
                done += 1
            except (ImageReadError, ImageWriteError) as exc:
                _error(str(exc).splitlines()[0])
                failed += 1
            except NonFiniteOutputError as exc:
                _error(f"{src}: {exc}")
                failed += 1
            except (RuntimeError, MemoryError) as exc:  # e.g. the allocator running out on a huge tile
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                _error(f"{src}: failed while upscaling ({text}); try a smaller --tile")
                failed += 1
            bar.update()
    where = folder if folder is not None else outs[0]
    _note(f"upscaled {done} of {len(found.files)} images x{upscaler.scale} with {upscaler.name} -> {where}"
          + (f"; {failed} failed" if failed else ""))
    return 1 if failed else 0
