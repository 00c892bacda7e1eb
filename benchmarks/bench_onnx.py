"""ONNX: the default model run by torch and by onnxruntime, one thread each, in the same run.

ms per 256x256 -> 1024x1024 (x4 for the shipped model) through `dualsr.Upscaler` (whole image,
uint8 out: padding, colour handling and conversion included) and for the network's forward
alone (torch `sr_image` in inference mode vs `InferenceSession.run`). The model is the one
`dualsr.Upscaler()` uses (`dualsr.weights.default_weights`), exported with `dualsr.export_onnx`
into a temporary folder. torch.set_num_threads(1); onnxruntime intra_op_num_threads=1,
inter_op_num_threads=1. The repeats interleave the two backends (alternating which goes first);
the figures are medians; the ratio is torch / onnxruntime (> 1: onnxruntime is faster).

    python benchmarks/bench_onnx.py [--repeats 5] [--opset 17]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, write_section  # noqa: E402
from bench_upscale import default_model, test_image  # noqa: E402

from dualsr.inference import Upscaler  # noqa: E402
from dualsr.models import sr_image  # noqa: E402
from dualsr.onnx import export_onnx  # noqa: E402


def _interleaved(fns: dict[str, callable], repeats: int) -> dict[str, float]:
    """Median ms of each function over `repeats` rounds, one call of each per round, after a warm-up."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            fns[name]()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def bench(repeats: int, opset: int) -> str:
    import onnxruntime

    torch.set_num_threads(1)
    label, model, _weights = default_model()
    model.eval()
    image = test_image(256, 256)
    with tempfile.TemporaryDirectory(prefix="dualsr-bench-onnx-") as tmp:
        start = time.perf_counter()
        path = export_onnx(model, Path(tmp) / "default.onnx", opset=opset)
        export_s = time.perf_counter() - start
        size_kib = path.stat().st_size / 1024
        with_onnx = Upscaler(weights=path)  # onnxruntime threads follow torch's: 1
        with_torch = Upscaler(model)
        options = with_onnx.backend.session.get_session_options()
        assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1), "onnxruntime threads"
        diff = int(np.abs(with_onnx.upscale_planes(image).astype(int) - with_torch.upscale_planes(image)).max())
        lr = image[None].contiguous()
        lr_cl = lr.contiguous(memory_format=torch.channels_last)
        session, array = with_onnx.backend.session, lr.numpy()

        def torch_forward():
            with torch.inference_mode():
                sr_image(with_torch.model, lr_cl)

        ups = _interleaved({"torch": lambda: with_torch.upscale_planes(image),
                            "onnxruntime": lambda: with_onnx.upscale_planes(image)}, repeats)
        print(f"Upscaler: torch {ups['torch']:.0f} ms, onnxruntime {ups['onnxruntime']:.0f} ms", flush=True)
        fwd = _interleaved({"torch": torch_forward,
                            "onnxruntime": lambda: session.run(None, {"lr": array})}, repeats)
        print(f"forward: torch {fwd['torch']:.0f} ms, onnxruntime {fwd['onnxruntime']:.0f} ms", flush=True)
    rows = [f"| `Upscaler.upscale_planes` (whole image, uint8 out) | {ups['torch']:.0f} | {ups['onnxruntime']:.0f} | "
            f"{ups['torch'] / ups['onnxruntime']:.2f} |",
            f"| network forward only | {fwd['torch']:.0f} | {fwd['onnxruntime']:.0f} | "
            f"{fwd['torch'] / fwd['onnxruntime']:.2f} |"]
    command = f"python benchmarks/bench_onnx.py --repeats {repeats} --opset {opset}"
    return "\n".join([
        "## ONNX: torch vs onnxruntime, 256x256 -> 1024x1024, one thread each",
        "",
        f"`{command}` (median of {repeats} interleaved rounds after a warm-up; {machine_line()}; "
        f"onnxruntime {onnxruntime.__version__}, CPUExecutionProvider, intra-op 1 and inter-op 1 threads).",
        "",
        f"Model: {label}, exported with `dualsr.export_onnx` (TorchScript-based exporter, opset {opset}, "
        f"{size_kib:.0f} KiB, {export_s:.1f} s). Torch runs the module in channels-last float32 (as the",
        "upscaler does), onnxruntime the exported graph with its default optimisations. Largest",
        f"difference between the two uint8 outputs: {diff} grey level(s).",
        "",
        "| what | torch (ms) | onnxruntime (ms) | torch / onnxruntime |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
        "The CPU may be shared with other jobs: absolute times vary between runs, the ratio comes",
        "from the same run with the two backends alternating.",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--opset", type=int, default=17)
    args = parser.parse_args()
    write_section("onnx", bench(args.repeats, args.opset))
    return 0


if __name__ == "__main__":
    sys.exit(main())
