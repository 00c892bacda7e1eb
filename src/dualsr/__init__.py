"""dualsr: lightweight single-image super-resolution with dual regression learning.

The public API is small: `load` any supported weights file into its model (the one door), build
a model by name and its dual models, register a new architecture's spec, and upscale images.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public name -> module that defines it. Resolved on first use so that `import dualsr` stays
# cheap and a command only imports what it needs.
_PUBLIC = {
    "load": "dualsr.checkpoint",
    "save_weights": "dualsr.checkpoint",
    "create_model": "dualsr.models",
    "get_spec": "dualsr.models",
    "register_model": "dualsr.models",
    "detect": "dualsr.models",
    "create_dual": "dualsr.models",
    "list_models": "dualsr.models",
    "load_weights": "dualsr.checkpoint",
    "imresize": "dualsr.data.resize",
    "Upscaler": "dualsr.inference",
    "export_onnx": "dualsr.onnx",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'dualsr' has no attribute {name!r}")


def __dir__() -> list[str]:
    # the lazily resolved public names are part of the module, as `help()` and completion expect
    return sorted(set(globals()) | set(__all__))
