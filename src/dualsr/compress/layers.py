"""Prunable layers, generically: what every compression method does with a `PrunableLayer`.

Which widths of a model may shrink is its spec's business (`spec.prunable_layers`, in the
model's width order, which for DRN is the order of the official DRC width files). Here each
operation dispatches on the layer description alone (its kind, channel axis, group, multiple),
never on the model: channel scores from the consumers' weights, soft or hard channel masks
during forwards, and rebuilding the same architecture at other widths. Physical removal is in
`surgery`.

A compressed model is its width config plus a state dict; `dualsr.checkpoint.save_weights`
stores both (the widths are part of the model's config) and `dualsr.checkpoint.load` rebuilds it.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator, Sequence

import torch
from torch import nn

from dualsr.models.spec import PrunableLayer, spec_of

KINDS = ("conv", "linear", "qkv")


def prunable_layers(model: nn.Module) -> list[PrunableLayer]:
    """The shrinkable widths of `model` from its spec, in the model's width order."""
    spec = spec_of(model)
    if spec.prunable_layers is None:
        raise TypeError(f"{spec.display_name} declares no prunable layers; it cannot be compressed")
    layers = spec.prunable_layers(model)
    for layer in layers:
        if layer.kind not in KINDS:
            raise TypeError(f"{layer.name}: prunable layer kind {layer.kind!r} is not supported ({', '.join(KINDS)})")
        if layer.coupled and (layer.kind != "conv" or layer.group != 1 or layer.mask_at != layer.producer):
            raise TypeError(f"{layer.name}: coupled producers need a plain conv width (kind conv, group 1, "
                            "masked at its producer)")
    return layers


def current_widths(model: nn.Module) -> list[int]:
    """The widths the model is built with (its full widths when unpruned)."""
    return [layer.width for layer in prunable_layers(model)]


def head_count(layer: PrunableLayer) -> int:
    """Groups of channels that must keep equal shares: the heads of a qkv layer, else 1."""
    return layer.multiple if layer.kind == "qkv" else 1


def head_of(layer: PrunableLayer, width: int) -> torch.Tensor:
    """The group (head) index of each of the `width` channels (heads are contiguous blocks)."""
    heads = head_count(layer)
    if width % heads:
        raise ValueError(f"{layer.name}: width {width} is not a multiple of its {heads} heads")
    return torch.arange(width) // (width // heads)


def producer_channels(layer: PrunableLayer, channels: Sequence[int], width: int) -> list[int]:
    """The producer outputs that carry the given width channels (q, k and v for qkv; r*r before a shuffle)."""
    if layer.kind == "qkv":
        return [part * width + c for part in range(3) for c in channels]
    return [c * layer.group + k for c in channels for k in range(layer.group)]


def selectable(layer: PrunableLayer, kept: torch.Tensor) -> torch.Tensor:
    """Channels that may be kept next (bool over the width): not kept yet, and in a head with the fewest kept."""
    free = ~kept
    heads = head_count(layer)
    if heads == 1:
        return free
    head = head_of(layer, kept.numel())
    counts = torch.zeros(heads, dtype=torch.long).index_add_(0, head, kept.long())
    unfilled = counts[counts < kept.numel() // heads]
    if unfilled.numel() == 0:
        return torch.zeros_like(kept)
    return free & (counts == unfilled.min())[head]


def balanced_top(layer: PrunableLayer, scores: torch.Tensor, count: int) -> list[int]:
    """The `count` best channels by score, the same number in every head (sorted indices)."""
    heads = head_count(layer)
    if count % heads:
        raise ValueError(f"{layer.name}: {count} channels cannot be shared equally by {heads} heads")
    head = head_of(layer, scores.numel())
    chosen = []
    for h in range(heads):
        members = torch.nonzero(head == h).flatten()
        chosen += members[torch.topk(scores[members], count // heads).indices].tolist()
    return sorted(chosen)


def width_step(layer: PrunableLayer, base: int = 4) -> int:
    """The granularity of a pruned width: multiples of 4 (DRC's rounding) and of `layer.multiple`."""
    return base * layer.multiple // math.gcd(base, layer.multiple)


def round_to(value: float, step: int) -> int:
    """Nearest multiple of `step`, halves rounded up (DRC's round4 for step 4)."""
    return int(step * int(value / step + 0.5))


def rebuild(model: nn.Module, widths: Sequence[int] | None = None) -> nn.Module:
    """A fresh model of the same spec and configuration, with `widths` (default: the model's)."""
    config = dict(model.config())
    scale = config.pop("scale")
    if widths is not None:
        config["widths"] = [int(w) for w in widths]
    return spec_of(model).build(scale, **config)


def get_module(model: nn.Module, dotted: str) -> nn.Module:
    """Submodule by dotted name (`up_blocks.0.3.body.0`)."""
    return model.get_submodule(dotted)


def _other_dims(weight: torch.Tensor) -> tuple[int, ...]:
    # consumers of both kinds read the pruned channels on weight axis 1: (out, in, ...) for conv and linear
    return tuple(d for d in range(weight.dim()) if d != 1)


def consumer_l1_norms(model: nn.Module, layer: PrunableLayer) -> torch.Tensor:
    """Per width channel, the L1 norm of its weights in the consuming module(s): DRC's ranking."""
    total = None
    for name in layer.consumers:
        weight = get_module(model, name).weight.detach()
        norms = weight.abs().sum(dim=_other_dims(weight))
        total = norms if total is None else total + norms
    return total


def consumer_grad_norms(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per width channel, the L2 norm of the loss gradient over the consumers' input weights."""
    return sum(g.pow(2).sum(dim=_other_dims(g)) for g in grads).sqrt()


def input_column_mask(mask: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`mask` (one value per input channel) shaped to broadcast over a consumer's weight."""
    shape = [1] * weight.dim()
    shape[1] = -1
    return mask.view(shape).to(weight.dtype)


def _activation_mask(mask: torch.Tensor, output: torch.Tensor, axis: int) -> torch.Tensor:
    shape = [1] * output.dim()
    shape[axis] = -1
    return mask.view(shape).to(output.dtype)


def _qkv_mask(layer: PrunableLayer, mask: torch.Tensor, values: bool) -> torch.Tensor:
    """[q | k | v] multipliers for a width mask: removing channels shrinks the head dim, and the
    attention scales q.k by head_dim^-0.5, so q carries sqrt(head_dim / kept in its head)."""
    head = head_of(layer, mask.numel())
    heads = head_count(layer)
    kept = torch.zeros(heads, dtype=mask.dtype, device=mask.device).index_add(0, head.to(mask.device), mask)
    rescale = torch.sqrt((mask.numel() // heads) / kept.clamp_min(1e-6))[head.to(mask.device)]
    v_part = mask if values else torch.ones_like(mask)
    return torch.cat([mask * rescale, mask, v_part])


@contextlib.contextmanager
def channel_masks(model: nn.Module, layers: Sequence[PrunableLayer],
                  masks: Sequence[torch.Tensor | None], values: bool = True) -> Iterator[None]:
    """Multiply each layer's channels by its mask (a length-`width` tensor) during forwards.

    Masks act after the producer's bias (and after a PixelShuffle), and after every coupled
    producer's, so a zero mask is exactly the removal of that channel: every activation that
    follows is positively homogeneous (or zero at zero). A qkv layer's mask covers q, k and v (q rescaled for the smaller head dim);
    values=False leaves v alone, so that only the attention logits see the removal.
    """
    handles = []
    for layer, mask in zip(layers, masks):
        if mask is None:
            continue
        if layer.kind == "qkv":
            mask = _qkv_mask(layer, mask, values)
        elif not values:
            continue

        def hook(_module, _inputs, output, mask=mask, axis=layer.axis):
            return output * _activation_mask(mask, output, axis)

        for name in (layer.mask_at, *layer.coupled):  # a stream's channels are zero wherever they are made
            handles.append(get_module(model, name).register_forward_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
