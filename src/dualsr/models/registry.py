"""A small registry: model name -> the `ModelSpec` its architecture file exports.

The built-in specs are named as "module:attribute" strings and imported on first use: no file
registers itself at import time, and adding a model is one file plus one line in `_BUILTIN`.
`register_model(spec)` adds a spec at run time (a plug-in, or a test's toy model).
"""
from __future__ import annotations

import importlib
from typing import Mapping

import torch

from dualsr.models.spec import Detected, ModelSpec, normalize_name

# name -> "module:SPEC". Order matters for `detect`: the first spec that recognises a state dict
# names it, so presets come before the general spec of their family (drn-s, drn-l, then drn-t).
_BUILTIN: dict[str, str] = {
    "drn-s": "dualsr.models.drn:DRN_S_SPEC",
    "drn-l": "dualsr.models.drn:DRN_L_SPEC",
    "drn-t": "dualsr.models.drn:DRN_T_SPEC",
    "rlfn": "dualsr.models.rlfn:RLFN_SPEC",
    "smfanet": "dualsr.models.smfanet:SMFANET_SPEC",
    "swinir-light": "dualsr.models.swinir:SWINIR_LIGHT_SPEC",
    "swinir-classical": "dualsr.models.swinir:SWINIR_CLASSICAL_SPEC",
}
_REGISTERED: dict[str, ModelSpec] = {}
_LOADED: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec, replace: bool = False) -> ModelSpec:
    """Add a spec to the registry (after the built-ins); `replace` allows re-registering a name."""
    key = normalize_name(spec.name)
    if key != spec.name:
        raise ValueError(f"model names are lower case with dashes: {spec.name!r} -> {key!r}")
    if not replace and (key in _BUILTIN or key in _REGISTERED):
        raise ValueError(f"model {key!r} is already registered")
    _REGISTERED[key] = spec
    return spec


def unregister_model(name: str) -> None:
    """Remove a spec added by `register_model`."""
    _REGISTERED.pop(normalize_name(name), None)


def get_spec(name: str) -> ModelSpec:
    """The spec registered as `name` (any case, '_' or '-'); KeyError naming the known models."""
    key = normalize_name(name)
    if key in _REGISTERED:
        return _REGISTERED[key]
    if key not in _BUILTIN:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    if key not in _LOADED:
        module_name, attribute = _BUILTIN[key].split(":")
        _LOADED[key] = getattr(importlib.import_module(module_name), attribute)
    return _LOADED[key]


def list_models() -> list[str]:
    """Registered names: the built-ins in detection order, then those added by `register_model`."""
    return list(_BUILTIN) + [name for name in _REGISTERED if name not in _BUILTIN]


def detect(state: Mapping[str, torch.Tensor]) -> Detected | None:
    """The first registered model whose spec recognises `state` from its keys and shapes, or None."""
    for name in list_models():
        found = get_spec(name).detect(state)
        if found is not None:
            return found
    return None
