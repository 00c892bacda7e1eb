"""Training states: everything needed to continue a run exactly, stored as tensors and primitives.

A state file holds the iteration, model and optimizer/scheduler/GradScaler states, the RNG
states of every process and the resolved config. It contains only tensors, numbers, strings and
plain containers, so `torch.load(..., weights_only=True)` reads it (no pickled classes), and it is
written to a temporary name in the same folder and renamed over the target, so a run killed
while saving leaves the previous state intact.
"""
from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dualsr.fileio import atomic_write, first_line

STATE_SUFFIX = ".state"


def capture_rng() -> dict[str, Any]:
    """This process's torch, numpy and python RNG states as tensors/primitives."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng`."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_state(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a training state atomically (temporary file in the same folder, then os.replace)."""
    with atomic_write(path) as handle:
        torch.save(state, handle)
    return Path(path)


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training state with `weights_only=True` (never unpickles arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: training state not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: one line naming it
        detail = first_line(exc)
        raise ValueError(f"{path}: not a readable training state ({detail.split('. ')[0]})") from None


def list_states(folder: str | os.PathLike) -> list[tuple[int, Path]]:
    """(iteration, path) of the numbered states in `folder`, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = re.fullmatch(r"(\d+)" + re.escape(STATE_SUFFIX), p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_state(folder: str | os.PathLike) -> Path | None:
    """The state with the highest iteration in `folder`, or None."""
    states = list_states(folder)
    return states[-1][1] if states else None
