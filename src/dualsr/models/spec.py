"""The model descriptor: what a model is and can do, read by everything outside `models/`.

Each architecture file exports one `ModelSpec` per registered name, next to its code (cf.
spandrel's descriptor and timm's pretrained configs). The rest of dualsr (objective, trainer,
compression, profile, upscaler, loader, CLI) asks the spec and never names a model class:

- scales, `value_range` (the pixel scale the model was written for: 1.0 or 255.0; callers go
  through `run_model`, which converts from and to dualsr's 0-255), `size_multiple`, `min_input`,
  `half_safe`;
- `outputs`: "single" (one SR image) or "pyramid" ([LR, 2x, ..., sx], DRN); the SR image is the
  last output; `dual_taps(scale)`: which outputs feed a dual model and by how much each dual
  downscales (the objective, profile and compression all read these);
- `tiling`: "local" (tiles are exact with `receptive_radius` of context), "global_pool" (exact
  when the `GlobalMeanPool` layers get whole-image means, which the upscaler computes), "placed"
  (exact with `receptive_radius` of context when the `WindowAware` layers are told where the
  tile lies in the whole image, windows starting at multiples of `tile_phase`: RLFN's ESA, whose
  coarse gate is resampled to the input's size) or "approximate"; `default_tile_pad(model)`: the
  context a tiled run uses when none is asked for (default: the receptive radius, i.e. exact);
  a smaller one trades a measured error (REPORT.md) for speed;
- `prunable_layers(model)`: the widths DRC may shrink (`PrunableLayer`), `distill_feature(model)`:
  the module whose input is the feature used for distillation;
- `onnx_export`: whether the model traces into an ONNX graph with dynamic sizes (`dualsr.onnx`);
- `detect(state_dict)`: name, scale and constructor config from keys and shapes alone, or None;
  `verify_state(model, state_dict)`: why a state dict's derived buffers (e.g. attention index
  tables) disagree with the ones the model rebuilds ('' when they agree).

A model built by `ModelSpec.build` carries its spec as `model.spec` and implements `config()`:
the constructor arguments (`scale` included, `widths` None when unpruned) that rebuild it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

StateDict = Mapping[str, torch.Tensor]

OUTPUT_KINDS = ("single", "pyramid")
TILING_KINDS = ("local", "global_pool", "placed", "approximate")


def normalize_name(name: str) -> str:
    """Registry spelling of a model name: lower case, dashes ('DRN_S' -> 'drn-s')."""
    return str(name).strip().lower().replace("_", "-")


@dataclass(frozen=True)
class PrunableLayer:
    """One shrinkable width: its channels leave `producer` and enter every module in `consumers`.

    kind: "conv" (activations (N, C, H, W)), "linear" (activations (..., C)) or "qkv" (a fused
    attention projection: its output is [q | k | v], `width` channels each, head-major, and the
    attention scales q.k by head_dim^-0.5, so a pruned width keeps the same number of channels in
    every one of its `multiple` heads); consumers read the channels on weight axis 1 in every
    kind. axis: the activation axis that holds the channels.
    mask_at: module whose output carries exactly these channels (the producer itself, or the
    PixelShuffle after it). group: producer outputs per width channel (r*r before a
    PixelShuffle(r): width channel j is producer channels j*r*r .. j*r*r + r*r - 1).
    multiple: a pruned width must stay a multiple of this (e.g. a head count).
    full: the unpruned width; width: the width of the model the description was made from.
    coupled: further modules whose outputs carry the same channels, because they are added to or
    multiplied with the producer's (a residual stream): masked like `mask_at` and cut with the
    producer. A module may both read the channels and be coupled (a 1x1 conv on the stream).
    """

    name: str
    producer: str
    consumers: tuple[str, ...]
    mask_at: str
    full: int
    width: int
    group: int = 1
    kind: str = "conv"
    axis: int = 1
    multiple: int = 1
    coupled: tuple[str, ...] = ()

    @property
    def producers(self) -> tuple[str, ...]:
        """Every module whose output channels are this width's: the producer, then `coupled`."""
        return (self.producer, *self.coupled)


@dataclass(frozen=True)
class DualTap:
    """A dual model's attachment: it reads model output `output` and downscales it by `factor`."""

    output: int
    factor: int


@dataclass(frozen=True)
class Detected:
    """What `detect` read from a state dict: registry name, scale, constructor config (no scale).

    `config["widths"]` is None for an unpruned model; `widths` holds the prunable widths found
    either way (for messages that compare them position by position).
    """

    name: str
    scale: int
    config: dict = field(default_factory=dict)
    widths: tuple[int, ...] | None = None


class GlobalMeanPool(nn.Module):
    """Spatial mean (N, C, H, W) -> (N, C, 1, 1), with a hook for whole-image statistics.

    Layers that pool globally (channel attention) use this module, so a tiled upscaler can give
    them the mean over the whole image instead of over one tile: it sets `hook`, which gets the
    module and its input and returns the pooled tensor.
    """

    def __init__(self):
        super().__init__()
        self.hook: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hook is not None:
            return self.hook(self, x)
        return x.mean(dim=(2, 3), keepdim=True)


@dataclass(frozen=True)
class TileWindow:
    """Where the window a tiled upscaler runs lies in the whole (padded) LR image, in LR pixels."""

    image_height: int
    image_width: int
    y0: int
    x0: int
    height: int
    width: int


class WindowAware(nn.Module):
    """A layer whose output depends on the input's place in the whole image, not only on nearby pixels.

    While a tiled upscaler runs a window it sets `window` (a `TileWindow`), so that the layer can
    compute what it would compute for those pixels untiled; None (always, outside tiling) is the
    layer's ordinary forward. A model with such layers declares tiling "placed" in its spec.
    """

    window: TileWindow | None = None


def window_layers(model: nn.Module) -> list[WindowAware]:
    """The `WindowAware` layers of a model, in registration order."""
    return [m for m in model.modules() if isinstance(m, WindowAware)]


def _no_detection(_state: StateDict) -> Detected | None:
    return None


@dataclass(frozen=True)
class ModelSpec:
    """The descriptor of one registered model (see the module docstring for each field's meaning)."""

    name: str
    builder: Callable[..., nn.Module]
    scales: tuple[int, ...]
    title: str = ""
    description: str = ""
    family: str = ""
    value_range: float = 255.0
    size_multiple: int = 1
    min_input: int = 1
    half_safe: bool = True
    outputs: str = "single"
    tiling: str = "local"
    receptive_radius: Callable[[nn.Module], float] | None = None
    tile_phase: int = 1  # tiling "placed": window origins are multiples of this (LR pixels)
    default_tile_pad: Callable[[nn.Module], int] | None = None  # None: the receptive radius
    prunable_layers: Callable[[nn.Module], list[PrunableLayer]] | None = None
    distill_feature: Callable[[nn.Module], str] | None = None
    detect: Callable[[StateDict], Detected | None] = _no_detection
    verify_state: Callable[[nn.Module, StateDict], str] | None = None
    # how the authors' test script pads an LR input before the model (for benchmark figures that
    # compare with the published ones); None: pad to `size_multiple` / `min_input` by replication
    test_padding: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None
    # multiply-adds that no Conv/Linear layer performs (attention's q.k and attn.v), for profile
    extra_macs: Callable[[nn.Module, tuple[int, int]], int] | None = None
    # other parameter counts papers quote: {"without ...": count}
    parameter_views: Callable[[nn.Module], dict[str, int]] | None = None
    default_scale: int | None = None
    # whether `dualsr.onnx.export_onnx` may trace the model into an ONNX graph whose height, width
    # and batch stay dynamic (False: its forward branches on sizes in Python; say why next to it)
    onnx_export: bool = True

    def __post_init__(self):
        if self.outputs not in OUTPUT_KINDS:
            raise ValueError(f"{self.name}: outputs must be one of {OUTPUT_KINDS}, not {self.outputs!r}")
        if self.tiling not in TILING_KINDS:
            raise ValueError(f"{self.name}: tiling must be one of {TILING_KINDS}, not {self.tiling!r}")
        if self.value_range not in (1.0, 255.0):
            raise ValueError(f"{self.name}: value_range must be 1.0 or 255.0, not {self.value_range}")

    # ------------------------------------------------------------------ building

    @property
    def display_name(self) -> str:
        return self.title or self.name

    def check_scale(self, scale: int) -> int:
        if int(scale) not in self.scales:
            raise ValueError(f"model {self.name!r} supports scales {list(self.scales)}, not x{scale}")
        return int(scale)

    def build(self, scale: int | None = None, **config) -> nn.Module:
        """The model at `scale` (default: `default_scale`) with constructor `config`; carries `.spec`."""
        scale = self.check_scale(self.default_scale_value if scale is None else scale)
        config = {k: v for k, v in config.items() if k != "scale"}
        model = self.builder(scale=scale, **config)
        model.spec = self
        return model

    @property
    def default_scale_value(self) -> int:
        if self.default_scale is not None:
            return self.default_scale
        return 4 if 4 in self.scales else self.scales[0]

    def label(self, scale: int, config: Mapping | None = None) -> str:
        """'drn-s x4 (n_blocks=30, n_feats=16)': name, scale and architecture numbers, for messages."""
        shown = {k: v for k, v in (config or {}).items() if k not in ("scale", "widths") and v is not None}
        details = ", ".join(f"{k}={v}" for k, v in shown.items())
        return f"{self.name} x{scale}" + (f" ({details})" if details else "")

    def padded_size(self, side: int) -> int:
        """The smallest LR side >= `side` the model takes: at least `min_input`, a multiple of `size_multiple`."""
        side = max(int(side), self.min_input)
        return side + (-side) % self.size_multiple

    def patch_problem(self, gt_size: int, scale: int) -> str:
        """Why HR training patches of `gt_size` cannot feed this model at `scale` ('' when they can)."""
        if gt_size % scale:
            return f"HR patches must be a multiple of the scale {scale}"
        lr = gt_size // scale
        if self.padded_size(lr) != lr:
            need = self.padded_size(1)
            return (f"LR patches of {lr} px are too small for {self.name} (it needs at least {need} px and a "
                    f"multiple of {self.size_multiple}): use at least {need * scale}")
        return ""

    # ------------------------------------------------------------------ outputs and duals

    def output_factors(self, scale: int) -> list[int]:
        """Size of each output relative to the LR input, in forward order (the last is SR)."""
        if self.outputs == "pyramid":
            steps = _log2_exact(scale, self.name)
            return [2**k for k in range(steps + 1)]
        return [int(scale)]

    def dual_taps(self, scale: int) -> list[DualTap]:
        """Where the dual models attach: one x2 dual per pyramid step, else one SR -> LR dual."""
        if self.outputs == "pyramid":
            return [DualTap(k + 1, 2) for k in range(len(self.output_factors(scale)) - 1)]
        return [DualTap(0, int(scale))]

    @property
    def prunable(self) -> bool:
        return self.prunable_layers is not None


def _log2_exact(scale: int, what: str) -> int:
    steps = int(round(math.log2(scale))) if scale > 1 else 0
    if scale < 2 or 2**steps != scale:
        raise ValueError(f"{what} needs a power-of-two scale, not x{scale}")
    return steps


# ---------------------------------------------------------------------------- calling models


def spec_of(model: nn.Module) -> ModelSpec:
    """The spec of a model built by dualsr; a module without one gets a cautious generic spec."""
    spec = getattr(model, "spec", None)
    if isinstance(spec, ModelSpec):
        return spec
    return GENERIC_SPEC


def model_scale(model: nn.Module) -> int | None:
    """The scale a model was built for (its `config()['scale']` or `.scale`), or None."""
    config = getattr(model, "config", None)
    if callable(config):
        scale = config().get("scale")
        if scale is not None:
            return int(scale)
    scale = getattr(model, "scale", None)
    return int(scale) if isinstance(scale, int) else None


def run_model(model: nn.Module, lr: torch.Tensor) -> list[torch.Tensor]:
    """All outputs of `model` for an LR batch on the 0-255 scale, themselves on 0-255, as a list."""
    factor = spec_of(model).value_range / 255.0
    out = model(lr * factor if factor != 1.0 else lr)
    outputs = [out] if isinstance(out, torch.Tensor) else list(out)
    return [o / factor for o in outputs] if factor != 1.0 else outputs


def sr_image(model: nn.Module, lr: torch.Tensor) -> torch.Tensor:
    """The SR image (the last output) of `model` for an LR batch, both on the 0-255 scale."""
    return run_model(model, lr)[-1]


def pooling_layers(model: nn.Module) -> list[GlobalMeanPool]:
    """The global pooling layers of a model, in forward (registration) order."""
    return [m for m in model.modules() if isinstance(m, GlobalMeanPool)]


def resolve_widths(widths: Sequence[int] | None, full: Sequence[int], what: str) -> list[int]:
    """`widths` checked against the model's full widths (None means unpruned); errors name `what`."""
    resolved = list(full) if widths is None else [int(w) for w in widths]
    if len(resolved) != len(full):
        raise ValueError(f"{what} has {len(full)} prunable widths, got {len(resolved)}")
    bad = [i for i, (w, c) in enumerate(zip(resolved, full)) if not 1 <= w <= c]
    if bad:
        raise ValueError(f"widths out of range [1, full] at positions {bad[:5]}")
    return resolved


def _unknown_builder(**_kw) -> nn.Module:
    raise TypeError("the generic spec describes foreign modules; it builds nothing")


# For an nn.Module that dualsr did not build: one output taken as SR, tiling not known to be exact.
GENERIC_SPEC = ModelSpec(
    name="module", builder=_unknown_builder, scales=(1, 2, 3, 4, 8), title="a module",
    description="any nn.Module with 0-255 RGB in and out", tiling="approximate",
)
