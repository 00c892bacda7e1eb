"""Per-layer prunable widths, shared by every model that DRC can compress.

A model lists its prunable internal widths in a fixed order (its full widths); a pruned model is
the same architecture built with a smaller width at some positions.
"""
from __future__ import annotations

from typing import Sequence


def resolve_widths(widths: Sequence[int] | None, full: Sequence[int], what: str) -> list[int]:
    """`widths` checked against the model's full widths (None means unpruned); errors name `what`."""
    resolved = list(full) if widths is None else [int(w) for w in widths]
    if len(resolved) != len(full):
        raise ValueError(f"{what} has {len(full)} prunable widths, got {len(resolved)}")
    bad = [i for i, (w, c) in enumerate(zip(resolved, full)) if not 1 <= w <= c]
    if bad:
        raise ValueError(f"widths out of range [1, full] at positions {bad[:5]}")
    return resolved
