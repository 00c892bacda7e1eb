"""Runs the trainer as `dualsr train` would, for tests that kill it or compare processes.

    python tests/train_driver.py CONFIG [--exit-at N] [--checksums DIR] [--resume] key=value ...

--exit-at N ends the process abruptly (no cleanup, no checkpoint) after iteration N, as a killed
job would; --checksums DIR has every process write the sha256 of its weights to DIR/rank<r>.sha256.
"""
from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import torch
from torch import nn


def weights_checksum(module: nn.Module) -> str:
    """sha256 over a module's state_dict (names, dtypes, shapes and bytes), to compare processes."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def main() -> None:
    from dualsr.config import load_config
    from dualsr.train.trainer import Trainer

    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--exit-at", type=int, default=0)
    parser.add_argument("--checksums")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_intermixed_args()
    trainer = Trainer(load_config(args.config, args.overrides), resume="auto" if args.resume else None)

    def on_iteration(iteration: int) -> None:
        if iteration == args.exit_at:
            os._exit(3)

    try:
        trainer.fit(on_iteration=on_iteration)
        if args.checksums:
            Path(args.checksums, f"rank{trainer.ctx.rank}.sha256").write_text(weights_checksum(trainer.step_module))
    finally:
        trainer.close()


if __name__ == "__main__":
    main()
