"""Reading and writing images safely: one reader for evaluation and `dualsr upscale`.

`read_image` turns any file Pillow can decode into a float32 (3, H, W) RGB tensor on the 0-255
scale (grayscale replicated, palette expanded, CMYK converted, EXIF orientation applied), with the
alpha channel, original mode and bit depth kept aside so that a writer can give back the same kind
of image. Every failure becomes an `ImageReadError` whose message is one line naming the file.

`write_image` never leaves a half-written file: it writes to a hidden temporary name in the target
folder and renames it over the target only once the encoder has finished.
"""
from __future__ import annotations

import glob
import os
import struct
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from dualsr.fileio import atomic_write

# Suffix -> Pillow format. The one list of image extensions in dualsr: every one of them is both
# read (`list_images`, training and benchmark folders) and written (`write_array`, `dualsr upscale`).
_FORMATS = {".png": "PNG", ".bmp": "BMP", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
            ".webp": "WEBP"}
IMAGE_EXTENSIONS = tuple(_FORMATS)

# 16-bit samples are stored on the same 0-255 scale as 8-bit ones (65535 / 257 = 255), so models
# and metrics never need to know the bit depth; the writer multiplies back.
_SCALE_16BIT = 257.0
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N"}
_16BIT_GRAY_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}


class ImageFileError(Exception):
    """A problem with one image file; `str()` is one line naming the file and the problem."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


class ImageReadError(ImageFileError):
    """An image that cannot be read; `str()` is one line naming the file and the problem."""


class ImageWriteError(ImageFileError):
    """An image that cannot be written; `str()` is one line naming the file and the problem."""


@dataclass
class LoadedImage:
    """A decoded image: RGB (and alpha) as float32 on the 0-255 scale, plus what it was on disk.

    rgb: (3, H, W); grayscale sources are replicated to three equal channels.
    alpha: (1, H, W) or None.
    mode: Pillow's mode of the file as opened ("L", "P", "RGBA", "I;16", "CMYK", ...).
    bit_depth: 8, or 16 for 16-bit grayscale files (values still on the 0-255 scale).
    warnings: one-line notes about lossy reads (e.g. a 16-bit colour TIFF read as 8-bit).
    grayscale: the file had one colour channel (rgb holds three equal copies).
    """

    path: Path
    rgb: torch.Tensor
    alpha: torch.Tensor | None
    mode: str
    bit_depth: int = 8
    warnings: list[str] = field(default_factory=list)
    grayscale: bool | None = None  # one colour channel in the file (write gray back); from mode if None

    def __post_init__(self) -> None:
        if self.grayscale is None:
            self.grayscale = self.mode in _GRAY_MODES

    @property
    def height(self) -> int:
        return int(self.rgb.shape[-2])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[-1])


# Pixel limits, from benchmarks/REPORT.md (upscale-large): a 4000x3000 input upscaled x4 (192 MP out)
# took 532 s and 6.3 GiB with the small default model on this 2-core CPU. Inputs above 50 MP or
# outputs above 200 MP are refused unless the caller raises the limit (None = no limit): a small
# file that declares a huge image must not start hours of computing.
MAX_INPUT_PIXELS = 50_000_000
MAX_OUTPUT_PIXELS = 200_000_000
_PIL_LIMIT = Image.MAX_IMAGE_PIXELS


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.0f} MP" if pixels >= 10**6 else f"{pixels / 1e6:.2f} MP"


def check_pixels(path: str | os.PathLike, width: int, height: int, limit: int | None, what: str = "input",
                 option: str = "--max-input-mp") -> None:
    """ImageReadError when width x height exceeds `limit` (None: no limit)."""
    if limit is not None and width * height > limit:
        raise ImageReadError(path, f"{what} of {width}x{height} ({_megapixels(width * height)}) exceeds the "
                                   f"{_megapixels(limit)} limit (raise it with {option}, 0 for none)")


def declared_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) from the file's header without decoding it, or None if it cannot be read."""
    try:
        with _pillow_limit(None), Image.open(path) as opened:
            return opened.size
    except Exception:  # read_image reports unreadable files with their reason
        return None


def _open_decoded(path: Path, max_pixels: int | None = MAX_INPUT_PIXELS) -> tuple[Image.Image, str, str, int]:
    """Open, fully decode and orient `path`; return the image, original mode, raw mode, EXIF orientation."""
    if not path.exists():
        raise ImageReadError(path, "no such file")
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not an image file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageReadError(path, f"cannot access ({exc.strerror or exc})") from None
    if size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    try:
        with _pillow_limit(max_pixels), Image.open(path) as opened:
            check_pixels(path, *opened.size, max_pixels)  # from the header, before decoding anything
            mode = opened.mode
            rawmode = str(opened.tile[0][3]) if opened.tile else ""
            orientation = int(opened.getexif().get(_EXIF_ORIENTATION, 1) or 1)
            opened.load()  # decode everything now: truncated files fail here, not later
            image = ImageOps.exif_transpose(opened) or opened.copy()
            if image is opened:
                image = opened.copy()
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image file (or a format Pillow cannot read)") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"too large to decode safely ({exc})") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except (OSError, SyntaxError, ValueError, struct.error, zlib.error) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageReadError(path, f"truncated or corrupt image ({reason})") from None
    return image, mode, rawmode, orientation


# EXIF orientation -> the numpy equivalent of Pillow's exif_transpose, for arrays decoded without Pillow
_EXIF_ORIENTATION = 0x0112
_ORIENT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


@contextmanager
def _pillow_limit(max_pixels: int | None) -> Iterator[None]:
    """Pillow's own decompression-bomb guard, moved out of the way of our (checked) limit."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        if max_pixels is None or max_pixels > (_PIL_LIMIT or 0):
            previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                yield
            finally:
                Image.MAX_IMAGE_PIXELS = previous
        else:
            yield


def _is_png(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def _read_png16(path: Path, orientation: int) -> np.ndarray:
    """(H, W, C) uint16 samples of a 16-bit PNG with colour or alpha, which Pillow reads as 8-bit only."""
    import png  # pypng: a complete PNG codec, see the README on why

    try:
        with open(path, "rb") as handle:
            width, height, rows, info = png.Reader(file=handle).asDirect()
            array = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
        array = array.reshape(height, width, int(info["planes"]))
    except (png.Error, ValueError, OSError, zlib.error) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageReadError(path, f"truncated or corrupt image ({reason})") from None
    return np.ascontiguousarray(_ORIENT.get(orientation, lambda a: a)(array))


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) array -> float32 (C, H, W) tensor."""
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32))


def read_image(path: str | os.PathLike, max_pixels: int | None = MAX_INPUT_PIXELS) -> LoadedImage:
    """Decode an image file into a `LoadedImage`; raise `ImageReadError` with a one-line reason.

    max_pixels: refuse images larger than this, from the header alone (None: no limit).
    """
    path = Path(path)
    image, mode, rawmode, orientation = _open_decoded(path, max_pixels)
    warnings: list[str] = []
    bit_depth, alpha = 8, None
    if ";16" in rawmode and mode in ("RGB", "RGBA", "LA") and _is_png(path):
        # Pillow has no 16-bit multi-channel mode (it keeps the high byte): decode the PNG itself
        samples = _read_png16(path, orientation)
        planes = torch.from_numpy(samples.transpose(2, 0, 1).astype(np.float32) / _SCALE_16BIT)
        gray = planes.shape[0] in (1, 2)
        rgb = (planes[:1].expand(3, -1, -1) if gray else planes[:3]).contiguous()
        alpha = planes[-1:].clone() if planes.shape[0] in (2, 4) else None
        return LoadedImage(path=path, rgb=rgb, alpha=alpha, mode=mode, bit_depth=16, warnings=warnings,
                           grayscale=gray)
    if ";16" in rawmode and mode in ("RGB", "RGBA", "LA"):  # e.g. a 16-bit colour TIFF: say what is lost
        kind = "gray+alpha" if rawmode.startswith("LA") else mode
        warnings.append(f"{path}: 16-bit {kind} image read as 8-bit (only 16-bit colour PNGs keep their depth)")
    # Pillow opens 16-bit gray+alpha PNGs as RGBA; keep them gray.
    gray_alpha_16 = rawmode.startswith("LA;16")
    work_mode = image.mode
    if work_mode in _16BIT_GRAY_MODES or work_mode == "I":
        values = np.asarray(image, dtype=np.float64)
        if work_mode == "I" and (values.min() < 0 or values.max() > 65535):
            raise ImageReadError(path, "unsupported 32-bit integer image "
                                       f"(values {values.min():.0f}..{values.max():.0f})")
        gray = torch.from_numpy((values / _SCALE_16BIT).astype(np.float32))[None]
        rgb, bit_depth = gray.expand(3, -1, -1).contiguous(), 16
    elif work_mode in ("1", "L"):
        gray = _to_tensor(np.asarray(image.convert("L")))
        rgb = gray.expand(3, -1, -1).contiguous()
    elif work_mode in ("LA", "La", "PA") or (work_mode == "P" and "transparency" in image.info):
        converted = image.convert("LA" if work_mode in ("LA", "La") else "RGBA")
        channels = _to_tensor(np.asarray(converted))
        colour, alpha = channels[:-1], channels[-1:].clone()
        rgb = colour.expand(3, -1, -1).contiguous() if colour.shape[0] == 1 else colour.contiguous()
    elif work_mode in ("RGBA", "RGBa"):
        channels = _to_tensor(np.asarray(image.convert("RGBA")))
        rgb, alpha = channels[:3].contiguous(), channels[3:].clone()
        if gray_alpha_16:
            rgb = rgb[:1].expand(3, -1, -1).contiguous()
    elif work_mode in ("RGB", "RGBX", "P", "CMYK", "YCbCr", "LAB", "HSV"):
        rgb = _to_tensor(np.asarray(image.convert("RGB")))
    else:
        raise ImageReadError(path, f"unsupported image mode {work_mode!r}")
    if rgb.shape[-1] == 0 or rgb.shape[-2] == 0:
        raise ImageReadError(path, "image has no pixels")
    return LoadedImage(path=path, rgb=rgb, alpha=alpha, mode=mode, bit_depth=bit_depth, warnings=warnings,
                       grayscale=True if gray_alpha_16 else None)


def _quantize(values: torch.Tensor, bit_depth: int) -> np.ndarray:
    """0-255 float (C, H, W) -> (H, W, C) uint8/uint16, rounded half away from zero."""
    values = values.detach().to("cpu", torch.float64)
    if bit_depth == 8:
        out = torch.floor(values.clamp(0, 255) + 0.5).to(torch.uint8).numpy()
    elif bit_depth == 16:
        out = torch.floor((values * _SCALE_16BIT).clamp(0, 65535) + 0.5).numpy().astype(np.uint16)
    else:
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    return out.transpose(1, 2, 0)


def _write_png16(file, array: np.ndarray) -> None:
    """Encode a (H, W, C) uint16 array (C = 1..4) as a 16-bit PNG, which Pillow cannot do for colour."""
    import png

    height, width, channels = array.shape
    writer = png.Writer(width, height, bitdepth=16, greyscale=channels in (1, 2), alpha=channels in (2, 4),
                        compression=6)
    writer.write(file, array.reshape(height, width * channels))


def write_image(
    path: str | os.PathLike, rgb: torch.Tensor, alpha: torch.Tensor | None = None, bit_depth: int = 8,
    grayscale: bool = False, quality: int = 95,
) -> Path:
    """Write a 0-255 (3, H, W) or (1, H, W) image atomically; raise `ImageWriteError` on failure.

    grayscale writes the mean of the channels as one channel; alpha (1, H, W) is appended; the
    samples are rounded to uint8, or to uint16 (x257) when bit_depth is 16.
    """
    if rgb.dim() != 3 or rgb.shape[0] not in (1, 3):
        raise ValueError(f"rgb must be (3, H, W) or (1, H, W), got {tuple(rgb.shape)}")
    colour = rgb.detach().to("cpu", torch.float32)
    if grayscale and colour.shape[0] == 3:
        colour = colour.mean(dim=0, keepdim=True)
    elif not grayscale and colour.shape[0] == 1:
        colour = colour.expand(3, -1, -1)
    planes = colour if alpha is None else torch.cat([colour, alpha.detach().to("cpu", torch.float32)], dim=0)
    return write_array(path, _quantize(planes, bit_depth), quality=quality)


def write_array(path: str | os.PathLike, array: np.ndarray, quality: int = 95) -> Path:
    """Write an (H, W) or (H, W, C) uint8/uint16 array (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) atomically.

    The format follows the suffix. 16-bit is supported for PNG (any channels) and TIFF (gray).
    The file is encoded under a hidden temporary name in the same folder and renamed at the end,
    so an error or interrupt never leaves a partial file; raises `ImageWriteError` on failure.
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageWriteError(path, f"unknown image format {path.suffix!r} (use one of {', '.join(_FORMATS)})")
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or not 1 <= array.shape[2] <= 4:
        raise ValueError(f"array must be (H, W) or (H, W, C) with C in 1..4, got shape {array.shape}")
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"array must be uint8 or uint16, got {array.dtype}")
    channels, sixteen = array.shape[2], array.dtype == np.uint16
    if channels in (2, 4) and fmt in ("JPEG", "BMP"):
        raise ImageWriteError(path, f"{fmt} cannot store an alpha channel (write PNG, TIFF or WEBP)")
    if sixteen and fmt not in ("PNG", "TIFF"):
        raise ImageWriteError(path, f"{fmt} cannot store 16-bit samples (write PNG)")
    if sixteen and fmt == "TIFF" and channels != 1:
        raise ImageWriteError(path, "16-bit colour TIFF is not supported (write PNG)")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ImageWriteError(path, f"folder {folder} does not exist")
    try:
        with atomic_write(path, make_parents=False) as handle:
            if sixteen and fmt == "PNG" and channels != 1:
                _write_png16(handle, array)
            else:
                image = Image.fromarray(np.ascontiguousarray(array[:, :, 0] if channels == 1 else array))
                options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
                image.save(handle, format=fmt, **options)
    except OSError as exc:
        raise ImageWriteError(path, f"cannot write ({exc.strerror or exc})") from None
    return path


@dataclass
class ImageList:
    """Image files found in the inputs, and the inputs skipped with a one-line reason each."""

    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def is_image_name(path: str | os.PathLike) -> bool:
    """True when the file name has one of the image extensions dualsr reads."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _folder_images(folder: Path, found: ImageList) -> None:
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue  # hidden files, including our own temporary .part files
        if entry.is_dir():
            continue
        if is_image_name(entry):
            found.files.append(entry)
        else:
            found.skipped.append((entry, "not an image file (unknown extension), skipped"))


def list_images(inputs: Iterable[str | os.PathLike]) -> ImageList:
    """Expand files, folders (not recursively) and glob patterns into image files, sorted per input."""
    found = ImageList()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            _folder_images(path, found)
        elif path.is_file() or path.is_symlink():
            if is_image_name(path):
                found.files.append(path)
            else:
                found.skipped.append((path, "not an image file (unknown extension), skipped"))
        elif glob.has_magic(str(item)):
            matches = sorted(Path(m) for m in glob.glob(str(item)))
            files = [m for m in matches if m.is_file()]
            if not files:
                found.skipped.append((path, "pattern matches no files"))
            for match in files:
                if is_image_name(match):
                    found.files.append(match)
                else:
                    found.skipped.append((match, "not an image file (unknown extension), skipped"))
        else:
            found.skipped.append((path, "no such file or folder"))
    seen: set[Path] = set()
    unique = []
    for file in found.files:
        key = file.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(file)
    found.files = unique
    return found


__all__ = ["IMAGE_EXTENSIONS", "ImageFileError", "ImageList", "ImageReadError", "ImageWriteError", "LoadedImage",
           "is_image_name", "list_images", "read_image", "write_array", "write_image"]
