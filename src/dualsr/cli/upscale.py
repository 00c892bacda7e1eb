"""`dualsr upscale`: super-resolve image files, folders or globs into an output folder (or one file).

Every input is handled on its own: a file that cannot be read or written gets one line on stderr
naming it and the problem, the others are still processed, and the exit status is 1 when any
failed. Outputs are written to a hidden temporary name and renamed, so no half-written file is
ever left behind.

Conventions shared with Real-ESRGAN's and BasicSR's scripts: `-s/--outscale F` gives any output
factor (the model runs at its own scale, then the MATLAB bicubic resizes to int(F * input size));
`--ext` picks the output format (auto: the input's); an output folder that is an input's own
folder gets the suffix `_x<F>` unless --suffix says otherwise; `-` as the input reads one image from
stdin and `-o -` writes one to stdout, for pipes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dualsr.cli import CommandError
from dualsr.fileio import first_line


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


def _outscale_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an output factor such as 4 or 3.5, got {text!r}") from None
    if not (0 < value < 1e4):
        raise argparse.ArgumentTypeError(f"the output factor must be positive, got {text}")
    return value


# --ext choices -> file suffix
_EXTENSIONS = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}
STDIO = "-"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of `dualsr upscale`."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files, folders or glob patterns; - reads one image from stdin")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="output folder (created if needed), a file name when there is one input file, "
                             "or - for stdout")
    parser.add_argument("-s", "--outscale", type=_outscale_arg, metavar="F",
                        help="final upscaling factor, any number: the model's scale, then MATLAB bicubic to "
                             "int(F x input size) (default: the model's scale)")
    parser.add_argument("--ext", choices=["auto", *_EXTENSIONS], default="auto",
                        help="output format (default auto: the input's format, PNG for stdin and unknown ones)")
    model = parser.add_argument_group("model (default: the model shipped with dualsr)")
    model.add_argument("--model", metavar="NAME", help="registry name, e.g. drn-s, drn-l, drn-t, rlfn")
    model.add_argument("--weights", metavar="FILE",
                       help="weights file (.safetensors, official .pt/.pth, BasicSR), loaded strictly")
    model.add_argument("--scale", type=int, help="upscaling factor (default: the one the weights fit)")
    run = parser.add_argument_group("running")
    run.add_argument("--tile", type=_tile_arg, default="auto", metavar="N|auto|0",
                     help="LR tile size; auto (default) picks from free memory, 0 runs the whole image at once")
    run.add_argument("--tile-pad", type=int, metavar="P",
                     help="LR pixels of context around each tile (default: the model's receptive radius, "
                          "exact; for RLFN-based models 32, approximate and warned about)")
    run.add_argument("--tile-local-stats", action="store_true",
                     help="channel attention pools per tile instead of over the whole image: faster for "
                          "deep DRNs, but tiled output then only approximates untiled output")
    run.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    precision = run.add_mutually_exclusive_group()
    precision.add_argument("--half", action="store_true", help="float16 arithmetic (CUDA only)")
    precision.add_argument("--bf16", action="store_true", help="bfloat16 arithmetic (on a CPU: slower than "
                           "float32 unless it has bf16 instructions, and a few grey levels off)")
    parser.add_argument("--suffix", default=None,
                        help="appended to each output file name's stem (default: none, or _x<F> when the output "
                             "folder is an input's own folder)")
    limits = parser.add_argument_group("limits (a small file can declare a huge image)")
    limits.add_argument("--max-input-mp", type=_megapixels_arg, default=50.0, metavar="MP",
                        help="refuse inputs above this many megapixels (default 50; 0: no limit)")
    limits.add_argument("--max-output-mp", type=_megapixels_arg, default=200.0, metavar="MP",
                        help="refuse outputs above this many megapixels (default 200, about 9 minutes and 6.5 GiB "
                             "with the default model on a 2-core CPU; 0: no limit)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _error(message: str) -> None:
    from dualsr.progress import write

    write(f"dualsr upscale: error: {message}", sys.stderr)


def _note(message: str) -> None:
    from dualsr.progress import write

    write(f"dualsr upscale: {message}", sys.stderr)


def _build_upscaler(args: argparse.Namespace):
    import torch

    from dualsr.checkpoint import WeightsError
    from dualsr.inference import Upscaler
    from dualsr.inference.upscaler import WeightsRequiredError
    from dualsr.onnx import is_onnx_path
    from dualsr.weights import DefaultWeightsMissing

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise CommandError(f"--device {args.device}: CUDA is not available on this machine (use --device cpu)")
    on_cpu = not args.device.startswith("cuda")
    if (args.half or args.bf16) and is_onnx_path(args.weights):
        raise CommandError(f"{args.weights}: ONNX files compute in float32; --half/--bf16 apply to torch weights only")
    if args.half and on_cpu:
        raise CommandError("--half: float16 needs --device cuda (on a CPU it is slow and loses precision); "
                           "use --bf16 or float32")
    if args.bf16 and on_cpu:
        _note("--bf16 on the CPU: bfloat16 arithmetic, slower than float32 without bf16 instructions and a few "
              "grey levels off")
    if args.weights and not Path(args.weights).is_file():
        raise CommandError(f"{args.weights}: no such weights file")
    dtype = torch.float16 if args.half else torch.bfloat16 if args.bf16 else torch.float32
    scale = args.scale
    if scale is None and not args.weights and args.outscale is not None and float(args.outscale).is_integer():
        # a shipped model made for that factor beats the x4 default followed by a bicubic resize
        from dualsr.weights import shipped_scales

        if int(args.outscale) in shipped_scales(args.model):
            scale = int(args.outscale)
    try:
        return Upscaler(model=args.model, weights=args.weights, scale=scale, device=args.device,
                        tile=args.tile, tile_pad=args.tile_pad, dtype=dtype,
                        global_stats=not args.tile_local_stats, progress=not args.quiet)
    except DefaultWeightsMissing as exc:
        raise CommandError(str(exc)) from None
    except WeightsRequiredError as exc:  # the library's message names the keyword; say the flags
        raise CommandError(f"--model {exc.model} needs --weights FILE (dualsr ships {exc.shipped}; a "
                           "random model would produce noise)") from None
    except WeightsError as exc:  # messages already name the file and the mismatch
        raise CommandError(str(exc).splitlines()[0]) from None
    except (KeyError, ValueError) as exc:
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise CommandError(str(text).splitlines()[0]) from None


def _factor_text(factor: float) -> str:
    return f"{factor:g}"


def _output_suffix(args: argparse.Namespace, source: Path) -> str:
    """The output file's extension: --ext, else the input's when dualsr can write it, else .png."""
    from dualsr.data.imageio import IMAGE_EXTENSIONS

    if args.ext != "auto":
        return _EXTENSIONS[args.ext]
    return source.suffix.lower() if source.suffix.lower() in IMAGE_EXTENSIONS else ".png"


def _plan_outputs(args: argparse.Namespace, files: list[Path], factor: float) -> tuple[list[Path], Path | None]:
    """Output path per input file; the output folder (None when writing one named file or stdout)."""
    from dualsr.data.imageio import IMAGE_EXTENSIONS

    output = Path(args.output)
    if args.output == STDIO:
        if len(files) != 1:
            raise CommandError(f"-o - writes one image to stdout, but the inputs hold {len(files)}")
        if sys.stdout.isatty():
            raise CommandError("-o -: refusing to write image bytes to a terminal (redirect stdout or name a file)")
        return [Path("stdout" + _output_suffix(args, files[0]))], None
    single_file = (
        len(files) == 1 and len(args.inputs) == 1 and (args.inputs[0] == STDIO or Path(args.inputs[0]).is_file())
        and output.suffix.lower() in IMAGE_EXTENSIONS and not output.is_dir()
    )
    if single_file:
        if args.ext != "auto" and output.suffix.lower() not in (_EXTENSIONS[args.ext], ".jpeg"):
            raise CommandError(f"--ext {args.ext} contradicts the output file name {output}")
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
    suffix = args.suffix
    if suffix is None:  # writing beside the inputs: mark the results rather than collide with them
        home = output.resolve()
        suffix = f"_x{_factor_text(factor)}" if any(f.resolve().parent == home for f in files) else ""
    return [output / f"{file.stem}{suffix}{_output_suffix(args, file)}" for file in files], output


def _read_stdin(folder: Path) -> Path:
    """stdin's bytes as a file named after their format, so that every reader sees a normal path."""
    from PIL import Image, UnidentifiedImageError

    data = sys.stdin.buffer.read()
    if not data:
        raise CommandError("-: stdin is empty (pipe an image into it)")
    path = folder / "stdin"
    path.write_bytes(data)
    try:
        with Image.open(path) as image:
            kind = (image.format or "PNG").lower()
    except (UnidentifiedImageError, OSError):
        raise CommandError("-: stdin does not hold an image Pillow can read") from None
    named = path.with_name("stdin." + {"jpeg": "jpg", "tiff": "tif"}.get(kind, kind))
    path.rename(named)
    return named


def run(args: argparse.Namespace) -> int:
    """Upscale every input; 0 when all succeeded, 1 when any input failed."""
    import tempfile
    import warnings

    with warnings.catch_warnings(), tempfile.TemporaryDirectory(prefix="dualsr-stdio-") as scratch:
        warnings.simplefilter("default")  # library warnings (e.g. approximate tiling) as one-line notes
        warnings.showwarning = lambda message, *rest, **kw: _note(f"warning: {message}")
        return _run(args, Path(scratch))


def _run(args: argparse.Namespace, scratch: Path) -> int:
    from dualsr.data.imageio import (
        ImageReadError,
        ImageWriteError,
        check_pixels,
        declared_size,
        list_images,
        read_image,
        write_array,
    )
    from dualsr.data.resize import imresize
    from dualsr.inference import FORMAT_UINT8, FORMAT_UINT16, NonFiniteOutputError

    if args.inputs.count(STDIO) > 1:
        raise CommandError("- (stdin) can be given once")
    if STDIO in args.inputs:
        if len(args.inputs) > 1:
            raise CommandError("- (stdin) cannot be mixed with other inputs")
        found = list_images([_read_stdin(scratch)])
        explicit = {str(found.files[0])} if found.files else set()
    else:
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
    to_stdout = args.output == STDIO
    if not to_stdout and args.ext == "auto" and STDIO in args.inputs and Path(args.output).suffix == "":
        args.ext = "png"  # stdin into a folder: a plain, lossless default
    upscaler = _build_upscaler(args)
    factor = args.outscale if args.outscale is not None else float(upscaler.scale)
    outs, folder = _plan_outputs(args, found.files, factor)
    if to_stdout:
        outs = [scratch / outs[0].name]
    sources = {f.resolve() for f in found.files}
    written: set[Path] = set()
    done = 0
    from dualsr.progress import Progress

    # a bar on a terminal; in a log, a plain line every 30 s (the summary line closes the run)
    bar = Progress(total=len(found.files), desc="images", unit="img", leave=False, interval=30.0,
                   disable=args.quiet or len(found.files) == 1, stream=sys.stderr)
    with bar:
        for src, dst in zip(found.files, outs):
            name = "stdin" if STDIO in args.inputs else src  # how messages name the input
            try:
                size, s = declared_size(src), upscaler.scale
                if size is not None:  # both limits from the header, before anything is decoded
                    out_size = (int(size[0] * factor), int(size[1] * factor))
                    check_pixels(name, *size, _pixels(args.max_input_mp))
                    check_pixels(name, *out_size, _pixels(args.max_output_mp),
                                 what=f"x{_factor_text(factor)} output", option="--max-output-mp")
                    if min(out_size) < 1:
                        raise ImageReadError(name, f"-s {_factor_text(factor)} leaves no pixel of a "
                                                   f"{size[0]}x{size[1]} image")
                loaded = read_image(src, max_pixels=_pixels(args.max_input_mp))
                for warning in loaded.warnings:
                    _note(f"warning: {warning}")
                fmt = FORMAT_UINT16 if loaded.bit_depth == 16 else FORMAT_UINT8
                has_alpha = loaded.alpha is not None
                if has_alpha and dst.suffix.lower() in (".jpg", ".jpeg") and args.ext == "jpg":
                    dst = dst.with_suffix(".png")  # as Real-ESRGAN: JPEG has no alpha, keep it
                    _note(f"{name}: has alpha, written as PNG ({dst.name})")
                if fmt is FORMAT_UINT16 and dst.suffix.lower() not in (".png", ".tif", ".tiff"):
                    if args.ext == "auto":
                        raise ImageWriteError(dst, "cannot store the 16-bit result (use a .png output)")
                    fmt = FORMAT_UINT8  # the user asked for the format: 8 bits is what it can hold
                    _note(f"{name}: 16-bit image written as 8-bit {args.ext}")
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
                array = upscaler.upscale_planes(loaded.rgb, loaded.alpha, grayscale=loaded.grayscale, fmt=fmt,
                                                desc=getattr(name, "name", name))
                height, width = loaded.rgb.shape[-2:]
                final = (int(height * factor), int(width * factor))
                if final != (height * s, width * s):
                    array = imresize(array, size=final)  # MATLAB bicubic, rounded back to the array's type
                write_array(dst, array)
                if to_stdout:
                    sys.stdout.buffer.write(dst.read_bytes())
                    sys.stdout.buffer.flush()
                written.add(target)
                done += 1
            except (ImageReadError, ImageWriteError) as exc:
                _error(str(exc).splitlines()[0])
                failed += 1
            except NonFiniteOutputError as exc:
                _error(f"{name}: {exc}")
                failed += 1
            except (RuntimeError, MemoryError) as exc:  # e.g. the allocator running out on a huge tile
                text = first_line(exc)
                _error(f"{name}: failed while upscaling ({text}); try a smaller --tile")
                failed += 1
            bar.update()
    how = f"x{_factor_text(factor)} with {upscaler.name}" + (
        f" (x{upscaler.scale}, then bicubic)" if factor != upscaler.scale else "")
    if done == 0:
        _note(f"no image upscaled: {failed} of {len(found.files)} failed")
    else:
        where = "stdout" if to_stdout else folder if folder is not None else outs[0]
        _note(f"upscaled {done} of {len(found.files)} images {how} -> {where}"
              + (f"; {failed} failed" if failed else ""))
    return 1 if failed else 0
