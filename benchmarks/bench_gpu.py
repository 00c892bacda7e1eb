"""Upscaling on a GPU: ms per 256x256 -> 1024x1024 (and 512x512 -> 2048x2048) for the default model
and DRN-S x4 in float32, float16 and bfloat16, and a check that float16 gives no black or
non-finite tile (tiled run, every tile's output inspected). Writes REPORT section "gpu".

    python benchmarks/bench_gpu.py [--repeats 10]          # on a CUDA machine (scripts/gpu_check.sh)
    python benchmarks/bench_gpu.py --device cpu --smoke    # the script's own check on a CPU (no report)

DRN-S runs with random weights (time does not depend on the values); the default model with its
shipped weights, so its float16 check is the one that matters for users.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402
from bench_upscale import default_model, test_image  # noqa: E402

from dualsr.inference import FORMAT_UINT8, NonFiniteOutputError, Upscaler, iter_tiles  # noqa: E402
from dualsr.models import create_model  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _timed_ms(fn, repeats: int, device: torch.device) -> float:
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def black_or_broken_tiles(upscaler: Upscaler, image: torch.Tensor, tile: int) -> tuple[int, int, str]:
    """(bad tiles, tiles, note): tiles whose output is constant (black) in a tiled run of `image`."""
    # per-tile attention means: the check is about overflow in each tile, not about exact tiling
    tiled = Upscaler(upscaler.model, device=upscaler.device, dtype=upscaler.dtype, tile=tile, global_stats=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "tiled output only approximates": known and intended here
            out = tiled.upscale_planes(image, fmt=FORMAT_UINT8)
    except NonFiniteOutputError as exc:
        return -1, 0, f"non-finite output: {exc}"
    s = upscaler.scale
    tiles = list(iter_tiles(image.shape[1], image.shape[2], tile, tiled.tile_pad))
    bad = sum(1 for y0, y1, x0, x1 in tiles if out[y0 * s:y1 * s, x0 * s:x1 * s].std() < 0.5)
    return bad, len(tiles), ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat, no report")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_gpu.py: no CUDA device (use --device cpu --smoke to check the script)", file=sys.stderr)
        return 2
    label, default_module, _ = default_model()
    torch.manual_seed(0)
    models = [(label, default_module), ("drn-s x4 (random init)", create_model("drn-s", 4))]
    sizes = [(32, 32)] if args.smoke else [(256, 256), (512, 512)]
    repeats = 1 if args.smoke else args.repeats
    dtypes = ["fp32", "bf16"] if device.type == "cpu" else list(DTYPES)
    rows = []
    for name, module in models:
        reference = None
        for dtype_name in dtypes:
            upscaler = Upscaler(module, device=device, dtype=DTYPES[dtype_name], tile=None)
            cells = []
            for h, w in sizes:
                image = test_image(h, w)
                cells.append(f"{_timed_ms(lambda: upscaler.upscale_planes(image), repeats, device):.1f}")
            image = test_image(*sizes[0])
            out = upscaler.upscale_planes(image).astype(int)
            if reference is None:
                reference = out
            diff = float(np.abs(out - reference).mean())
            bad, n_tiles, note = black_or_broken_tiles(upscaler, test_image(*sizes[-1]), tile=sizes[-1][0] // 4)
            check = note or f"{bad} of {n_tiles} tiles black"
            rows.append(f"| {name} | {dtype_name} | {' | '.join(cells)} | {diff:.2f} | {check} |")
            print(rows[-1], flush=True)
            upscaler.model.float()  # the Upscaler converts the module in place; give the next run float32
    if args.smoke:
        return 0
    gpu = torch.cuda.get_device_name(device)
    size_cols = " | ".join(f"{h}x{w} -> {4 * h}x{4 * w} (ms)" for h, w in sizes)
    write_section("gpu", "\n".join([
        "## Upscaling on a GPU: float32, float16, bfloat16",
        "",
        f"`python benchmarks/bench_gpu.py --repeats {repeats}` (run by `scripts/gpu_check.sh`; {gpu}, torch "
        f"{torch.__version__}; median of {repeats} after a warm-up, whole image, `dualsr.Upscaler`).",
        "",
        "Mean |diff| is against the same model's float32 output, in grey levels (uint8). The tile check",
        f"upscales the {sizes[-1][0]}x{sizes[-1][1]} card in tiles of {sizes[-1][0] // 4} and counts tiles whose",
        "output is flat (black): float16 overflow shows there, or as a non-finite-output error.",
        "",
        f"| model | dtype | {size_cols} | mean diff vs fp32 | tiles |",
        "| --- | --- | " + " | ".join("---" for _ in sizes) + " | --- | --- |",
        *rows,
    ]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
