"""One training step's pieces: the primal + dual module whose forward is the objective, optimizers."""
from __future__ import annotations

import torch
from torch import nn

from dualsr.config import ConfigError
from dualsr.objective import model_loss


class PrimalDualStep(nn.Module):
    """Primal model + its duals as one module whose forward returns the objective's terms.

    One module so that DistributedDataParallel averages the gradients of both in one pass.
    """

    def __init__(self, primal: nn.Module, duals: nn.ModuleList | None, dual_weight: float, dual_path: str = "tap"):
        super().__init__()
        self.primal = primal
        self.duals = duals
        self.dual_weight = dual_weight
        self.dual_path = dual_path  # how unpaired LR samples meet their dual term (objective.unpaired_dual_loss)

    def forward(self, pyramid: list[torch.Tensor], unpaired_lr: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return model_loss(self.primal, self.duals, pyramid, self.dual_weight, unpaired_lr=unpaired_lr,
                          dual_path=self.dual_path)


def make_optimizer(params, options: dict) -> torch.optim.Optimizer:
    options = dict(options)
    kind = options.pop("type", "Adam")
    if kind not in ("Adam", "AdamW"):
        raise ConfigError(f"optimizer type {kind!r} is not supported (Adam, AdamW)")
    cls = torch.optim.Adam if kind == "Adam" else torch.optim.AdamW
    if "betas" in options:
        options["betas"] = tuple(options["betas"])
    return cls(params, **options)
