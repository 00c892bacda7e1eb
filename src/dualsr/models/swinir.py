"""SwinIR (Liang et al., "SwinIR: Image Restoration Using Swin Transformer", ICCVW 2021).

Written to load the official JingyunLiang/SwinIR release files (`{'params': ...}`) with
`strict=True`: module names follow `models/network_swinir.py` (`conv_first`, `patch_embed.norm`,
`layers.i.residual_group.blocks.j.{norm1,attn,norm2,mlp}`, `layers.i.conv`, `norm`,
`conv_after_body`, then `conv_before_upsample` / `upsample` / `conv_last`). Input and output are
RGB on the 0-1 scale (the authors' `img_range` 1.0); the mean shift is a constant, not state.

Buffers. The release files carry each block's `relative_position_index` and, for shifted blocks,
an `attn_mask` computed for the training patch (`img_size`, 64 or 48). Both are rebuilt here
deterministically, registered so that the files load strictly, and `check_buffers` compares them
with a file's. The forward computes the mask for the actual input size (cached per size), so the
stored mask's size never matters.

Any input size: the forward pads the LR image at the bottom/right to a multiple of the window
(reflection, as the official `check_image_size`) and crops the output. `pad_like_official_test`
is the test script's rule (a flipped copy, up to the next multiple plus a full window when
already aligned), used for benchmark evaluation so that published figures are comparable.

Prunable widths (for DRC): per Swin block, the attention width (q/k/v output = proj input,
`heads` x head dim, shrunk per head so every head keeps the same head dim; the qk scale follows
the head dim) and the MLP hidden width, in block order.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dualsr.models.spec import Detected, ModelSpec, PrunableLayer, resolve_widths

RGB_MEAN = (0.4488, 0.4371, 0.4040)
# Bias added to attention logits between tokens that a cyclic shift brought together (official: -100).
_MASKED = -100.0


def relative_position_index(window: int) -> torch.Tensor:
    """(w*w, w*w) index into the (2w-1)^2 relative-position bias table, as Swin Transformer builds it."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return relative[:, :, 0] * (2 * window - 1) + relative[:, :, 1]


def to_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/w * W/w, w*w, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def from_windows(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of `to_windows`: (B * H/w * W/w, w*w, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def shift_mask(h: int, w: int, window: int, shift: int) -> torch.Tensor:
    """(nW, w*w, w*w) logit bias of shifted windows: 0 within a region, -100 across regions."""
    regions = torch.zeros(1, h, w, 1)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for hs in bounds:
        for ws in bounds:
            regions[:, hs, ws, :] = label
            label += 1
    ids = to_windows(regions, window).squeeze(-1)
    different = (ids[:, None, :] - ids[:, :, None]) != 0
    return torch.zeros(different.shape).masked_fill(different, _MASKED)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a learned relative-position bias.

    `inner` is the attention width (heads x head dim), the prunable width of q/k/v and proj.
    """

    def __init__(self, dim: int, window: int, heads: int, inner: int | None = None):
        super().__init__()
        inner = dim if inner is None else inner
        if inner % heads:
            raise ValueError(f"attention width {inner} is not a multiple of the {heads} heads")
        self.window, self.heads, self.inner = window, heads, inner
        self.scale = (inner // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, 3 * inner)
        self.proj = nn.Linear(inner, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, self.inner // self.heads).permute(2, 0, 3, 1, 4)
        logits = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        logits = logits + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            windows = mask.shape[0]
            logits = logits.view(b // windows, windows, self.heads, n, n) + mask[None, :, None].to(logits.dtype)
            logits = logits.view(b, self.heads, n, n)
        out = (logits.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, self.inner)
        return self.proj(out)


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2; `hidden` is prunable."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock(nn.Module):
    """LayerNorm -> (shifted) window attention -> residual; LayerNorm -> MLP -> residual."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, hidden: int, inner: int,
                 patch: tuple[int, int]):
        super().__init__()
        if min(patch) <= window:  # the official rule: a patch within one window is not shifted
            window, shift = min(patch), 0
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads, inner)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, hidden)
        # stored as the release files store it; the forward computes the mask of the actual size
        self.register_buffer("attn_mask", shift_mask(*patch, window, shift) if shift else None)
        self._masks: dict[tuple, torch.Tensor] = {}

    def _mask(self, h: int, w: int, device: torch.device) -> torch.Tensor | None:
        if not self.shift:
            return None
        key = (h, w, device)
        if key not in self._masks:
            self._masks[key] = shift_mask(h, w, self.window, self.shift).to(device)
        return self._masks[key]

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        h, w = size
        b, _, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(to_windows(y, self.window), self._mask(h, w, x.device))
        y = from_windows(y, self.window, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + y.reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class _Blocks(nn.Module):
    """The official `BasicLayer` as far as SR uses it (no patch merging): a list of blocks."""

    def __init__(self, blocks: list[SwinBlock]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, size)
        return x


class RSTB(nn.Module):
    """Residual Swin Transformer block: Swin blocks, then a 3x3 conv on the image layout, plus the input."""

    def __init__(self, blocks: list[SwinBlock], dim: int):
        super().__init__()
        self.residual_group = _Blocks(blocks)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        y = self.residual_group(x, size).transpose(1, 2).reshape(b, c, *size)
        return self.conv(y).flatten(2).transpose(1, 2) + x


class _PatchEmbed(nn.Module):
    """Image layout -> tokens, then LayerNorm (the official PatchEmbed with patch size 1)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.flatten(2).transpose(1, 2))


def full_widths(dim: int, depths: tuple[int, ...], mlp_ratio: float) -> list[int]:
    """[attention width, MLP hidden width] per block, in block order (48 numbers for swinir-light)."""
    return [w for _ in range(sum(depths)) for w in (dim, int(dim * mlp_ratio))]


class SwinIR(nn.Module):
    """SwinIR for SR: conv -> RSTBs -> LayerNorm -> conv + skip -> upsampler; 0-1 RGB in and out."""

    def __init__(self, scale: int = 4, embed_dim: int = 60, depths: tuple[int, ...] = (6, 6, 6, 6),
                 num_heads: tuple[int, ...] = (6, 6, 6, 6), window_size: int = 8, mlp_ratio: float = 2.0,
                 upsampler: str = "pixelshuffledirect", img_size: int = 64, widths: list[int] | None = None,
                 num_feat: int = 64):
        super().__init__()
        depths, num_heads = tuple(int(d) for d in depths), tuple(int(h) for h in num_heads)
        if len(depths) != len(num_heads):
            raise ValueError(f"{len(depths)} depths but {len(num_heads)} head counts")
        if upsampler not in ("pixelshuffle", "pixelshuffledirect"):
            raise ValueError(f"upsampler must be pixelshuffle or pixelshuffledirect, not {upsampler!r}")
        full = full_widths(embed_dim, depths, mlp_ratio)
        widths = resolve_widths(widths, full, f"SwinIR with {sum(depths)} blocks")
        self.scale, self.embed_dim, self.depths, self.num_heads = scale, embed_dim, depths, num_heads
        self.window_size, self.mlp_ratio, self.upsampler, self.img_size = window_size, mlp_ratio, upsampler, img_size
        self.widths, self.pruned, self.num_feat = widths, widths != full, num_feat

        self.conv_first = nn.Conv2d(3, embed_dim, 3, 1, 1)
        self.patch_embed = _PatchEmbed(embed_dim)
        layers, position = [], 0
        for depth, heads in zip(depths, num_heads):
            blocks = []
            for j in range(depth):
                inner, hidden = widths[2 * position], widths[2 * position + 1]
                blocks.append(SwinBlock(embed_dim, heads, window_size, 0 if j % 2 == 0 else window_size // 2,
                                        hidden, inner, (img_size, img_size)))
                position += 1
            layers.append(RSTB(blocks, embed_dim))
        self.layers = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        if upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True))
            stages = []
            if scale == 3:
                stages += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
            else:
                for _ in range(int(math.log2(scale))):
                    stages += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
            self.upsample = nn.Sequential(*stages)
            self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)
        else:
            self.upsample = nn.Sequential(nn.Conv2d(embed_dim, 3 * scale * scale, 3, 1, 1), nn.PixelShuffle(scale))
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.apply(_init_weights)

    @property
    def blocks(self) -> list[SwinBlock]:
        """Every Swin block in forward order."""
        return [block for layer in self.layers for block in layer.residual_group.blocks]

    def config(self) -> dict:
        """Constructor arguments that rebuild this architecture (stored beside saved weights)."""
        return {"scale": self.scale, "embed_dim": self.embed_dim, "depths": list(self.depths),
                "num_heads": list(self.num_heads), "window_size": self.window_size, "mlp_ratio": self.mlp_ratio,
                "upsampler": self.upsampler, "img_size": self.img_size,
                "widths": list(self.widths) if self.pruned else None}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = _pad_to_multiple(x, self.window_size) - self.mean.to(x.dtype)
        x = self.conv_first(x)
        size = tuple(x.shape[-2:])
        tokens = self.patch_embed(x)
        for layer in self.layers:
            tokens = layer(tokens, size)
        body = self.norm(tokens).transpose(1, 2).reshape(x.shape)
        x = self.conv_after_body(body) + x
        if self.upsampler == "pixelshuffle":
            x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        else:
            x = self.upsample(x)
        return (x + self.mean.to(x.dtype))[..., : h * self.scale, : w * self.scale]


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _symmetric_pad(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Pad bottom/right with mirrored copies that repeat the edge (a flipped copy, as many as needed)."""
    while pad_h > 0:
        step = min(pad_h, x.shape[-2])
        x = torch.cat([x, x.flip(-2)[..., :step, :]], dim=-2)
        pad_h -= step
    while pad_w > 0:
        step = min(pad_w, x.shape[-1])
        x = torch.cat([x, x.flip(-1)[..., :step]], dim=-1)
        pad_w -= step
    return x


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    # the official check_image_size reflects; reflection needs pad < size, so tiny inputs mirror instead
    if torch.jit.is_tracing():  # ONNX export: the sizes are graph values, no Python branch may read them
        return _pad_to_multiple_by_index(x, multiple)
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if not (pad_h or pad_w):
        return x
    if pad_h < h and pad_w < w:
        return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    return _symmetric_pad(x, pad_h, pad_w)


def _pad_to_multiple_by_index(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """`_pad_to_multiple` as gathers whose indices are computed from the sizes: the same values
    (reflection when both pads are below the sides, else the mirrored copies of `_symmetric_pad`),
    but traceable with dynamic height and width (sizes are tensors while tracing)."""
    h, w = x.shape[-2], x.shape[-1]
    pad_h, pad_w = (multiple - h % multiple) % multiple, (multiple - w % multiple) % multiple
    reflect = torch.as_tensor(pad_h < h) & torch.as_tensor(pad_w < w)

    def index(n, pad):
        i = torch.arange(n + pad, device=x.device)
        reflected = torch.where(i < n, i, 2 * (n - 1) - i)
        j = i % (2 * n)  # the mirrored copies repeat with period 2n: x, flip(x), x, ...
        return torch.where(reflect, reflected, torch.where(j < n, j, 2 * n - 1 - j))

    return x.index_select(-2, index(h, pad_h)).index_select(-1, index(w, pad_w))


def pad_like_official_test(x: torch.Tensor, window: int = 8) -> torch.Tensor:
    """The official test script's padding: to (h // window + 1) * window with a flipped copy."""
    h, w = x.shape[-2:]
    return _symmetric_pad(x, (h // window + 1) * window - h, (w // window + 1) * window - w)


# ---------------------------------------------------------------------------------- presets


LIGHT = {"embed_dim": 60, "depths": (6, 6, 6, 6), "num_heads": (6, 6, 6, 6), "window_size": 8, "mlp_ratio": 2.0,
         "img_size": 64}
CLASSICAL = {"embed_dim": 180, "depths": (6, 6, 6, 6, 6, 6), "num_heads": (6, 6, 6, 6, 6, 6), "window_size": 8,
             "mlp_ratio": 2.0, "img_size": 48}


def _preset(defaults: dict, upsampler: str, name: str, scale: int, kw: dict) -> SwinIR:
    if kw.setdefault("upsampler", upsampler) != upsampler:
        raise ValueError(f"{name} uses the {upsampler} upsampler, not {kw['upsampler']}")
    return SwinIR(scale=scale, **{**defaults, **kw})


def swinir_light(scale: int = 4, **kw) -> SwinIR:
    """SwinIR-light: embed 60, 4 RSTBs x 6 blocks, 6 heads, window 8, one-step PixelShuffle (929,628 params x4)."""
    return _preset(LIGHT, "pixelshuffledirect", "swinir-light", scale, kw)


def swinir_classical(scale: int = 4, **kw) -> SwinIR:
    """SwinIR (classical SR): embed 180, 6 RSTBs x 6 blocks, 6 heads, window 8, conv + PixelShuffle stages."""
    return _preset(CLASSICAL, "pixelshuffle", "swinir-classical", scale, kw)


# ---------------------------------------------------------------------------------- the spec


def read_architecture(state) -> dict | None:
    """The SwinIR constructor config of a state dict (official or dualsr keys), or None."""
    needed = {"conv_first.weight", "patch_embed.norm.weight", "conv_after_body.weight",
              "layers.0.residual_group.blocks.0.attn.qkv.weight"}
    if not needed <= set(state):
        return None
    try:
        embed = int(state["conv_first.weight"].shape[0])
        depths, heads, widths, masks = [], [], [], []
        while f"layers.{len(depths)}.conv.weight" in state:
            i = len(depths)
            depth = 0
            while f"layers.{i}.residual_group.blocks.{depth}.attn.qkv.weight" in state:
                prefix = f"layers.{i}.residual_group.blocks.{depth}"
                widths += [int(state[f"{prefix}.attn.qkv.weight"].shape[0]) // 3,
                           int(state[f"{prefix}.mlp.fc1.weight"].shape[0])]
                if f"{prefix}.attn_mask" in state:
                    masks.append(state[f"{prefix}.attn_mask"])
                depth += 1
            table = state[f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table"]
            depths.append(depth)
            heads.append(int(table.shape[1]))
        window = (round(math.sqrt(int(table.shape[0]))) + 1) // 2
        if "conv_before_upsample.0.weight" in state:
            upsampler = "pixelshuffle"
            convs = [k for k in state if k.startswith("upsample.") and k.endswith(".weight")]
            first = state["upsample.0.weight"]
            scale = 3 if first.shape[0] == 9 * first.shape[1] else 2 ** len(convs)
        else:
            upsampler = "pixelshuffledirect"
            scale = round(math.sqrt(int(state["upsample.0.weight"].shape[0]) / 3))
    except (KeyError, ValueError, IndexError):
        return None
    hidden = max(widths[1::2])
    mlp_ratio = 2.0 if hidden <= 2 * embed else hidden / embed  # a pruned file cannot say more
    img_size = round(math.sqrt(masks[0].shape[0])) * window if masks else 64
    full = full_widths(embed, tuple(depths), mlp_ratio)
    return {"scale": scale, "embed_dim": embed, "depths": depths, "num_heads": heads, "window_size": window,
            "mlp_ratio": mlp_ratio, "upsampler": upsampler, "img_size": img_size,
            "widths": widths if widths != full else None, "all_widths": widths}


def _detector(name: str, upsampler: str):
    def detect(state) -> Detected | None:
        arch = read_architecture(state)
        if arch is None or arch["upsampler"] != upsampler:
            return None
        widths = arch.pop("all_widths")
        scale = arch.pop("scale")
        return Detected(name, scale, arch, tuple(widths))

    return detect


def verify_state(model: SwinIR, state) -> str:
    """Which stored relative_position_index / attn_mask buffers differ from the rebuilt ones ('' if none)."""
    own = model.state_dict()
    bad = [k for k in own if k.endswith(("relative_position_index", "attn_mask")) and k in state
           and own[k].device.type != "meta" and state[k].device.type != "meta"
           and (own[k].shape != state[k].shape or not torch.equal(own[k], state[k].to(own[k].dtype)))]
    if not bad:
        return ""
    return f"{len(bad)} stored attention buffers differ from the ones SwinIR rebuilds, e.g. {bad[0]}"


def prunable_layers(model: SwinIR) -> list[PrunableLayer]:
    """Per Swin block: the attention width (fused q/k/v, per head) and the MLP hidden width."""
    full = full_widths(model.embed_dim, model.depths, model.mlp_ratio)
    layers, position = [], 0
    for i, layer in enumerate(model.layers):
        for j, block in enumerate(layer.residual_group.blocks):
            p = f"layers.{i}.residual_group.blocks.{j}"
            layers += [
                PrunableLayer(f"{p}.attn", f"{p}.attn.qkv", (f"{p}.attn.proj",), f"{p}.attn.qkv",
                              full[2 * position], block.attn.inner, kind="qkv", axis=-1, multiple=block.attn.heads),
                PrunableLayer(f"{p}.mlp", f"{p}.mlp.fc1", (f"{p}.mlp.fc2",), f"{p}.mlp.fc1",
                              full[2 * position + 1], block.mlp.fc1.out_features, kind="linear", axis=-1),
            ]
            position += 1
    return layers


def distill_feature(model: SwinIR) -> str:
    """conv_after_body: its input is the body's output, at the embedding width that pruning keeps."""
    return "conv_after_body"


def attention_macs(model: SwinIR, lr_size: tuple[int, int]) -> int:
    """q.k and attn.v of every block on the padded input: 2 x tokens x window area x attention width."""
    h, w = (math.ceil(side / model.window_size) * model.window_size for side in lr_size)
    return sum(2 * h * w * block.window ** 2 * block.attn.inner for block in model.blocks)


def parameter_views(model: SwinIR) -> dict[str, int]:
    """The count most papers quote leaves out the relative-position bias tables."""
    tables = sum(b.attn.relative_position_bias_table.numel() for b in model.blocks)
    return {"without the relative-position bias tables": sum(p.numel() for p in model.parameters()) - tables}


def receptive_radius(model: SwinIR) -> float:
    """Upper bound in LR pixels: 3x3 convs, and a full window (shifted or not) for every Swin block."""
    convs = 1 + len(model.layers) + 1 + (2 if model.upsampler == "pixelshuffle" else 1)
    return convs + len(model.blocks) * model.window_size


def _spec(name: str, builder, scales: tuple[int, ...], upsampler: str, title: str, description: str) -> ModelSpec:
    # ONNX: exportable with dynamic sizes; the shift masks are computed from the traced sizes, and
    # the padding to the window goes through `_pad_to_multiple_by_index` while tracing.
    # Tiling: window attention is local, but the windows follow the tile's grid and the padding to a
    # multiple of the window follows the tile's size, so tiles are approximate until shown otherwise.
    return ModelSpec(
        name=name, builder=builder, scales=scales, title=title, description=description, family="swinir",
        value_range=1.0, outputs="single", tiling="approximate", half_safe=False,
        receptive_radius=receptive_radius, detect=_detector(name, upsampler), verify_state=verify_state,
        extra_macs=attention_macs, parameter_views=parameter_views,
        prunable_layers=prunable_layers, distill_feature=distill_feature,
        test_padding=lambda model, lr: pad_like_official_test(lr, model.window_size),
    )


SWINIR_LIGHT_SPEC = _spec("swinir-light", swinir_light, (2, 3, 4), "pixelshuffledirect", "SwinIR-light",
                          "SwinIR-light (Liang et al., ICCVW 2021): 60 features, 4x6 Swin blocks, window 8")
SWINIR_CLASSICAL_SPEC = _spec("swinir-classical", swinir_classical, (2, 3, 4, 8), "pixelshuffle", "SwinIR",
                              "SwinIR for classical SR: 180 features, 6x6 Swin blocks, window 8")
