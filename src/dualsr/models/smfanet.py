"""SMFANet (Zheng, Sun, Dong and Pan, "SMFANet: A Lightweight Self-Modulation Feature Aggregation
Network for Efficient Image Super-Resolution", ECCV 2024; Apache-2.0, github.com/Zheng-MJ/SMFANet).

Written from the authors' `basicsr/archs/SMFANet_arch.py` so that the released BasicSR files
(`{"params": state_dict}`) load with `strict=True`: module names follow their keys (`to_feat`,
`feats.<i>.smfa.{linear_0,linear_1,linear_2,lde.conv_0.0,lde.conv_0.1,lde.conv_1,dw_conv,alpha,belt}`,
`feats.<i>.pcfn.{conv_0,conv_1,conv_2}`, `to_img.0`). Input and output are RGB on the 0-1 scale.
SMFANet is dim=36, n_blocks=8; SMFANet+ is dim=48, n_blocks=12 (both ffn_scale=2): one registered
name, the two are configurations of it (`detect` reads dim and n_blocks from the shapes).

Each feature modulation block (FMB) is an SMFA and a PCFN, each on the channel-normalised
(`F.normalize`, L2 over channels per pixel) stream with a residual:
- SMFA: a 1x1 conv splits into y and x; x is modulated by a coarse map (adaptive max-pool to
  (h//8, w//8), depthwise 3x3, plus the per-channel variance of x over the whole image, 1x1 conv,
  GELU, nearest upsampling back); y goes through the local detail estimation (LDE, `DMlp`:
  depthwise 3x3 to 2*dim, 1x1, GELU, 1x1 back); the sum goes through a last 1x1 conv.
- PCFN: 1x1 to ffn_scale*dim, GELU, a 3x3 conv (+GELU) on the first quarter of the hidden
  channels only, 1x1 back. The authors' eval branch writes the partial conv in place; here both
  modes use their training branch (split, conv, concatenate), which computes the same values and
  is what graph tracers (Torch-Pruning, ONNX) follow.

Prunable widths (for DRC): one per block, the hidden width of the LDE (the output of
`lde.conv_0.1`, read only by `lde.conv_1`; 2*dim channels). The other widths are not cleanly
prunable with a `PrunableLayer`: the stream is normalised over channels and feeds depthwise convs;
SMFA's `linear_0` output halves feed depthwise convs (groups=dim) and the variance; the PCFN hidden
width is split between the 3x3 partial conv (its first quarter, whose outputs replace those
channels) and the rest, so its channels do not enter one consumer 1:1 (pruning it needs a width
description with an offset into the producer, which `PrunableLayer` does not have).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dualsr.models.spec import Detected, ModelSpec, PrunableLayer, resolve_widths

LDE_GROWTH = 2  # DMlp(dim, 2) in the authors' SMFA
PARTIAL_RATE = 0.25  # PCFN's p_rate
DOWN_SCALE = 8  # SMFA pools x to (h // 8, w // 8)


class DMlp(nn.Module):
    """Local detail estimation: depthwise 3x3 (dim -> hidden, groups=dim), 1x1, GELU, 1x1 back.

    `width` is the output width of the 1x1 `conv_0.1` (prunable; the depthwise conv keeps its
    `growth * dim` outputs).
    """

    def __init__(self, dim: int, growth_rate: float = 2.0, width: int | None = None):
        super().__init__()
        hidden = int(dim * growth_rate)
        width = hidden if width is None else int(width)
        self.conv_0 = nn.Sequential(nn.Conv2d(dim, hidden, 3, 1, 1, groups=dim), nn.Conv2d(hidden, width, 1, 1, 0))
        self.act = nn.GELU()
        self.conv_1 = nn.Conv2d(width, dim, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_1(self.act(self.conv_0(x)))


class PCFN(nn.Module):
    """Partial convolution feed-forward network: 1x1 up, GELU, 3x3 (+GELU) on the first p_dim channels, 1x1 down."""

    def __init__(self, dim: int, growth_rate: float = 2.0, p_rate: float = PARTIAL_RATE):
        super().__init__()
        hidden = int(dim * growth_rate)
        p_dim = int(hidden * p_rate)
        self.conv_0 = nn.Conv2d(dim, hidden, 1, 1, 0)
        self.conv_1 = nn.Conv2d(p_dim, p_dim, 3, 1, 1)
        self.act = nn.GELU()
        self.conv_2 = nn.Conv2d(hidden, dim, 1, 1, 0)
        self.p_dim = p_dim
        self.hidden_dim = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv_0(x))
        x1, x2 = torch.split(x, [self.p_dim, self.hidden_dim - self.p_dim], dim=1)
        return self.conv_2(torch.cat([self.act(self.conv_1(x1)), x2], dim=1))


class SMFA(nn.Module):
    """Self-modulation feature aggregation: a coarse, whole-image-aware gate on x plus LDE on y."""

    def __init__(self, dim: int = 36, lde_width: int | None = None):
        super().__init__()
        self.linear_0 = nn.Conv2d(dim, dim * 2, 1, 1, 0)
        self.linear_1 = nn.Conv2d(dim, dim, 1, 1, 0)
        self.linear_2 = nn.Conv2d(dim, dim, 1, 1, 0)
        self.lde = DMlp(dim, LDE_GROWTH, lde_width)
        self.dw_conv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.gelu = nn.GELU()
        self.down_scale = DOWN_SCALE
        self.alpha = nn.Parameter(torch.ones((1, dim, 1, 1)))
        self.belt = nn.Parameter(torch.zeros((1, dim, 1, 1)))  # the authors' spelling (state_dict key)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        h, w = f.shape[-2:]
        y, x = self.linear_0(f).chunk(2, dim=1)
        x_s = self.dw_conv(F.adaptive_max_pool2d(x, (h // self.down_scale, w // self.down_scale)))
        x_v = torch.var(x, dim=(-2, -1), keepdim=True)
        gate = F.interpolate(self.gelu(self.linear_1(x_s * self.alpha + x_v * self.belt)), size=(h, w), mode="nearest")
        return self.linear_2(x * gate + self.lde(y))


class FMB(nn.Module):
    """Feature modulation block: SMFA then PCFN, each on the channel-normalised input, with residuals."""

    def __init__(self, dim: int, ffn_scale: float = 2.0, lde_width: int | None = None):
        super().__init__()
        self.smfa = SMFA(dim, lde_width)
        self.pcfn = PCFN(dim, ffn_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.smfa(F.normalize(x)) + x
        return self.pcfn(F.normalize(x)) + x


def full_widths(dim: int = 36, n_blocks: int = 8) -> list[int]:
    """The prunable widths of the unpruned net: the LDE hidden width of every block."""
    return [int(dim * LDE_GROWTH)] * n_blocks


class SMFANet(nn.Module):
    """SMFANet: 3x3 conv -> n_blocks FMBs + long skip -> 3x3 conv + PixelShuffle; 0-1 RGB in and out."""

    def __init__(self, scale: int = 4, dim: int = 36, n_blocks: int = 8, ffn_scale: float = 2,
                 widths: list[int] | None = None):
        super().__init__()
        full = full_widths(dim, n_blocks)
        widths = resolve_widths(widths, full, f"SMFANet with {n_blocks} blocks")
        self.scale = scale
        self.dim = dim
        self.n_blocks = n_blocks
        self.ffn_scale = ffn_scale
        self.widths = widths
        self.pruned = widths != full
        self.to_feat = nn.Conv2d(3, dim, 3, 1, 1)
        self.feats = nn.Sequential(*[FMB(dim, ffn_scale, widths[i]) for i in range(n_blocks)])
        self.to_img = nn.Sequential(nn.Conv2d(dim, 3 * scale**2, 3, 1, 1), nn.PixelShuffle(scale))

    def config(self) -> dict:
        """Constructor arguments that rebuild this architecture (stored beside saved weights)."""
        return {"scale": self.scale, "dim": self.dim, "n_blocks": self.n_blocks, "ffn_scale": self.ffn_scale,
                "widths": list(self.widths) if self.pruned else None}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.to_feat(x)
        x = self.feats(x) + x
        return self.to_img(x)


def smfanet(scale: int = 4, **kw) -> SMFANet:
    """SMFANet (dim=36, 8 blocks: 197,328 parameters at x4, 185,628 at x2); SMFANet+ is dim=48, n_blocks=12."""
    return SMFANet(scale=scale, **kw)


# ---------------------------------------------------------------------------------- the spec

# Tiling is "approximate", and cannot be made exact by giving layers whole-image statistics as
# the upscaler does for `GlobalMeanPool`: besides the variance of x over the whole image (a
# global statistic like a mean), every SMFA max-pools x onto an (h//8, w//8) grid whose bins are
# placed relative to the whole image, so a tile sees a different grid (and bins of other sizes).
#
# receptive_radius bounds the local part in LR pixels (the variance reaches everything): an
# adaptive max-pool bin of a large image is 8 or 9 pixels wide, and the 3x3 depthwise conv on the
# pooled grid reaches one bin further each way, so a pixel's gate depends on pixels up to 2 bins
# (<= 18) away; the LDE (3x3) and the PCFN partial conv (3x3) add one each. Head and tail: 1 each.
_SMFA_REACH = 2 * (DOWN_SCALE + 1)
_MIN_INPUT = DOWN_SCALE  # adaptive_max_pool2d to (h // 8, w // 8) needs h, w >= 8; any size above works


def receptive_radius(model: SMFANet) -> float:
    return 1.0 + model.n_blocks * (_SMFA_REACH + 1.0) + 1.0 + 1.0 / model.scale


def prunable_layers(model: SMFANet) -> list[PrunableLayer]:
    """Per FMB: the LDE hidden width (`smfa.lde.conv_0.1` -> `smfa.lde.conv_1`, GELU between)."""
    full = full_widths(model.dim, model.n_blocks)
    layers = []
    for i in range(model.n_blocks):
        lde = f"feats.{i}.smfa.lde"
        layers.append(PrunableLayer(lde, f"{lde}.conv_0.1", (f"{lde}.conv_1",), f"{lde}.conv_0.1",
                                    full[i], model.widths[i]))
    return layers


def distill_feature(model: SMFANet) -> str:
    """The reconstruction conv: its input (blocks + long skip) is the feature DRC distils."""
    return "to_img.0"


def _ratio(hidden: int, dim: int):
    scale = hidden / dim
    return int(scale) if scale == int(scale) else scale


def detect(state) -> Detected | None:
    """SMFANet / SMFANet+ from keys (to_feat, feats.<i>.smfa/.pcfn, to_img.0) and shapes; pruned LDEs included."""
    need = {"to_feat.weight", "to_img.0.weight", "feats.0.smfa.linear_0.weight", "feats.0.smfa.lde.conv_1.weight",
            "feats.0.pcfn.conv_0.weight", "feats.0.pcfn.conv_1.weight"}
    if not need <= set(state):
        return None
    to_feat = state["to_feat.weight"]
    if to_feat.dim() != 4 or int(to_feat.shape[1]) != 3:
        return None
    dim = int(to_feat.shape[0])
    n_blocks = 0
    while f"feats.{n_blocks}.smfa.linear_0.weight" in state:
        n_blocks += 1
    out = int(state["to_img.0.weight"].shape[0])
    scale = round((out / 3) ** 0.5)
    if 3 * scale * scale != out or scale not in SMFANET_SCALES:
        return None
    ffn_scale = _ratio(int(state["feats.0.pcfn.conv_0.weight"].shape[0]), dim)
    try:
        widths = [int(state[f"feats.{i}.smfa.lde.conv_1.weight"].shape[1]) for i in range(n_blocks)]
        for i in range(n_blocks):  # the same PCFN in every block, as the constructor builds it
            hidden = int(state[f"feats.{i}.pcfn.conv_0.weight"].shape[0])
            if hidden != int(dim * ffn_scale) or int(state[f"feats.{i}.pcfn.conv_1.weight"].shape[0]) != int(
                    hidden * PARTIAL_RATE):
                return None
    except KeyError:
        return None
    pruned = widths != full_widths(dim, n_blocks)
    return Detected("smfanet", scale, {"dim": dim, "n_blocks": n_blocks, "ffn_scale": ffn_scale,
                                       "widths": widths if pruned else None}, tuple(widths))


SMFANET_SCALES = (2, 3, 4)  # the authors release x2, x3 and x4 (their repo's test options)
SMFANET_SPEC = ModelSpec(
    name="smfanet", builder=smfanet, scales=SMFANET_SCALES, title="SMFANet", family="smfanet",
    description="SMFANet (Zheng et al., ECCV 2024): dim 36, 8 FMBs; SMFANet+ is dim 48, 12 FMBs",
    value_range=1.0, min_input=_MIN_INPUT, size_multiple=1, outputs="single", tiling="approximate",
    receptive_radius=receptive_radius, prunable_layers=prunable_layers, distill_feature=distill_feature,
    detect=detect,
    # float16 (checked on Set5 baby x4): at most 1.2 grey levels, mean 0.06, from float32
    half_safe=True,
    # the authors' test (BasicSR SRModel.test) feeds the LR image as it is, unpadded: no test_padding
    # adaptive_max_pool2d to (h // 8, w // 8), a size that follows the input's, has no ONNX op with
    # dynamic sizes: torch.onnx's exporter fails on it ("unsupported", tried with torch's TorchScript path)
    onnx_export=False,
)
