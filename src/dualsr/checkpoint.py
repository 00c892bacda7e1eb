"""The one door for weights files: `load` turns any supported file into a model, `save_weights` writes.

`load(source, name=None, scale=None, widths=None)` reads a file, finds which registered model it
holds (from dualsr's metadata, else from keys and shapes through each spec's `detect`), checks
that against a given name and scale, builds the model and loads it strictly. Every command and
the Python API go through it. `save_weights` is the one writer, with one metadata schema
(`SCHEMA_VERSION`); files of the earlier layouts are still read.

Accepted sources:
- this project's `.safetensors` files (written by `save_weights`);
- official DRN `.pt` files: a plain state dict (DRNS4x.pt ...) or, for dual models, a *list* of
  state dicts (DRNS4x_dual_model.pt ...) that loads into an `nn.ModuleList`;
- BasicSR files `{'params': sd}` / `{'params_ema': sd}` (params_ema preferred, as BasicSR's test
  options do), and `{'state_dict': sd}` / `{'model': sd}` wrappers;
- DataParallel / DDP checkpoints whose keys all start with `module.`;
- an in-memory state dict or list of them.
`.pt/.pth` files are read with `torch.load(weights_only=True)`: a pickle that needs code is refused.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

from dualsr.fileio import first_line, write_bytes_atomic, write_text_atomic

Source = Union[str, os.PathLike, Mapping, list]

_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "net", "network")
_MAX_LISTED = 4


class WeightsError(ValueError):
    """A weights file that cannot be used; the message is one line naming the file and the problem."""


class WeightsMismatchError(WeightsError):
    """The weights do not fit the model: wrong scale, wrong preset/widths, missing/unexpected keys."""


class UnsafeCheckpointError(WeightsError):
    """The file is a pickle that would run code to load; refused."""


# ---------------------------------------------------------------------------------------- reading


def read_weights(src: Source) -> Union[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
    """The state dict (or list of state dicts, for official dual files) held by `src`, unwrapped."""
    name = _name(src)
    if isinstance(src, (str, os.PathLike)):
        raw = _read_file(Path(src))
    else:
        raw = src
    if isinstance(raw, (list, tuple)):
        return [_unwrap(item, f"{name}[{i}]") for i, item in enumerate(raw)]
    return _unwrap(raw, name)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata stored in a safetensors file (empty for other formats)."""
    path = Path(path)
    if not _is_safetensors(path):
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types for torn or foreign files
        raise WeightsError(f"{path}: not a readable safetensors file ({first_line(exc)})") from None


def _read_file(path: Path) -> Any:
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    if path.suffix.lower() == ".onnx":
        raise WeightsError(f"{path}: an ONNX file runs only in `dualsr upscale` and dualsr.Upscaler; "
                           "this needs the torch weights it was exported from")
    if _is_safetensors(path):
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types
            raise WeightsError(f"{path}: not a readable safetensors file ({first_line(exc)})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only=True refuses any global it does not know, i.e. code or custom classes
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        detail = f" (it references {found.group(1)})" if found else ""
        raise UnsafeCheckpointError(
            f"{path}: refused: the checkpoint is a pickle that needs code to load{detail}; "
            "only plain tensor state dicts (or safetensors) are accepted"
        ) from None
    except Exception as exc:  # torch raises assorted types for corrupt or foreign files
        detail = first_line(exc)
        detail = type(exc).__name__ if detail == type(exc).__name__ else f"{type(exc).__name__}: {detail}"
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({detail})") from None


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    try:  # safetensors starts with an 8-byte little-endian header length, then '{'
        with open(path, "rb") as f:
            head = f.read(9)
        return len(head) == 9 and head[8:9] == b"{"
    except OSError:
        return False


def _unwrap(obj: Any, name: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{name}: expected a state dict, found {type(obj).__name__}")
    for key in _WRAPPER_KEYS:  # BasicSR and friends: prefer params_ema when both are present
        inner = obj.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            obj = inner
            break
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise WeightsError(f"{name}: holds no tensors (keys: {_listing(list(obj))})")
    if all(k.startswith("module.") for k in state):  # DataParallel / DDP
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


# ---------------------------------------------------------------------------------------- loading


def load_weights(module: nn.Module, src: Source, strict: bool = True) -> nn.Module:
    """Load `src` (path, state dict or list of state dicts) into `module`; returns `module`.

    strict=True (default): any missing/unexpected key or shape difference raises
    WeightsMismatchError with one line that names the mismatch (scale, preset, widths, keys).
    strict=False tolerates missing/unexpected keys but never a shape difference.
    """
    name = _name(src)
    state = read_weights(src)
    if isinstance(state, list):
        if not isinstance(module, nn.ModuleList):
            raise WeightsMismatchError(
                f"{name}: holds a list of {len(state)} state dicts (dual models?) but the target is a "
                f"{type(module).__name__}, not a list of models"
            )
        if len(state) != len(module):
            raise WeightsMismatchError(
                f"{name}: wrong scale: {len(state)} dual models in the file "
                f"(x{2 ** len(state)}), {len(module)} in the target (x{2 ** len(module)})"
            )
        state = {f"{i}.{k}": v for i, sd in enumerate(state) for k, v in sd.items()}
    elif isinstance(module, nn.ModuleList) and len(module) == 1 and not _has_index_prefix(state):
        state = {f"0.{k}": v for k, v in state.items()}  # one dual saved on its own
    return _load_checked(module, state, name, strict)


def _load_checked(module: nn.Module, state: Mapping[str, torch.Tensor], name: str, strict: bool) -> nn.Module:
    """`state` into `module` after the checks every load makes: finite values, fitting keys and
    shapes (named in the models' terms), the spec's derived buffers; strict=False tolerates only
    missing/unexpected keys."""
    check_finite(state, name)
    problem = diagnose(module.state_dict(), state) or _state_problem(module, state)
    if problem and (strict or problem.startswith(("wrong", "shape"))):
        raise WeightsMismatchError(f"{name}: {problem}")
    module.load_state_dict(state, strict=strict)
    return module


def _state_problem(module: nn.Module, state: Mapping[str, torch.Tensor]) -> str:
    from dualsr.models import spec_of

    verify = spec_of(module).verify_state
    problem = verify(module, state) if verify is not None else ""
    return f"wrong buffers: {problem}" if problem else ""


def check_finite(state: Mapping[str, torch.Tensor], name: str) -> None:
    """Refuse weights holding NaN or infinity: a model built from them writes black or garbage images."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and tensor.device.type != "meta" and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise WeightsError(f"{name}: tensor {key} holds {bad} non-finite value(s) (NaN/inf) of "
                               f"{tensor.numel()}; refusing these weights")


def _has_index_prefix(state: Mapping[str, Any]) -> bool:
    return all(k.split(".", 1)[0].isdigit() for k in state)


def diagnose(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]) -> str:
    """One line naming why `found` does not fit `expected` ('' when it fits exactly).

    When the registry recognises both state dicts, the difference is said in the models' terms
    (scale, preset, widths); otherwise missing, unexpected and mis-shaped keys are listed.
    """
    message = _architecture_difference(expected, found)
    if message:
        return message
    shape_diffs = [k for k in expected if k in found and tuple(found[k].shape) != tuple(expected[k].shape)]
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    parts = []
    if shape_diffs:
        k = shape_diffs[0]
        parts.append(
            f"shape mismatch in {len(shape_diffs)} tensors, e.g. {k}: file {tuple(found[k].shape)} vs model "
            f"{tuple(expected[k].shape)} (another scale or preset?)"
        )
    if missing:
        parts.append(f"{len(missing)} missing keys: {_listing(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
    return "; ".join(parts)


def _architecture_difference(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]) -> str:
    from dualsr.models import detect, get_spec

    want, got = detect(expected), detect(found)
    if want is None or got is None:
        return ""
    want_spec, got_spec = get_spec(want.name), get_spec(got.name)
    file_label, model_label = got_spec.label(got.scale, got.config), want_spec.label(want.scale, want.config)
    if want.scale != got.scale and (want.name == got.name or want_spec.family == got_spec.family):
        return f"wrong scale: the file holds {file_label}, the model is {model_label}"
    shape = {k: v for k, v in want.config.items() if k != "widths"}
    if want.name != got.name or shape != {k: v for k, v in got.config.items() if k != "widths"}:
        same_family = bool(want_spec.family) and want_spec.family == got_spec.family
        kind = "preset" if same_family else "model"
        return f"wrong {kind}: the file holds {file_label}, the model is {model_label}"
    if want.widths is not None and got.widths is not None and want.widths != got.widths:
        diffs = [i for i, (a, b) in enumerate(zip(want.widths, got.widths)) if a != b]
        if len(want.widths) != len(got.widths) or not diffs:
            return f"wrong widths: the file has {len(got.widths)} prunable widths, the model {len(want.widths)}"
        i = diffs[0]
        kind_f = "pruned" if got.config.get("widths") is not None else "full"
        kind_m = "pruned" if want.config.get("widths") is not None else "full"
        return (f"wrong widths: the file holds a {kind_f} model, the model is {kind_m}; {len(diffs)} of "
                f"{len(want.widths)} prunable widths differ, first at position {i}: file {got.widths[i]} "
                f"vs model {want.widths[i]} (build the model from the file's width config)")
    return ""


@dataclass
class LoadedModel:
    """What `load` returns: the model (weights loaded), its spec, scale and constructor config."""

    model: nn.Module
    spec: Any
    scale: int
    config: dict
    source: str
    metadata: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def label(self) -> str:
        """'DRN-T x4 (n_blocks=4, n_feats=8)', plus '(pruned)' for pruned widths."""
        pruned = self.config.get("widths") is not None
        return self.spec.label(self.scale, self.config) + (" (pruned widths)" if pruned else "")


def identify(source: Source) -> "Detected | None":
    """Which registered model a weights file or state dict holds: metadata first, then `detect`."""
    from dualsr.models import detect

    state = read_weights(source)
    if isinstance(state, list) or _holds_duals(state):
        return None
    stored = describe_metadata(read_metadata(source)) if isinstance(source, (str, os.PathLike)) else None
    return stored or detect(state)


def load(source: Source, name: str | None = None, scale: int | None = None, widths: list[int] | None = None,
         strict: bool = True, **config) -> LoadedModel:
    """The model held by `source`, built and loaded strictly; `name` and `scale` default to the file's.

    The file's model, scale and architecture config come from dualsr's metadata, else from its
    keys and shapes (official DRN `.pt`, RLFN `.pth`, BasicSR wrappers, plain state dicts). A
    given `name` or `scale` that contradicts the file raises WeightsMismatchError naming both;
    for a file nothing recognises, `name` (and `scale`, else the model's usual one) is required.
    `widths` (e.g. from a DRC width file) and `config` override the architecture read from the file.
    """
    from dualsr.models import detect, get_spec, list_models

    label = _name(source)
    if name is not None:
        get_spec(name)  # an unknown name is the first thing to report (KeyError naming the known ones)
    state = read_weights(source)
    metadata = read_metadata(source) if isinstance(source, (str, os.PathLike)) else {}
    if isinstance(state, list) or _holds_duals(state) or metadata.get("role") == "duals":
        what = (f"a list of {len(state)} state dicts (official dual models?)" if isinstance(state, list)
                else "dual models")
        raise WeightsError(f"{label}: holds {what}, not a primal model; give it as the duals "
                           "(--duals, dualsr.checkpoint.load_duals)")
    try:
        stored = describe_metadata(metadata)
    except (ValueError, TypeError) as exc:
        raise WeightsError(f"{label}: unreadable dualsr metadata ({first_line(exc)})") from None
    found = stored or detect(state)
    try:
        spec = get_spec(name if name is not None else found.name) if (name or found) else None
    except KeyError as exc:
        raise WeightsError(f"{label}: {exc.args[0]}") from None
    if spec is None:
        raise WeightsError(f"{label}: cannot tell which model these weights are for; give the model name "
                           f"(known: {', '.join(list_models())})")
    if found is not None:
        found_spec = get_spec(found.name)
        held = found_spec.label(found.scale, found.config)
        if found.name != spec.name:
            kind = "preset" if found_spec.family and found_spec.family == spec.family else "model"
            raise WeightsMismatchError(f"{label}: wrong {kind}: the file holds {held}, not {spec.name}")
        if scale is not None and int(scale) != found.scale:
            raise WeightsMismatchError(f"{label}: wrong scale: the file holds {held}, not x{scale}")
        scale = found.scale
        architecture = {k: v for k, v in found.config.items() if v is not None}
    else:
        scale = spec.default_scale_value if scale is None else int(scale)
        architecture = {}
    architecture.update(config)
    if widths is not None:
        architecture["widths"] = [int(w) for w in widths]
    try:
        model = spec.build(scale, **architecture)
    except (ValueError, TypeError) as exc:
        raise WeightsMismatchError(f"{label}: cannot build {spec.label(scale, architecture)}: "
                                   f"{first_line(exc)}") from None
    _load_checked(model, state, label, strict)
    return LoadedModel(model, spec, scale, model.config(), label, metadata)


def load_duals(source: Source, model: nn.Module, strict: bool = True) -> nn.ModuleList:
    """The dual models of `model` with the weights of `source` (official lists or dualsr files)."""
    from dualsr.models import create_dual

    return load_weights(create_dual(model), source, strict=strict)


def _holds_duals(state: Mapping[str, Any]) -> bool:
    from dualsr.models.dual import is_dual_state

    return is_dual_state(state)


# --------------------------------------------------------------------------------------- metadata

# Version 2: role, model, scale and config (constructor arguments without scale) at the top level;
# free-form entries (iteration, validation PSNR, compression stage, source file) JSON-encoded.
SCHEMA_VERSION = "2"
_RESERVED = ("format", "dualsr", "role", "model", "scale", "config")


def describe_metadata(metadata: Mapping[str, str]) -> "Detected | None":
    """The model a dualsr file names (any schema version), or None for files without that metadata.

    Version 1 files (this project's earlier layouts) store the scale inside `config`, and
    training checkpoints name the model only in `network_g.type`; both are still read.
    """
    from dualsr.models import normalize_name
    from dualsr.models.spec import Detected

    if not metadata or metadata.get("role", "model") != "model":
        return None
    name = metadata.get("model")
    config = json.loads(metadata["config"]) if metadata.get("config") else None
    if config is None and metadata.get("network_g"):
        network = json.loads(metadata["network_g"])
        name = name or network.pop("type", None)
        config = network
    if not name or config is None:
        return None
    config = dict(config)
    scale = metadata.get("scale") or config.get("scale")
    config.pop("scale", None)
    if scale is None:
        return None
    return Detected(normalize_name(name), int(scale), config)


def model_metadata(model: nn.Module) -> dict[str, str]:
    """The schema's entries for a model built by dualsr: role, name, scale, constructor config."""
    from dualsr.models import spec_of

    config = dict(model.config())
    scale = config.pop("scale")
    return {"role": "model", "model": spec_of(model).name, "scale": str(int(scale)), "config": json.dumps(config)}


# ---------------------------------------------------------------------------------------- writing


def save_weights(module_or_state: nn.Module | Mapping[str, torch.Tensor] | list, path: str | os.PathLike,
                 metadata: Mapping[str, Any] | None = None, duals_of: nn.Module | None = None) -> Path:
    """Write weights as safetensors, atomically, with the metadata schema (`SCHEMA_VERSION`).

    A model built by dualsr gets its name, scale and constructor config (pruned widths included)
    so that `load` rebuilds it from the file alone. Dual models (a ModuleList, or `duals_of=` the
    primal they belong to) are marked role "duals". A list of state dicts is stored as '0.*',
    '1.*', ...; `metadata` adds free-form entries (non-strings JSON-encoded).
    """
    from safetensors.torch import save as serialize

    from dualsr.models import spec_of

    path = Path(path)
    meta: dict[str, str] = {"format": "pt", "dualsr": SCHEMA_VERSION}
    if isinstance(module_or_state, nn.Module) and duals_of is None and spec_of(module_or_state).name != "module" \
            and callable(getattr(module_or_state, "config", None)):
        meta.update(model_metadata(module_or_state))
    elif duals_of is not None or isinstance(module_or_state, (nn.ModuleList, list, tuple)):
        meta["role"] = "duals"
        if duals_of is not None:
            owner = model_metadata(duals_of)
            meta.update({"model": owner["model"], "scale": owner["scale"]})
    for key, value in (metadata or {}).items():
        if key in _RESERVED:
            raise ValueError(f"metadata key {key!r} is written by dualsr itself")
        meta[str(key)] = value if isinstance(value, str) else json.dumps(value)
    if isinstance(module_or_state, nn.Module):
        state = module_or_state.state_dict()
    elif isinstance(module_or_state, (list, tuple)):
        state = {f"{i}.{k}": v for i, sd in enumerate(module_or_state) for k, v in sd.items()}
    else:
        state = dict(module_or_state)
    tensors: dict[str, torch.Tensor] = {}
    seen_storage: set[int] = set()
    for key, value in state.items():
        t = value.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen_storage:  # safetensors refuses shared storage (tied weights): store a copy
            t = t.clone()
        seen_storage.add(t.untyped_storage().data_ptr())
        tensors[key] = t
    return write_bytes_atomic(path, serialize(tensors, metadata=meta))


# ------------------------------------------------------------------------------------ width files


def read_widths_file(path: str | os.PathLike) -> list[int]:
    """A width config: one integer per line (the official DRC format); blank and '#' lines ignored."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the width file ({first_line(exc)})") from None
    widths = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            widths.append(int(line))
        except ValueError:
            raise ValueError(f"{path}: line {number} is not an integer width: {line!r}") from None
    if not widths:
        raise ValueError(f"{path}: holds no widths")
    return widths


def write_widths_file(path: str | os.PathLike, widths) -> Path:
    """Write widths one per line (readable by `read_widths_file` and by the official DRC code)."""
    return write_text_atomic(path, "".join(f"{int(w)}\n" for w in widths))


# ---------------------------------------------------------------------------------------- helpers


def _name(src: Any) -> str:
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    return "state dict" if isinstance(src, Mapping) else "list of state dicts"


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... (+{len(keys) - _MAX_LISTED})" if len(keys) > _MAX_LISTED else "")


