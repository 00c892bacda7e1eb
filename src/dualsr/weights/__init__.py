"""The small models this project trained and ships inside the package.

`default_weights(scale)` names the model that `dualsr upscale` and `dualsr.Upscaler()` use when no
model is given: one per scale in `DEFAULTS` (x4 when no scale is asked for). The file is a dualsr safetensors file: its own metadata names the model, the scale and
the architecture config, so `dualsr.checkpoint.load` rebuilds it like any other file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent
DEFAULT_SCALE = 4
DEFAULTS = {4: "rlfn_drc_x4", 2: "rlfn_drc_x2"}  # scale -> file stem in this folder
DEFAULT_STEM = DEFAULTS[DEFAULT_SCALE]


@dataclass(frozen=True)
class DefaultWeights:
    """Where the shipped default model lives, and what its metadata says it is."""

    path: Path
    model: str
    scale: int
    config: dict = field(default_factory=dict)


class DefaultWeightsMissing(FileNotFoundError):
    """The package was installed without its default weights (e.g. a checkout before training)."""


class WeightsRequiredError(ValueError):
    """A model that does not ship was named without weights (it would produce noise)."""

    def __init__(self, model: str, shipped: str):
        super().__init__(f"model {model!r} needs weights= (a random model would produce noise; "
                         f"shipped: {shipped})")
        self.model, self.shipped = model, shipped


def _described(path: Path) -> DefaultWeights | None:
    """What a shipped file's dualsr metadata says it holds (None without that metadata)."""
    from dualsr.checkpoint import describe_metadata, read_metadata

    found = describe_metadata(read_metadata(path))
    if found is None:
        return None
    return DefaultWeights(path=path, model=found.name, scale=found.scale, config=dict(found.config))


def default_weights(scale: int | None = None, stem: str | None = None) -> DefaultWeights:
    """The shipped default model for `scale` (None: x4): weights path, registry name, scale, config."""
    if stem is None:
        scale = DEFAULT_SCALE if scale is None else int(scale)
        if scale not in DEFAULTS:
            shipped = ", ".join(f"x{s}" for s in sorted(DEFAULTS))
            raise DefaultWeightsMissing(f"no default model ships for x{scale} (defaults: {shipped}); give a model "
                                        "and weights (e.g. --weights rlfn_x2.pth)")
        stem = DEFAULTS[scale]
    path = WEIGHTS_DIR / f"{stem}.safetensors"
    if not path.is_file():
        raise DefaultWeightsMissing(
            f"{path}: the default model's weights are not installed; give a model and weights "
            "(e.g. --model drn-s --weights DRNS4x.pt)"
        )
    found = _described(path)
    if found is None:
        raise DefaultWeightsMissing(f"{path}: the file does not say which model it holds (no dualsr metadata)")
    return found


def shipped_weights() -> list[DefaultWeights]:
    """Every primal model shipped in the package (dual files excluded), in file-name order."""
    from safetensors import safe_open

    from dualsr.models.dual import is_dual_state

    found = []
    for path in sorted(WEIGHTS_DIR.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:  # keys only: schema-1 dual files carry no role
            if is_dual_state(dict.fromkeys(f.keys())):
                continue
        described = _described(path)
        if described is not None:
            found.append(described)
    return found


def shipped_for(model: str, scale: int | None = None) -> DefaultWeights | None:
    """The shipped file of registry model `model` at `scale` (None: x4): the default of that scale
    when it is that model, else any shipped file of it (None when none ships)."""
    scale = DEFAULT_SCALE if scale is None else int(scale)
    if scale in DEFAULTS:
        try:
            default = default_weights(scale)
        except DefaultWeightsMissing:
            default = None
        if default is not None and default.model == model:
            return default
    return next((w for w in shipped_weights() if w.model == model and w.scale == scale), None)


def weights_for(model: str | None, scale: int | None = None) -> Path:
    """The file to load when no weights are given: the default for `scale` when `model` is None,
    else the shipped file of registry model `model` at `scale` (KeyError for an unknown name,
    WeightsRequiredError when that model does not ship at that scale)."""
    if model is None:
        return default_weights(scale).path
    from dualsr.models import get_spec

    name = get_spec(model).name
    shipped = shipped_for(name, scale)
    if shipped is None:
        raise WeightsRequiredError(name, shipped_names())
    return shipped.path


def shipped_scales(model: str | None = None) -> set[int]:
    """The scales a model ships at: the default's scales for None, else those of its shipped files."""
    if model is None:
        return set(DEFAULTS)
    from dualsr.models import get_spec

    try:
        name = get_spec(model).name
    except KeyError:
        return set()
    return {w.scale for w in shipped_weights() if w.model == name}


def shipped_names() -> str:
    """What ships, for messages: 'rlfn x4, drn-t x4, ...' in file-name order."""
    return ", ".join(f"{w.model} x{w.scale}" for w in shipped_weights()) or "nothing"


__all__ = ["DEFAULTS", "DEFAULT_SCALE", "DEFAULT_STEM", "DefaultWeights", "DefaultWeightsMissing", "WEIGHTS_DIR",
           "WeightsRequiredError", "default_weights", "shipped_for", "shipped_names", "shipped_scales",
           "shipped_weights", "weights_for"]
