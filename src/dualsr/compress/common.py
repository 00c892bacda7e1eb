"""What every compression stage shares: training data halves, the objective, duals, progress."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from dualsr.fileio import atomic_write
from dualsr.models.spec import model_scale, spec_of
from dualsr.objective import model_loss

# progress(stage, step, total, info) is called after each step; None = silent
Progress = Callable[[str, int, int, dict], None] | None


@dataclass
class CompressData:
    """Training patches for compression, split by image into two disjoint halves.

    DRC's search takes alpha steps on one half and weight steps on the other (DARTS); pruning
    and fine-tuning use all training images. `val` are held-out whole images for monitoring only.
    """

    scale: int
    all: object  # PatchSampler over every training image
    weight_half: object  # PatchSampler: even-indexed training images
    arch_half: object  # PatchSampler: odd-indexed training images
    val: list


def load_data(roots: str | os.PathLike | Sequence[str | os.PathLike], scale: int, gt_size: int = 48,
              holdout_every: int = 10, seed: int = 0) -> CompressData:
    """Decode the HR images under `roots` once and build the samplers (patches of `gt_size` HR px)."""
    from dualsr.data.datasets import (
        PatchSampler,
        build_pyramid_cache,
        find_images,
        split_holdout,
        validation_pairs,
    )

    files = find_images(roots)
    train_files, val_files = split_holdout(files, holdout_every) if len(files) >= 4 else (files, [])
    cache = build_pyramid_cache(train_files, scale)
    weight_half = cache[0::2] or cache
    arch_half = cache[1::2] or cache
    return CompressData(
        scale=scale,
        all=PatchSampler(cache, scale, gt_size, seed=seed),
        weight_half=PatchSampler(weight_half, scale, gt_size, seed=seed + 1),
        arch_half=PatchSampler(arch_half, scale, gt_size, seed=seed + 2),
        val=validation_pairs(build_pyramid_cache(val_files, scale), 96, scale, max_images=10) if val_files else [],
    )


def objective(model: nn.Module, duals: Sequence[nn.Module] | None, pyramid: Sequence[torch.Tensor],
              dual_weight: float) -> dict[str, torch.Tensor]:
    """The dual-regression loss of `model` on one batch pyramid [LR_s, ..., HR] (0-255)."""
    return model_loss(model, duals, pyramid, dual_weight)


def freeze(module: nn.Module | None) -> None:
    """Turn off gradients of `module` (teachers, fixed duals)."""
    if module is not None:
        for p in module.parameters():
            p.requires_grad_(False)


def _level(pyramid: Sequence[torch.Tensor], factor: int, lr_height: int) -> torch.Tensor:
    for image in pyramid:
        if image.shape[-2] == lr_height * factor:
            return image
    raise ValueError(f"the training pyramid has no level at {factor}x the LR size")


def warm_up_duals(model: nn.Module, duals: nn.ModuleList, data: CompressData, steps: int, batch_size: int = 8,
                  lr: float = 1e-3, progress: Progress = None) -> None:
    """Fit untrained duals on the pyramid: each maps the level its tap reads to the level below.

    A model without released duals (e.g. RLFN) would otherwise make L_dual pure noise.
    """
    params = [p for p in duals.parameters() if p.requires_grad]
    if not params or steps <= 0:
        return
    spec, scale = spec_of(model), model_scale(model)
    factors = spec.output_factors(scale)
    taps = spec.dual_taps(scale)
    optimizer = torch.optim.Adam(params, lr=lr)
    for step in range(steps):
        pyramid = data.all.batch(step, 0, batch_size)
        height = pyramid[0].shape[-2]
        loss = 0.0
        for dual, tap in zip(duals, taps):
            source = _level(pyramid, factors[tap.output], height)
            target = _level(pyramid, factors[tap.output] // tap.factor, height)
            loss = loss + (dual(source) - target).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if progress:
            progress("duals", step + 1, steps, {"loss": float(loss.detach())})


def stage_progress(stream=None, interval: float | None = 30.0) -> Progress:
    """A progress callback reporting each stage with its own ETA (see `dualsr.progress.Progress`).

    On a terminal: one tqdm bar per stage. Elsewhere (a log file, a pipe): a plain line
    `search: 120/200 (60%) 2.1 it/s, eta 38s, alpha_loss=...` at most every `interval` seconds
    (0: after every step) and one closing line per stage; never a `\r` frame.
    """
    from dualsr.progress import Progress as Reporter

    reporters: dict[str, Reporter] = {}

    def report(stage: str, step: int, total: int, info: dict) -> None:
        reporter = reporters.get(stage)
        if reporter is None:
            # created at the first finished step (maybe of a resumed stage): the rate counts from there
            reporter = reporters[stage] = Reporter(total=total, desc=stage, unit="layer" if stage == "prune" else "it",
                                                   initial=step, stream=stream, interval=interval, leave=True)
        if info:
            reporter.set_postfix(**info)
        reporter.update(step - reporter.n)
        if step >= total:
            reporter.close()

    return report


tqdm_progress = stage_progress  # the former name


def save_state(state: dict, path: str | os.PathLike) -> None:
    """Atomically write a resumable stage state (tensors, numbers, lists, dicts only)."""
    with atomic_write(path) as handle:
        torch.save(state, handle)


def load_state(path: str | os.PathLike) -> dict | None:
    """A stage state written by `save_state`, or None when there is none."""
    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
