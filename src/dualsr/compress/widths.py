"""What can shrink in each model, and how a compressed model is stored and rebuilt.

Every compression method (DRC search + pruning, L1-norm, random, uniform) works on a list of
`PrunableLayer`s: one per internal width that may shrink while the residual-stream widths stay.
That list is the only model-specific part of `dualsr.compress`; it is built here by
`prunable_layers(model)`, in the model's own width order (`model.widths`), which for DRN is the
order of the official DRC width files.

A compressed model is its width config plus a state dict. `save_compressed` writes both into one
safetensors file (metadata: model name, scale, constructor config including `widths`), and
`build_from_checkpoint(path)` rebuilds the model from that metadata and loads the weights
strictly; other commands (test, upscale, profile, train) can call it on any weights file.
"""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import nn

from dualsr.fileio import write_text_atomic
from dualsr.models import create_model


@dataclass(frozen=True)
class PrunableLayer:
    """One shrinkable width: its channels leave `producer` and enter every conv in `consumers`.

    mask_at: module whose output carries exactly these channels (the producer itself, or the
    PixelShuffle after it). group: producer output channels per width channel (r*r before a
    PixelShuffle(r): width channel j is producer channels j*r*r .. j*r*r + r*r - 1).
    """

    name: str
    producer: str
    consumers: tuple[str, ...]
    mask_at: str
    full: int
    group: int = 1


def _drn_layers(model: nn.Module) -> list[PrunableLayer]:
    from dualsr.models.drn import full_widths

    full = full_widths(model.scale, model.n_blocks, model.n_feats)
    layers, pos = [], 0
    for p in range(model.phases):
        base = f"down.{p}.dual_module"
        layers.append(PrunableLayer(f"down.{p}", f"{base}.0.0", (f"{base}.1",), f"{base}.0.0", full[pos]))
        pos += 1
    for s in range(model.phases):
        for k in range(model.n_blocks):
            body = f"up_blocks.{s}.{k}.body"
            layers.append(PrunableLayer(f"up_blocks.{s}.{k}", f"{body}.0", (f"{body}.2",), f"{body}.0", full[pos]))
            pos += 1
        up = f"up_blocks.{s}.{model.n_blocks}"
        # PixelShuffle(2) couples 4 conv outputs to each kept channel: Torch-Pruning misses this
        layers.append(PrunableLayer(up, f"{up}.0", (f"up_blocks.{s}.{model.n_blocks + 1}",), f"{up}.1",
                                    full[pos], group=4))
        pos += 1
    return layers


def _rlfn_layers(model: nn.Module) -> list[PrunableLayer]:
    from dualsr.models.rlfn import full_widths

    full = full_widths(model.n_feats, model.n_blocks, model.esa_width)
    layers = []
    for i in range(model.n_blocks):
        b = f"block_{i + 1}"
        layers += [
            PrunableLayer(f"{b}.c1_r", f"{b}.c1_r", (f"{b}.c2_r",), f"{b}.c1_r", full[3 * i]),
            PrunableLayer(f"{b}.c2_r", f"{b}.c2_r", (f"{b}.c3_r",), f"{b}.c2_r", full[3 * i + 1]),
            PrunableLayer(f"{b}.esa.conv1", f"{b}.esa.conv1", (f"{b}.esa.conv_f", f"{b}.esa.conv2"),
                          f"{b}.esa.conv1", full[3 * i + 2]),
        ]
    return layers


def prunable_layers(model: nn.Module) -> list[PrunableLayer]:
    """The shrinkable widths of `model`, in the order of `model.widths`."""
    from dualsr.models.drn import DRN
    from dualsr.models.rlfn import RLFN

    if isinstance(model, DRN):
        return _drn_layers(model)
    if isinstance(model, RLFN):
        return _rlfn_layers(model)
    raise TypeError(f"{type(model).__name__} has no prunable-widths description (supported: DRN, RLFN)")


def current_widths(model: nn.Module) -> list[int]:
    """The widths the model is built with (full widths when unpruned)."""
    return list(model.widths)


def model_name(model: nn.Module) -> str:
    """Registry name of a model built by `create_model`."""
    spec = getattr(model, "spec", None)
    if spec is None:
        raise ValueError("model was not built by dualsr.models.create_model: no .spec to name it")
    return spec.name


def rebuild(model: nn.Module, widths: Sequence[int] | None = None) -> nn.Module:
    """A fresh model of the same kind and configuration, with `widths` (default: the model's)."""
    config = dict(model.config())
    scale = config.pop("scale")
    config["widths"] = list(widths) if widths is not None else config.get("widths")
    return create_model(model_name(model), scale, **config)


def read_widths_file(path: str | os.PathLike) -> list[int]:
    """A width config file: one integer per line (the official DRC format); blank lines ignored."""
    widths = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            widths.append(int(line))
        except ValueError:
            raise ValueError(f"{path}: line {number} is not an integer width: {line!r}") from None
    return widths


def write_widths_file(path: str | os.PathLike, widths: Sequence[int]) -> None:
    """Write widths one per line (readable by `read_widths_file` and by the official DRC code)."""
    write_text_atomic(path, "".join(f"{int(w)}\n" for w in widths))


def save_compressed(model: nn.Module, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write weights + width config as one safetensors file that `build_from_checkpoint` rebuilds.

    Uses `dualsr.checkpoint.save_weights`, which stores `model` (registry name) and `config`
    (constructor arguments, `scale` and `widths` included) in the safetensors metadata; the full
    width list is always written (also for an unpruned model) so the file documents itself.
    """
    from dualsr.checkpoint import save_weights

    config = dict(model.config())
    config["widths"] = current_widths(model)
    metadata = {"model": model_name(model), "config": config}
    if extra:
        metadata["compress"] = extra
    return save_weights(model, path, metadata=metadata)


def read_model_metadata(path: str | os.PathLike) -> dict | None:
    """{"model", "scale", "config"} stored by `save_weights`/`save_compressed`, or None if absent."""
    from dualsr.checkpoint import read_metadata

    meta = read_metadata(path)
    if "model" not in meta or "config" not in meta:
        return None
    config = json.loads(meta["config"])
    scale = config.pop("scale", None)
    return {"model": meta["model"], "scale": None if scale is None else int(scale), "config": config}


def build_from_checkpoint(path: str | os.PathLike, name: str | None = None, scale: int | None = None,
                          widths: Sequence[int] | None = None, **config) -> nn.Module:
    """Build the model a weights file belongs to and load it strictly.

    A safetensors file written by dualsr names its own model, scale and widths; for any other file
    (official .pt/.pth, plain safetensors) pass `name`, `scale` and, for a pruned model, `widths`
    (e.g. `read_widths_file("search_x4p05.txt")`).
    """
    from dualsr.checkpoint import build_for_weights

    meta = read_model_metadata(path)
    if meta is not None:
        if name is not None and name.lower().replace("_", "-") != meta["model"]:
            raise ValueError(f"{path} holds a {meta['model']} model, not {name}")
        if scale is not None and meta["scale"] is not None and scale != meta["scale"]:
            raise ValueError(f"{path} holds an x{meta['scale']} model, not x{scale}")
        name = meta["model"]
        scale = meta["scale"] if meta["scale"] is not None else scale
    if name is None or scale is None:
        raise ValueError(f"{path} names no model/scale in its metadata: give the model name and scale")
    # build_for_weights applies the architecture config stored in the file (widths included)
    return build_for_weights(name, scale, path, widths=widths, **config)


def get_module(model: nn.Module, dotted: str) -> nn.Module:
    """Submodule by dotted name (`up_blocks.0.3.body.0`)."""
    return model.get_submodule(dotted)


def consumer_l1_norms(model: nn.Module, layer: PrunableLayer) -> torch.Tensor:
    """Per width channel, the L1 norm of its weights in the consuming conv(s): DRC's ranking."""
    total = None
    for name in layer.consumers:
        weight = get_module(model, name).weight.detach()
        norms = weight.abs().sum(dim=(0, 2, 3))
        total = norms if total is None else total + norms
    return total


@contextlib.contextmanager
def channel_masks(model: nn.Module, layers: Sequence[PrunableLayer],
                  masks: Sequence[torch.Tensor | None]) -> Iterator[None]:
    """Multiply each layer's channels by its mask (a length-`width` tensor) during forwards.

    Masks act after the producer's bias (and after a PixelShuffle), so a zero mask is exactly the
    removal of that channel: every activation that follows is positively homogeneous.
    """
    handles = []
    for layer, mask in zip(layers, masks):
        if mask is None:
            continue

        def hook(_module, _inputs, output, mask=mask):
            return output * mask.view(1, -1, 1, 1).to(output.dtype)

        handles.append(get_module(model, layer.mask_at).register_forward_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
