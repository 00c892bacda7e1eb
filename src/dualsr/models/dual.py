"""Dual models: small learned downsamplers that map an SR output back to the LR it came from.

Multi-output models (DRN) get log2(s) duals, one per x2 step, exactly the official
`DownBlock(opt, 2)`: conv3x3 stride 2 (3 -> F, no bias) -> LeakyReLU(0.2) -> conv3x3 (F -> 3, no
bias), 54*F parameters, keys `dual_module.0.0.weight` and `dual_module.1.weight`, so the official
`*_dual_model.pt` lists load strictly. dual k maps output k+1 to the size of output k.

Single-output models get one dual mapping SR -> LR in one go. Choice: for s = 2^n it chains n
stride-2 stages (the official DownBlock generalised to `scale`, as its `np.log2(scale)` loop
already allows: conv s2 3->F, LReLU, then n-1 times conv s2 F->F, LReLU, then conv F->3); for
s = 3 the first conv has stride 3. A chain of stride-2 stages keeps each kernel's footprint on the
HR grid small, like the per-step duals of DRN, instead of one large-stride conv skipping pixels.
"""
from __future__ import annotations

import math

import torch
from torch import nn

DEFAULT_DUAL_FEATS = 16


class DualModel(nn.Module):
    """Learned x`scale` downsampler with the official DownBlock layout and key names."""

    def __init__(self, scale: int = 2, n_feats: int = 16, n_colors: int = 3, negval: float = 0.2):
        super().__init__()
        if scale == 3:
            strides = [3]
        elif scale >= 2 and 2 ** round(math.log2(scale)) == scale:
            strides = [2] * round(math.log2(scale))
        else:
            raise ValueError(f"dual models support x3 and powers of two, not x{scale}")
        self.scale = scale
        self.n_feats = n_feats
        stages = []
        in_ch = n_colors
        for stride in strides:
            # kernel 3 stride 2 pad 1 halves exactly; kernel 3 stride 3 pad 0 divides by 3 exactly
            padding = 1 if stride == 2 else 0
            stages.append(nn.Sequential(
                nn.Conv2d(in_ch, n_feats, 3, stride=stride, padding=padding, bias=False),
                nn.LeakyReLU(negval, inplace=True),
            ))
            in_ch = n_feats
        stages.append(nn.Conv2d(n_feats, n_colors, 3, stride=1, padding=1, bias=False))
        self.dual_module = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dual_module(x)


def is_dual_state(state) -> bool:
    """True for the state dict of a list of dual models as dualsr saves them ('0.dual_module...')."""
    return bool(state) and all(k.split(".", 1)[0].isdigit() and ".dual_module." in k for k in state)


def build_duals(model_or_name: nn.Module | str, scale: int | None = None, **kw) -> nn.ModuleList:
    """The dual models of a primal model (or model name), one per tap of `spec.dual_taps(scale)`.

    kw: `n_feats` overrides the duals' width (default: the model's `n_feats` config, else 16);
    `negval` the LeakyReLU slope; other keys go to the model builder when a name is given.
    """
    from dualsr.models.spec import model_scale, spec_of

    n_feats = kw.pop("n_feats", None)
    negval = kw.pop("negval", 0.2)
    if isinstance(model_or_name, str):
        from dualsr.models import create_model

        if scale is None:
            raise ValueError("build_duals(name) needs a scale")
        with torch.device("meta"):  # only the architecture is needed, not its weights
            model = create_model(model_or_name, scale, **kw)
    else:
        model = model_or_name
    built_for = model_scale(model)
    if scale is None:
        scale = built_for
    if scale is None:
        raise ValueError("scale unknown: pass scale= for a model that does not say its scale")
    if built_for is not None and built_for != scale:
        raise ValueError(f"model is x{built_for} but duals were asked for x{scale}")
    if n_feats is None:
        config = model.config() if callable(getattr(model, "config", None)) else {}
        n_feats = config.get("n_feats") or DEFAULT_DUAL_FEATS
    taps = spec_of(model).dual_taps(scale)
    return nn.ModuleList(DualModel(tap.factor, n_feats, negval=negval) for tap in taps)
