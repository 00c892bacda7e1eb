"""Models: the registry of specs, `create_model(name, scale)` (the one door), `create_dual`.

Everything dualsr knows about an architecture is in its file here (drn.py, rlfn.py, ...), in the
`ModelSpec` it exports; nothing outside `models/` names a model class.
"""
from __future__ import annotations

from torch import nn

from dualsr.models.registry import detect, get_spec, list_models, register_model, unregister_model
from dualsr.models.spec import (
    Detected,
    DualTap,
    GlobalMeanPool,
    ModelSpec,
    PrunableLayer,
    model_scale,
    normalize_name,
    run_model,
    spec_of,
    sr_image,
)


def create_model(name: str, scale: int | None = None, **config) -> nn.Module:
    """Build the primal model `name` at `scale` (default: the model's usual scale); carries `.spec`."""
    return get_spec(name).build(scale, **config)


def create_dual(model_or_name: nn.Module | str, scale: int | None = None, **kwargs) -> nn.ModuleList:
    """The dual models of a primal model: one per `spec.dual_taps(scale)` (DRN: one per x2 step)."""
    from dualsr.models.dual import build_duals

    return build_duals(model_or_name, scale=scale, **kwargs)


__all__ = ["Detected", "DualTap", "GlobalMeanPool", "ModelSpec", "PrunableLayer", "create_dual", "create_model",
           "detect", "get_spec", "list_models", "model_scale", "normalize_name", "register_model", "run_model",
           "spec_of", "sr_image", "unregister_model"]
