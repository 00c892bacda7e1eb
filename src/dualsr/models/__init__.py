"""Models: `create_model(name, scale)` is the one door; `create_dual` builds the dual models."""
from __future__ import annotations

from torch import nn

from dualsr.models.registry import ModelSpec, get_spec, list_models


def create_model(name: str, scale: int = 4, **kwargs) -> nn.Module:
    """Build the primal model `name` at `scale`; the module carries its `ModelSpec` as `.spec`."""
    return get_spec(name).build(scale, **kwargs)


def create_dual(model_or_name: nn.Module | str, scale: int | None = None, **kwargs) -> nn.ModuleList:
    """The dual models of a primal model: one per x2 step for multi-output models, else one."""
    from dualsr.models.dual import build_duals

    return build_duals(model_or_name, scale=scale, **kwargs)


__all__ = ["ModelSpec", "create_model", "create_dual", "get_spec", "list_models"]
