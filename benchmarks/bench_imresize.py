"""Tap-proportional torch `imresize` vs a BasicSR-style loop and vs the previous dense dualsr version.

All three compute MATLAB's bicubic resize of the same random RGB images: 128x128 x4 up, 512x512,
2048x2048 and 4000x3000 (w x h) x1/4 down, and a batch of 16 training patches x1/4, in float64 and
in float32.

* loop (BasicSR-style): per-dimension weights and indices, a mirror-padded copy of the image,
  then Python loops over output rows x channels and output columns x channels, each a torch `mv`
  (a weighted sum over the kernel taps), as BasicSR's matlab_functions.imresize does.
* dense (previous dualsr): the implementation `dualsr.data.resize` had before (git 91574aa),
  copied below unchanged: two products with cached dense (out_len x in_len) weight matrices.
* ours: `dualsr.data.resize.imresize`, cost proportional to the taps: integer downscaling as one
  batched (1 x P) @ (P x columns) product over a strided view of the input per pass (plus two
  border blocks), other scales as blocks of output rows, each a small matrix product with the
  contiguous input window it reads.

The outputs are checked to agree (float64: max abs diff < 1e-6; float32: < 1e-2) before any time
is reported. In each repeat the methods run one after the other (interleaved), so a load change
on the shared machine hits all of them; the medians and ratios come from the same run. The peak
memory of the 4000x3000 case is the peak RSS (ru_maxrss) of a child process per method that
holds only the input and runs the resize once. The children run first, while this process is
still small: Linux carries a process's ru_maxrss over an exec, so a child started from a parent
that already held GiBs would report the parent's peak.

    python benchmarks/bench_imresize.py [--repeats 7] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, write_section  # noqa: E402

from dualsr.data import resize as resize_module  # noqa: E402
from dualsr.data.resize import imresize  # noqa: E402

# --------------------------------------------------------------------------------------------
# Baseline 1: loop implementation in the style of BasicSR's matlab_functions.imresize.


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return ((1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1)
            + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def loop_contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Per output pixel: the weights and the (padded-image) indices of the input pixels it reads."""
    width = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :] - 1  # 0-based, may fall outside the image
    distance = u[:, None] - indices - 1
    weights = scale * _cubic(scale * distance) if scale < 1 else _cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    pad = int(max(0, -indices.min()))
    return weights, (indices + pad).astype(np.int64), pad


def _mirror_pad(image: torch.Tensor, dim: int, before: int, after: int) -> torch.Tensor:
    """MATLAB 'symmetric' padding of one dim by concatenating flipped edge strips (as BasicSR does)."""
    length = image.shape[dim]
    parts = []
    if before:
        parts.append(image.narrow(dim, 0, before).flip(dim))
    parts.append(image)
    if after:
        parts.append(image.narrow(dim, length - after, after).flip(dim))
    return torch.cat(parts, dim=dim)


def loop_imresize(image: torch.Tensor, scale: float) -> torch.Tensor:
    """(C, H, W) -> resized: for every output row and channel a `mv` over a slice of the padded
    image, then the same for every output column and channel (BasicSR's structure)."""
    channels, in_h, in_w = image.shape
    out_h, out_w = math.ceil(in_h * scale - 1e-9), math.ceil(in_w * scale - 1e-9)
    weights_h, index_h, pad_h = loop_contributions(in_h, out_h, scale)
    weights_w, index_w, pad_w = loop_contributions(in_w, out_w, scale)
    weights_h, weights_w = torch.from_numpy(weights_h).to(image.dtype), torch.from_numpy(weights_w).to(image.dtype)
    taps_h, taps_w = weights_h.shape[1], weights_w.shape[1]
    padded = _mirror_pad(image, 1, pad_h, max(0, int(index_h.max()) - pad_h - in_h + 1))
    rows = torch.empty(channels, out_h, in_w, dtype=image.dtype)
    for i in range(out_h):
        start = int(index_h[i, 0])
        for c in range(channels):
            rows[c, i, :] = padded[c, start:start + taps_h, :].transpose(0, 1).mv(weights_h[i])
    padded = _mirror_pad(rows, 2, pad_w, max(0, int(index_w.max()) - pad_w - in_w + 1))
    out = torch.empty(channels, out_h, out_w, dtype=image.dtype)
    for j in range(out_w):
        start = int(index_w[j, 0])
        for c in range(channels):
            out[c, :, j] = padded[c, :, start:start + taps_w].mv(weights_w[j])
    return out


def loop_batched(images: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.stack([loop_imresize(item, scale) for item in images])


# --------------------------------------------------------------------------------------------
# Baseline 2: dense (previous dualsr), copied unchanged from src/dualsr/data/resize.py as it was
# before it became tap-proportional (git 91574aa), with its own caches.

_DENSE_KERNEL_WIDTH = 4.0


def _dense_cubic(x: torch.Tensor) -> torch.Tensor:
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


@lru_cache(maxsize=64)
def _dense_weight_matrix_cpu(in_len: int, out_len: int, scale: float, antialias: bool) -> torch.Tensor:
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    width = _DENSE_KERNEL_WIDTH / scale if (scale < 1 and antialias) else _DENSE_KERNEL_WIDTH
    left = torch.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]  # 1-based
    distance = u[:, None] - indices
    if scale < 1 and antialias:
        weights = scale * _dense_cubic(scale * distance)
    else:
        weights = _dense_cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    zero_based = (indices - 1).long()
    period = 2 * in_len
    mod = torch.remainder(zero_based, period)
    mirrored = torch.where(mod < in_len, mod, period - 1 - mod)
    matrix = torch.zeros(out_len, in_len, dtype=torch.float64)
    matrix.scatter_add_(1, mirrored, weights)
    return matrix


_dense_device_cache: dict[tuple, torch.Tensor] = {}


def _dense_resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True,
                         device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64) -> torch.Tensor:
    key = (in_len, out_len, float(scale), antialias, str(device), dtype)
    matrix = _dense_device_cache.get(key)
    if matrix is None:
        matrix = _dense_weight_matrix_cpu(in_len, out_len, float(scale), antialias).to(device=device, dtype=dtype)
        if len(_dense_device_cache) > 128:
            _dense_device_cache.clear()
        _dense_device_cache[key] = matrix
    return matrix


def _dense_output_size(in_size: tuple[int, int], scale: float | Sequence[float] | None = None,
                       size: Sequence[int] | None = None) -> tuple[tuple[int, int], tuple[float, float]]:
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale or size")
    if size is not None:
        out = (int(size[0]), int(size[1]))
        return out, (out[0] / in_size[0], out[1] / in_size[1])
    scales = (float(scale), float(scale)) if not isinstance(scale, Sequence) else (float(scale[0]), float(scale[1]))
    out = tuple(int(math.ceil(n * s - 1e-9)) for n, s in zip(in_size, scales))
    return (out[0], out[1]), scales


def dense_imresize(image: torch.Tensor, scale: float | Sequence[float] | None = None, *,
                   size: Sequence[int] | None = None, antialias: bool = True,
                   round_uint8: bool = False) -> torch.Tensor:
    """dense (previous dualsr): `imresize` as two products with dense weight matrices."""
    in_h, in_w = image.shape[-2:]
    (out_h, out_w), (scale_h, scale_w) = _dense_output_size((in_h, in_w), scale, size)
    order = (0, 1) if scale_h <= scale_w else (1, 0)
    out = image
    for dim in order:
        if dim == 0:
            m = _dense_resize_matrix(in_h, out_h, scale_h, antialias, out.device, out.dtype)
            out = torch.matmul(m, out)
        else:
            m = _dense_resize_matrix(in_w, out_w, scale_w, antialias, out.device, out.dtype)
            out = torch.matmul(out, m.t())
    if round_uint8:
        out = torch.floor(out.clamp(0, 255) + 0.5)
    return out


# --------------------------------------------------------------------------------------------

METHODS = ("loop", "dense", "ours")
LABELS = {"loop": "loop (BasicSR-style)", "dense": "dense (previous dualsr)", "ours": "ours"}


def _clear_caches() -> None:
    resize_module._taps_cpu.cache_clear()
    resize_module._plan_cpu.cache_clear()
    resize_module._device_cache.clear()


def _run(method: str, tensor: torch.Tensor, scale: float) -> torch.Tensor:
    if method == "loop":
        return loop_batched(tensor, scale)
    if method == "dense":
        return dense_imresize(tensor, scale)
    if method == "ours":
        return imresize(tensor, scale)
    if method == "ours-cold":
        _clear_caches()
        return imresize(tensor, scale)
    raise ValueError(method)


def plans_used(tensor: torch.Tensor, scale: float) -> str:
    """The plan the cost model picks for the height and the width pass of imresize(tensor, scale)
    (both scales equal: height first)."""
    in_h, in_w = tensor.shape[-2:]
    out_h, out_w = math.ceil(in_h * scale - 1e-9), math.ceil(in_w * scale - 1e-9)
    batch, itemsize = tensor[..., 0, 0].numel(), tensor.element_size()
    names = []
    for in_len, out_len, columns in ((in_h, out_h, in_w), (in_w, out_w, out_h)):
        rows = resize_module._choose_method(in_len, out_len, scale, True, batch, columns, tensor.device.type,
                                            itemsize, grad=False)
        names.append("strided" if rows == 0 else "dense" if rows >= out_len else f"banded {rows}")
    return " / ".join(names)


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time (ms) of each function over `repeats` rounds, one warm-up call each first;
    in each round every function runs once, so slow phases of the shared machine hit all of them."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def _child_memory(method: str, dtype_name: str, threads: int) -> None:
    """Child process: hold a (1, 3, 3000, 4000) input, resize it once x1/4, print the peak RSS
    before and after (MiB) as JSON."""
    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    image = torch.randint(0, 256, (1, 3, 3000, 4000), dtype=dtype)
    _run(method, image[:, :, :64, :64], 0.25)  # load the code paths (BLAS, allocator) first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = _run(method, image, 0.25)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert tuple(out.shape) == (1, 3, 750, 1000)
    input_mib = image.numel() * image.element_size() / 2**20
    print(json.dumps({"before_mib": before, "peak_mib": after, "input_mib": input_mib}))


def peak_memory(method: str, dtype_name: str, threads: int) -> dict[str, float]:
    result = subprocess.run([sys.executable, __file__, "--child-memory", method, dtype_name, "--threads", str(threads)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


BENCHMARK_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "benchmark"


def float32_rounding_changes(scale: float = 0.25) -> list[tuple[str, int, int]] | None:
    """Per benchmark set (HR images, modcropped as dualsr.data.benchmark does): how many values of
    `imresize(hr, scale, round_uint8=True)` differ between float32 and float64 input, of how many.
    None when ../shared/data/benchmark is absent."""
    if not BENCHMARK_DATA.is_dir():
        return None
    from PIL import Image

    multiple = round(1 / scale)
    rows = []
    for name in ("Set5", "Set14", "B100"):
        changed = total = 0
        for path in sorted((BENCHMARK_DATA / name / "HR").glob("*.png")):
            with Image.open(path) as image:
                hr = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).double()
            hr = hr[:, : hr.shape[1] - hr.shape[1] % multiple, : hr.shape[2] - hr.shape[2] % multiple]
            lr64 = imresize(hr, scale, round_uint8=True)
            lr32 = imresize(hr.float(), scale, round_uint8=True).double()
            changed += int((lr64 != lr32).sum())
            total += lr64.numel()
        rows.append((name, changed, total))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared CPU, idle-waiting threads distort timings)")
    parser.add_argument("--child-memory", nargs=2, metavar=("METHOD", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        _child_memory(*args.child_memory, args.threads)
        return
    torch.set_num_threads(args.threads)
    # Before this process allocates anything large (see the module docstring).
    memory = {(method, dtype_name): peak_memory(method, dtype_name, args.threads)
              for dtype_name in ("float64", "float32") for method in METHODS}
    rng = np.random.default_rng(0)

    def random_image(*shape: int) -> torch.Tensor:
        return torch.from_numpy(rng.integers(0, 256, shape).astype(np.float64))

    cases = [
        ("128x128 RGB -> 512x512 (x4)", random_image(1, 3, 128, 128), 4.0),
        ("512x512 RGB -> 128x128 (x1/4)", random_image(1, 3, 512, 512), 0.25),
        ("16 patches 192x192 RGB -> 48x48 (x1/4)", random_image(16, 3, 192, 192), 0.25),
        ("2048x2048 RGB -> 512x512 (x1/4)", random_image(1, 3, 2048, 2048), 0.25),
        ("4000x3000 RGB -> 1000x750 (x1/4)", random_image(1, 3, 3000, 4000), 0.25),
    ]
    results: dict[str, list[tuple]] = {"float64": [], "float32": []}
    for label, tensor64, scale in cases:
        for dtype_name, tensor in (("float64", tensor64), ("float32", tensor64.float())):
            outputs = {method: _run(method, tensor, scale).double() for method in METHODS}
            diff_loop = float((outputs["ours"] - outputs["loop"]).abs().max())
            diff_dense = float((outputs["ours"] - outputs["dense"]).abs().max())
            limit = 1e-6 if dtype_name == "float64" else 1e-2
            assert diff_loop < limit and diff_dense < limit, (label, dtype_name, diff_loop, diff_dense)
            del outputs
            ms = interleaved_medians({m: (lambda m=m: _run(m, tensor, scale)) for m in (*METHODS, "ours-cold")},
                                     args.repeats)
            results[dtype_name].append((label, ms, diff_loop, diff_dense, plans_used(tensor, scale)))
            print(f"{label} {dtype_name}: " + ", ".join(f"{m} {t:.2f} ms" for m, t in ms.items())
                  + f"; ours {ms['loop'] / ms['ours']:.1f}x the loop, {ms['dense'] / ms['ours']:.1f}x dense; "
                  f"max |diff| vs loop {diff_loop:.1e}, vs dense {diff_dense:.1e}", flush=True)
        del tensor64
    for (method, dtype_name), m in memory.items():
        print(f"4000x3000 x1/4 {dtype_name} {method}: peak RSS {m['peak_mib']:.0f} MiB "
              f"(+{m['peak_mib'] - m['before_mib']:.0f} MiB over holding the {m['input_mib']:.0f} MiB input)")

    rounding = float32_rounding_changes()
    if rounding is not None:
        for name, changed, total in rounding:
            print(f"{name} x1/4 round_uint8: {changed} of {total} values differ between float32 and float64")

    # Acceptance (issue 11): at least as fast as the loop at every size, >= 5x at 2048x2048 x1/4.
    checks = []
    for dtype_name, rows in results.items():
        slowest = min(ms["loop"] / ms["ours"] for _, ms, *_ in rows)
        at_2048 = next(ms["loop"] / ms["ours"] for label, ms, *_ in rows if label.startswith("2048"))
        checks.append(f"{dtype_name}: ours vs loop at least {slowest:.1f}x at every size "
                      f"({'pass' if slowest >= 1 else 'FAIL'}: >= 1x), {at_2048:.1f}x at 2048x2048 x1/4 "
                      f"({'pass' if at_2048 >= 5 else 'FAIL'}: >= 5x)")
    for line in checks:
        print("acceptance " + line)

    lines = [
        "## MATLAB bicubic imresize: tap-proportional torch vs loop baseline vs previous dense version",
        "",
        f"`python benchmarks/bench_imresize.py --repeats {args.repeats} --threads {args.threads}` (median of "
        f"{args.repeats} interleaved rounds after one warm-up; {machine_line()}).",
        "",
        "Three implementations of MATLAB's bicubic `imresize` on the same random RGB images ((N, 3, H, W)",
        "tensors; 4000x3000 is w x h):",
        "",
        "* **loop (BasicSR-style)**, written inside the script: per-dimension weights and indices, a",
        "  mirror-padded copy, then a Python loop over output rows x channels and one over output columns x",
        "  channels, each a torch `mv` over a slice (the structure of BasicSR's `matlab_functions.imresize`).",
        "* **dense (previous dualsr)**: `dualsr.data.resize.imresize` as it was before (git 91574aa), copied into",
        "  the script: two products with cached dense (out_len x in_len) weight matrices, so at x1/4 the",
        "  multiply-adds grow with the image length, not with the 18 kernel taps.",
        "* **ours**: `dualsr.data.resize.imresize` now, cost proportional to the taps. Per dimension, a cost",
        "  model picks a plan: *strided* for integer downscaling (all interior outputs one batched",
        "  (1 x 18) @ (18 x columns) product over an `unfold` view of the input, exactly the taps, plus two",
        "  border blocks with the mirrored taps folded in) or *banded* (blocks of output rows, each a small",
        "  matrix product with the contiguous input window it reads; always under autograd). Column",
        "  \"plans\": the model's choice for the height / width pass (banded with its rows per block).",
        "  \"plan rebuilt\" clears its caches (tap indices, weights, plans) before every call.",
        "",
        "Every method is timed in the dtype of the column group; ratios are loop / ours and dense / ours from",
        "the same run (in each round all methods run once, one after the other). Outputs were checked to",
        "agree first (max abs diff of ours vs loop / vs dense shown; float64 limit 1e-6, float32 1e-2).",
        "",
    ]
    for dtype_name, rows in results.items():
        lines += [
            f"**{dtype_name}**",
            "",
            "| resize | loop (ms) | dense, previous (ms) | ours (ms) | ours, plan rebuilt (ms) | ours vs loop | "
            "ours vs dense | plans | max abs diff vs loop / dense |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for label, ms, d_loop, d_dense, plans in rows:
            lines.append(f"| {label} | {ms['loop']:.1f} | {ms['dense']:.1f} | {ms['ours']:.2f} | "
                         f"{ms['ours-cold']:.2f} | "
                         f"{ms['loop'] / ms['ours']:.1f}x | {ms['dense'] / ms['ours']:.1f}x | {plans} | "
                         f"{d_loop:.1e} / {d_dense:.1e} |")
        lines.append("")
    lines += [
        "**Peak memory, 4000x3000 RGB -> 1000x750 (x1/4)**: one child process per method holds the input and",
        "resizes it once; peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`) of that process, and its",
        "rise during the resize (what the resize needs beyond the input and the loaded libraries).",
        "",
        "| method | dtype | input (MiB) | peak RSS (MiB) | rise during the resize (MiB) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for (method, dtype_name), m in memory.items():
        lines.append(f"| {LABELS[method]} | {dtype_name} | {m['input_mib']:.0f} | {m['peak_mib']:.0f} | "
                     f"{m['peak_mib'] - m['before_mib']:.0f} |")
    lines += ["", "Acceptance (issue 11: at least as fast as the loop at every size, at least 5x at 2048x2048 x1/4,",
              "per dtype):", ""]
    lines += [f"* {line}" for line in checks]
    lines += ["", "The CPU is shared with other jobs, so absolute times vary from run to run; the ratios, measured",
              "in interleaved rounds, vary less. With several torch threads on the loaded machine, thread",
              "hand-offs dominated such millisecond timings, hence one thread by default.",
              ""]
    if rounding is None:
        lines.append("float32 vs float64 after uint8 rounding: not measured (../shared/data/benchmark is absent).")
    else:
        lines += ["**float32 vs float64 after uint8 rounding** (why the benchmark LR images stay float64): values of",
                  "`imresize(hr, 1/4, round_uint8=True)` on the HR images (modcropped to multiples of 4) that differ",
                  "between a float32 and a float64 input: "
                  + "; ".join(f"{name} {changed} of {total}" for name, changed, total in rounding) + "."]
    write_section("imresize", "\n".join(lines))


if __name__ == "__main__":
    main()
