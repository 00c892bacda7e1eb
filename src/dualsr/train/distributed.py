"""Process-group setup for `torchrun`: gloo on CPU, nccl on GPU, one device per process."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the run: rank, world size and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int) -> torch.device:
    """'auto' -> this process's GPU when CUDA is there, else CPU."""
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(f"device {preference!r} requested but CUDA is not available")
    return torch.device("cuda", local_rank)


def setup(preference: str = "auto", num_threads: int | None = None) -> DistContext:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); otherwise one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(preference, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    if num_threads:
        torch.set_num_threads(int(num_threads))
    elif device.type == "cpu" and world_size > 1:
        # processes on one machine share its cores; oversubscription makes gloo crawl
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    return DistContext(rank, world_size, local_rank, device)


def teardown() -> None:
    """Leave the process group if we joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op for one process)."""
    if ctx.distributed:
        dist.barrier()


def all_gather_objects(ctx: DistContext, obj):
    """List of `obj` from every rank (just [obj] for one process)."""
    if not ctx.distributed:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def mean_over_ranks(ctx: DistContext, values: torch.Tensor) -> torch.Tensor:
    """Average a tensor over processes (for logging; gradients are averaged by DDP)."""
    if not ctx.distributed:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / ctx.world_size


def max_over_ranks(ctx: DistContext, value: float) -> float:
    """The largest of a number over processes (so that all of them act on the same value)."""
    if not ctx.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())
