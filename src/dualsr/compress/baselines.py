"""Baselines for DRC: other channel choices at given widths, and uniform width scaling.

All of them are strategies over the same prunable-widths description and the same surgery as
DRC, so a comparison differs only in the choice it is about.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from dualsr.compress.layers import (
    balanced_top,
    consumer_l1_norms,
    head_count,
    prunable_layers,
    rebuild,
    round_to,
    width_step,
)
from dualsr.compress.surgery import remove_channels
from dualsr.models.spec import PrunableLayer
from dualsr.profile import count_parameters


def l1_keep(model: nn.Module, widths: Sequence[int]) -> dict[str, list[int]]:
    """Per layer, the channels with the largest L1 norm in the consuming conv(s) (per head for qkv)."""
    return {layer.name: balanced_top(layer, consumer_l1_norms(model, layer), int(width))
            for layer, width in zip(prunable_layers(model), widths)}


def random_keep(model: nn.Module, widths: Sequence[int], seed: int = 0) -> dict[str, list[int]]:
    """Per layer, `width` channels drawn uniformly at random (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    keep = {}
    for layer, w in zip(prunable_layers(model), widths):
        heads = head_count(layer)
        if heads == 1:
            keep[layer.name] = sorted(torch.randperm(layer.width, generator=generator)[: int(w)].tolist())
        else:  # the same number in every head
            size = layer.width // heads
            keep[layer.name] = sorted(h * size + int(i) for h in range(heads)
                                      for i in torch.randperm(size, generator=generator)[: int(w) // heads])
    return keep


def scaled_widths(layers: Sequence[PrunableLayer], factor: float) -> list[int]:
    """Every width times `factor`, rounded to its step (4, or lcm(4, multiple)), clipped to [step, width]."""
    out = []
    for layer in layers:
        step, c = width_step(layer), layer.width
        out.append(min(c, max(min(step, c), round_to(c * factor, step))))
    return out


def uniform_widths(model: nn.Module, rate: float | None = None, target_params: int | None = None) -> list[int]:
    """Uniform width scaling: factor (1 - rate), or the factor whose model is closest to `target_params`.

    The parameter budget is matched by bisection on the factor (widths stay multiples of 4).
    """
    layers = prunable_layers(model)
    if target_params is None:
        if rate is None:
            raise ValueError("give a rate or a target parameter count")
        return scaled_widths(layers, 1 - rate)
    low, high = 0.0, 1.0
    for _ in range(30):
        mid = (low + high) / 2
        with torch.device("meta"):
            candidate = rebuild(model, scaled_widths(layers, mid))
        if count_parameters(candidate) > target_params:
            high = mid
        else:
            low = mid
    best = min((scaled_widths(layers, f) for f in (low, high)),
               key=lambda w: abs(_params_at(model, w) - target_params))
    return best


def _params_at(model: nn.Module, widths: Sequence[int]) -> int:
    with torch.device("meta"):
        return count_parameters(rebuild(model, widths))


def prune_with(model: nn.Module, widths: Sequence[int], method: str, seed: int = 0) -> nn.Module:
    """Physically prune `model` to `widths`, choosing channels by 'l1' or 'random'."""
    if method == "l1":
        keep = l1_keep(model, widths)
    elif method == "random":
        keep = random_keep(model, widths, seed)
    else:
        raise ValueError(f"unknown channel selection {method!r} (l1, random)")
    return remove_channels(model, keep)
