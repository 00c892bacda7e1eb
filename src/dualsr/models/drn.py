"""DRN (Guo et al., "Closed-loop Matters: Dual Regression Networks for SR", CVPR 2020).

Built to match the official guoyongcs/DRN `model/drn.py` + `model/common.py` layer for layer, so
that the released checkpoints (DRNS4x.pt, DRNL8x.pt, ...) load with `strict=True`. Module
attribute names therefore follow the official state_dict keys (`sub_mean`, `head`, `down`,
`up_blocks`, `tail`, `add_mean`, `dual_module`, `body`, `conv_du`).

The internal widths that channel pruning (DRC) may shrink are explicit: `DRN(..., widths=[...])`
takes one width per prunable layer, in the order of the official DRC width files: the down
blocks (stride-2 conv outputs), then for each up stage its RCAB inner widths followed by its
Upsampler width (channels after PixelShuffle). `widths=None` gives the full model.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dualsr.models.spec import Detected, GlobalMeanPool, ModelSpec, PrunableLayer, resolve_widths

# DIV2K RGB mean used by EDSR/RCAN/DRN, on the 0-1 scale.
RGB_MEAN = (0.4488, 0.4371, 0.4040)


def _conv(in_ch: int, out_ch: int, kernel_size: int, bias: bool = True, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias)


class MeanShift(nn.Conv2d):
    """1x1 conv that subtracts (sign=-1) or adds (sign=+1) the dataset mean on the 0-255 scale.

    A conv rather than a buffer because the official checkpoints store it as one (24 parameters,
    left trainable as in the official code, whose `requires_grad = False` sets a module attribute).
    """

    def __init__(self, rgb_range: float = 255.0, sign: int = -1, rgb_mean=RGB_MEAN):
        super().__init__(3, 3, kernel_size=1)
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.bias.copy_(sign * rgb_range * torch.tensor(rgb_mean))


class DownBlock(nn.Module):
    """Stride-2 conv -> LeakyReLU -> conv, no biases: DRN's down path and its dual models."""

    def __init__(self, in_channels: int, inner_channels: int, out_channels: int, negval: float = 0.2):
        super().__init__()
        # Nested Sequential reproduces the official keys `dual_module.0.0.weight`, `dual_module.1.weight`.
        self.dual_module = nn.Sequential(
            nn.Sequential(
                nn.Conv2d(in_channels, inner_channels, 3, stride=2, padding=1, bias=False),
                nn.LeakyReLU(negval, inplace=True),
            ),
            nn.Conv2d(inner_channels, out_channels, 3, stride=1, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dual_module(x)


class ChannelAttention(nn.Module):
    """RCAN's channel attention: global mean -> 1x1 squeeze -> ReLU -> 1x1 excite -> sigmoid gate.

    The mean is a `GlobalMeanPool` (as the official `nn.AdaptiveAvgPool2d(1)`, no parameters), so
    a tiled upscaler can feed it the whole image's mean.
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        squeezed = max(1, channels // reduction)  # max(1, .) only matters for tiny presets
        self.avg_pool = GlobalMeanPool()
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, squeezed, 1, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(squeezed, channels, 1, bias=True),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(self.avg_pool(x))


class RCAB(nn.Module):
    """Residual channel attention block; `inner` is the prunable width between its two convs."""

    def __init__(self, channels: int, inner: int | None = None, reduction: int = 16):
        super().__init__()
        inner = channels if inner is None else inner
        self.body = nn.Sequential(
            _conv(channels, inner, 3),
            nn.ReLU(inplace=True),
            _conv(inner, channels, 3),
            ChannelAttention(channels, reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class Upsampler(nn.Sequential):
    """x2 sub-pixel upsampling: conv to 4*`out_channels`, PixelShuffle(2) -> `out_channels`."""

    def __init__(self, in_channels: int, out_channels: int | None = None):
        out_channels = in_channels if out_channels is None else out_channels
        super().__init__(_conv(in_channels, 4 * out_channels, 3), nn.PixelShuffle(2))


def num_phases(scale: int) -> int:
    """Number of x2 stages P = log2(scale); DRN only exists for powers of two."""
    phases = int(round(math.log2(scale))) if scale > 1 else 0
    if scale < 2 or 2**phases != scale:
        raise ValueError(f"DRN needs a power-of-two scale (2, 4, 8, ...), got x{scale}")
    return phases


def stage_width(n_feats: int, phases: int, stage: int) -> int:
    """Residual-stream width of up stage `stage` (RCAB width and Upsampler input) in the official net."""
    return n_feats * 2 ** (phases - stage + (1 if stage > 0 else 0))


def full_widths(scale: int, n_blocks: int, n_feats: int) -> list[int]:
    """The prunable widths of the unpruned DRN, in DRC width-file order (64 for x4, 96 for x8 DRN-S)."""
    phases = num_phases(scale)
    widths = [n_feats * 2**p for p in range(phases)]  # down blocks: stride-2 conv keeps its input width
    for stage in range(phases):
        c = stage_width(n_feats, phases, stage)
        widths += [c] * n_blocks + [c]
    return widths


class DRN(nn.Module):
    """The primal DRN: input on 0-255, returns [LR-size, 2x, ..., scale x] outputs, the last is SR."""

    def __init__(
        self,
        scale: int = 4,
        n_blocks: int = 30,
        n_feats: int = 16,
        widths: list[int] | None = None,
        n_colors: int = 3,
        rgb_range: float = 255.0,
        negval: float = 0.2,
        reduction: int = 16,
    ):
        super().__init__()
        phases = num_phases(scale)
        full = full_widths(scale, n_blocks, n_feats)
        widths = resolve_widths(widths, full, f"DRN x{scale} with {n_blocks} blocks")
        self.scale = scale
        self.phases = phases
        self.n_blocks = n_blocks
        self.n_feats = n_feats
        self.n_colors = n_colors
        self.rgb_range = rgb_range
        self.widths = widths
        self.pruned = widths != full

        self.sub_mean = MeanShift(rgb_range, -1)
        self.head = _conv(n_colors, n_feats, 3)
        self.down = nn.ModuleList(
            DownBlock(n_feats * 2**p, widths[p], n_feats * 2 ** (p + 1), negval) for p in range(phases)
        )
        pos = phases
        self.up_blocks = nn.ModuleList()
        for stage in range(phases):
            c = stage_width(n_feats, phases, stage)
            rcabs = [RCAB(c, widths[pos + k], reduction) for k in range(n_blocks)]
            up_width = widths[pos + n_blocks]
            pos += n_blocks + 1
            # after the 1x1 conv, concatenation with the matching down copy doubles the width back
            skip = n_feats * 2 ** (phases - stage - 1)
            self.up_blocks.append(nn.Sequential(*rcabs, Upsampler(c, up_width), _conv(up_width, skip, 1)))
        self.tail = nn.ModuleList(
            [_conv(n_feats * 2**phases, n_colors, 3)]
            + [_conv(n_feats * 2 ** (phases - stage), n_colors, 3) for stage in range(phases)]
        )
        self.add_mean = MeanShift(rgb_range, +1)

    def config(self) -> dict:
        """Constructor arguments that rebuild this architecture (stored beside saved weights)."""
        return {"scale": self.scale, "n_blocks": self.n_blocks, "n_feats": self.n_feats,
                "widths": list(self.widths) if self.pruned else None}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # torch bicubic (align_corners=False), as the official nn.Upsample; not the MATLAB kernel
        x = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        x = self.head(self.sub_mean(x))
        copies = []
        for down in self.down:
            copies.append(x)
            x = down(x)
        outputs = [self.add_mean(self.tail[0](x))]
        for stage, up in enumerate(self.up_blocks):
            x = torch.cat((up(x), copies[self.phases - stage - 1]), dim=1)
            outputs.append(self.add_mean(self.tail[stage + 1](x)))
        return outputs


# Paper presets: (n_blocks, n_feats) per scale.
DRN_S = {4: (30, 16), 8: (30, 8)}
DRN_L = {4: (40, 20), 8: (36, 10)}


def _preset(table: dict, name: str, scale: int, kw: dict) -> DRN:
    if scale not in table:
        raise ValueError(f"{name} is defined for scales {sorted(table)}, not x{scale}")
    n_blocks, n_feats = table[scale]
    kw.setdefault("n_blocks", n_blocks)
    kw.setdefault("n_feats", n_feats)
    return DRN(scale=scale, **kw)


def drn_s(scale: int = 4, **kw) -> DRN:
    """DRN-S: 30 RCABs; 16 features at x4, 8 at x8 (4,804,065 / 5,403,000 parameters)."""
    return _preset(DRN_S, "DRN-S", scale, kw)


def drn_l(scale: int = 4, **kw) -> DRN:
    """DRN-L: 40 RCABs / 20 features at x4, 36 / 10 at x8 (9,825,893 / 10,004,018 parameters)."""
    return _preset(DRN_L, "DRN-L", scale, kw)


def drn_t(scale: int = 4, n_blocks: int = 4, n_feats: int = 8, **kw) -> DRN:
    """DRN-T: this project's tiny DRN (default 4 RCABs, 8 features) that trains on a CPU in minutes."""
    return DRN(scale=scale, n_blocks=n_blocks, n_feats=n_feats, **kw)


# ---------------------------------------------------------------------------------- the spec


def prunable_layers(model: DRN) -> list[PrunableLayer]:
    """DRC's shrinkable widths in width-file order: down convs, then per stage RCAB inners and Upsampler."""
    full = full_widths(model.scale, model.n_blocks, model.n_feats)
    layers, pos = [], 0
    for p in range(model.phases):
        base = f"down.{p}.dual_module"
        layers.append(PrunableLayer(f"down.{p}", f"{base}.0.0", (f"{base}.1",), f"{base}.0.0",
                                    full[pos], model.widths[pos]))
        pos += 1
    for s in range(model.phases):
        for k in range(model.n_blocks):
            body = f"up_blocks.{s}.{k}.body"
            layers.append(PrunableLayer(f"up_blocks.{s}.{k}", f"{body}.0", (f"{body}.2",), f"{body}.0",
                                        full[pos], model.widths[pos]))
            pos += 1
        up = f"up_blocks.{s}.{model.n_blocks}"
        # PixelShuffle(2) couples 4 conv outputs to each kept channel: Torch-Pruning misses this
        layers.append(PrunableLayer(up, f"{up}.0", (f"up_blocks.{s}.{model.n_blocks + 1}",), f"{up}.1",
                                    full[pos], model.widths[pos], group=4))
        pos += 1
    return layers


def receptive_radius(model: DRN) -> float:
    """An upper bound of the receptive radius in LR pixels, summing every conv as if chained.

    Each conv adds its half kernel at the resolution it runs on (HR convs reach a fraction of an
    LR pixel), strided convs and pixel shuffles one more pixel of grid misalignment, and the
    bicubic input upsampling 2 LR pixels plus one of rounding margin. The U-Net's parallel
    branches are counted as if in series, so this over-covers.
    """
    s, n = model.scale, model.n_blocks
    radius = 3.0 + 1.0 / s  # input upsampling, then the head conv at s x
    for p in range(model.phases):
        res = s / 2**p
        radius += 2.0 / res + 1.0 / (res / 2)  # stride-2 conv (+ misalignment), then a conv at half size
    for stage in range(model.phases):
        res = 2**stage
        radius += 2.0 * n / res + 1.0 / res + 1.0 / (2 * res)  # RCAB convs, Upsampler conv, PixelShuffle
    radius += sum(1.0 / 2**k for k in range(model.phases + 1))  # the tail conv of every output
    return radius


def read_architecture(state) -> dict | None:
    """scale, n_blocks, n_feats and widths of a DRN state dict (official or dualsr keys), or None."""
    if "head.weight" not in state or "sub_mean.weight" not in state:
        return None
    ups = [k for k in state if k.startswith("up_blocks.")]
    if not ups:
        return None
    try:
        phases = 1 + max(int(k.split(".")[1]) for k in ups)
        n_blocks = 1 + max(int(k.split(".")[2]) for k in ups if k.startswith("up_blocks.0.")) - 2
        n_feats = int(state["head.weight"].shape[0])
        widths = [int(state[f"down.{p}.dual_module.0.0.weight"].shape[0]) for p in range(phases)]
        for i in range(phases):
            widths += [int(state[f"up_blocks.{i}.{k}.body.0.weight"].shape[0]) for k in range(n_blocks)]
            widths.append(int(state[f"up_blocks.{i}.{n_blocks}.0.weight"].shape[0]) // 4)
    except (KeyError, ValueError, IndexError):
        return None
    scale = 2**phases
    full = full_widths(scale, n_blocks, n_feats)
    return {"scale": scale, "n_blocks": n_blocks, "n_feats": n_feats, "widths": widths, "pruned": widths != full}


def _preset_of(scale: int, n_blocks: int, n_feats: int) -> str:
    for name, table in (("drn-s", DRN_S), ("drn-l", DRN_L)):
        if table.get(scale) == (n_blocks, n_feats):
            return name
    return "drn-t"


def _detector(name: str):
    def detect(state) -> Detected | None:
        arch = read_architecture(state)
        if arch is None or _preset_of(arch["scale"], arch["n_blocks"], arch["n_feats"]) != name:
            return None
        config = {"n_blocks": arch["n_blocks"], "n_feats": arch["n_feats"],
                  "widths": arch["widths"] if arch["pruned"] else None}
        return Detected(name, arch["scale"], config, tuple(arch["widths"]))

    return detect


def distill_feature(model: DRN) -> str:
    """The conv making the SR output: its input is the residual-stream feature DRC distils."""
    return f"tail.{model.phases}"


def _spec(name: str, builder, scales: tuple[int, ...], title: str, description: str) -> ModelSpec:
    return ModelSpec(
        name=name, builder=builder, scales=scales, title=title, description=description, family="drn",
        value_range=255.0, outputs="pyramid", tiling="global_pool", receptive_radius=receptive_radius,
        prunable_layers=prunable_layers, distill_feature=distill_feature, detect=_detector(name),
    )


DRN_S_SPEC = _spec("drn-s", drn_s, (4, 8), "DRN-S", "DRN-S (Guo et al., CVPR 2020): 30 RCABs, 16 features (x4) / 8 (x8)")
DRN_L_SPEC = _spec("drn-l", drn_l, (4, 8), "DRN-L", "DRN-L: 40 RCABs, 20 features (x4) / 36 RCABs, 10 features (x8)")
DRN_T_SPEC = _spec("drn-t", drn_t, (2, 4, 8), "DRN-T",
                   "DRN-T: a DRN of any size, by default this project's tiny preset (4 RCABs, 8 features)")
