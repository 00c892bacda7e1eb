"""Reading and writing model weights: every format users bring, strict by default, never unpickling code.

Accepted sources for `load_weights`:
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
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

from dualsr.fileio import write_bytes_atomic

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

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def _read_file(path: Path) -> Any:
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    if _is_safetensors(path):
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types
            raise WeightsError(f"{path}: not a readable safetensors file ({_first_line(exc)})") from None
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
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {_first_line(exc)})") from None


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
    WeightsMismatchError with one line that names the mismatch (scale, preset, keys).
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
    expected = module.state_dict()
    problem = diagnose(expected, state, module)
    if problem and (strict or problem.startswith(("wrong", "shape"))):
        raise WeightsMismatchError(f"{name}: {problem}")
    module.load_state_dict(state, strict=strict)
    return module


def _has_index_prefix(state: Mapping[str, Any]) -> bool:
    return all(k.split(".", 1)[0].isdigit() for k in state)


def diagnose(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor],
             module: nn.Module | None = None) -> str:
    """One line naming why `found` does not fit `expected` ('' when it fits exactly)."""
    drn_msg = _diagnose_drn(expected, found)
    if drn_msg:
        return drn_msg
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


def describe_drn(state: Mapping[str, torch.Tensor]) -> dict | None:
    """Architecture of a DRN state dict (phases, scale, n_blocks, n_feats, widths), or None if not DRN."""
    if "head.weight" not in state or not any(k.startswith("up_blocks.") for k in state):
        return None
    from dualsr.models.drn import full_widths

    phases = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("up_blocks."))
    n_stage0 = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("up_blocks.0."))
    n_blocks = n_stage0 - 2  # RCABs, then Upsampler, then the 1x1 conv
    n_feats = int(state["head.weight"].shape[0])
    widths = []
    try:
        widths += [int(state[f"down.{p}.dual_module.0.0.weight"].shape[0]) for p in range(phases)]
        for i in range(phases):
            widths += [int(state[f"up_blocks.{i}.{k}.body.0.weight"].shape[0]) for k in range(n_blocks)]
            widths.append(int(state[f"up_blocks.{i}.{n_blocks}.0.weight"].shape[0]) // 4)
    except KeyError:
        widths = None
    scale = 2**phases
    pruned = widths is not None and widths != full_widths(scale, n_blocks, n_feats)
    return {"phases": phases, "scale": scale, "n_blocks": n_blocks, "n_feats": n_feats,
            "widths": widths, "pruned": pruned}


def drn_preset_name(scale: int, n_blocks: int, n_feats: int) -> str:
    """'DRN-S x4', 'DRN-L x8', or a description of a custom DRN."""
    from dualsr.models.drn import DRN_L, DRN_S

    for label, table in (("DRN-S", DRN_S), ("DRN-L", DRN_L)):
        if table.get(scale) == (n_blocks, n_feats):
            return f"{label} x{scale}"
    return f"a custom DRN x{scale}"


def _diagnose_drn(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]) -> str:
    want, got = describe_drn(expected), describe_drn(found)
    if want is None or got is None:
        return ""
    if want["phases"] != got["phases"]:
        return (f"wrong scale: the file holds a x{got['scale']} DRN ({got['phases']} up stages), "
                f"the model is x{want['scale']} ({want['phases']} up stages)")
    if (want["n_blocks"], want["n_feats"]) != (got["n_blocks"], got["n_feats"]):
        return (f"wrong preset: the file holds {drn_preset_name(got['scale'], got['n_blocks'], got['n_feats'])} "
                f"(n_blocks={got['n_blocks']}, n_feats={got['n_feats']}), the model is "
                f"{drn_preset_name(want['scale'], want['n_blocks'], want['n_feats'])} "
                f"(n_blocks={want['n_blocks']}, n_feats={want['n_feats']})")
    if want["widths"] is not None and got["widths"] is not None and want["widths"] != got["widths"]:
        diffs = [i for i, (a, b) in enumerate(zip(want["widths"], got["widths"])) if a != b]
        i = diffs[0]
        kind_f = "pruned" if got["pruned"] else "full"
        kind_m = "pruned" if want["pruned"] else "full"
        return (f"wrong widths: the file holds a {kind_f} model, the model is {kind_m}; {len(diffs)} of "
                f"{len(want['widths'])} prunable widths differ, first at position {i}: file {got['widths'][i]} "
                f"vs model {want['widths'][i]} (build the model from the file's width config)")
    return ""


def build_for_weights(name: str, scale: int, weights: Source | None = None,
                      widths: list[int] | None = None, strict: bool = True, **kw) -> nn.Module:
    """Build model `name` at `scale` and load `weights` into it (strictly by default).

    A pruned model is a width config plus a state dict: a safetensors file written by dualsr
    stores its constructor config (n_blocks, n_feats, widths, ...), which is used; explicit
    `widths` (e.g. from a DRC width file) and `kw` override it.
    """
    from dualsr.models import create_model

    if isinstance(weights, (str, os.PathLike)):
        stored = read_metadata(weights).get("config")
        if stored:
            config = {k: v for k, v in json.loads(stored).items() if k != "scale" and v is not None}
            kw = {**config, **kw}
    if widths is not None:
        kw["widths"] = list(widths)
    try:
        model = create_model(name, scale, **kw)
    except (ValueError, TypeError) as exc:
        raise WeightsMismatchError(f"cannot build {name} x{scale}: {_first_line(exc)}") from None
    if weights is not None:
        load_weights(model, weights, strict=strict)
    return model


# ---------------------------------------------------------------------------------------- writing


def save_weights(module_or_state: nn.Module | Mapping[str, torch.Tensor] | list, path: str | os.PathLike,
                 metadata: Mapping[str, Any] | None = None) -> Path:
    """Write weights as safetensors, atomically (temp file in the same folder, then os.replace).

    A module's `.config()` (e.g. DRN widths) and `.spec.name` are added to the metadata, so a
    pruned model can be rebuilt from its file. A list of state dicts is stored as '0.*', '1.*', ...
    Non-string metadata values are JSON-encoded.
    """
    from safetensors.torch import save as serialize

    path = Path(path)
    meta: dict[str, str] = {"format": "pt", "dualsr": "1"}
    if isinstance(module_or_state, nn.Module):
        spec = getattr(module_or_state, "spec", None)
        if spec is not None:
            meta["model"] = spec.name
        config = getattr(module_or_state, "config", None)
        if callable(config):
            meta["config"] = json.dumps(config())
        state = module_or_state.state_dict()
    elif isinstance(module_or_state, (list, tuple)):
        state = {f"{i}.{k}": v for i, sd in enumerate(module_or_state) for k, v in sd.items()}
    else:
        state = dict(module_or_state)
    for key, value in (metadata or {}).items():
        meta[str(key)] = value if isinstance(value, str) else json.dumps(value)
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


# ---------------------------------------------------------------------------------------- helpers


def _name(src: Any) -> str:
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    return "state dict" if isinstance(src, Mapping) else "list of state dicts"


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... (+{len(keys) - _MAX_LISTED})" if len(keys) > _MAX_LISTED else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
