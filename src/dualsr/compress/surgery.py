"""Physical channel removal: the one place where a model actually loses channels.

Coupling comes from Torch-Pruning's DependencyGraph (traced from the model's forward), so a
channel is removed from every layer that reads it. Torch-Pruning does not know that PixelShuffle(r)
turns r*r consecutive conv outputs into one channel, so layers with `group > 1` are cut by an
explicit rule: width channel j <-> producer outputs j*r*r .. j*r*r + r*r - 1, and input j of the
consumers. Every group the graph proposes is checked against the layer's description, so a
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

from dualsr.compress.layers import current_widths, get_module, prunable_layers, rebuild
from dualsr.models.spec import PrunableLayer, spec_of

# kind -> (remove output channels of the producer, remove input channels of a consumer)
_CUTS = {
    "conv": (tp.prune_conv_out_channels, tp.prune_conv_in_channels),
    "linear": (tp.prune_linear_out_channels, tp.prune_linear_in_channels),
}


def _example_input(model: nn.Module) -> torch.Tensor:
    spec = spec_of(model)
    side = max(16, spec.min_input)
    side += (-side) % spec.size_multiple
    return torch.rand(1, 3, side, side, dtype=next(model.parameters()).dtype) * spec.value_range


def _check_group(model: nn.Module, group, layer: PrunableLayer) -> None:
    expected = {id(get_module(model, n)) for n in (layer.producer, *layer.consumers)}
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
    graph = None
    for position, layer in enumerate(layers):
        if layer.name not in keep:
            continue
        width = widths[position]
        kept = sorted({int(i) for i in (keep[layer.name].tolist() if torch.is_tensor(keep[layer.name])
                                         else keep[layer.name])})
        if not kept or kept[0] < 0 or kept[-1] >= width:
            raise ValueError(f"{layer.name}: kept indices must be non-empty and within [0, {width})")
        removed = [i for i in range(width) if i not in set(kept)]
        widths[position] = len(kept)
        if not removed:
            continue
        producer = get_module(work, layer.producer)
        cut_out, cut_in = _CUTS[layer.kind]
        if layer.group == 1:
            if graph is None:
                graph = tp.DependencyGraph().build_dependency(work, example_inputs=_example_input(work),
                                                              verbose=False)
            group = graph.get_pruning_group(producer, cut_out, idxs=removed)
            _check_group(work, group, layer)
            group.prune()
        else:
            expanded = [j * layer.group + k for j in removed for k in range(layer.group)]
            cut_out(producer, expanded)
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
