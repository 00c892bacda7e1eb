"""Benchmark test sets (Set5, Set14, B100, ...) in the usual EDSR/DRN folder layout.

A set is a folder of HR images, either directly inside it or in an `HR/` subfolder. HR images are
modcropped to a multiple of the scale; the LR input is the MATLAB bicubic downscale rounded to
uint8 (exactly how the published `LR_bicubic` files were made), unless `LR_bicubic/X{s}/` exists,
in which case `<name>x{s}.png` is read from there. A blind set written by `dualsr degrade` (a
`manifest.json` beside `HR/`) holds its LR images in `LR/X{s}/`; it is only usable at that scale. Unreadable or too small files are recorded in
`problems` and skipped, so one bad file never stops an evaluation.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from dualsr.data.degrade import modcrop
from dualsr.data.imageio import ImageReadError, is_image_name, read_image
from dualsr.data.resize import imresize

SSIM_WINDOW = 11  # the metric needs this many pixels left after the border crop


class BenchmarkError(Exception):
    """A set folder that cannot be used at all (missing, or without images); one-line message."""


@dataclass
class BenchmarkImage:
    """One test pair: LR (3, h, w) and modcropped HR (3, s*h, s*w), float32 0-255."""

    name: str
    lr: torch.Tensor
    hr: torch.Tensor
    grayscale: bool
    path: Path


def min_hr_size(scale: int) -> int:
    """Smallest HR side that can be scored: a `scale` border cropped each side, then an SSIM window."""
    return 2 * scale + SSIM_WINDOW


class BenchmarkSet:
    """Iterate (name, LR, HR) over a folder of HR images for one scale; see the module docstring."""

    def __init__(self, root: str | os.PathLike, scale: int, name: str | None = None):
        root = Path(root)
        if not root.exists():
            raise BenchmarkError(f"{root}: no such folder")
        if not root.is_dir():
            raise BenchmarkError(f"{root}: not a folder")
        if int(scale) != scale or scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale}")
        self.scale = int(scale)
        self.root = root
        self.hr_dir = root / "HR" if (root / "HR").is_dir() else root
        base = root.parent if root.name == "HR" else root
        self.name = name or base.resolve().name
        lr_dir = base / "LR_bicubic" / f"X{self.scale}"
        self.lr_dir = lr_dir if lr_dir.is_dir() else None
        if (base / "manifest.json").is_file() and (base / "LR").is_dir():  # a blind set (dualsr degrade)
            blind = base / "LR" / f"X{self.scale}"
            if not blind.is_dir():
                made = ", ".join(sorted(p.name for p in (base / "LR").iterdir() if p.is_dir())) or "none"
                raise BenchmarkError(f"{base}: a blind set made for {made}, not X{self.scale} "
                                     "(its LR images cannot be made by bicubic)")
            self.lr_dir = blind
        self.problems: list[tuple[Path, str]] = []
        # other files in the folder (notes, listings): reported, but not failures of the evaluation
        self.skipped: list[tuple[Path, str]] = []
        self.files: list[Path] = []
        for entry in sorted(self.hr_dir.iterdir()):
            if entry.name.startswith(".") or entry.is_dir():
                continue
            if is_image_name(entry):
                self.files.append(entry)
            else:
                self.skipped.append((entry, "not an image file (unknown extension), skipped"))
        if not self.files:
            raise BenchmarkError(f"{self.hr_dir}: no image files (png, bmp, jpg, tif, webp) in this folder")

    def __len__(self) -> int:
        return len(self.files)

    def _load_pair(self, path: Path) -> BenchmarkImage:
        loaded = read_image(path)
        hr = modcrop(loaded.rgb, self.scale)
        smallest = min_hr_size(self.scale)
        if min(loaded.height, loaded.width) < 2 * self.scale or min(hr.shape[-2:]) < smallest:
            raise ImageReadError(path, f"too small for x{self.scale}: {loaded.width}x{loaded.height} pixels, "
                                       f"need at least {smallest}x{smallest}")
        if self.lr_dir is not None:
            lr_path = self.lr_dir / f"{path.stem}x{self.scale}{path.suffix}"
            if not lr_path.exists():
                lr_path = self.lr_dir / f"{path.stem}x{self.scale}.png"
            lr = read_image(lr_path).rgb
            expected = (hr.shape[-2] // self.scale, hr.shape[-1] // self.scale)
            if tuple(lr.shape[-2:]) != expected:
                raise ImageReadError(lr_path, f"LR size {lr.shape[-1]}x{lr.shape[-2]} does not match HR/{self.scale} "
                                              f"({expected[1]}x{expected[0]})")
        else:
            lr = imresize(hr.double(), 1.0 / self.scale, round_uint8=True).float()
        return BenchmarkImage(path.stem, lr, hr.contiguous(), loaded.grayscale, path)

    def __iter__(self) -> Iterator[BenchmarkImage]:
        """Yield readable pairs; unreadable files are appended to `problems` instead."""
        self.problems = []
        for path in self.files:
            try:
                yield self._load_pair(path)
            except ImageReadError as exc:
                self.problems.append((exc.path, exc.reason))


__all__ = ["BenchmarkError", "BenchmarkImage", "BenchmarkSet", "min_hr_size"]
