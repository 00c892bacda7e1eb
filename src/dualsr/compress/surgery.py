"""Physical channel removal: the one place where a model actually loses channels.

Coupling comes from Torch-Pruning's DependencyGraph (traced from the model's forward), so a
channel is removed from every layer that reads it. Torch-Pruning does not know that PixelShuffle(r)
turns r*r consecutive conv outputs into one channel, nor how a fused qkv projection splits into
q, k, v and heads, so those layers are cut by an explicit rule (`layers.producer_channels`):
width channel j <-> producer outputs j*r*r .. j*r*r + r*r - 1, or j, width + j, 2*width + j for
qkv, and input j of the consumers; a qkv layer must keep as many channels in every head. Every group the graph proposes is checked against the layer's description, so a
coupling the description does not expect raises instead of silently pruning the wrong thing.

The result is rebuilt from its width config and loaded strictly: a pruned model is always exactly
its spec's `build(scale, widths=...)` plus a state dict. Layers of kind "conv" and "linear" are
cut with Torch-Pruning's conv and linear pruning functions.
"""
from __future__ import annotations

import copy
from typing import Mapping, Sequence

import torch
import torch_pruning as tp
from torch import nn

from dualsr.compress.layers import (
    current_widths,
    get_module,
    head_count,
    head_of,
    producer_channels,
    prunable_layers,
    rebuild,
)
from dualsr.models.spec import PrunableLayer, spec_of

# kind -> (remove output channels of the producer, remove input channels of a consumer)
_CUTS = {
    "conv": (tp.prune_conv_out_channels, tp.prune_conv_in_channels),
    "linear": (tp.prune_linear_out_channels, tp.prune_linear_in_channels),
    "qkv": (tp.prune_linear_out_channels, tp.prune_linear_in_channels),
}


def _example_input(model: nn.Module) -> torch.Tensor:
    spec = spec_of(model)
    side = spec.padded_size(16)
    return torch.rand(1, 3, side, side, dtype=next(model.parameters()).dtype) * spec.value_range


def _check_group(model: nn.Module, group, layer: PrunableLayer) -> None:
    expected = {id(get_module(model, n)) for n in (*layer.producers, *layer.consumers)}
    for dep, _idxs in group:
        module = dep.target.module
        if isinstance(module, nn.Module) and any(True for _ in module.parameters(recurse=False)):
            if id(module) not in expected:
                raise RuntimeError(f"pruning {layer.name} would also cut {type(module).__name__} "
                                   f"({dep.target.name}); the width description does not expect it")


def remove_channels(model: nn.Module, keep: Mapping[str, Sequence[int] | torch.Tensor],
                    layers: Sequence[PrunableLayer] | None = None) -> nn.Module:
    """A new model without the channels not listed in `keep` ({layer name: kept channel indices}).

    Layers missing from `keep` stay as they are. The input model is left untouched.
    """
    layers = list(prunable_layers(model) if layers is None else layers)
    work = copy.deepcopy(model).cpu().eval()
    for p in work.parameters():
        p.requires_grad_(True)  # Torch-Pruning leaves frozen parameters out of its graph
    widths = current_widths(work)
    traced = [layer for layer in layers if layer.name in keep and layer.group == 1 and layer.kind != "qkv"]
    # traced on the whole model before any explicit cut changes a shape behind the graph's back
    graph = (tp.DependencyGraph().build_dependency(work, example_inputs=_example_input(work), verbose=False)
             if traced else None)
    for position, layer in enumerate(layers):
        if layer.name not in keep:
            continue
        width = widths[position]
        kept = sorted({int(i) for i in (keep[layer.name].tolist() if torch.is_tensor(keep[layer.name])
                                         else keep[layer.name])})
        if not kept or kept[0] < 0 or kept[-1] >= width:
            raise ValueError(f"{layer.name}: kept indices must be non-empty and within [0, {width})")
        removed = [i for i in range(width) if i not in set(kept)]
        heads = head_count(layer)
        if heads > 1:
            per_head = torch.bincount(head_of(layer, width)[kept], minlength=heads)
            if not bool((per_head == per_head[0]).all()):
                raise ValueError(f"{layer.name}: every one of the {heads} heads must keep as many channels "
                                 f"(kept per head: {per_head.tolist()})")
        widths[position] = len(kept)
        if not removed:
            continue
        producer = get_module(work, layer.producer)
        cut_out, cut_in = _CUTS[layer.kind]
        if layer.group == 1 and layer.kind != "qkv":
            group = graph.get_pruning_group(producer, cut_out, idxs=removed)
            _check_group(work, group, layer)
            group.prune()
        else:  # coupling Torch-Pruning cannot see (PixelShuffle groups, q/k/v and heads): explicit
            cut_out(producer, producer_channels(layer, removed, width))
            for name in layer.consumers:
                cut_in(get_module(work, name), removed)
    result = rebuild(work, widths)
    result.load_state_dict(work.state_dict(), strict=True)
    reference = next(model.parameters())
    return result.to(device=reference.device, dtype=reference.dtype)


def keep_to_masks(model: nn.Module, keep: Mapping[str, Sequence[int]],
                  layers: Sequence[PrunableLayer] | None = None) -> list[torch.Tensor | None]:
    """0/1 masks over each layer's current channels that zero everything not kept."""
    layers = list(prunable_layers(model) if layers is None else layers)
    widths = current_widths(model)
    masks: list[torch.Tensor | None] = []
    for position, layer in enumerate(layers):
        if layer.name not in keep:
            masks.append(None)
            continue
        mask = torch.zeros(widths[position])
        mask[torch.as_tensor(list(keep[layer.name]), dtype=torch.long)] = 1.0
        masks.append(mask)
    return masks
