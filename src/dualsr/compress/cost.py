"""The cost of a width config (parameters or MACs) as an exact, differentiable function of the widths.

Every weight tensor of a conv or linear layer has size in x out x k^2, and each of in and out is
either fixed or one prunable width, so the parameter count (and the MAC count at a fixed input
size) is a polynomial in the widths with at most pairwise products and no squares:

    cost(w) = c + sum_l a_l w_l + sum_{l<m} b_lm w_l w_m

`WidthCost.fit` reads the coefficients off the real model by finite differences of exact counts
(rebuilt models on the meta device, nothing computed), for the pairs of layers that share a weight
(one's consumer is the other's producer), and checks the fit at a random width config.
Because the widths of different layers are drawn independently in the search, E[cost(w)] equals
cost(E[w]): the search's expected cost is `WidthCost(expected widths)`, exactly.
"""
from __future__ import annotations

import itertools
from typing import Callable, Sequence

import torch
from torch import nn

from dualsr.compress.layers import prunable_layers, rebuild, width_step

COSTS = ("params", "macs")


def _counter(model: nn.Module, kind: str, lr_size: tuple[int, int]) -> Callable[[Sequence[int]], int]:
    from dualsr.profile import count_macs, count_parameters

    if kind not in COSTS:
        raise ValueError(f"cost must be one of {', '.join(COSTS)}, got {kind!r}")

    def count(widths: Sequence[int]) -> int:
        with torch.device("meta"):
            candidate = rebuild(model, widths)
        return count_parameters(candidate) if kind == "params" else count_macs(candidate, lr_size)

    return count


def _feeds(a, b) -> bool:
    """Whether a module reading width `a`'s channels makes width `b`'s: they share that weight."""
    return any(name in a.consumers for name in b.producers)


class WidthCost:
    """cost(widths) = c + a . w + w^T B w (B strictly upper triangular), fitted to exact counts."""

    def __init__(self, constant: float, linear: torch.Tensor, pairwise: torch.Tensor, kind: str):
        self.constant, self.linear, self.pairwise, self.kind = float(constant), linear, pairwise, kind

    @classmethod
    def fit(cls, model: nn.Module, kind: str = "params", lr_size: tuple[int, int] = (96, 96)) -> "WidthCost":
        layers = prunable_layers(model)
        squared = [layer.name for layer in layers if _feeds(layer, layer)]
        if squared:  # a w_l^2 term: E[cost] would no longer be cost(E[w])
            raise ValueError(f"layer {squared[0]} feeds its own width; the search's cost term does not model that")
        count = _counter(model, kind, lr_size)
        base = [min(width_step(layer), layer.full) for layer in layers]
        # a step of d_l channels above the base (within the full width, respecting head multiples)
        steps = [max(min(width_step(layer), layer.full - b), 0) for layer, b in zip(layers, base)]
        n = len(layers)
        f0 = count(base)
        single = []
        for i in range(n):
            w = list(base)
            w[i] += steps[i]
            single.append(count(w) if steps[i] else f0)
        pairwise = torch.zeros(n, n, dtype=torch.float64)
        for i, j in itertools.combinations(range(n), 2):
            # a product w_i w_j needs one weight with w_i inputs and w_j outputs (or the reverse):
            # a consumer of one layer that is a producer of the other (the probe below checks it)
            if not (steps[i] and steps[j] and (_feeds(layers[i], layers[j]) or _feeds(layers[j], layers[i]))):
                continue
            w = list(base)
            w[i] += steps[i]
            w[j] += steps[j]
            pairwise[i, j] = (count(w) - single[i] - single[j] + f0) / (steps[i] * steps[j])
        b = torch.tensor(base, dtype=torch.float64)
        slope = torch.tensor([(single[i] - f0) / steps[i] if steps[i] else 0.0 for i in range(n)],
                             dtype=torch.float64)
        # slope_i = a_i + sum_{j != i} B_ij b_j  (the cross terms with the other layers at their base)
        sym = pairwise + pairwise.T
        linear = slope - sym @ b
        constant = f0 - float(linear @ b) - float(b @ pairwise @ b)
        cost = cls(constant, linear, pairwise, kind)
        probe = [int(torch.randint(b_, layer.full + 1, (1,), generator=torch.Generator().manual_seed(i)))
                 for i, (b_, layer) in enumerate(zip(base, layers))]
        probe = [w - w % width_step(layer) if w >= width_step(layer) else w for w, layer in zip(probe, layers)]
        exact, fitted = count(probe), float(cost(torch.tensor(probe, dtype=torch.float64)))
        if abs(exact - fitted) > 1e-6 * max(1.0, exact):
            raise ValueError(f"the {kind} of this model is not a pairwise polynomial in its widths "
                             f"(exact {exact}, fitted {fitted:.1f}); the search's cost term cannot use it")
        return cost

    def __call__(self, widths: torch.Tensor) -> torch.Tensor:
        """The cost at (possibly fractional, differentiable) widths."""
        w = widths.to(torch.float64)
        return self.constant + self.linear @ w + w @ self.pairwise @ w
