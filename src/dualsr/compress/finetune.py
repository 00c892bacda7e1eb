"""DRC step 3: fine-tune a pruned model with the dual-regression loss, optionally distilling.

Distillation from the (unpruned) teacher, `distill`:
  "feature" (the official DRN/DRC recipe): MSE between the per-channel spatial means of the
     features entering the module the spec names as `distill_feature` (the last output conv) in
     student and teacher, channel by channel, so only while pruning leaves that width alone
     (a pruned RLFN stream changes it: then use "output").
  "output" (the official SwinIR-DRC recipe): L1 between the student's and the teacher's SR images
     (0-255, like every loss here).
The term is added with `distill_weight`. `schedule` "cosine" anneals the rate to `eta_min` over the
steps (default "constant", DRC's). With `val_every`, the weights are scored every that many steps
on the held-out training images (`CompressData.val`, never a test set) and the best are returned.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dualsr.compress.common import CompressData, Progress, freeze, load_state, save_state
from dualsr.models.spec import run_model, spec_of, sr_image
from dualsr.objective import dual_regression_loss, dual_taps_of


@dataclass
class FinetuneConfig:
    """Hyper-parameters of fine-tuning."""

    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-4
    dual_weight: float = 0.1
    distill_weight: float = 1.0  # used only with a teacher
    distill: str = "feature"  # feature | output (see the module docstring); used only with a teacher
    schedule: str = "constant"  # constant | cosine
    eta_min: float = 1e-6  # the last rate of the cosine schedule
    val_every: int = 0  # > 0: score on the held-out images every that many steps, return the best
    channels_last: bool = False  # oneDNN convolutions (forward and backward) are faster in that layout on CPUs
    save_every: int = 100

    def __post_init__(self):
        if self.distill not in DISTILL_KINDS:
            raise ValueError(f"distill must be one of {', '.join(DISTILL_KINDS)}, got {self.distill!r}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be constant or cosine, got {self.schedule!r}")


DISTILL_KINDS = ("feature", "output")


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


def validation_psnr(model: nn.Module, data: CompressData) -> float | None:
    """Mean PSNR (Y, uint8-rounded SR, border = scale) on the held-out training images, or None."""
    from dualsr.evaluate import held_out_psnr

    return held_out_psnr(model, data.val, data.scale)


def _rate(config: FinetuneConfig, step: int) -> float:
    """The learning rate of (0-based) `step`."""
    if config.schedule == "constant":
        return config.lr
    progress = step / max(1, config.steps - 1)
    return config.eta_min + (config.lr - config.eta_min) * 0.5 * (1.0 + math.cos(math.pi * progress))


def finetune(model: nn.Module, duals: nn.ModuleList | None, data: CompressData, config: FinetuneConfig,
             teacher: nn.Module | None = None, state_path: str | None = None, progress: Progress = None,
             report: dict | None = None) -> nn.Module:
    """Train `model` (and its duals) in place for `config.steps` steps; resumable via `state_path`.

    With `config.val_every`, the model ends holding the best weights on the held-out images, and
    `report` (when given) receives {"best_val_psnr", "best_step"}.
    """
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    for module in (model, duals):
        if module is not None:
            module.to(memory_format=layout)
    params = [p for p in model.parameters()]
    if duals is not None:
        params += list(duals.parameters())
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=config.lr)
    step = 0
    best: dict = {"psnr": None, "step": None, "model": None}
    state = load_state(state_path) if state_path else None
    if state is not None:
        model.load_state_dict(state["model"])
        if duals is not None and state["duals"]:
            duals.load_state_dict(state["duals"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        best = state.get("best", best)
    if teacher is not None:
        teacher = copy.deepcopy(teacher).eval().to(memory_format=layout)
        freeze(teacher)
    model.train()
    feature_distill = teacher is not None and config.distill == "feature"
    student_means = _InputMeans(model) if feature_distill else None
    teacher_means = _InputMeans(teacher) if feature_distill else None
    try:
        while step < config.steps:
            for group in optimizer.param_groups:
                group["lr"] = _rate(config, step)
            pyramid = [t.contiguous(memory_format=layout) for t in data.all.batch(step, 0, config.batch_size)]
            outputs = run_model(model, pyramid[0])
            loss = dual_regression_loss(outputs, pyramid, duals, config.dual_weight,
                                        taps=dual_taps_of(model, duals))["total"]
            if teacher is not None:
                with torch.no_grad():
                    teacher_sr = sr_image(teacher, pyramid[0])  # feature: the hooks keep its channel means
                if feature_distill:
                    if student_means.value.shape != teacher_means.value.shape:
                        raise ValueError(
                            f"feature distillation compares the input of {distill_point(model)} channel by channel, "
                            f"but the student has {student_means.value.shape[1]} channels there and the teacher "
                            f"{teacher_means.value.shape[1]}: use output distillation")
                    term = F.mse_loss(student_means.value, teacher_means.value)
                else:
                    term = F.l1_loss(outputs[-1], teacher_sr)
                loss = loss + config.distill_weight * term
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            info = {"loss": float(loss.detach())}
            if config.val_every and (step % config.val_every == 0 or step == config.steps):
                score = validation_psnr(model, data)
                if score is not None and (best["psnr"] is None or score > best["psnr"]):
                    best = {"psnr": score, "step": step,
                            "model": {k: v.detach().clone() for k, v in model.state_dict().items()}}
                if score is not None:
                    info["val_psnr"] = round(score, 3)
            if progress:
                progress("finetune", step, config.steps, info)
            if state_path and (step % config.save_every == 0 or step == config.steps):
                save_state({"model": model.state_dict(), "duals": duals.state_dict() if duals is not None else {},
                            "optimizer": optimizer.state_dict(), "step": step, "best": best}, state_path)
    finally:
        for hook in (student_means, teacher_means):
            if hook is not None:
                hook.close()
    if best["model"] is not None:
        model.load_state_dict(best["model"])
    for module in (model, duals):
        if module is not None:
            module.to(memory_format=torch.contiguous_format)
    model.eval()
    if report is not None:
        report.update({"best_val_psnr": best["psnr"], "best_step": best["step"]})
    return model

