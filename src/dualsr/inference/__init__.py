"""Inference: the tiled `Upscaler` (upscaler.py), tiles and whole-image statistics (tiling.py),
memory planning (memory.py) and output sample formats (formats.py)."""
from __future__ import annotations

from dualsr.inference.formats import FORMAT_FLOAT1, FORMAT_FLOAT255, FORMAT_UINT8, FORMAT_UINT16, OutputFormat
from dualsr.inference.memory import available_memory
from dualsr.inference.tiling import iter_tiles
from dualsr.inference.upscaler import NonFiniteOutputError, Upscaler

__all__ = ["FORMAT_FLOAT1", "FORMAT_FLOAT255", "FORMAT_UINT16", "FORMAT_UINT8", "NonFiniteOutputError", "OutputFormat", "Upscaler",
           "available_memory", "iter_tiles"]
