"""Upscaling: speed against a naive baseline, tiling accuracy, and a 4000x3000 x4 run.

--speed   ms per 256x256 -> 1024x1024 for the default model and DRN-S x4 (random init: the
          time does not depend on the weights), ours (`Upscaler`, inference mode, whole image)
          against a naive baseline in the same run: the model called under autograd (no
          inference/no_grad mode), untiled, output clamped and rounded to uint8.
--tiling  max |tiled - untiled| in grey levels (uint8) for tile paddings, with whole-image
          channel-attention means (exact mode, the default) and with per-tile means.
--large   a 4000x3000 image (--large-size) upscaled x4 to 16000x12000 by `dualsr upscale` in a subprocess per
          tile setting; wall time and peak resident memory (ru_maxrss of that process).

    python benchmarks/bench_upscale.py --speed --tiling [--repeats 3]
    python benchmarks/bench_upscale.py --large [--large-tiles auto 256]

Without the shipped default weights a random drn-t with the default preset stands in (and the
sections say so): speed and memory depend on the architecture, not on the weight values.
"""
from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, median_ms, write_section  # noqa: E402

from dualsr.inference import Upscaler, iter_tiles  # noqa: E402
from dualsr.models import create_model  # noqa: E402


def default_model() -> tuple[str, torch.nn.Module, str | None]:
    """(label, module, weights path) of the shipped default model, or a random drn-t stand-in."""
    from dualsr.checkpoint import load
    from dualsr.weights import default_weights

    try:
        shipped = default_weights()
    except FileNotFoundError:
        torch.manual_seed(0)
        return "drn-t x4 (random init: default weights not shipped yet)", create_model("drn-t", 4), None
    model = load(shipped.path).model
    return f"{shipped.model} x{shipped.scale} (shipped {shipped.path.name})", model, str(shipped.path)


def test_image(height: int, width: int) -> torch.Tensor:
    """The demo's procedural test card resized to (height, width), as a (3, H, W) 0-255 tensor."""
    from PIL import Image

    from dualsr.demo import ground_truth

    card = ground_truth().resize((width, height), Image.BICUBIC)
    return torch.from_numpy(np.asarray(card, dtype=np.float32)).permute(2, 0, 1).contiguous()


def naive_upscale(model: torch.nn.Module, image: torch.Tensor) -> np.ndarray:
    """The baseline: one untiled call with autograd recording, then clamp/round to uint8."""
    out = model(image[None])
    out = out[-1] if isinstance(out, (list, tuple)) else out
    return torch.floor(out[0].clamp(0, 255) + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()


def bench_speed(repeats: int) -> str:
    label, model, _ = default_model()
    torch.manual_seed(0)
    models = [(label, model, repeats), ("drn-s x4 (random init)", create_model("drn-s", 4), max(1, repeats - 1))]
    image = test_image(256, 256)
    rows = []
    for name, module, reps in models:
        module.eval()
        for p in module.parameters():
            p.requires_grad_(True)  # as a freshly loaded model: the baseline records autograd
        naive = copy.deepcopy(module)  # the Upscaler converts its module to channels-last in place
        upscaler = Upscaler(module, tile="auto")
        ours = upscaler.upscale_planes(image)
        base = naive_upscale(naive, image)
        diff = int(np.abs(ours.astype(int) - base.astype(int)).max())
        base_ms = median_ms(lambda: naive_upscale(naive, image), reps)
        ours_ms = median_ms(lambda: upscaler.upscale_planes(image), reps)
        rows.append(f"| {name} | whole image | {base_ms:.0f} | {ours_ms:.0f} | {base_ms / ours_ms:.2f}x | {diff} |")
        print(rows[-1], flush=True)
        if "drn-s" not in name:  # 61 statistics passes make exact tiling of DRN-S a poor trade
            tiled = Upscaler(module, tile=128)
            tiled_ms = median_ms(lambda: tiled.upscale_planes(image), reps)
            diff_t = int(np.abs(tiled.upscale_planes(image).astype(int) - base.astype(int)).max())
            n_tiles = len(list(iter_tiles(256, 256, 128, tiled.tile_pad)))
            rows.append(f"| {name} | tile 128, pad {tiled.tile_pad}, exact ({n_tiles} tiles, "
                        f"{len(tiled.pool_layers)} statistics passes) | {base_ms:.0f} | {tiled_ms:.0f} | "
                        f"{base_ms / tiled_ms:.2f}x | {diff_t} |")
            print(rows[-1], flush=True)
    command = f"python benchmarks/bench_upscale.py --speed --repeats {repeats}"
    return "\n".join([
        "## Upscaling speed: 256x256 -> 1024x1024 (x4)",
        "",
        f"`{command}` (median of {repeats} runs after a warm-up, DRN-S {max(1, repeats - 1)}; {machine_line()}).",
        "",
        "Baseline: the model called once on the whole image with autograd recording (no inference",
        "or no_grad mode), output clamped and rounded to uint8. Ours: `dualsr.Upscaler` (inference",
        "mode, output streamed into a preallocated uint8 array). Both in the same run; the last",
        "column is the largest difference between the two outputs in grey levels.",
        "",
        "| model | ours | baseline (ms) | ours (ms) | speed-up | max diff |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        "The CPU is shared with other jobs, so absolute times vary between runs; ratios come from",
        "the same run. Ours gains from inference mode (no autograd bookkeeping, no activations kept",
        "for backward) and from channels-last tensors, whose oneDNN convolutions are faster on this",
        "CPU. Exact tiling of a DRN costs one extra partial pass per channel-attention layer; a",
        "tile is only used when the image does not fit (`--tile auto`) or when asked.",
    ])


def _error_rows(label: str, model: torch.nn.Module, image: torch.Tensor, tile: int, pads,
                variants) -> tuple[list[str], int]:
    """One row per tile_pad: the max grey-level error of each variant (name -> a function of the
    Upscaler that sets it up and returns None, or a string to show instead of measuring)."""
    import warnings

    untiled = Upscaler(model).upscale_planes(image).astype(int)
    radius = Upscaler(model).receptive_radius
    rows = []
    for pad in sorted({*pads, radius}):
        cells = []
        for options, prepare in variants:
            up = Upscaler(model, tile=tile, tile_pad=pad, **options)
            shown = prepare(up)
            if shown is None:
                with warnings.catch_warnings():  # the approximate cases are what these tables measure
                    warnings.simplefilter("ignore")
                    shown = int(np.abs(up.upscale_planes(image).astype(int) - untiled).max())
            cells.append(shown)
        rows.append(f"| {label} | {pad}{' (receptive radius)' if pad == radius else ''} | "
                    + " | ".join(map(str, cells)) + " |")
        print(rows[-1], flush=True)
    return rows, radius


def _tiling_rows(label: str, model: torch.nn.Module, image: torch.Tensor) -> tuple[list[str], int]:
    """Whole-image (default) and per-tile channel-attention means, tiles of 32."""
    def per_tile(up):
        return None if up.pool_layers else "(no channel attention)"

    return _error_rows(label, model, image, 32, (0, 2, 4, 8, 12, 16),
                       [({"global_stats": True}, lambda up: None), ({"global_stats": False}, per_tile)])


def _placed_rows(label: str, model: torch.nn.Module, image: torch.Tensor, tile: int, pads) -> list[str]:
    """Tiles with the windows placed (the default) and not placed."""
    def unplaced(up):
        up.backend.window_layers = []  # what an ONNX backend has: nobody tells ESA the window
        return None

    return _error_rows(label, model, image, tile, pads, [({}, lambda up: None), ({}, unplaced)])[0]


def bench_tiling(extra: list[tuple[str, str]]) -> str:
    from dualsr.checkpoint import load

    image = test_image(96, 128)
    label, model, _ = default_model()
    models = [(label, model)]
    for name, weights in extra:  # e.g. a trained checkpoint: drn-t=/path/net_g_best.safetensors
        models.append((f"{name} ({Path(weights).name}, trained)", load(weights, name, 4).model))
    shared = Path(__file__).resolve().parents[2] / "shared"
    rlfn = shared / "weights" / "rlfn" / "rlfn_x4.pth"
    if rlfn.is_file():
        models.append(("rlfn x4 (official weights)", load(rlfn, "rlfn", 4).model))
    rows, radii = [], []
    for name, module in models:
        model_rows, radius = _tiling_rows(name, module, image)
        rows += model_rows
        radii.append(f"{name}: {radius}")
    photo = shared / "data" / "benchmark" / "B100" / "HR" / "101085.png"
    large_rows = []
    if rlfn.is_file() and photo.is_file():  # a realistic size: the 480x320 photo itself as the LR input
        from dualsr.data.imageio import read_image

        large_rows = _placed_rows("rlfn x4 (official weights)", models[-1][1], read_image(photo).rgb,
                                  tile=128, pads=(0, 16, 32, 48, 64))
    extra_args = "".join(f" --tiling-weights {n}={w}" for n, w in extra)
    return "\n".join([
        "## Tiled vs untiled upscaling",
        "",
        f"`python benchmarks/bench_upscale.py --tiling{extra_args}` ({machine_line()}).",
        "",
        "Input: the demo test card resized to 128x96, tiles of 32x32 LR pixels (12 tiles), each run",
        "with `tile_pad` LR pixels of context; max |tiled - untiled| over the 4x output in uint8 grey",
        "levels, with the channel-attention means taken over the whole image (the default) or per tile.",
        "",
        "| model | tile_pad | whole-image attention means (default) | per-tile attention means |",
        "| --- | --- | --- | --- |",
        *rows,
        *(["", "RLFN at a realistic size: B100 `101085.png` (480x320, a photo) as the LR input, tiles of 128 "
               "(12 tiles):", "",
           "| model | tile_pad | placed windows (default) | windows not placed (as in an ONNX graph) |",
           "| --- | --- | --- | --- |", *large_rows]
          if large_rows else []),
        "",
        "Channel attention pools over the whole feature map, so with per-tile means every tile sees",
        "slightly different gates whatever the padding. The default mode first measures the means",
        "over the whole image (one partial pass per attention layer, tile by tile); tiles are then",
        "exact up to float rounding once the padding covers the receptive radius (an upper bound",
        f"that each model's spec computes from its layers: {'; '.join(radii)} LR px; the default `tile_pad`",
        "unless the spec gives a smaller `default_tile_pad`).",
        "RLFN has no channel attention, but its ESA blocks pool with stride 6 (conv stride 2, max-pool",
        "stride 3) and resample the coarse gate to the input's size, which depends on the window's size",
        "and place. Its spec says tiling \"placed\": windows start at multiples of 6 and each ESA is told",
        "where the window lies in the whole image, so it resamples as untiled; tiles are then exact at",
        "the receptive radius. Its default `tile_pad` is smaller (the spec's `default_tile_pad`, 32):",
        "that case is warned about as approximate, with the error in the rows above.",
    ])


_CHILD = """
import resource, sys, time
from dualsr.cli import main
start = time.perf_counter()
status = main(sys.argv[1:])
print("RESULT", status, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def bench_large(tiles: list[str], size: str = "4000x3000") -> str:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # the x4 output of a 4000x3000 image is over PIL's bomb limit

    label, model, weights = default_model()
    rows, first = [], None
    with tempfile.TemporaryDirectory(prefix="dualsr-bench-") as tmp:
        width, height = (int(v) for v in size.lower().split("x"))
        lr_path = Path(tmp) / f"lr_{width}x{height}.png"
        Image.fromarray(test_image(height, width).round().byte().permute(1, 2, 0).numpy()).save(lr_path)
        model_args: list[str] = []  # the shipped default model needs no option
        if weights is None:
            from dualsr.checkpoint import save_weights

            random_weights = save_weights(model, Path(tmp) / "drn_t_random.safetensors")
            model_args = ["--model", "drn-t", "--weights", str(random_weights)]
        for tile in tiles:
            out = Path(tmp) / f"sr_{tile}.png"
            args = [str(lr_path), "-o", str(out), *model_args, "--tile", tile, "-q"]
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", _CHILD, "upscale", *args], capture_output=True, text=True)
            wall = time.perf_counter() - start
            result = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
            if proc.returncode != 0 or not result:
                raise SystemExit(f"upscale failed for --tile {tile}:\n{proc.stderr[-2000:]}")
            _, status, inner, maxrss_kb = result[0].split()
            out_size = Image.open(out).size
            pixels = np.asarray(Image.open(out), dtype=np.int16)
            first = pixels if first is None else first
            diff = int(np.abs(pixels - first).max())
            upscaler = Upscaler(model, tile=None if tile == "0" else (tile if tile == "auto" else int(tile)))
            chosen = upscaler.tile_for(height, width)
            n_tiles = len(list(iter_tiles(height, width, chosen, upscaler.tile_pad)))
            passes = 1 + (len(upscaler.pool_layers) if n_tiles > 1 else 0)
            rows.append(f"| `--tile {tile}` | {chosen or 'whole image'} | {n_tiles} x {passes} | {out_size[0]}x{out_size[1]} | "
                        f"{wall:.1f} | {float(inner):.1f} | {int(maxrss_kb) / 1024:.0f} | {diff} |")
            print(rows[-1], flush=True)
    command = f"python benchmarks/bench_upscale.py --large --large-size {size} --large-tiles {' '.join(tiles)}"
    return "\n".join([
        f"## A {width}x{height} image upscaled x4",
        "",
        f"`{command}` ({machine_line()}; free memory at the start: {_meminfo_gib():.1f} GiB).",
        "",
        f"Model: {label}. Each row is one `dualsr upscale` process (PNG in, PNG out); wall time from",
        "the parent (includes Python start-up and imports), the upscale call's own time, and the",
        "process's peak resident memory (ru_maxrss). Passes: tiles x (statistics passes + 1).",
        "Last column: max |difference| in grey levels from the first row's output.",
        "",
        "| option | LR tile | tiles x passes | output | wall (s) | upscale (s) | peak RSS (MiB) | max diff |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        "`--tile auto` runs the whole image at once when the planned peak (6x the largest activation)",
        "fits half the free memory; a fixed tile bounds the memory by the tile instead of the image,",
        "at the price of the channel-attention statistics passes (exact tiling).",
    ])


def _meminfo_gib() -> float:
    from dualsr.inference import available_memory

    return available_memory("cpu") / 1024**3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--tiling", action="store_true")
    parser.add_argument("--large", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large-tiles", nargs="+", default=["auto", "256"])
    parser.add_argument("--large-size", default="4000x3000", metavar="WxH", help="LR input size for --large")
    parser.add_argument("--tiling-weights", action="append", default=[], metavar="NAME=FILE",
                        help="also measure this (trained) checkpoint in --tiling, e.g. drn-t=net_g.safetensors")
    args = parser.parse_args()
    if not (args.speed or args.tiling or args.large):
        args.speed = args.tiling = True
    if args.speed:
        write_section("upscale-speed", bench_speed(args.repeats))
    if args.tiling:
        extra = [tuple(item.split("=", 1)) for item in args.tiling_weights]
        write_section("upscale-tiling", bench_tiling(extra))
    if args.large:
        write_section("upscale-large", bench_large(args.large_tiles, args.large_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
