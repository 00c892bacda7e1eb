"""Training data: HR images from folders -> random patches with their LR pyramid.

Every image is decoded once, modcropped to a multiple of the scale and its whole pyramid made
by the MATLAB resize (as the published LR files are), then kept in memory as uint8 (the 291
images of T91 + BSD200 take about 60 MB). A batch is a pure function of (seed, rank, iteration):
no stateful sampler or DataLoader iterator, so a resumed run draws exactly the batches an
uninterrupted run would have drawn, and each process of a distributed run gets its own stream
over its own shard of the images.

With a blind degradation (`datasets.train.degradation`), the LR input of each patch is made on the
fly from its HR patch (one kernel per sample, `dualsr.data.degrade.Degradation.degrade`), from a
generator seeded by (seed, rank, iteration) too, separate from the crop draws: the crops are the
same as under bicubic and a resumed run sees the same kernels. The other pyramid levels (the
targets of DRN's intermediate outputs) stay the clean bicubic images.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from dualsr.data.degrade import Degradation, make_pyramid, modcrop
from dualsr.data.imageio import IMAGE_EXTENSIONS

log = logging.getLogger("dualsr.train")


def find_images(roots: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """All image files under the given folder(s), recursively, sorted by path for a stable order."""
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    files: list[Path] = []
    for root in roots:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: training data folder not found")
        files += [p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {', '.join(map(str, roots))}")
    return sorted(files)


def split_holdout(files: Sequence[Path], every: int, offset: int = 0) -> tuple[list[Path], list[Path]]:
    """Deterministic train/val split: every `every`-th file (from `offset`) is held out for validation."""
    if every <= 1:
        raise ValueError(f"holdout_every must be >= 2 (got {every}); nothing would be left to train on")
    train = [f for i, f in enumerate(files) if (i - offset) % every != 0]
    val = [f for i, f in enumerate(files) if (i - offset) % every == 0]
    return train, val


def read_rgb_uint8(path: Path) -> torch.Tensor:
    """(3, H, W) uint8 RGB of an image file (grayscale replicated)."""
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise OSError(f"{path}: cannot read image ({exc})") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


@dataclass
class PyramidImage:
    """One decoded image and its LR pyramid, uint8 (3, h, w) tensors [LR_s, ..., HR]."""

    path: Path
    levels: list[torch.Tensor]


def build_pyramid_cache(files: Sequence[Path], scale: int) -> list[PyramidImage]:
    """Decode, modcrop and make the pyramid of every image once (uint8 in memory)."""
    cache = []
    for path in files:
        # float64 like MATLAB's double arithmetic, so rounding to uint8 matches the published LR files
        hr = modcrop(read_rgb_uint8(path), scale).double()
        levels = make_pyramid(hr[None], scale)
        cache.append(PyramidImage(path, [lv[0].to(torch.uint8) for lv in levels]))
    return cache


def build_image_cache(files: Sequence[Path]) -> list[PyramidImage]:
    """Decode images as they are (a one-level 'pyramid'), e.g. unlabelled LR images."""
    return [PyramidImage(path, [read_rgb_uint8(path)]) for path in files]


def _augment(t: torch.Tensor, hflip: bool, vflip: bool, transpose: bool) -> torch.Tensor:
    if hflip:
        t = t.flip(-1)
    if vflip:
        t = t.flip(-2)
    if transpose:
        t = t.transpose(-1, -2)
    return t


class PatchSampler:
    """Random HR patches (side `gt_size`, at multiples of the scale) with their pyramid, as batches.

    `batch(iteration, rank, size)` returns [LR_s, ..., HR] float32 (size, 3, h, w) tensors on 0-255.
    Crop position and flips/transpose are drawn from a generator seeded by (seed, rank, iteration)
    and applied alike to every level.
    """

    def __init__(self, images: list[PyramidImage], scale: int, gt_size: int, seed: int = 0,
                 hflip: bool = True, vflip: bool = True, transpose: bool = True, stream: int = 0,
                 degradation: Degradation | None = None):
        if gt_size % scale:
            raise ValueError(f"gt_size {gt_size} is not a multiple of scale {scale}")
        usable = [im for im in images if min(im.levels[-1].shape[-2:]) >= gt_size]
        if not usable:
            raise ValueError(f"no training image is at least {gt_size}x{gt_size}")
        if len(usable) < len(images):
            skipped = len(images) - len(usable)
            log.info("skipping %d training image%s smaller than the %dpx patch", skipped, "" if skipped == 1 else "s",
                     gt_size)
        self.images = usable
        self.scale = scale
        self.gt_size = gt_size
        self.seed = seed
        self.stream = stream  # a second sampler (e.g. unpaired data) draws independent numbers
        self.flips = (hflip, vflip, transpose)
        self.degradation = None if degradation is None or degradation.is_bicubic else degradation
        if self.degradation is not None and gt_size < self.degradation.size:
            raise ValueError(f"gt_size {gt_size} is smaller than the {self.degradation.size}px blur kernel")

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, iteration: int, rank: int, size: int, world_size: int = 1) -> list[torch.Tensor]:
        """The batch of process `rank` at `iteration`: a pure function of (seed, rank, iteration).

        Process `rank` of `world_size` draws from its own shard, images rank, rank + world_size, ...
        (with fewer images than processes, every process uses all of them).
        """
        key = [self.seed, rank, iteration] + ([self.stream] if self.stream else [])
        rng = np.random.default_rng(key)
        s, g = self.scale, self.gt_size
        shard = self.images[rank::world_size] if len(self.images) >= world_size else self.images
        n_levels = len(self.images[0].levels)
        out: list[list[torch.Tensor]] = [[] for _ in range(n_levels)]
        for _ in range(size):
            image = shard[int(rng.integers(len(shard)))]
            h, w = image.levels[-1].shape[-2:]
            # LR top-left, so that the HR crop starts at a multiple of s and every level aligns
            top = int(rng.integers((h - g) // s + 1))
            left = int(rng.integers((w - g) // s + 1))
            flips = [bool(rng.integers(2)) and allowed for allowed in self.flips]
            for k, level in enumerate(image.levels):
                f = level.shape[-1] // (w // s)  # this level's size relative to LR_s
                patch = level[:, top * f:(top + g // s) * f, left * f:(left + g // s) * f]
                out[k].append(_augment(patch, *flips))
        levels = [torch.stack(level).float() for level in out]
        if self.degradation is not None:
            # its own stream (key + [7]): the crops above are the same with or without degradation
            levels[0], _ = self.degradation.degrade(levels[-1], s, np.random.default_rng(key + [7]))
        return levels


def validation_pairs(images: list[PyramidImage], center_crop: int | None, scale: int,
                     max_images: int | None = None, degradation: Degradation | None = None,
                     seed: int = 0) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, LR_s, HR) float (1, 3, h, w) pairs of whole held-out images, optionally centre-cropped.

    With a blind degradation, LR is the (cropped) HR degraded in float64 with image i's kernel
    drawn from default_rng([seed, 2**31 - 1, i]): fixed for the whole run and its resumes.
    """
    pairs = []
    for index, image in enumerate(images[:max_images] if max_images else images):
        lr, hr = image.levels[0], image.levels[-1]
        if center_crop:
            c = max(scale, center_crop - center_crop % scale) // scale
            lh, lw = lr.shape[-2:]
            top, left = max(0, (lh - c) // 2), max(0, (lw - c) // 2)
            lr = lr[:, top:top + c, left:left + c]
            hr = hr[:, top * scale:(top + c) * scale, left * scale:(left + c) * scale]
        if degradation is not None and not degradation.is_bicubic:
            if min(hr.shape[-2:]) < degradation.size:
                continue
            rng = np.random.default_rng([seed, 2**31 - 1, index])
            lr = degradation.degrade(hr[None].double(), scale, rng)[0][0]
        pairs.append((image.path.stem, lr[None].float(), hr[None].float()))
    return pairs
