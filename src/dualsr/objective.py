"""The dual-regression objective (DRN, Guo et al. CVPR 2020), written once for any primal model.

Given the primal outputs sr[0..P] (DRN returns [LR-size, 2x, ..., s x]; a single-output model
returns only the SR image, P = 0 in that list) and the pyramid [LR_s, LR_{s/2}, ..., LR_2, HR]:

    L_primal = L1(sr[P], HR) + sum_{i<P} L1(sr[i], pyramid image of the same size)
    L_dual   = sum_k L1(dual_k(sr[k + P + 1 - K]), pyramid image of the dual output's size)
    L        = L_primal + lambda * L_dual                      (lambda = 0.1 in the paper)

with K dual models; which output each dual reads is the model spec's `dual_taps` (by default
output k + P + 1 - K, as the official `sr[k - K]`). For DRN, K = P: dual 0 maps the 2x output
to the input LR and the last dual maps SR to LR_2. A single-output model has one dual, SR -> LR.
`model_loss` runs a model (through its spec's value range) and applies all of this. L1 is the mean absolute error on the 0-255 scale and
the SR outputs are not detached, so the dual term also trains the primal model.

Unlabelled LR images x_u (no HR) contribute through a dual term only, whose target is x_u itself:

    L_u = sum over the duals whose output has the input's size of L1(dual_k(sr_u[tap_k]), x_u)
          (dual_path "tap", the default: for DRN the dual on the 2x output, the one dual term whose
          target exists; for a single-output model its one SR -> LR dual), or
    L_u = L1(dual_0(dual_1(... dual_{K-1}(sr_u[P]))), x_u)   (dual_path "chain", from the final output)

A mixed batch of n_p paired and n_u unpaired samples is normalised per sample, each sample
contributing its own terms (every L1 above is a mean over that part's pixels):

    L = [n_p * (L_primal + lambda * L_dual) + n_u * lambda * L_u] / (n_p + n_u)

so at lambda = 0 unpaired samples change no gradient, and rho = n_u / (n_p + n_u) is the share of
the batch they hold.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dualsr.models.spec import DualTap, model_scale, run_model, spec_of


def _as_list(outputs: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)


def _same_size(reference: torch.Tensor, pyramid: Sequence[torch.Tensor], what: str) -> torch.Tensor:
    """The pyramid image with the spatial size of `reference` (an error names the mismatch)."""
    size = tuple(reference.shape[-2:])
    for image in pyramid:
        if tuple(image.shape[-2:]) == size:
            return image
    sizes = ", ".join("x".join(map(str, im.shape[-2:])) for im in pyramid)
    raise ValueError(f"{what} has size {'x'.join(map(str, size))}; no pyramid image matches (pyramid: {sizes})")


def _l1(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # the loss in float32 even under autocast: a mean over many 0-255 values loses bits in half
    return F.l1_loss(prediction.float(), target.float())


def primal_loss(outputs: torch.Tensor | Sequence[torch.Tensor], pyramid: Sequence[torch.Tensor]) -> torch.Tensor:
    """Multi-scale L1: the SR output against HR plus every intermediate output against its level."""
    outputs = _as_list(outputs)
    total = _l1(outputs[-1], pyramid[-1])
    for i, out in enumerate(outputs[:-1]):
        total = total + _l1(out, _same_size(out, pyramid[:-1], f"output {i}"))
    return total


def _dual_inputs(outputs: list[torch.Tensor], n_duals: int, taps: Sequence[DualTap] | None) -> list[torch.Tensor]:
    if taps is not None:
        if len(taps) != n_duals:
            raise ValueError(f"{n_duals} dual models for {len(taps)} dual taps of the model")
        return [outputs[tap.output] for tap in taps]
    if n_duals > len(outputs):
        raise ValueError(f"{n_duals} dual models but the primal gave only {len(outputs)} outputs")
    return outputs[len(outputs) - n_duals:]


def dual_loss(outputs: torch.Tensor | Sequence[torch.Tensor], pyramid: Sequence[torch.Tensor],
              duals: Sequence[nn.Module], taps: Sequence[DualTap] | None = None) -> torch.Tensor:
    """Sum over dual models of L1(dual_k(its primal output), the pyramid image of that size)."""
    outputs = _as_list(outputs)
    total = outputs[-1].new_zeros((), dtype=torch.float32)
    for k, (dual, source) in enumerate(zip(duals, _dual_inputs(outputs, len(duals), taps))):
        down = dual(source)
        total = total + _l1(down, _same_size(down, pyramid, f"dual {k} output"))
    return total


def closed_loop_loss(outputs: torch.Tensor | Sequence[torch.Tensor], lr: torch.Tensor,
                     duals: Sequence[nn.Module]) -> torch.Tensor:
    """Unpaired term, chained: SR mapped back through all duals in turn must reproduce the LR input."""
    x = _as_list(outputs)[-1]
    for dual in reversed(list(duals)):
        x = dual(x)
    if x.shape[-2:] != lr.shape[-2:]:
        raise ValueError(f"chained duals give {tuple(x.shape[-2:])}, the LR input is {tuple(lr.shape[-2:])}")
    return _l1(x, lr)


def unpaired_dual_loss(outputs: torch.Tensor | Sequence[torch.Tensor], lr: torch.Tensor, duals: Sequence[nn.Module],
                       taps: Sequence[DualTap] | None = None, dual_path: str = "tap") -> torch.Tensor:
    """The dual term of unlabelled LR images: target = the LR input itself (see the module docstring)."""
    if dual_path == "chain":
        return closed_loop_loss(outputs, lr, duals)
    if dual_path != "tap":
        raise ValueError(f"dual_path must be 'tap' or 'chain', got {dual_path!r}")
    outputs = _as_list(outputs)
    duals = list(duals)
    sources = _dual_inputs(outputs, len(duals), taps)
    size = tuple(lr.shape[-2:])
    total, used = None, 0
    for k, (dual, source) in enumerate(zip(duals, sources)):
        if taps is not None:  # known from the spec: skip duals whose output is not LR-sized without running them
            factor = taps[k].factor
            if (source.shape[-2] // factor, source.shape[-1] // factor) != size:
                continue
        down = dual(source)
        if tuple(down.shape[-2:]) != size:
            continue
        term = _l1(down, lr)
        total = term if total is None else total + term
        used += 1
    if not used:
        raise ValueError(f"no dual model maps an output back to the LR input size {size}; use dual_path 'chain'")
    return total


def dual_regression_loss(
    outputs: torch.Tensor | Sequence[torch.Tensor],
    pyramid: Sequence[torch.Tensor],
    duals: Sequence[nn.Module] | None,
    dual_weight: float = 0.1,
    unpaired: tuple[torch.Tensor | Sequence[torch.Tensor], torch.Tensor] | None = None,
    taps: Sequence[DualTap] | None = None,
    dual_path: str = "tap",
) -> dict[str, torch.Tensor]:
    """L = L_primal + dual_weight * L_dual; returns {"total", "primal", "dual"} (+ "unpaired").

    outputs: the primal model's output(s) for pyramid[0]. pyramid: [LR_s, ..., LR_2, HR] for a
    paired batch, or [LR] alone for an unlabelled batch (then only the unpaired dual term).
    unpaired: optionally (outputs_u, lr_u) of unlabelled samples mixed into the batch: "unpaired"
    is their dual term, and "total" the per-sample mean of the module docstring. dual_weight = 0
    (or duals None/empty) is the no-dual baseline, where unpaired samples contribute nothing.
    """
    pyramid = list(pyramid)
    duals = list(duals or [])
    use_dual = dual_weight != 0 and len(duals) > 0
    if len(pyramid) == 1:
        if not use_dual:
            raise ValueError("an unlabelled batch (pyramid [LR] only) needs dual models and dual_weight != 0")
        primal = _as_list(outputs)[-1].new_zeros((), dtype=torch.float32)
        dual = unpaired_dual_loss(outputs, pyramid[0], duals, taps, dual_path)
        return {"primal": primal, "dual": dual, "total": dual_weight * dual}
    primal = primal_loss(outputs, pyramid)
    dual = dual_loss(outputs, pyramid, duals, taps) if use_dual else primal.new_zeros(())
    result = {"primal": primal, "dual": dual}
    paired_total = primal + dual_weight * dual if use_dual else primal
    if unpaired is not None:
        n_p, n_u = int(pyramid[0].shape[0]), int(unpaired[1].shape[0])
        if use_dual:
            extra = unpaired_dual_loss(unpaired[0], unpaired[1], duals, taps, dual_path)
            result["unpaired"] = extra
            result["total"] = (n_p * paired_total + n_u * dual_weight * extra) / (n_p + n_u)
        else:
            result["total"] = n_p * paired_total / (n_p + n_u)
        return result
    result["total"] = paired_total
    return result


def dual_taps_of(model: nn.Module, duals: Sequence[nn.Module] | None) -> list[DualTap] | None:
    """Which output each dual reads, from the model's spec (None without duals or a known scale)."""
    scale = model_scale(model)
    return spec_of(model).dual_taps(scale) if scale is not None and duals else None


def model_loss(model: nn.Module, duals: Sequence[nn.Module] | None, pyramid: Sequence[torch.Tensor],
               dual_weight: float = 0.1, unpaired_lr: torch.Tensor | None = None,
               dual_path: str = "tap") -> dict[str, torch.Tensor]:
    """The dual-regression loss of `model` on a pyramid batch (0-255), dual taps from its spec."""
    taps = dual_taps_of(model, duals)
    outputs = run_model(model, pyramid[0])
    unpaired = (run_model(model, unpaired_lr), unpaired_lr) if unpaired_lr is not None else None
    return dual_regression_loss(outputs, pyramid, duals, dual_weight, unpaired=unpaired, taps=taps,
                                dual_path=dual_path)
