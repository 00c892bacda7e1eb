"""DRC step 3: fine-tune a pruned model with the dual-regression loss, optionally distilling.

Distillation (optional) follows DRC: MSE between the per-channel spatial means of the features
entering the module the spec names as `distill_feature` (the last output conv) in the student
and in the (unpruned) teacher, weight 1. Those features are in the residual stream, whose width
pruning never changes.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dualsr.compress.common import CompressData, Progress, freeze, load_state, save_state
from dualsr.models.spec import run_model, spec_of
from dualsr.objective import model_loss


@dataclass
class FinetuneConfig:
    """Hyper-parameters of fine-tuning."""

    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-4
    dual_weight: float = 0.1
    distill_weight: float = 1.0  # used only with a teacher
    save_every: int = 100


def distill_point(model: nn.Module) -> str:
    """Name of the module whose input is the distilled feature (from the model's spec)."""
    spec = spec_of(model)
    if spec.distill_feature is None:
        raise TypeError(f"{spec.display_name} names no distillation feature; fine-tune without a teacher")
    return spec.distill_feature(model)


class _InputMeans:
    def __init__(self, model: nn.Module):
        self.value = None
        self.handle = model.get_submodule(distill_point(model)).register_forward_pre_hook(self._hook)

    def _hook(self, _module, inputs):
        self.value = inputs[0].mean(dim=(2, 3))

    def close(self):
        self.handle.remove()


def finetune(model: nn.Module, duals: nn.ModuleList | None, data: CompressData, config: FinetuneConfig,
             teacher: nn.Module | None = None, state_path: str | None = None, progress: Progress = None) -> nn.Module:
    """Train `model` (and its duals) in place for `config.steps` steps; resumable via `state_path`."""
    params = [p for p in model.parameters()]
    if duals is not None:
        params += list(duals.parameters())
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=config.lr)
    step = 0
    state = load_state(state_path) if state_path else None
    if state is not None:
        model.load_state_dict(state["model"])
        if duals is not None and state["duals"]:
            duals.load_state_dict(state["duals"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
    if teacher is not None:
        teacher = copy.deepcopy(teacher).eval()
        freeze(teacher)
    model.train()
    student_means = _InputMeans(model) if teacher is not None else None
    teacher_means = _InputMeans(teacher) if teacher is not None else None
    try:
        while step < config.steps:
            pyramid = data.all.batch(step, 0, config.batch_size)
            loss = model_loss(model, duals, pyramid, config.dual_weight)["total"]
            if teacher is not None:
                with torch.no_grad():
                    run_model(teacher, pyramid[0])
                loss = loss + config.distill_weight * F.mse_loss(student_means.value, teacher_means.value)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if progress:
                progress("finetune", step, config.steps, {"loss": float(loss.detach())})
            if state_path and (step % config.save_every == 0 or step == config.steps):
                save_state({"model": model.state_dict(), "duals": duals.state_dict() if duals is not None else {},
                            "optimizer": optimizer.state_dict(), "step": step}, state_path)
    finally:
        for hook in (student_means, teacher_means):
            if hook is not None:
                hook.close()
    model.eval()
    return model
