"""RLFN (Kong et al., "Residual Local Feature Network for Efficient Super-Resolution", CVPRW 2022).

The NTIRE 2022 efficient-SR winner, written to load the official bytedance/RLFN checkpoints
(`rlfn_x4.pth`, `rlfn_x2.pth`) with `strict=True`: module names follow the official state_dict keys
(`conv_1`, `block_1..6` with `c1_r/c2_r/c3_r/c5/esa`, `conv_2`, `upsampler.0`). Input and output
are RGB on the 0-255 scale with no mean shift, as the released weights were trained.

Prunable widths (for DRC): inside each RLFB three widths, in this order per block: the output of
`c1_r` (= input of `c2_r`), the output of `c2_r` (= input of `c3_r`) and the output of the ESA's
first 1x1 conv `esa.conv1` (= input of `esa.conv_f` and `esa.conv2`). Then the `n_feats`-channel
stream, which is n_blocks + 1 widths: the features entering block 1 (the head conv's output, added
to block 1's `c3_r` output and to `conv_2`'s by the residuals), and those leaving each block
(its `c5` output, gated by its ESA, which the next block's `c3_r` output is added to; the last
one is `conv_2`'s input). That is 25 widths for the 6 blocks; `widths=None` is the full net. A
list of 18 (files saved before the stream was prunable) keeps every stream width at `n_feats`.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from dualsr.models.spec import Detected, ModelSpec, PrunableLayer, WindowAware, resolve_widths

WIDTHS_PER_BLOCK = 3


def _conv(in_ch: int, out_ch: int, kernel_size: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2)


def _coarse_side(side: int) -> int:
    """Side of ESA's coarse map for an input side: conv k3 s2 (no padding), then max-pool k7 s3."""
    return ((side - 3) // 2 + 1 - 7) // 3 + 1


@functools.lru_cache(maxsize=64)  # every ESA of a window asks for the same two (read-only) matrices
def _placed_resampling(length: int, start: int, image_length: int, coarse_length: int) -> torch.Tensor:
    """(length, coarse_length) weights of the bilinear resampling a window [start, start + length) of
    an image of `image_length` pixels gets untiled: the whole image's coarse map (image_coarse cells)
    resampled to the image size, as F.interpolate(align_corners=False) does, read from the window's
    own coarse cells (cell j = image cell j + start / 6; `start` is a multiple of 6). Cells the
    window does not hold are clamped to its edge (only pixels within ESA's reach of the window's
    edge use them: the tile padding's)."""
    image_coarse = _coarse_side(image_length)
    ratio = image_coarse / image_length
    dst = torch.arange(start, start + length, dtype=torch.float64)
    src = (ratio * (dst + 0.5) - 0.5).clamp_min(0.0)
    low = src.floor()
    frac = src - low
    low = low.long()
    high = torch.where(low < image_coarse - 1, low + 1, low)
    base = start // _ESA_PHASE
    weights = torch.zeros(length, coarse_length, dtype=torch.float64)
    rows = torch.arange(length)
    weights.index_put_((rows, (low - base).clamp(0, coarse_length - 1)), 1.0 - frac, accumulate=True)
    weights.index_put_((rows, (high - base).clamp(0, coarse_length - 1)), frac, accumulate=True)
    return weights


class ESA(WindowAware):
    """RLFN's lightened enhanced spatial attention: a coarse (strided + max-pooled) gate on x.

    `in_width` is the output width of `conv1` (prunable); `width` the inner width of the rest.
    The coarse gate is resampled to the input's size, so a tile's gate depends on the tile's
    size and place; with `window` set (tiled upscaling) it is resampled as the whole image's
    would be at those pixels (the coarse cells are the image's own when the window starts at a
    multiple of 6: conv2's stride times the pool's).
    """

    def __init__(self, channels: int, width: int = 16, in_width: int | None = None):
        super().__init__()
        in_width = width if in_width is None else in_width
        self.conv1 = nn.Conv2d(channels, in_width, 1)
        self.conv_f = nn.Conv2d(in_width, width, 1)
        self.conv2 = nn.Conv2d(in_width, width, 3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(width, width, 3, padding=1)
        self.conv4 = nn.Conv2d(width, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.conv1(x)
        coarse = self.conv3(F.max_pool2d(self.conv2(reduced), kernel_size=7, stride=3))
        if self.window is None:
            coarse = F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)
        else:
            coarse = self._placed(coarse, x.shape[-2:])
        return x * torch.sigmoid(self.conv4(coarse + self.conv_f(reduced)))

    def _placed(self, coarse: torch.Tensor, size: torch.Size) -> torch.Tensor:
        w = self.window
        if (w.height, w.width) != tuple(size) or w.y0 % _ESA_PHASE or w.x0 % _ESA_PHASE:
            raise RuntimeError(f"ESA got a {tuple(size)} input for the window {w} (it runs at the LR size, "
                               f"windows start at multiples of {_ESA_PHASE})")
        rows = _placed_resampling(w.height, w.y0, w.image_height, coarse.shape[-2]).to(coarse.dtype)
        cols = _placed_resampling(w.width, w.x0, w.image_width, coarse.shape[-1]).to(coarse.dtype)
        return torch.einsum("ij,ncjk,lk->ncil", rows.to(coarse.device), coarse, cols.to(coarse.device))


class RLFB(nn.Module):
    """Residual local feature block: three 3x3 convs with a local residual, 1x1 conv, then ESA.

    `channels` in, `out_channels` (default the same) out: the 1x1 conv `c5` changes the width.
    """

    def __init__(self, channels: int, mid1: int | None = None, mid2: int | None = None,
                 esa_in: int | None = None, esa_width: int = 16, negative_slope: float = 0.05,
                 out_channels: int | None = None):
        super().__init__()
        mid1 = channels if mid1 is None else mid1
        mid2 = channels if mid2 is None else mid2
        out_channels = channels if out_channels is None else out_channels
        self.c1_r = _conv(channels, mid1, 3)
        self.c2_r = _conv(mid1, mid2, 3)
        self.c3_r = _conv(mid2, channels, 3)
        self.c5 = _conv(channels, out_channels, 1)
        self.esa = ESA(out_channels, esa_width, esa_in)
        self.act = nn.LeakyReLU(negative_slope, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.c1_r(x))
        out = self.act(self.c2_r(out))
        out = self.act(self.c3_r(out))
        return self.esa(self.c5(out + x))


def full_widths(n_feats: int = 52, n_blocks: int = 6, esa_width: int = 16) -> list[int]:
    """The prunable widths of the unpruned RLFN: [c1_r, c2_r, esa.conv1] outputs block by block, then
    the stream into block 1 and out of each block."""
    return [n_feats, n_feats, esa_width] * n_blocks + [n_feats] * (n_blocks + 1)


class RLFN(nn.Module):
    """RLFN: conv -> 6 RLFBs -> conv + long skip -> conv + PixelShuffle; 0-255 RGB in and out."""

    def __init__(self, scale: int = 4, n_feats: int = 52, n_blocks: int = 6, esa_width: int = 16,
                 widths: list[int] | None = None, n_colors: int = 3):
        super().__init__()
        full = full_widths(n_feats, n_blocks, esa_width)
        if widths is not None and len(widths) == WIDTHS_PER_BLOCK * n_blocks:  # saved before the stream was prunable
            widths = [*widths, *[n_feats] * (n_blocks + 1)]
        widths = resolve_widths(widths, full, f"RLFN with {n_blocks} blocks")
        self.scale = scale
        self.n_feats = n_feats
        self.n_blocks = n_blocks
        self.esa_width = esa_width
        self.widths = widths
        self.pruned = widths != full

        stream = widths[WIDTHS_PER_BLOCK * n_blocks:]  # into block 1, out of block 1, ..., out of the last
        self.conv_1 = _conv(n_colors, stream[0], 3)
        for i in range(n_blocks):
            mid1, mid2, esa_in = widths[WIDTHS_PER_BLOCK * i: WIDTHS_PER_BLOCK * (i + 1)]
            # official names block_1 .. block_6 keep the released state_dict keys
            self.add_module(f"block_{i + 1}", RLFB(stream[i], mid1, mid2, esa_in, esa_width,
                                                   out_channels=stream[i + 1]))
        self.conv_2 = _conv(stream[-1], stream[0], 3)  # its output is added to the head conv's
        self.upsampler = nn.Sequential(_conv(stream[0], n_colors * scale * scale, 3), nn.PixelShuffle(scale))

    @property
    def blocks(self) -> list[RLFB]:
        """The RLFBs in forward order."""
        return [getattr(self, f"block_{i + 1}") for i in range(self.n_blocks)]

    def config(self) -> dict:
        """Constructor arguments that rebuild this architecture (stored beside saved weights)."""
        return {"scale": self.scale, "n_feats": self.n_feats, "n_blocks": self.n_blocks,
                "esa_width": self.esa_width, "widths": list(self.widths) if self.pruned else None}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shallow = self.conv_1(x)
        out = shallow
        for block in self.blocks:
            out = block(out)
        return self.upsampler(self.conv_2(out) + shallow)


def rlfn(scale: int = 4, **kw) -> RLFN:
    """RLFN with 52 features and 6 RLFBs (543,740 parameters at x4, 526,856 at x2)."""
    return RLFN(scale=scale, **kw)


# ---------------------------------------------------------------------------------- the spec

# ESA's coarse path (conv k3 s2 p0 -> max-pool k7 s3 -> conv k3 -> bilinear back) reaches 12 LR
# pixels on one side and 26 on the other (a pooled pixel spans 6 input pixels), plus one pixel of
# grid misalignment. Its pooling grid follows the window, so windows start at multiples of 6 and
# ESA is told where the window lies (`WindowAware`): tiles are then exact with this much context.
_ESA_REACH = 27
_ESA_PHASE = 6
# conv2 (k3, no padding) must leave 7 pixels for the 7x7 max-pool: (h - 3) // 2 + 1 >= 7
_MIN_INPUT = 15


def prunable_layers(model: RLFN) -> list[PrunableLayer]:
    """Per RLFB: the outputs of c1_r and c2_r and of the ESA's first 1x1 conv; then the stream."""
    full = full_widths(model.n_feats, model.n_blocks, model.esa_width)
    w = model.widths
    layers = []
    blocks = [f"block_{i + 1}" for i in range(model.n_blocks)]
    for i, b in enumerate(blocks):
        layers += [
            PrunableLayer(f"{b}.c1_r", f"{b}.c1_r", (f"{b}.c2_r",), f"{b}.c1_r", full[3 * i], w[3 * i]),
            PrunableLayer(f"{b}.c2_r", f"{b}.c2_r", (f"{b}.c3_r",), f"{b}.c2_r", full[3 * i + 1], w[3 * i + 1]),
            PrunableLayer(f"{b}.esa.conv1", f"{b}.esa.conv1", (f"{b}.esa.conv_f", f"{b}.esa.conv2"),
                          f"{b}.esa.conv1", full[3 * i + 2], w[3 * i + 2]),
        ]
    # the stream: into block 1, the head conv's channels, which block 1's c3_r output and conv_2's are
    # added to; out of block b, c5's channels times its ESA gate (sigmoid of conv4, channel by
    # channel), which the next block's c3_r output is added to
    first = WIDTHS_PER_BLOCK * model.n_blocks
    layers.append(PrunableLayer("stream.0", "conv_1", (f"{blocks[0]}.c1_r", f"{blocks[0]}.c5", "upsampler.0"),
                                "conv_1", full[first], w[first], coupled=(f"{blocks[0]}.c3_r", "conv_2")))
    for i, b in enumerate(blocks):
        after = blocks[i + 1] if i + 1 < len(blocks) else None
        readers = (f"{b}.esa.conv1", f"{after}.c1_r", f"{after}.c5") if after else (f"{b}.esa.conv1", "conv_2")
        coupled = (f"{b}.esa.conv4", f"{after}.c3_r") if after else (f"{b}.esa.conv4",)
        layers.append(PrunableLayer(f"stream.{i + 1}", f"{b}.c5", readers, f"{b}.c5", full[first + i + 1],
                                    w[first + i + 1], coupled=coupled))
    return layers


def receptive_radius(model: RLFN) -> float:
    """Upper bound in LR pixels: head conv, per block three 3x3 convs and the ESA, tail, upsampler."""
    return 1.0 + model.n_blocks * (3.0 + _ESA_REACH) + 1.0 + 1.0 + 1.0 / model.scale


def default_tile_pad(model: RLFN) -> int:
    """Context of a tiled run when none is asked for: 32 LR pixels rather than the exact radius (184
    at six blocks), with which tiles of 256 would each run more than twice their own area; the error
    this leaves is measured in benchmarks/REPORT.md (tiling)."""
    return min(32, int(math.ceil(receptive_radius(model))))


def detect(state) -> Detected | None:
    """RLFN from its keys (conv_1, block_1.., upsampler.0) and shapes; pruned widths included."""
    if not {"conv_1.weight", "conv_2.weight", "upsampler.0.weight", "block_1.esa.conv_f.weight"} <= set(state):
        return None
    n_blocks = 0
    while f"block_{n_blocks + 1}.c1_r.weight" in state:
        n_blocks += 1
    n_feats = int(state["conv_1.weight"].shape[0])
    n_colors = int(state["conv_1.weight"].shape[1])
    scale = round((int(state["upsampler.0.weight"].shape[0]) / n_colors) ** 0.5)
    if n_colors != 3 or scale * scale * n_colors != state["upsampler.0.weight"].shape[0] or scale not in RLFN_SCALES:
        return None
    esa_width = int(state["block_1.esa.conv_f.weight"].shape[0])
    try:
        widths = []
        for i in range(1, n_blocks + 1):
            widths += [int(state[f"block_{i}.c1_r.weight"].shape[0]), int(state[f"block_{i}.c2_r.weight"].shape[0]),
                       int(state[f"block_{i}.esa.conv1.weight"].shape[0])]
    except KeyError:
        return None
    widths.append(n_feats)
    widths += [int(state[f"block_{i}.c5.weight"].shape[0]) for i in range(1, n_blocks + 1)]
    # without metadata a pruned stream looks like a narrower model: n_feats is the widest stream or
    # inner width (a model at least that wide)
    n_feats = max(w for i, w in enumerate(widths) if i >= WIDTHS_PER_BLOCK * n_blocks or i % WIDTHS_PER_BLOCK != 2)
    pruned = widths != full_widths(n_feats, n_blocks, esa_width)
    return Detected("rlfn", scale, {"n_feats": n_feats, "n_blocks": n_blocks, "esa_width": esa_width,
                                    "widths": widths if pruned else None}, tuple(widths))


def distill_feature(model: RLFN) -> str:
    """The upsampler conv: its input (stream + long skip) is the feature DRC distils."""
    return "upsampler.0"


RLFN_SCALES = (2, 3, 4)
RLFN_SPEC = ModelSpec(
    name="rlfn", builder=rlfn, scales=RLFN_SCALES, title="RLFN", family="rlfn",
    description="RLFN (Kong et al., CVPRW 2022), NTIRE 2022 efficient-SR winner",
    value_range=255.0, min_input=_MIN_INPUT, outputs="single", tiling="placed", tile_phase=_ESA_PHASE,
    receptive_radius=receptive_radius, default_tile_pad=default_tile_pad, prunable_layers=prunable_layers,
    distill_feature=distill_feature, detect=detect,
)
