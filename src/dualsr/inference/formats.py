"""How model values (RGB floats on 0-255) become output samples: uint8, uint16 or float."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class OutputFormat:
    """How model values (0-255 floats) become output samples."""

    dtype: np.dtype
    factor: float  # output = value * factor
    maximum: float
    rounded: bool

    def convert(self, values: torch.Tensor) -> np.ndarray:
        """(C, h, w) float 0-255 -> (h, w, C) array of the output dtype (clamped, rounded half up)."""
        scaled = values.to(torch.float32) * self.factor if self.factor != 1 else values.to(torch.float32, copy=True)
        scaled = scaled.clamp_(0, self.maximum)
        if self.rounded:
            scaled = torch.floor_(scaled.add_(0.5))
        return scaled.permute(1, 2, 0).numpy().astype(self.dtype, copy=False)


FORMAT_UINT8 = OutputFormat(np.dtype(np.uint8), 1.0, 255.0, True)
FORMAT_UINT16 = OutputFormat(np.dtype(np.uint16), 257.0, 65535.0, True)
FORMAT_FLOAT255 = OutputFormat(np.dtype(np.float32), 1.0, 255.0, False)
FORMAT_FLOAT1 = OutputFormat(np.dtype(np.float32), 1.0 / 255.0, 1.0, False)
