"""ONNX: export a model's primal network, and run an exported file in the upscaler.

`export_onnx(model, path, opset=17)` traces the SR path of a dualsr model (the primal network
only: no duals, no bicubic downscaling; for pyramid models such as DRN only the final SR image)
with the TorchScript-based exporter (`torch.onnx.export(..., dynamo=False)`) into a graph with
dynamic batch, height and width, and embeds what the upscaler needs in `metadata_props`.

The IO convention (`IO_CONVENTION`) is the one every dualsr caller uses: float32 NCHW RGB on the
0-255 scale in and out, whatever the model's own value range (the conversion is in the graph);
the output is not clamped or rounded. Input `lr` (N, 3, H, W), output `sr` (N, 3, sH, sW). H and
W must be at least `min_input` and a multiple of `size_multiple` (the upscaler pads to that).

`OnnxBackend` runs such a file through onnxruntime for `dualsr.Upscaler` (which does the
padding, tiling, colour, alpha and bit-depth handling exactly as for a torch model). onnx and
onnxruntime are imported only here, and only when an ONNX path is used: `pip install "dualsr[onnx]"`.
"""
from __future__ import annotations

import copy
import io
import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dualsr.checkpoint import WeightsError, model_metadata
from dualsr.fileio import first_line
from dualsr.models.spec import TILING_KINDS, ModelSpec, model_scale, normalize_name, spec_of, sr_image

DEFAULT_OPSET = 17
# Resize with computed sizes and Pad/Range with graph inputs need opset 11.
MIN_OPSET = 11
# metadata_props["dualsr_onnx"]: the layout of the entries below
SCHEMA_VERSION = "1"
IO_CONVENTION = ("float32 NCHW RGB on the 0-255 scale in and out (output unclamped); input 'lr' (N, 3, H, W) "
                 "with H and W >= min_input and multiples of size_multiple, output 'sr' (N, 3, H*scale, W*scale)")
INPUT_NAME, OUTPUT_NAME = "lr", "sr"
# Largest |onnxruntime - torch| (0-255 scale) the export check accepts: float rounding is ~1e-4;
# a size baked in while tracing gives far larger differences or a graph that does not run.
_VERIFY_TOLERANCE = 0.5


class OnnxUnavailableError(ValueError):
    """onnx or onnxruntime is not installed; the message says how to install it."""


def _require(module: str, what: str):
    try:
        return __import__(module)
    except ImportError:
        raise OnnxUnavailableError(f"{what} needs the {module} package: pip install \"dualsr[onnx]\"") from None


def max_opset() -> int:
    """The highest opset the TorchScript-based exporter of this torch writes."""
    try:
        from torch.onnx import _constants

        return int(_constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)
    except (ImportError, AttributeError):
        return 20


def check_opset(opset) -> int:
    """`opset` as an int within [MIN_OPSET, max_opset()], else ValueError with one line."""
    try:
        value = int(opset)
    except (TypeError, ValueError):
        raise ValueError(f"opset must be an integer, got {opset!r}") from None
    if not MIN_OPSET <= value <= max_opset():
        raise ValueError(f"opset {value} is not supported: use {MIN_OPSET} to {max_opset()} (default {DEFAULT_OPSET})")
    return value


def check_exportable(model: nn.Module) -> ModelSpec:
    """The spec of `model`, or ValueError when it cannot be exported (foreign module, spec says no)."""
    spec = spec_of(model)
    if spec.name == "module" or not callable(getattr(model, "config", None)):
        raise ValueError("only models built by dualsr (with a spec and config()) can be exported to ONNX")
    if not spec.onnx_export:
        raise ValueError(f"model {spec.name!r} cannot be exported to ONNX (its spec says so: onnx_export=False)")
    return spec


class _SRGraph(nn.Module):
    """What the ONNX file computes: the primal's SR image on the 0-255 scale (`sr_image`)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return sr_image(self.model, lr)


def onnx_metadata(model: nn.Module) -> dict[str, str]:
    """The `metadata_props` of an exported file: model, scale, config, IO and the spec's upscaling fields."""
    from dualsr import __version__
    from dualsr.inference.memory import activation_per_lr_pixel

    spec = spec_of(model)
    radius = spec.receptive_radius(model) if spec.receptive_radius is not None else None
    entries = {
        "dualsr_onnx": SCHEMA_VERSION,
        "dualsr_version": __version__,
        **model_metadata(model),  # role, model, scale, config (as in dualsr's safetensors files)
        "io": IO_CONVENTION,
        "value_range": "255",
        "model_value_range": repr(float(spec.value_range)),
        "size_multiple": str(spec.size_multiple),
        "min_input": str(spec.min_input),
        "receptive_radius": "" if radius is None else repr(float(radius)),
        "tiling": spec.tiling,  # "placed" tiles approximately here: a graph cannot be told the window
        "tile_phase": str(spec.tile_phase),
        "default_tile_pad": "" if spec.default_tile_pad is None else str(int(spec.default_tile_pad(model))),
        # float32 bytes of the largest activation per LR pixel (memory.largest_activation_per_pixel
        # x 4): what tile="auto" plans with, without torch hooks
        "activation_bytes_per_lr_pixel": repr(4.0 * activation_per_lr_pixel(model)),
        "half_safe": str(bool(spec.half_safe)).lower(),
    }
    return entries


def export_onnx(model, path: str | os.PathLike, opset: int = DEFAULT_OPSET, verify: bool = True,
                metadata: dict | None = None) -> Path:
    """Write the SR path of `model` (an nn.Module built by dualsr, or a `LoadedModel`) as ONNX.

    Dynamic batch, height and width; `IO_CONVENTION` in and out; `onnx_metadata` embedded (plus
    `metadata`, free-form strings). With `verify`, the file is run with onnxruntime (when
    installed) at another size and batch and compared with torch before anything is written;
    the file is written atomically. Returns the path.
    """
    from dualsr.fileio import write_bytes_atomic

    model = getattr(model, "model", model) if not isinstance(model, nn.Module) else model
    if not isinstance(model, nn.Module):
        raise TypeError(f"export_onnx takes a model (nn.Module or LoadedModel), not {type(model).__name__}")
    opset = check_opset(opset)
    spec = check_exportable(model)
    onnx = _require("onnx", "ONNX export")
    model = copy.deepcopy(model).to("cpu", torch.float32).eval()
    for layer in model.modules():  # whole-image statistics hooks must not be traced into the graph
        if getattr(layer, "hook", None) is not None:
            layer.hook = None
    entries = onnx_metadata(model)
    entries.update({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()})
    height, width = spec.padded_size(24), spec.padded_size(32)
    dummy = _probe(1, height, width)
    buffer = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice and TracerWarnings
        torch.onnx.export(_SRGraph(model), (dummy,), buffer, dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: {0: "batch", 2: "sr_height", 3: "sr_width"}})
    proto = onnx.load_from_string(buffer.getvalue())
    proto.doc_string = f"dualsr {entries['dualsr_version']}: {spec.label(int(entries['scale']), model.config())}; {IO_CONVENTION}"
    del proto.metadata_props[:]
    for key, value in entries.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    if verify:
        _verify(data, model, spec, (height, width))
    return write_bytes_atomic(path, data)


def _probe(batch: int, height: int, width: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, height, width, generator=generator) * 255


def _verify(data: bytes, model: nn.Module, spec: ModelSpec, traced: tuple[int, int]) -> None:
    """Run the graph at a size and batch other than the traced ones; ValueError if it differs from torch."""
    try:
        import onnxruntime as ort
    except ImportError:
        warnings.warn("onnxruntime is not installed: the exported file was not checked at another size", stacklevel=3)
        return
    height, width = spec.padded_size(traced[0] + 1), spec.padded_size(traced[1] + 3)
    x = _probe(2, height, width)
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    options.log_severity_level = 4  # our message below says what failed; no onnxruntime log lines
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        got = session.run(None, {INPUT_NAME: x.numpy()})[0]
    except Exception as exc:  # onnxruntime raises its own exception types
        text = first_line(exc)
        raise ValueError(f"the exported {spec.name} graph does not run at {height}x{width} (a size fixed while "
                         f"tracing?): {text[:300]}") from None
    with torch.no_grad():
        want = sr_image(model, x).numpy()
    if got.shape != want.shape:
        raise ValueError(f"the exported {spec.name} graph gives {got.shape} at {height}x{width}, torch {want.shape}")
    diff = float(np.abs(got - want).max())
    if not diff <= _VERIFY_TOLERANCE:
        raise ValueError(f"the exported {spec.name} graph differs from torch by {diff:.3g} (0-255 scale) at "
                         f"{height}x{width}: a size fixed while tracing?")


# ---------------------------------------------------------------------------------------- running


def _no_builder(**_kw) -> nn.Module:
    raise TypeError("this spec describes an ONNX file; it builds no torch module")


def _number(metadata: dict, key: str, path, kind=float, default=None):
    text = metadata.get(key, "")
    if text == "" and default is not None:
        return default
    try:
        value = kind(float(text)) if kind is int else kind(text)
    except ValueError:
        raise WeightsError(f"{path}: unreadable dualsr ONNX metadata ({key}={text!r})") from None
    if not math.isfinite(value) or value < 0:
        raise WeightsError(f"{path}: unreadable dualsr ONNX metadata ({key}={text!r})")
    return value


class OnnxBackend:
    """An exported file run by onnxruntime: (1, 3, h, w) float32 0-255 in, (1, 3, sh, sw) out.

    What the upscaler needs is read from the file's metadata: a `spec` (name, scale, size
    multiple, minimum input, tiling kind, receptive radius), and `activation_bytes_per_lr_pixel`.
    device: cpu (CPUExecutionProvider) or cuda[:N] (CUDAExecutionProvider, onnxruntime-gpu).
    threads: onnxruntime's intra-op threads (default: torch's thread count); inter-op 1.
    """

    model = None
    # the graph cannot take whole-image statistics: a global_pool model tiles approximately
    whole_image_means = False
    pool_layers: list = []
    window_layers: list = []  # nor be told where a window lies: a "placed" model tiles approximately

    def __init__(self, path: str | os.PathLike, device: torch.device | str = "cpu", threads: int | None = None):
        ort = _require("onnxruntime", f"running {Path(path).name}")
        self.path = Path(path)
        if not self.path.is_file():
            raise WeightsError(f"{self.path}: no such file")
        device = torch.device(device)
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError(f"{self.path}: --device {device} needs onnxruntime's CUDAExecutionProvider "
                                 "(pip install onnxruntime-gpu); this onnxruntime has "
                                 f"{', '.join(ort.get_available_providers())}")
            providers = [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
        elif device.type == "cpu":
            providers = ["CPUExecutionProvider"]
        else:
            raise ValueError(f"{self.path}: ONNX files run on cpu or cuda, not {device.type}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads if threads is not None else torch.get_num_threads()))
        options.inter_op_num_threads = 1
        options.log_severity_level = 4  # failures are raised as one-line errors; no log lines on stderr
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            text = first_line(exc)
            raise WeightsError(f"{self.path}: not a readable ONNX file ({text[:300]})") from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.spec = spec_from_metadata(self.metadata, self.path)
        self.scale = self.spec.scales[0]
        self.name = self.spec.name
        self.config = json.loads(self.metadata.get("config") or "{}")
        self.activation_bytes_per_lr_pixel = _number(self.metadata, "activation_bytes_per_lr_pixel", self.path)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise WeightsError(f"{self.path}: expected one input and one output, found {len(inputs)} and {len(outputs)}")
        self.input_name = inputs[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        try:
            out = self.session.run(None, {self.input_name: array})[0]
        except Exception as exc:  # onnxruntime's own types (e.g. out of memory): a RuntimeError for callers
            text = first_line(exc)
            raise RuntimeError(f"onnxruntime: {text[:300]}") from None
        return torch.from_numpy(out)


def spec_from_metadata(metadata: dict, path) -> ModelSpec:
    """A spec holding what the upscaler reads (scale, padding, tiling, radius) from a file's metadata."""
    if not metadata.get("dualsr_onnx"):
        raise WeightsError(f"{path}: no dualsr metadata (not written by `dualsr export --format onnx`); "
                           "dualsr runs only ONNX files it exported")
    if metadata["dualsr_onnx"] != SCHEMA_VERSION or metadata.get("value_range") != "255":
        raise WeightsError(f"{path}: dualsr ONNX metadata version {metadata['dualsr_onnx']!r} "
                           f"(value range {metadata.get('value_range')!r}) is not readable by this dualsr")
    name = normalize_name(metadata.get("model") or "")
    tiling = metadata.get("tiling", "")
    if not name or tiling not in TILING_KINDS:
        raise WeightsError(f"{path}: unreadable dualsr ONNX metadata (model={name!r}, tiling={tiling!r})")
    scale = _number(metadata, "scale", path, int)
    radius = _number(metadata, "receptive_radius", path, float, default=-1.0)
    tile_pad = _number(metadata, "default_tile_pad", path, int, default=-1)
    return ModelSpec(
        name=name, builder=_no_builder, scales=(max(1, scale),), title=f"{name} (ONNX)", value_range=255.0,
        size_multiple=max(1, _number(metadata, "size_multiple", path, int)),
        min_input=max(1, _number(metadata, "min_input", path, int)), half_safe=False, tiling=tiling,
        receptive_radius=None if radius < 0 else (lambda _model: radius),
        tile_phase=max(1, _number(metadata, "tile_phase", path, int, default=1)),
        default_tile_pad=None if tile_pad < 0 else (lambda _model: tile_pad),
    )


def is_onnx_path(weights) -> bool:
    """Whether `weights` names an ONNX file (by its suffix: ONNX files carry no magic number)."""
    return isinstance(weights, (str, os.PathLike)) and Path(weights).suffix.lower() == ".onnx"


__all__ = ["DEFAULT_OPSET", "IO_CONVENTION", "MIN_OPSET", "OnnxBackend", "OnnxUnavailableError", "check_exportable",
           "check_opset", "export_onnx", "is_onnx_path", "max_opset", "onnx_metadata", "spec_from_metadata"]
