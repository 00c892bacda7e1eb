"""Parameters and multiply-accumulates (MACs) of a model, as SR papers count them.

Convention (reproduces the DRN paper's 109.9 / 224.8 / 198.0 / 366.5 G at LR 96x96): every
Conv2d / ConvTranspose2d / Linear output element costs (C_in / groups) * k_h * k_w MACs plus one
for its bias, when it has one; matrix products that no layer performs (attention's q.k and
attn.v) are added as the model's spec counts them (`extra_macs`). Everything else is free: bicubic upsampling, PixelShuffle,
activations, pooling, the channel-attention gate product and residual additions. The MeanShift
1x1 convs and the channel-attention 1x1 convs are convs and are counted, but they do not decide
anything (MeanShift 0.004 G at x4, 0.016 G at x8; attention < 0.0001 G). The bias adds do: without
them DRN-S/L x8 come out 0.57 / 0.87 G below the paper; with them all four are within 0.12 G.

MACs are counted with forward hooks during a forward on meta-device stand-ins for the weights, so
even DRN-L x8 at a 1280x720 output costs no real compute or memory.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn
from torch.func import functional_call

_COUNTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)


def count_parameters(module: nn.Module | Iterable[nn.Module], trainable_only: bool = False) -> int:
    """Number of parameter elements (shared parameters once); accepts a module or a list of them."""
    modules = [module] if isinstance(module, nn.Module) else list(module)
    seen: set[int] = set()
    total = 0
    for m in modules:
        for p in m.parameters():
            if id(p) in seen or (trainable_only and not p.requires_grad):
                continue
            seen.add(id(p))
            total += p.numel()
    return total


def _layer_macs(layer: nn.Module, inp: torch.Tensor, output: torch.Tensor) -> int:
    bias = output.numel() if layer.bias is not None else 0  # one add per output element
    kernel = math.prod(getattr(layer, "kernel_size", (1,)))
    if isinstance(layer, nn.Linear):
        return layer.in_features * output.numel() + bias
    if isinstance(layer, nn.ConvTranspose2d):
        # every input element is scattered into C_out/groups * k*k outputs
        return inp.numel() * layer.out_channels // layer.groups * kernel + bias
    return layer.in_channels // layer.groups * kernel * output.numel() + bias


def count_macs(
    model: nn.Module,
    lr_size: tuple[int, int] = (96, 96),
    batch: int = 1,
    in_channels: int = 3,
    per_layer: bool = False,
) -> int | tuple[int, dict[str, int]]:
    """MACs of one forward pass on a `batch` x `in_channels` x `lr_size` (h, w) input.

    With per_layer=True also returns {module name: MACs}. Runs on a meta-device copy: no compute.
    """
    # the forward runs on meta copies of the parameters and buffers, swapped in for the call only
    meta_tensors = {name: torch.empty_like(t, device="meta")
                    for name, t in [*model.named_parameters(), *model.named_buffers()]}
    per_name: dict[str, int] = {}
    handles = []
    for name, layer in model.named_modules():
        if isinstance(layer, _COUNTED):
            def hook(mod, _inputs, output, name=name):
                per_name[name] = per_name.get(name, 0) + _layer_macs(mod, _inputs[0], output)
            handles.append(layer.register_forward_hook(hook))
    try:
        with torch.no_grad():
            functional_call(model, meta_tensors, (torch.empty(batch, in_channels, *lr_size, device="meta"),))
    finally:
        for h in handles:
            h.remove()
    from dualsr.models.spec import spec_of

    extra = spec_of(model).extra_macs
    if extra is not None:
        per_name["(matrix products outside layers)"] = batch * int(extra(model, tuple(lr_size)))
    total = sum(per_name.values())
    return (total, per_name) if per_layer else total


def dual_input_sizes(model: nn.Module, lr_size: tuple[int, int]) -> list[tuple[int, int]]:
    """Input size of each dual model when the primal runs on `lr_size` (from the spec's dual taps)."""
    from dualsr.models.spec import model_scale, spec_of

    spec, scale = spec_of(model), model_scale(model)
    factors = spec.output_factors(scale)
    h, w = lr_size
    return [(h * factors[tap.output], w * factors[tap.output]) for tap in spec.dual_taps(scale)]


def count_dual_macs(model: nn.Module, duals: nn.ModuleList, lr_size: tuple[int, int] = (96, 96)) -> int:
    """MACs of the dual models of `model` for one primal forward on `lr_size` (as count_macs counts)."""
    sizes = dual_input_sizes(model, lr_size)
    if len(sizes) != len(duals):
        raise ValueError(f"{len(duals)} dual models for {len(sizes)} dual taps of the model")
    return sum(count_macs(d, size) for d, size in zip(duals, sizes))
