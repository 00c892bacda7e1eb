"""DRC step 2: dual-regression channel pruning, layer by layer, greedy by gradient norm (DCP-style).

For each prunable layer in forward order, with target width k from the search:
  - the layer starts with no kept channel: the consuming conv(s) read none of its inputs (their
    input-channel weights are zeroed) while the producer still computes every channel;
  - L = MSE(consumer output of the original model, of the pruned model) + L_primal + lambda*L_dual;
  - each candidate channel j is scored by ||dL / dW[:, j]|| over the consumers' (zeroed) input
    weights; the best one is kept with its original weights;
  - a short SGD sub-problem (momentum 0.9, Nesterov, lr 5e-5) then refines the kept weights;
  - until k channels are kept. Finally the others are removed physically (`surgery`).
Zeroed consumer inputs are exactly removed channels, so the final removal changes no output.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dualsr.compress.common import CompressData, Progress, freeze, load_state, save_state
from dualsr.compress.layers import (
    channel_masks,
    consumer_grad_norms,
    get_module,
    head_count,
    input_column_mask,
    prunable_layers,
    selectable,
)
from dualsr.compress.surgery import remove_channels
from dualsr.models.spec import PrunableLayer, run_model
from dualsr.objective import model_loss


@dataclass
class PruneConfig:
    """Hyper-parameters of DR channel pruning."""

    batch_size: int = 8
    sub_steps: int = 1  # SGD steps after each added channel
    lr: float = 5e-5
    momentum: float = 0.9
    dual_weight: float = 0.1
    reconstruction_weight: float = 1.0
    channels_per_step: int = 1  # >1 trades fidelity to the paper for speed on a CPU


class _ConsumerOutputs:
    """Records the output of named modules during a forward (the reconstruction targets)."""

    def __init__(self, model: nn.Module, names: Sequence[str]):
        self.outputs: dict[str, torch.Tensor] = {}
        self.handles = [get_module(model, n).register_forward_hook(self._hook(n)) for n in names]

    def _hook(self, name):
        def hook(_module, _inputs, output):
            self.outputs[name] = output
        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _layer_loss(student: nn.Module, teacher: nn.Module, duals, layer: PrunableLayer, pyramid, config: PruneConfig,
                kept: torch.Tensor | None = None):
    with torch.no_grad():
        rec_t = _ConsumerOutputs(teacher, layer.consumers)
        try:
            run_model(teacher, pyramid[0])
            targets = dict(rec_t.outputs)
        finally:
            rec_t.close()
    rec_s = _ConsumerOutputs(student, layer.consumers)
    # a qkv channel also enters the attention logits through q and k: those of the channels not
    # kept (yet) are masked as removal would remove them; v is cut by the zeroed consumer columns
    logits = (channel_masks(student, [layer], [kept.to(torch.float32)], values=False)
              if layer.kind == "qkv" and kept is not None else contextlib.nullcontext())
    try:
        with logits:
            losses = model_loss(student, duals, pyramid, config.dual_weight)
    finally:
        rec_s.close()
    reconstruction = sum(F.mse_loss(rec_s.outputs[n], targets[n]) for n in layer.consumers)
    return config.reconstruction_weight * reconstruction + losses["total"]


def _prune_layer(student: nn.Module, teacher: nn.Module, duals, layer: PrunableLayer, width: int, target: int,
                 data: CompressData, config: PruneConfig, step0: int) -> list[int]:
    consumers = [get_module(student, n) for n in layer.consumers]
    originals = [c.weight.detach().clone() for c in consumers]
    kept: list[int] = []
    mask = torch.zeros(width, dtype=torch.bool)
    with torch.no_grad():
        for c in consumers:
            c.weight[:, :] = 0
    weights = [c.weight for c in consumers]
    for p in student.parameters():
        p.requires_grad_(False)
    for w in weights:
        w.requires_grad_(True)
    optimizer = torch.optim.SGD(weights, lr=config.lr, momentum=config.momentum, nesterov=True)
    step = step0
    while len(kept) < target:
        pyramid = data.all.batch(step, 0, config.batch_size)
        step += 1
        loss = _layer_loss(student, teacher, duals, layer, pyramid, config, mask)
        grads = torch.autograd.grad(loss, weights)
        score = consumer_grad_norms(grads)
        n_add = min(config.channels_per_step, target - len(kept))
        if head_count(layer) == 1:
            score[mask] = -1.0
            chosen = torch.topk(score, n_add).indices.tolist()
        else:  # one at a time, each from a head with the fewest kept, so the heads stay equal
            chosen, taken = [], mask.clone()
            for _ in range(n_add):
                j = int(torch.argmax(torch.where(selectable(layer, taken), score, torch.tensor(-1.0))))
                chosen.append(j)
                taken[j] = True
        with torch.no_grad():
            for j in chosen:
                mask[j] = True
                kept.append(j)
                for c, w0 in zip(consumers, originals):
                    c.weight[:, j] = w0[:, j]
        column_masks = [input_column_mask(mask, w) for w in weights]
        for _ in range(config.sub_steps):
            pyramid = data.all.batch(step, 0, config.batch_size)
            step += 1
            optimizer.zero_grad(set_to_none=True)
            _layer_loss(student, teacher, duals, layer, pyramid, config, mask).backward()
            for w, column_mask in zip(weights, column_masks):
                w.grad.mul_(column_mask)  # only the kept weights move; the rest stay exactly zero
            optimizer.step()
            with torch.no_grad():
                for w, column_mask in zip(weights, column_masks):
                    w.mul_(column_mask)  # Nesterov momentum must not leak into removed columns
    return sorted(kept)


def dr_prune(model: nn.Module, duals: nn.ModuleList | None, widths: Sequence[int], data: CompressData,
             config: PruneConfig, state_path: str | None = None, progress: Progress = None
             ) -> tuple[nn.Module, dict[str, list[int]]]:
    """Prune `model` to `widths` with DR channel pruning; returns (physically pruned model, kept indices).

    Resumable: after each layer the partly pruned weights and the kept sets go to `state_path`.
    """
    layers = prunable_layers(model)
    full = [layer.width for layer in layers]
    widths = [int(w) for w in widths]
    uneven = [layer.name for layer, w in zip(layers, widths) if w % head_count(layer)]
    if uneven:
        raise ValueError(f"widths must be multiples of the head count, not at {', '.join(uneven[:3])}")
    if len(widths) != len(layers):
        raise ValueError(f"{len(widths)} widths for a model with {len(layers)} prunable layers")
    bad = [i for i, (w, c) in enumerate(zip(widths, full)) if not 1 <= w <= c]
    if bad:
        raise ValueError(f"widths out of range [1, full] at positions {bad[:5]}")
    teacher = copy.deepcopy(model).eval()
    freeze(teacher)
    student = copy.deepcopy(model).eval()
    duals = copy.deepcopy(duals) if duals is not None else None
    freeze(duals)
    keep: dict[str, list[int]] = {}
    done, step = 0, 0
    state = load_state(state_path) if state_path else None
    if state is not None:
        if state["widths"] != widths:
            raise ValueError(f"{state_path} was made for other target widths; delete it to start over")
        student.load_state_dict(state["student"])
        keep = {k: list(v) for k, v in state["keep"].items()}
        done, step = int(state["done"]), int(state["step"])
    for position in range(done, len(layers)):
        layer, width, target = layers[position], full[position], widths[position]
        if target >= width:
            keep[layer.name] = list(range(width))
        else:
            keep[layer.name] = _prune_layer(student, teacher, duals, layer, width, target, data, config, step)
            step += target * (1 + config.sub_steps)
        if state_path:
            save_state({"widths": widths, "student": student.state_dict(), "keep": keep,
                        "done": position + 1, "step": step}, state_path)
        if progress:
            progress("prune", position + 1, len(layers), {"layer": layer.name, "kept": len(keep[layer.name])})
    for p in student.parameters():
        p.requires_grad_(True)
    return remove_channels(student, keep, layers), keep
