"""Learning-rate schedules in closed form of the iteration, so that resume is exact.

`make_schedule` reads `train.scheduler`: CosineAnnealing (DRN's recipe) or MultiStepLR (SwinIR's:
the rate halves at fixed iterations), each with an optional linear warmup.
"""
from __future__ import annotations

import math
from typing import Any

import torch


class CosineSchedule:
    """Cosine annealing from the optimizer's base lr to eta_min over `total` iterations, optional warmup.

    Closed form in the iteration (unlike torch's recursive CosineAnnealingLR), so a resumed run and
    a run whose total length changed compute the same rates without accumulated rounding.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, total: int, eta_min: float = 1e-7, warmup: int = 0):
        self.optimizer = optimizer
        self.total = max(1, int(total))
        self.eta_min = float(eta_min)
        self.warmup = int(warmup)
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.iteration = 0

    def rate(self, base: float, iteration: int, min_progress: float = 0.0) -> float:
        """Learning rate used for the update of (1-based) `iteration`.

        min_progress lets a wall-clock budget push the annealing ahead of the iteration count.
        """
        if base == 0:  # a frozen group (e.g. optim_dual: {lr: 0}) stays frozen, never annealed up to eta_min
            return 0.0
        t = iteration - 1
        if self.warmup and t < self.warmup:
            return base * (t + 1) / self.warmup
        progress = min(1.0, max(0.0, t / self.total, min_progress))
        return self.eta_min + (base - self.eta_min) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def set_iteration(self, iteration: int, min_progress: float = 0.0) -> float:
        """Set the rates for `iteration`; returns the first group's rate."""
        self.iteration = iteration
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.rate(base, iteration, min_progress)
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total, "eta_min": self.eta_min, "warmup": self.warmup,
                "base_lrs": list(self.base_lrs), "iteration": self.iteration}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base_lrs = list(state["base_lrs"])
        self.iteration = int(state["iteration"])



class MultiStepSchedule(CosineSchedule):
    """The base lr times gamma^(milestones passed), optional warmup (BasicSR's MultiStepLR, closed form)."""

    def __init__(self, optimizer: torch.optim.Optimizer, total: int, milestones, gamma: float = 0.5,
                 warmup: int = 0):
        super().__init__(optimizer, total, eta_min=0.0, warmup=warmup)
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)

    def rate(self, base: float, iteration: int, min_progress: float = 0.0) -> float:
        if base == 0:  # a frozen group (e.g. optim_dual: {lr: 0}) stays frozen, never annealed up to eta_min
            return 0.0
        t = iteration - 1
        if self.warmup and t < self.warmup:
            return base * (t + 1) / self.warmup
        # a wall-clock budget moves the step schedule ahead as it moves the cosine
        effective = max(iteration, int(min_progress * self.total))
        return base * self.gamma ** sum(effective > m for m in self.milestones)


def make_schedule(optimizer: torch.optim.Optimizer, options: dict, total: int) -> CosineSchedule:
    """The schedule `train.scheduler` names, for `optimizer` over `total` iterations."""
    from dualsr.config import ConfigError

    options = dict(options)
    kind = options.pop("type", "CosineAnnealing")
    warmup = int(options.pop("warmup_iter", 0))
    if kind in ("CosineAnnealing", "CosineAnnealingLR"):
        period = int(options.pop("periods", total))
        schedule = CosineSchedule(optimizer, period, float(options.pop("eta_min", 1e-7)), warmup)
    elif kind in ("MultiStepLR", "MultiStep"):
        if "milestones" not in options:
            raise ConfigError("train.scheduler.milestones is required for MultiStepLR")
        schedule = MultiStepSchedule(optimizer, total, options.pop("milestones"), float(options.pop("gamma", 0.5)),
                                     warmup)
    else:
        raise ConfigError(f"scheduler type {kind!r} is not supported (CosineAnnealing, MultiStepLR)")
    if options:
        raise ConfigError(f"unknown train.scheduler option(s) for {kind}: {', '.join(sorted(options))}")
    return schedule
