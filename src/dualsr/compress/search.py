"""DRC step 1: channel-number search, a DARTS-style relaxation over candidate widths per layer.

For layer l (full width c_l) and compression rate r the candidates are
K_l = round4(c_l * (1 - r) * p), p in {0.5, ..., 1.0}, clipped to [4, c_l] (duplicates merged;
a layer whose width must keep a multiple m, such as a head count, rounds to multiples of lcm(4, m)).
The relaxed layer keeps its channels ranked by the L1 norm of their weights in the consuming
conv(s) and multiplies channel j by the soft nested mask m_j = sum_i softmax(alpha_l)_i [rank j < K_l,i].
Alpha steps (Adam lr 3e-4, weight decay 1e-3) use one half of the training images and weight steps
the other; both minimise the dual-regression loss. First-order DARTS by default; `second_order`
uses the unrolled step with the finite-difference Hessian-vector product of DARTS.
The result is K_l at argmax alpha_l for each layer: a width config.

Beyond the paper (off by default): a softmax temperature, constant or annealed; `auto_alpha_lr`,
which scales the alpha rate to the number of steps (at CPU budgets the paper's 3e-4 leaves the
probabilities where they started); and a budget: with `budget_weight` > 0 the alpha loss adds
budget_weight * (E[cost] / target - 1)^2, E[cost] exact from `dualsr.compress.cost`, target the
cost of uniform widths (1 - rate) x full, over candidates that reach above that width
(BUDGET_FRACTIONS), and the argmax is fitted to the target (`fit_to_budget`), so searched and
uniform widths compare at equal cost.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import torch
from torch import nn

from dualsr.compress.common import CompressData, Progress, load_state, objective, save_state
from dualsr.compress.layers import (
    channel_masks,
    consumer_l1_norms,
    head_count,
    prunable_layers,
    round_to,
    width_step,
)
from dualsr.models.spec import PrunableLayer

FRACTIONS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# with a budget the candidates reach above the uniform width, so that a layer can gain what another gives up
BUDGET_FRACTIONS = (0.6, 0.8, 1.0, 1.2, 1.4)


def round4(value: float) -> int:
    """Nearest multiple of 4 (half up), as DRC rounds widths."""
    return round_to(value, 4)


def candidate_widths(full: int, rate: float, fractions: Sequence[float] = FRACTIONS, step: int = 4) -> list[int]:
    """K_l: the sorted distinct widths round_step(full*(1-rate)*p), clipped to [min(step, full), full]."""
    if not 0 <= rate < 1:
        raise ValueError(f"compression rate must be in [0, 1), got {rate}")
    low = min(step, full)
    return sorted({min(full, max(low, round_to(full * (1 - rate) * p, step))) for p in fractions})


def layer_candidates(layer: PrunableLayer, rate: float, fractions: Sequence[float] = FRACTIONS) -> list[int]:
    """K_l of one prunable layer (its multiple respected)."""
    return candidate_widths(layer.full, rate, fractions, width_step(layer))


@dataclass
class SearchConfig:
    """Hyper-parameters of the width search (defaults: the DRC paper's where it gives them)."""

    rate: float = 0.5
    steps: int = 200
    batch_size: int = 8
    alpha_lr: float = 3e-4
    alpha_weight_decay: float = 1e-3
    weight_lr: float = 1e-5
    dual_weight: float = 0.1
    second_order: bool = False
    fractions: tuple = FRACTIONS
    seed: int = 0
    save_every: int = 50
    # softmax(alpha / temperature): below 1 sharpens the candidate distribution for the same logits
    temperature: float = 1.0
    # set: the temperature falls geometrically from `temperature` to this over the steps (as GDAS/SNAS
    # anneal), so the relaxed model ends close to the discrete one its argmax describes and the
    # budget term prices that argmax rather than a blend of widths; None: constant
    final_temperature: float | None = None
    # > 0: the alpha loss adds budget_weight * (E[cost] / target - 1)^2, target = the cost of uniform
    # widths at (1 - rate), and the argmax widths are then fitted to that budget (`fit_to_budget`), so
    # the search trades channels between layers at the uniform model's cost. 0: the paper's search.
    budget_weight: float = 0.0
    cost: str = "params"  # params | macs (at LR 96x96), see dualsr.compress.cost

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.final_temperature is not None and not self.final_temperature > 0:
            raise ValueError(f"final_temperature must be > 0, got {self.final_temperature}")
        if not self.budget_weight >= 0:
            raise ValueError(f"budget_weight must be >= 0, got {self.budget_weight}")


def auto_alpha_lr(steps: int, darts_lr: float = 3e-4, darts_steps: int = 10_000) -> float:
    """An alpha learning rate for a search of `steps` steps: Adam moves a logit by about lr per step,
    so lr * steps is kept at DARTS' (3e-4 over ~10^4 steps, a logit range of about 3); never below 3e-4."""
    return max(darts_lr, darts_lr * darts_steps / max(1, steps))


def _nested_mask(norms: torch.Tensor, candidates: torch.Tensor, probabilities: torch.Tensor,
                 heads: int = 1) -> torch.Tensor:
    """Soft mask: sum over candidates K of p(K) [channel ranks within the top K]; with heads, ranks
    are taken within each head and K is shared equally, as the pruned width will be."""
    size = len(norms) // heads
    grouped = norms.view(heads, size)
    order = torch.argsort(grouped, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(size, device=order.device).expand(heads, size).contiguous())
    inside = (rank.reshape(-1)[:, None] < (candidates // heads)[None, :]).to(probabilities.dtype)
    return (inside * probabilities[None, :]).sum(dim=1)


class WidthSearch:
    """The relaxed supernet: a model, its duals, and one alpha vector per prunable layer."""

    def __init__(self, model: nn.Module, duals: nn.ModuleList | None, config: SearchConfig,
                 layers: Sequence[PrunableLayer] | None = None):
        self.model = model
        self.duals = duals
        self.config = config
        self.layers = list(prunable_layers(model) if layers is None else layers)
        self.candidates = [layer_candidates(layer, config.rate, config.fractions) for layer in self.layers]
        generator = torch.Generator().manual_seed(config.seed)
        self.alphas = [
            nn.Parameter(1e-3 * torch.randn(len(k), generator=generator)) for k in self.candidates
        ]
        self.alpha_optimizer = torch.optim.Adam(self.alphas, lr=config.alpha_lr, betas=(0.5, 0.999),
                                                weight_decay=config.alpha_weight_decay)
        self.weights = [p for p in model.parameters() if p.requires_grad]
        if duals is not None:
            self.weights += [p for p in duals.parameters() if p.requires_grad]
        self.weight_optimizer = torch.optim.Adam(self.weights, lr=config.weight_lr)
        self.step = 0
        self.cost = self.target = None
        if config.budget_weight > 0:
            from dualsr.compress.baselines import scaled_widths
            from dualsr.compress.cost import WidthCost

            self.cost = WidthCost.fit(model, config.cost)
            self.target = float(self.cost(torch.tensor(scaled_widths(self.layers, 1 - config.rate),
                                                       dtype=torch.float64)))

    @property
    def temperature(self) -> float:
        """The softmax temperature at the current step (the final one once the search has run)."""
        start, end = self.config.temperature, self.config.final_temperature
        if end is None:
            return start
        done = min(1.0, self.step / max(1, self.config.steps))
        return start * (end / start) ** done

    def _softmax(self, alpha: torch.Tensor) -> torch.Tensor:
        return torch.softmax(alpha / self.temperature, dim=0)

    def expected_widths(self) -> torch.Tensor:
        """E[K_l] under the current candidate probabilities (differentiable w.r.t. the alphas)."""
        return torch.stack([(self._softmax(alpha).double() * torch.tensor(cands, dtype=torch.float64)).sum()
                            for alpha, cands in zip(self.alphas, self.candidates)])

    def budget_penalty(self) -> torch.Tensor:
        """budget_weight * (E[cost] / target - 1)^2 (zero without a budget)."""
        if self.cost is None:
            return torch.zeros((), dtype=torch.float64)
        return self.config.budget_weight * (self.cost(self.expected_widths()) / self.target - 1.0) ** 2

    def masks(self) -> list[torch.Tensor]:
        """The current soft masks, differentiable w.r.t. the alphas."""
        masks = []
        for layer, alpha, cands in zip(self.layers, self.alphas, self.candidates):
            norms = consumer_l1_norms(self.model, layer)
            k = torch.tensor(cands, device=norms.device)
            masks.append(_nested_mask(norms, k, self._softmax(alpha), head_count(layer)))
        return masks

    def loss(self, pyramid: Sequence[torch.Tensor]) -> torch.Tensor:
        """Dual-regression loss of the relaxed model on one batch."""
        with channel_masks(self.model, self.layers, self.masks()):
            return objective(self.model, self.duals, pyramid, self.config.dual_weight)["total"]

    def widths(self) -> list[int]:
        """K_l at argmax alpha_l for each layer; with a budget, then fitted to it (`fit_to_budget`)."""
        picks = [int(torch.argmax(alpha.detach())) for alpha in self.alphas]
        if self.cost is not None:
            picks = fit_to_budget(picks, self.candidates, [self._softmax(a.detach()) for a in self.alphas],
                                  self.cost, self.target)
        return [cands[i] for i, cands in zip(picks, self.candidates)]

    def probabilities(self) -> list[list[float]]:
        """softmax(alpha_l / temperature) per layer (at the current temperature), for logs and reports."""
        return [self._softmax(a.detach()).tolist() for a in self.alphas]

    def movement(self) -> dict:
        """How far the search moved from its (near-uniform) start: the largest probability per layer
        (min, mean, max over layers) next to 1 / candidates, and the mean normalised entropy (1 = uniform)."""
        tops, entropies, uniform = [], [], []
        for p in self.probabilities():
            p = torch.tensor(p, dtype=torch.float64)
            tops.append(float(p.max()))
            uniform.append(1.0 / len(p))
            entropies.append(float(-(p * p.clamp_min(1e-12).log()).sum() / math.log(len(p))) if len(p) > 1 else 0.0)
        out = {"top_probability_min": min(tops), "top_probability_mean": sum(tops) / len(tops),
               "top_probability_max": max(tops), "uniform_probability_mean": sum(uniform) / len(uniform),
               "normalised_entropy_mean": sum(entropies) / len(entropies)}
        if self.cost is not None:
            out.update({"cost": self.config.cost, "target_cost": self.target,
                        "expected_cost": float(self.cost(self.expected_widths().detach())),
                        "cost_of_widths": float(self.cost(torch.tensor(self.widths(), dtype=torch.float64)))})
        return out

    def weight_step(self, pyramid: Sequence[torch.Tensor]) -> float:
        """One step of the model (and dual) weights on a batch of the weight half."""
        self.weight_optimizer.zero_grad(set_to_none=True)
        loss = self.loss(pyramid)
        loss.backward()
        self.weight_optimizer.step()
        return float(loss.detach())

    def alpha_step(self, arch_batch: Sequence[torch.Tensor], weight_batch: Sequence[torch.Tensor]) -> float:
        """One step of the alphas on a batch of the arch half (unrolled when second_order)."""
        self.alpha_optimizer.zero_grad(set_to_none=True)
        if not self.config.second_order:
            loss = self.loss(arch_batch)
            grads = torch.autograd.grad(loss, self.alphas)
        else:
            loss, grads = self._unrolled_alpha_grads(arch_batch, weight_batch)
        if self.cost is not None:
            penalty_grads = torch.autograd.grad(self.budget_penalty(), self.alphas)
            grads = [g + pg.to(g.dtype) for g, pg in zip(grads, penalty_grads)]
        for alpha, grad in zip(self.alphas, grads):
            alpha.grad = grad
        self.alpha_optimizer.step()
        return float(loss.detach())

    def _unrolled_alpha_grads(self, arch_batch, weight_batch):
        """DARTS second order: grad_a L_val(w', a) - xi * (grad_a L_tr(w+) - grad_a L_tr(w-)) / 2 eps."""
        xi = self.config.weight_lr
        backup = [p.detach().clone() for p in self.weights]
        train_grads = torch.autograd.grad(self.loss(weight_batch), self.weights, allow_unused=True)
        with torch.no_grad():
            for p, g in zip(self.weights, train_grads):
                if g is not None:
                    p.sub_(xi * g)  # w' = w - xi * grad_w L_train(w, a)
        val_loss = self.loss(arch_batch)
        val_grads = torch.autograd.grad(val_loss, self.alphas + self.weights, allow_unused=True)
        alpha_grads = list(val_grads[: len(self.alphas)])
        w_grads = [g if g is not None else torch.zeros_like(p)
                   for g, p in zip(val_grads[len(self.alphas):], self.weights)]
        eps = 0.01 / (torch.cat([g.flatten() for g in w_grads]).norm() + 1e-12)
        hessian_terms = []
        for sign in (+1.0, -1.0):
            with torch.no_grad():
                for p, b, g in zip(self.weights, backup, w_grads):
                    p.copy_(b + sign * eps * g)
            hessian_terms.append(torch.autograd.grad(self.loss(weight_batch), self.alphas, allow_unused=True))
        with torch.no_grad():
            for p, b in zip(self.weights, backup):
                p.copy_(b)
        grads = []
        for g, plus, minus in zip(alpha_grads, *hessian_terms):
            g = torch.zeros_like(plus) if g is None else g
            grads.append(g - xi * (plus - minus) / (2 * eps))
        return val_loss, grads

    def state_dict(self) -> dict:
        """Everything needed to resume: alphas, weights, both optimizers, step counter."""
        return {
            "step": self.step,
            "alphas": [a.detach().clone() for a in self.alphas],
            "model": self.model.state_dict(),
            "duals": self.duals.state_dict() if self.duals is not None else {},
            "alpha_optimizer": self.alpha_optimizer.state_dict(),
            "weight_optimizer": self.weight_optimizer.state_dict(),
            "candidates": self.candidates,
            "config": asdict(self.config),
        }

    def load_state_dict(self, state: dict) -> None:
        """Resume from `state_dict()` output (the candidates must match)."""
        if state["candidates"] != self.candidates:
            raise ValueError("search state was made for other candidate widths (model or rate differ)")
        self.step = int(state["step"])
        with torch.no_grad():
            for a, saved in zip(self.alphas, state["alphas"]):
                a.copy_(saved)
        self.model.load_state_dict(state["model"])
        if self.duals is not None and state["duals"]:
            self.duals.load_state_dict(state["duals"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])


def fit_to_budget(picks: list[int], candidates: list[list[int]], probabilities: list[torch.Tensor],
                  cost, target: float) -> list[int]:
    """Move candidate indices until the cost is at most `target` and no single move up still fits.

    Down (while over budget): the move that gives up the least log-probability per unit of cost
    saved. Up (while a move fits): the one that gains the most log-probability per unit of cost
    added, then the cheapest, so the result spends the budget as the searched distribution prefers.
    """
    picks = list(picks)

    def total(p: list[int]) -> float:
        return float(cost(torch.tensor([c[i] for i, c in zip(p, candidates)], dtype=torch.float64)))

    def logp(layer: int, index: int) -> float:
        return math.log(max(float(probabilities[layer][index]), 1e-12))

    current = total(picks)
    while current > target:
        moves = []
        for l, i in enumerate(picks):
            if i > 0:
                trial = picks[:l] + [i - 1] + picks[l + 1:]
                saved = current - total(trial)
                if saved > 0:
                    moves.append(((logp(l, i) - logp(l, i - 1)) / saved, l))
        if not moves:
            break
        _, l = min(moves)
        picks[l] -= 1
        current = total(picks)
    while True:
        moves = []
        for l, i in enumerate(picks):
            if i + 1 < len(candidates[l]):
                trial = picks[:l] + [i + 1] + picks[l + 1:]
                added = total(trial) - current
                if current + added <= target and added > 0:
                    moves.append((-(logp(l, i + 1) - logp(l, i)) / added, added, l))
        if not moves:
            break
        _, _, l = min(moves)
        picks[l] += 1
        current = total(picks)
    return picks


def search_widths(model: nn.Module, duals: nn.ModuleList | None, data: CompressData, config: SearchConfig,
                  state_path: str | None = None, progress: Progress = None) -> tuple[list[int], WidthSearch]:
    """Run the width search (resuming from `state_path` when it holds a state); returns the widths.

    The model and duals are trained in place (as DARTS' supernet); prune from the original weights.
    """
    search = WidthSearch(model, duals, config)
    if state_path is not None:
        state = load_state(state_path)
        if state is not None:
            search.load_state_dict(state)
    model.train()
    while search.step < config.steps:
        i = search.step
        weight_batch = data.weight_half.batch(i, 0, config.batch_size)
        arch_batch = data.arch_half.batch(i, 0, config.batch_size)
        alpha_loss = search.alpha_step(arch_batch, weight_batch)
        weight_loss = search.weight_step(weight_batch)
        search.step += 1
        if progress:
            progress("search", search.step, config.steps, {"alpha_loss": alpha_loss, "weight_loss": weight_loss})
        if state_path is not None and (search.step % config.save_every == 0 or search.step == config.steps):
            save_state(search.state_dict(), state_path)
    return search.widths(), search
