"""Candidates for the shipped default model, side by side, from one command.

    python benchmarks/bench_defaults.py                 # every row below: quality, size, CPU speed
    python benchmarks/bench_defaults.py --skip-eval     # size and speed only (quick)

For each (label, weights) in ROWS (weights "bicubic:xS" is the bicubic baseline, any other entry a
file that `dualsr.load` reads without a model name): parameters, MACs at LR 96x96 and for a
1280x720 output (`dualsr.profile.count_macs`: conv/linear multiply-adds), Set5/Set14/B100
PSNR/SSIM on Y with dualsr's evaluation (MATLAB-exact bicubic LR in uint8, rounded SR, border =
scale), and the CPU time of one B100 image: the first `--images` B100 HR images, mod-cropped,
downscaled with `dualsr.imresize` to uint8 LR (x4 about 120x80, x2 about 240x160), upscaled by
`dualsr.Upscaler(weights=..., tile=None)` from a uint8 numpy array. Timing is interleaved (per
round, per image, every model of that scale in turn), so a busy shared CPU slows all rows alike
and the ratios stay meaningful; each row's figure is the median over all its calls. Bicubic's time
is `dualsr.imresize` of the same float LR image. Writes the `default_models` section of
benchmarks/REPORT.md. Rows whose file is absent (../shared not there) are left out with a note.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _report import machine_line, write_section  # noqa: E402

SHARED = REPO.parent / "shared"
WEIGHTS = SHARED / "weights"
BENCHMARK = SHARED / "data" / "benchmark"
SETS = ("Set5", "Set14", "B100")

SHIPPED = REPO / "src" / "dualsr" / "weights"
# (label, weights): "bicubic:xS" is the baseline at scale S; "dualsr default" rows are the shipped defaults
ROWS = [
    ("bicubic x4", "bicubic:x4"),
    ("dualsr default x4 (rlfn_drc_x4)", str(SHIPPED / "rlfn_drc_x4.safetensors")),
    ("DRN-T x4 (earlier default)", str(SHIPPED / "drn_t_x4.safetensors")),
    ("RLFN x4", str(WEIGHTS / "rlfn" / "rlfn_x4.pth")),
    ("RLFN-S x4", str(WEIGHTS / "rlfn" / "rlfn_s_x4.pth")),
    ("SMFANet x4", str(WEIGHTS / "smfanet" / "SMFANet_DF2K_100w_x4SR.pth")),
    ("SMFANet+ x4", str(WEIGHTS / "smfanet" / "SMFANet_plus_DF2K_100w_x4SR.pth")),
    ("bicubic x2", "bicubic:x2"),
    ("dualsr default x2 (rlfn_drc_x2)", str(SHIPPED / "rlfn_drc_x2.safetensors")),
    ("RLFN x2", str(WEIGHTS / "rlfn" / "rlfn_x2.pth")),
    ("SMFANet x2", str(WEIGHTS / "smfanet" / "SMFANet_DF2K_100w_x2SR.pth")),
]
REFERENCES = ("RLFN", "DRN-T x4")  # ratio columns: vs the RLFN row of the same scale, vs DRN-T x4
TILE, TILE_INPUT = 256, 1024  # the tiling check: --tile 256 on a 1024x1024 input


class Row:
    def __init__(self, label: str, weights: str):
        import dualsr

        self.label, self.weights = label, weights
        self.bicubic = weights.startswith("bicubic:")
        if self.bicubic:
            self.model, self.scale, self.name = None, int(weights.split("x")[-1]), "bicubic"
            self.upscaler = None
        else:
            loaded = dualsr.load(weights)
            self.model, self.scale, self.name = loaded.model.eval(), loaded.scale, loaded.name
            self.upscaler = dualsr.Upscaler(weights=weights, tile=None)
        self.times: list[float] = []
        self.scores = {}

    def describe(self) -> str:
        return "bicubic" if self.bicubic else self.model.spec.label(self.scale, self.model.config())

    def params(self) -> int | None:
        from dualsr.profile import count_parameters

        return None if self.bicubic else count_parameters(self.model)

    def macs(self, lr_size: tuple[int, int]) -> int | None:
        from dualsr.profile import count_macs

        return None if self.bicubic else count_macs(self.model, lr_size)

    def run(self, lr: np.ndarray, lr_float: torch.Tensor) -> None:
        import dualsr

        start = time.perf_counter()
        if self.bicubic:
            dualsr.imresize(lr_float, self.scale)
        else:
            self.upscaler.upscale(lr)
        self.times.append((time.perf_counter() - start) * 1000)


def b100_lr(scale: int, count: int) -> list[tuple[np.ndarray, torch.Tensor]]:
    """The first `count` B100 HR images (sorted), mod-cropped, as uint8 HWC LR arrays (and CHW floats)."""
    import dualsr
    from PIL import Image

    paths = sorted((BENCHMARK / "B100" / "HR").glob("*.png"))[:count]
    images = []
    for path in paths:
        hr = np.asarray(Image.open(path).convert("RGB"))
        hr = hr[: hr.shape[0] - hr.shape[0] % scale, : hr.shape[1] - hr.shape[1] % scale]
        lr = dualsr.imresize(hr, 1 / scale)  # uint8 in, uint8 out (MATLAB rounding)
        images.append((lr, torch.from_numpy(lr).permute(2, 0, 1).float()))
    return images


def time_interleaved(rows: list[Row], images: int, rounds: int) -> None:
    for scale in sorted({r.scale for r in rows}):
        group = [r for r in rows if r.scale == scale]
        data = b100_lr(scale, images)
        for row in group:  # warm-up (allocator, oneDNN primitive caches)
            row.run(*data[0])
            row.times.clear()
        for _ in range(rounds):
            for lr, lr_float in data:
                for row in group:
                    row.run(lr, lr_float)


def evaluate_rows(rows: list[Row]) -> None:
    from dualsr.evaluate import evaluate

    for row in rows:
        scores = evaluate(row.model, [BENCHMARK / s for s in SETS], row.scale)
        row.scores = {s.name: (s.psnr, s.ssim) for s in scores}
        print(f"{row.label}: " + ", ".join(f"{k} {p:.3f}/{q:.4f}" for k, (p, q) in row.scores.items()), flush=True)


def tiling_input() -> np.ndarray:
    """A 1024x1024 photo-like LR input: the first B100 HR image resized (PIL bicubic) to that size."""
    from PIL import Image

    path = sorted((BENCHMARK / "B100" / "HR").glob("*.png"))[0]
    return np.asarray(Image.open(path).convert("RGB").resize((TILE_INPUT, TILE_INPUT), Image.BICUBIC))


def tiling_check(rows: list[Row], rounds: int) -> str:
    """Untiled vs `--tile 256` (default tile_pad) on a 1024x1024 input: time ratio and max |difference|."""
    import dualsr

    image = tiling_input()
    checked = [r for r in rows if r.label.startswith("dualsr default") or r.label.startswith("RLFN x")]
    setups = {}
    for row in checked:
        tiled = dualsr.Upscaler(weights=row.weights, tile=TILE)
        setups[row.label] = {"untiled": row.upscaler, "tiled": tiled, "times": {"untiled": [], "tiled": []},
                             "pad": tiled.tile_pad}
    outputs = {}
    for _ in range(rounds):
        for label, setup in setups.items():
            for mode in ("untiled", "tiled"):
                start = time.perf_counter()
                outputs[label, mode] = setup[mode].upscale(image)
                setup["times"][mode].append(time.perf_counter() - start)
    lines = [
        f"`--tile {TILE}` against untiled on a {TILE_INPUT}x{TILE_INPUT} LR input (the first B100 image resized), "
        f"with the model's default `tile_pad`; seconds are medians of {rounds} interleaved runs, one thread.",
        "",
        "| model | tile_pad | untiled (s) | tile 256 (s) | ratio | max abs(tiled - untiled) (grey levels) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, setup in setups.items():
        untiled, tiled = (statistics.median(setup["times"][m]) for m in ("untiled", "tiled"))
        diff = np.abs(outputs[label, "tiled"].astype(np.int16) - outputs[label, "untiled"].astype(np.int16)).max()
        lines.append(f"| {label} | {setup['pad']} | {untiled:.2f} | {tiled:.2f} | {tiled / untiled:.2f}x | {diff} |")
    return "\n".join(lines)


def _g(macs: int | None) -> str:
    return "—" if macs is None else f"{macs / 1e9:.2f} G"


def report(rows: list[Row], missing: list[str], args) -> str:
    def reference(row: Row, label: str) -> Row | None:
        if label == "RLFN":
            return next((r for r in rows if r.label == f"RLFN x{row.scale}"), None)
        return next((r for r in rows if r.label.startswith(label)), None)

    lines = [
        "## Default model candidates (bicubic, DRN-T, RLFN, SMFANet)",
        "",
        f"`python benchmarks/bench_defaults.py` (rounds={args.rounds}, images={args.images}, threads={args.threads}); "
        f"{machine_line()}.",
        "",
        "PSNR/SSIM on Y (BT.601), border = scale, MATLAB-exact bicubic LR in uint8 (dualsr's evaluation). "
        "MACs: conv/linear multiply-adds of the network (bicubic none). ms per B100 image: "
        f"median over {args.rounds} interleaved rounds of the first {args.images} B100 images through "
        "`dualsr.Upscaler(weights=..., tile=None)` on a uint8 array (x4: LR about 120x80, x2: about 240x160), "
        "one torch thread; bicubic: `dualsr.imresize` of the LR image. The CPU is shared with other jobs: "
        "absolute times move between runs, the ratios (measured interleaved) much less.",
        "",
        "| model | params | MACs LR 96x96 | MACs 1280x720 out | Set5 | Set14 | B100 | ms / B100 image | "
        "vs RLFN (same scale) | vs DRN-T x4 |",
        "|---|---:|---:|---:|---|---|---|---:|---:|---:|",
    ]
    for row in rows:
        ms = statistics.median(row.times) if row.times else None
        ratios = []
        for label in REFERENCES:
            ref = reference(row, label)
            ok = ms is not None and ref is not None and ref.times and not row.bicubic
            ratios.append(f"{ms / statistics.median(ref.times):.2f}x" if ok else "—")
        scores = [f"{row.scores[s][0]:.2f} / {row.scores[s][1]:.4f}" if s in row.scores else "—" for s in SETS]
        params = row.params()
        out_lr = (720 // row.scale, 1280 // row.scale)
        lines.append(f"| {row.label} | {'—' if params is None else f'{params:,}'} | {_g(row.macs((96, 96)))} | "
                     f"{_g(row.macs(out_lr))} | {' | '.join(scores)} | "
                     f"{'—' if ms is None else f'{ms:.1f}'} | {' | '.join(ratios)} |")
    lines += ["", "Rows: " + "; ".join(f"{r.label} = {r.describe()} (`{Path(r.weights).name}`)" for r in rows
                                      if not r.bicubic) + "."]
    if missing:
        lines += ["", "Left out (file not found): " + ", ".join(missing) + "."]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20, help="first N B100 images timed (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--skip-eval", action="store_true", help="no PSNR/SSIM (size and speed only)")
    parser.add_argument("--tiling-rounds", type=int, default=2,
                        help="interleaved runs of the tiling check (0: leave it out; default 2)")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing REPORT.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    missing = [label for label, w in ROWS if not w.startswith("bicubic:") and not Path(w).exists()]
    rows = [Row(label, w) for label, w in ROWS if label not in missing]
    time_interleaved(rows, args.images, args.rounds)
    for row in rows:
        print(f"{row.label}: {statistics.median(row.times):.1f} ms per image", flush=True)
    if not args.skip_eval:
        evaluate_rows(rows)
    body = report(rows, missing, args)
    if args.tiling_rounds:
        body += "\n\n" + tiling_check(rows, args.tiling_rounds)
    print(body)
    if not args.no_write:
        write_section("default_models", body)


if __name__ == "__main__":
    main()
