"""A small registry: model name -> builder, plus the metadata the rest of dualsr needs.

Builders are named as "module:function" strings and imported on first use: no file registers
itself at import time, and adding a model is one line in `_MODELS` below.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """What callers need to know about a model without reading its code (cf. spandrel's descriptor).

    value_range: pixel scale of input and output (all models of this project use 255).
    multi_output: forward returns a list [LR, 2x, ..., sx] (DRN) instead of one tensor.
    size_multiple: LR height/width must be a multiple of this (pad otherwise).
    (The tiling padding is not stored: `dualsr.inference` derives each model's receptive radius.)
    """

    name: str
    builder: str
    scales: tuple[int, ...]
    value_range: float = 255.0
    multi_output: bool = False
    size_multiple: int = 1
    half_safe: bool = True
    description: str = ""
    defaults: dict = field(default_factory=dict)

    def build(self, scale: int, **kwargs) -> nn.Module:
        if scale not in self.scales:
            raise ValueError(f"model {self.name!r} supports scales {list(self.scales)}, not x{scale}")
        module_name, func_name = self.builder.split(":")
        fn: Callable[..., nn.Module] = getattr(importlib.import_module(module_name), func_name)
        model = fn(scale=scale, **{**self.defaults, **kwargs})
        model.spec = self
        return model


_MODELS: dict[str, ModelSpec] = {}


def _add(spec: ModelSpec) -> None:
    _MODELS[spec.name] = spec


# The catalogue. Names are lower-case with dashes; aliases map to the same spec.
_add(ModelSpec("drn-s", "dualsr.models.drn:drn_s", (4, 8), multi_output=True,
               description="DRN-S (Guo et al., CVPR 2020): 30 RCABs, 16 features (x4) / 8 (x8)"))
_add(ModelSpec("drn-l", "dualsr.models.drn:drn_l", (4, 8), multi_output=True,
               description="DRN-L: 40 RCABs, 20 features (x4) / 36 RCABs, 10 features (x8)"))
_add(ModelSpec("drn-t", "dualsr.models.drn:drn_t", (2, 4, 8), multi_output=True,
               description="DRN-T: a tiny DRN preset of this project, trains on a CPU"))
_add(ModelSpec("rlfn", "dualsr.models.rlfn:rlfn", (2, 3, 4),
               description="RLFN (Kong et al., CVPRW 2022), NTIRE 2022 efficient-SR winner"))


def get_spec(name: str) -> ModelSpec:
    key = name.lower().replace("_", "-")
    if key not in _MODELS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(_MODELS))}")
    return _MODELS[key]


def list_models() -> list[str]:
    return sorted(_MODELS)
