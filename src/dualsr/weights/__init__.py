"""The small models this project trained and ships inside the package.

`default_weights()` names the model that `dualsr upscale` and `dualsr.Upscaler()` use when no model
is given: a safetensors file plus a YAML file beside it with the model name, scale and the builder
keyword arguments (e.g. `n_blocks`, `n_feats`) needed to rebuild the architecture exactly.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent
DEFAULT_STEM = "drn_t_x4"

# Keys of the YAML file that describe the file rather than the architecture.
_META_KEYS = {"model", "name", "scale", "kwargs", "model_kwargs", "weights", "file", "description",
              "training", "command", "metrics", "psnr", "ssim", "notes"}


@dataclass(frozen=True)
class DefaultWeights:
    """Where the shipped default model lives and how to build the module its weights fit."""

    path: Path
    model: str
    scale: int
    kwargs: dict = field(default_factory=dict)


class DefaultWeightsMissing(FileNotFoundError):
    """The package was installed without its default weights (e.g. a checkout before training)."""


def _read_config(path: Path) -> dict:
    text = path.read_text()
    if path.suffix == ".json":
        return json.loads(text)
    import yaml

    return yaml.safe_load(text) or {}


def default_weights(stem: str = DEFAULT_STEM) -> DefaultWeights:
    """The shipped default model: its weights path, registry name, scale and builder kwargs."""
    path = WEIGHTS_DIR / f"{stem}.safetensors"
    if not path.is_file():
        raise DefaultWeightsMissing(
            f"{path}: the default model's weights are not installed; give a model and weights "
            "(e.g. --model drn-s --weights DRNS4x.pt)"
        )
    config: dict = {}
    for suffix in (".yaml", ".yml", ".json"):
        candidate = path.with_suffix(suffix)
        if candidate.is_file():
            config = _read_config(candidate)
            break
    if not config:  # no YAML: dualsr's safetensors carry the model name and constructor config
        from dualsr.checkpoint import read_metadata

        meta = read_metadata(path)
        stored = json.loads(meta.get("config") or "{}")
        config = {"model": meta.get("model"), "scale": stored.pop("scale", None) or meta.get("scale"),
                  "kwargs": {k: v for k, v in stored.items() if v is not None}}
    kwargs = config.get("kwargs") or config.get("model_kwargs")
    if kwargs is None:
        kwargs = {k: v for k, v in config.items() if k not in _META_KEYS}
    kwargs = {k: v for k, v in dict(kwargs).items() if k != "scale"}
    name = config.get("model") or config.get("name") or stem.rsplit("_x", 1)[0].replace("_", "-")
    scale = int(config.get("scale") or stem.rsplit("_x", 1)[-1])
    return DefaultWeights(path=path, model=str(name), scale=scale, kwargs=kwargs)


__all__ = ["DEFAULT_STEM", "DefaultWeights", "DefaultWeightsMissing", "WEIGHTS_DIR", "default_weights"]
