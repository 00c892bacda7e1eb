"""Benchmark evaluation: super-resolve every LR image of some test sets and score it like the papers.

`evaluate(None, ...)` is the bicubic baseline (MATLAB `imresize` up, rounded to uint8), which must
reproduce the published bicubic rows; any dualsr model works the same way (multi-output models
such as DRN contribute their last output). Scores are PSNR/SSIM on the BT.601 Y channel with
`scale` pixels shaved from every border, and a set's figure is the mean of its per-image figures.
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dualsr.data.benchmark import BenchmarkSet
from dualsr.data.imageio import write_image
from dualsr.data.resize import imresize
from dualsr.metrics import psnr_ssim, quantize_uint8
from dualsr.models.spec import spec_of, sr_image


@dataclass
class ImageScore:
    """Scores of one image."""

    name: str
    psnr: float
    ssim: float
    grayscale: bool = False


@dataclass
class SetScore:
    """Scores of one set: mean over its images, the per-image rows and the files that were skipped."""

    name: str
    root: str
    n: int
    psnr: float
    ssim: float
    images: list[ImageScore] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # non-image files: notes, not failures

    def to_dict(self) -> dict:
        """A JSON-ready dict: infinite PSNR becomes the string "inf", an empty set's NaN means null."""
        data = asdict(self)
        data["problems"] = [{"path": p, "reason": r} for p, r in self.problems]
        data["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        for row in [data] + data["images"]:
            for key in ("psnr", "ssim"):
                if math.isnan(row[key]):
                    row[key] = None
                elif math.isinf(row[key]):
                    row[key] = str(row[key])
        return data


@torch.no_grad()
def held_out_psnr(model: nn.Module, pairs: Sequence[tuple[str, torch.Tensor, torch.Tensor]], crop_border: int,
                  device: torch.device | None = None, memory_format: torch.memory_format | None = None) -> float | None:
    """Mean Y-PSNR of `model` on held-out (name, LR, HR) training pairs (validation, checkpoint choice).

    The same scoring as the benchmarks (SR rounded to uint8, BT.601 Y, `crop_border` shaved); the
    model's train/eval mode is restored. None without any pair.
    """
    from dualsr.metrics import psnr

    if not pairs:
        return None
    was_training = model.training
    model.eval()
    scores = []
    for _name, lr, hr in pairs:
        if device is not None:
            lr = lr.to(device, memory_format=memory_format or torch.contiguous_format)
        scores.append(float(psnr(sr_image(model, lr).float().cpu(), hr, crop_border=crop_border, y_channel=True)))
    model.train(was_training)
    return sum(scores) / len(scores)


def _dihedral(x: torch.Tensor, index: int) -> torch.Tensor:
    """The index-th of the 8 flips/transposes of (N, C, H, W) images."""
    if index & 1:
        x = x.flip(-1)
    if index & 2:
        x = x.flip(-2)
    if index & 4:
        x = x.transpose(-1, -2)
    return x


def _undo_dihedral(x: torch.Tensor, index: int) -> torch.Tensor:
    if index & 4:
        x = x.transpose(-1, -2)
    if index & 2:
        x = x.flip(-2)
    if index & 1:
        x = x.flip(-1)
    return x


def _forward(model: nn.Module | None, lr: torch.Tensor, scale: int) -> torch.Tensor:
    """One SR pass on (N, 3, h, w) 0-255; pads to the model's size multiple and crops back."""
    if model is None:
        return imresize(lr.double(), float(scale), round_uint8=True).to(lr.dtype)
    spec = spec_of(model)
    height, width = lr.shape[-2:]
    if spec.test_padding is not None:  # the authors' rule, so that figures compare with the published ones
        return sr_image(model, spec.test_padding(model, lr))[..., : height * scale, : width * scale]
    # replicate-pad bottom/right to the spec's size multiple and minimum input; cropped after
    pad_h, pad_w = spec.padded_size(height) - height, spec.padded_size(width) - width
    if pad_h or pad_w:
        lr = F.pad(lr, (0, pad_w, 0, pad_h), mode="replicate")
    return sr_image(model, lr)[..., : height * scale, : width * scale]


def super_resolve(
    model: nn.Module | None, lr: torch.Tensor, scale: int, self_ensemble: bool = False,
) -> torch.Tensor:
    """SR of (N, 3, h, w) 0-255 LR images: bicubic when model is None; x8 self-ensemble optional."""
    if not self_ensemble:
        return _forward(model, lr, scale)
    # Geometric self-ensemble (EDSR): average the 8 dihedral transforms, each mapped back.
    total = None
    for index in range(8):
        out = _undo_dihedral(_forward(model, _dihedral(lr, index), scale), index).to(torch.float64)
        total = out if total is None else total + out
    return (total / 8).to(lr.dtype)


@contextmanager
def _one_thread():
    """Run small CPU ops on one torch thread: on images this size, extra threads only add hand-offs
    (bicubic B100 x4 took 25 s with 2 threads vs 8.5 s with 1 on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")


def evaluate(
    model: nn.Module | None,
    sets: Sequence[BenchmarkSet | str | os.PathLike],
    scale: int,
    self_ensemble: bool = False,
    save_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    gray_as_y: bool = False,
    progress: bool = False,
) -> list[SetScore]:
    """Score `model` (None = bicubic) on each set; returns one `SetScore` per set.

    Sets given as paths are opened as `BenchmarkSet` (raising `BenchmarkError` for a missing or
    empty folder); unreadable files end up in each `SetScore.problems`, not as exceptions.

    gray_as_y scores grayscale images on their gray values instead of the Y of the replicated
    RGB image (the convention of the published Set14 bicubic row; the issue's default is RGB).
    """
    device = torch.device(device)
    was_training = model.training if model is not None else False
    if model is not None:
        model.to(device).eval()
    results = []
    try:
        with torch.inference_mode():
            for entry in sets:
                bench = entry if isinstance(entry, BenchmarkSet) else BenchmarkSet(entry, scale)
                if bench.scale != scale:
                    raise ValueError(f"set {bench.name} was built for x{bench.scale}, not x{scale}")
                # Bicubic is all small ops (as are the metrics, which are always run on one thread).
                with _one_thread() if model is None else nullcontext():
                    results.append(_evaluate_set(model, bench, scale, self_ensemble, save_dir, device, gray_as_y,
                                                 progress))
    finally:
        if model is not None and was_training:
            model.train()
    return results


def _evaluate_set(
    model: nn.Module | None, bench: BenchmarkSet, scale: int, self_ensemble: bool,
    save_dir: str | os.PathLike | None, device: torch.device, gray_as_y: bool, progress: bool,
) -> SetScore:
    out_dir = Path(save_dir) / bench.name if save_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    images = []
    iterator = iter(bench)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=len(bench), desc=bench.name, unit="img", leave=False)
    failed: list[tuple[str, str]] = []
    for item in iterator:
        lr = item.lr[None].to(device)
        raw = super_resolve(model, lr, scale, self_ensemble)[0].float().cpu()
        if not bool(torch.isfinite(raw).all()):
            failed.append((str(item.path), "the model produced non-finite values (NaN/inf); not scored"))
            continue
        sr = quantize_uint8(raw)
        hr = item.hr
        if tuple(sr.shape) != tuple(hr.shape):
            raise RuntimeError(f"{item.path}: SR is {tuple(sr.shape)} but HR is {tuple(hr.shape)}; wrong scale?")
        if gray_as_y and item.grayscale:
            # Score the gray plane itself; metrics replicate one channel, so RGB scores equal gray ones.
            sr_m, hr_m, use_y = quantize_uint8(sr.mean(dim=0, keepdim=True)), hr[:1], False
        else:
            sr_m, hr_m, use_y = sr, hr, True
        with _one_thread():
            scores = psnr_ssim(sr_m, hr_m, scale, y_channel=use_y)
        images.append(ImageScore(item.name, *scores, item.grayscale))
        if out_dir is not None:
            write_image(out_dir / f"{item.name}.png", sr, grayscale=item.grayscale)
    return SetScore(
        name=bench.name, root=str(bench.root), n=len(images),
        psnr=_mean([i.psnr for i in images]), ssim=_mean([i.ssim for i in images]), images=images,
        problems=[(str(p), r) for p, r in bench.problems] + failed,  # read problems are known after iterating
        skipped=[(str(p), r) for p, r in bench.skipped],
    )


__all__ = ["ImageScore", "SetScore", "evaluate", "super_resolve"]
