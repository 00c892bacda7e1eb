"""Tiles and whole-image statistics: how the upscaler runs an image in bounded memory, exactly.

Tiling. The LR image is cut into `tile` x `tile` cores; each core is run with `pad` LR pixels of
real image context on every side (clipped at the image border, never mirrored, so the zero
padding of the convolutions at the border is the same as untiled), and only the core of the
result is kept. With a padding at least the model's receptive radius (its spec says it), every
output pixel of a local network is computed from exactly the same inputs as untiled.

Global pooling. Layers that pool over the whole feature map (DRN's channel attention) make a
tile's output depend on the whole image. With per-tile means, a partly trained drn-t x4 (6+6
RCABs) drifted by up to 8 grey levels at pad 2, 2 at pad 4-8 and 1 from pad 12 on (tiles of 32,
benchmarks/REPORT.md). `WholeImageMeans` therefore computes those means over the whole image in
streaming passes before the output pass, through the `GlobalMeanPool` hook the model spec's
layers expose: pass k runs every tile up to the k-th pooling layer (earlier layers already use
their whole-image means) and sums the layer's input over the tile cores, which partition the
image. Memory stays bounded by the tile; the cost is one partial forward per pooling layer:
3.5-4.7x the untiled time (two runs on the shared CPU) for a 4000x3000 x4 output with drn-t
(8 pooling layers, tiles of 256). For DRN-S (60 pooling layers, about 30 plain passes,
estimated) per-tile means are the practical choice, an approximation the upscaler reports.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch

from dualsr.models.spec import GlobalMeanPool


@dataclass(frozen=True)
class Tile:
    """A core [y0, y1) x [x0, x1) of the LR image and the window [wy0, wy1) x [wx0, wx1) run for it."""

    y0: int
    y1: int
    x0: int
    x1: int
    wy0: int
    wy1: int
    wx0: int
    wx1: int

    def core_in_window(self) -> tuple[int, int, int, int]:
        return self.y0 - self.wy0, self.y1 - self.wy0, self.x0 - self.wx0, self.x1 - self.wx0


def _aligned(w0: int, w1: int, length: int, multiple: int, phase: int = 1, min_size: int = 1) -> tuple[int, int]:
    """[w0, w1) grown to a multiple of `multiple` inside [0, length) (itself a multiple): past w1
    where there is room, else before w0, so that a window at the image edge keeps that edge.
    With a phase, the start first moves back to a multiple of lcm(phase, multiple). A window
    shorter than `min_size` first grows to it (the same way), so the model never sees padding."""
    if w1 - w0 < min_size:
        w1 = min(length, w0 + min_size)
        w0 = max(0, w1 - min_size)
    if phase > 1:
        step = math.lcm(phase, multiple)
        w0 -= w0 % step
        size = -(-(w1 - w0) // multiple) * multiple  # start and length multiples: end <= length
        return w0, w0 + size
    size = -(-(w1 - w0) // multiple) * multiple
    end = min(length, w0 + size)
    return end - size, end


def make_tiles(height: int, width: int, tile: int | None, pad: int, multiple: int = 1,
               phase: int = 1, min_size: int = 1) -> list[Tile]:
    """Cores covering the image (row by row) and their windows with `pad` pixels of context.

    multiple: window sides are made multiples of it (height and width must be multiples already),
    so a model with a size multiple never needs padding inside the image, only at its edges.
    phase: window origins are multiples of it (a "placed" model's spec `tile_phase`).
    min_size: windows are at least this large (the model's `min_input`; the image must be).
    """
    if tile is None or (tile >= height and tile >= width):
        return [Tile(0, height, 0, width, 0, height, 0, width)]
    if height % multiple or width % multiple:
        raise ValueError(f"a {height}x{width} image is not a multiple of {multiple}: pad it first")
    out = []
    for y0 in range(0, height, tile):
        y1 = min(y0 + tile, height)
        wy0, wy1 = _aligned(max(0, y0 - pad), min(height, y1 + pad), height, multiple, phase, min_size)
        for x0 in range(0, width, tile):
            x1 = min(x0 + tile, width)
            wx0, wx1 = _aligned(max(0, x0 - pad), min(width, x1 + pad), width, multiple, phase, min_size)
            out.append(Tile(y0, y1, x0, x1, wy0, wy1, wx0, wx1))
    return out


def iter_tiles(height: int, width: int, tile: int | None, pad: int) -> Iterator[tuple[int, int, int, int]]:
    """The (y0, y1, x0, x1) LR cores the Upscaler runs for an image (for tests and benchmarks)."""
    for t in make_tiles(height, width, tile, pad):
        yield t.y0, t.y1, t.x0, t.x1


class StopForward(Exception):
    """Raised inside a statistics pass once the pooling layer being measured has been reached."""


class WholeImageMeans:
    """While active, each `GlobalMeanPool` of the model pools with the whole image's mean.

    A layer whose mean is known returns it; the first layer reached without one adds its input's
    sum over the current tile's core (`window`) to an accumulator and stops the forward.
    """

    def __init__(self, layers: list[GlobalMeanPool]):
        self.layers = layers
        self.means: dict[int, torch.Tensor | None] = {}
        self.collecting: int | None = None
        self.sum: torch.Tensor | None = None
        self.count = 0
        self.window: tuple[int, int, int, int, int, int] | None = None  # h, w, core y0, y1, x0, x1

    def __enter__(self) -> "WholeImageMeans":
        for index, layer in enumerate(self.layers):
            layer.hook = self._hook_for(index)
        return self

    def __exit__(self, *exc) -> None:
        for layer in self.layers:
            layer.hook = None

    @property
    def complete(self) -> bool:
        return len(self.means) == len(self.layers)

    def start_pass(self) -> None:
        self.collecting, self.sum, self.count = None, None, 0

    def finish_pass(self) -> None:
        if self.collecting is not None:
            self.means[self.collecting] = (self.sum / self.count)[None, :, None, None]
        elif not self.complete:  # pooling layers the forward never reaches: nothing to measure
            for index in range(len(self.layers)):
                self.means.setdefault(index, None)

    def _hook_for(self, index: int):
        def pool(_layer: GlobalMeanPool, x: torch.Tensor) -> torch.Tensor:
            if index in self.means:
                mean = self.means[index]
                if mean is None:  # never reached while measuring: keep the layer's own pooling
                    return x.mean(dim=(2, 3), keepdim=True)
                return mean.to(x.dtype).expand(x.shape[0], -1, -1, -1)
            if self.collecting not in (None, index):
                raise RuntimeError("global pooling reached out of order during a statistics pass")
            self.collecting = index
            h, w, y0, y1, x0, x1 = self.window
            fy, fx = x.shape[-2] / h, x.shape[-1] / w
            if fy != fx or any(abs(v * fy - round(v * fy)) > 1e-9 for v in (y0, y1, x0, x1)):
                raise RuntimeError(f"cannot map the tile core onto a feature map of size {tuple(x.shape[-2:])}")
            core = x[0, :, round(y0 * fy):round(y1 * fy), round(x0 * fx):round(x1 * fx)]
            part = core.sum(dim=(1, 2), dtype=torch.float64)
            self.sum = part if self.sum is None else self.sum + part
            self.count += core.shape[-2] * core.shape[-1]
            raise StopForward

        return pool
