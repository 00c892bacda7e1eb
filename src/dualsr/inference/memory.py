"""How much memory there is, and how much a model's forward takes per LR pixel."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def available_memory(device: torch.device | str = "cpu") -> int:
    """Free memory in bytes for `device`: CUDA's free memory, else MemAvailable of /proc/meminfo."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    free = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:  # a container's cgroup (v2) limit can be far below the host's free memory
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            room = int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
            free = room if free is None else min(free, room)
    except (OSError, ValueError):
        pass
    return free if free is not None else 2 * 1024**3  # unknown platform: plan for a modest 2 GiB


def largest_activation_per_pixel(model: nn.Module, lr: torch.Tensor) -> float:
    """Elements of the largest tensor any module outputs for `lr`, per LR pixel (one small forward)."""
    largest = 0
    hooks = []

    def on_any(_module, _inputs, output):
        nonlocal largest
        for tensor in (output if isinstance(output, (list, tuple)) else [output]):
            if isinstance(tensor, torch.Tensor):
                largest = max(largest, tensor.numel())

    for m in model.modules():
        hooks.append(m.register_forward_hook(on_any))
    try:
        with torch.inference_mode():
            model(lr)
    finally:
        for h in hooks:
            h.remove()
    return largest / (lr.shape[-2] * lr.shape[-1])


def activation_per_lr_pixel(model: nn.Module, device: torch.device | str = "cpu",
                            dtype: torch.dtype = torch.float32) -> float:
    """`largest_activation_per_pixel` on the probe the upscaler plans with: mid-grey, 16 LR px padded
    to the model's size rules, in the model's value range."""
    from dualsr.models.spec import spec_of

    spec = spec_of(model)
    side = spec.padded_size(16)
    probe = torch.full((1, 3, side, side), 128.0 * spec.value_range / 255.0, device=device, dtype=dtype)
    return largest_activation_per_pixel(model, probe)
