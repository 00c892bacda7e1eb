"""Where RLFN spends its CPU time, and which widths are cheap: the facts behind the shipped widths.

    python benchmarks/bench_widths.py [--rounds 5]

Three tables, one torch thread, channels-last tensors as `dualsr.Upscaler` runs them, inference
mode, every row of a table timed interleaved with the others (median of --rounds):
  1. one 3x3 convolution, C channels in and out, on a 120x80 input (a B100 image at x4), against
     C = 52 (RLFN's width): how the time per multiply-add moves with C;
  2. whole RLFN variants (random weights: the time does not depend on their values) at x4 on 120x80
     and at x2 on 240x160, against the released RLFN: inner widths (c1_r, c2_r) against the stream
     width (n_feats), and the released widths with the 1x1 convs sent through oneDNN;
  3. torch.profiler's operator breakdown of RLFN x4 and of the shipped x4 default on 120x80.
Writes the `rlfn_widths` section of benchmarks/REPORT.md.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _report import machine_line, write_section  # noqa: E402

CONV_WIDTHS = (16, 24, 28, 32, 36, 40, 44, 48, 52, 56, 64)
# label -> RLFN constructor arguments (widths: c1_r, c2_r, esa.conv1 per block)
VARIANTS = {
    "RLFN (52, released)": {},
    "inner 40": {"widths": [40, 40, 16] * 6},
    "inner 32": {"widths": [32, 32, 16] * 6},
    "inner 28": {"widths": [28, 28, 16] * 6},
    "inner 24": {"widths": [24, 24, 16] * 6},
    "stream 48 (RLFN-S)": {"n_feats": 48},
    "stream 48, inner 32 (shipped x4)": {"n_feats": 48, "widths": [32, 32, 16] * 6},
    "stream 52, inner 24 (shipped x2)": {"widths": [24, 24, 16] * 6},
    "stream 40": {"n_feats": 40},
    "stream 40, inner 32": {"n_feats": 40, "widths": [32, 32, 16] * 6},
    "stream 32": {"n_feats": 32},
    "RLFN, 1x1 convs through oneDNN": {},  # see _one_by_one_through_onednn
}
FORCED_ONEDNN = "RLFN, 1x1 convs through oneDNN"


def _one_by_one_through_onednn(model: torch.nn.Module) -> torch.nn.Module:
    """Dilation 2 on every 1x1 stride-1 conv: the same function, but torch then picks oneDNN for it
    (single-threaded, batch-1 1x1 convs otherwise take torch's own im2col + sgemm path)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d) and module.kernel_size == (1, 1) and module.stride == (1, 1):
            module.dilation = (2, 2)
    return model
LR_SIZES = {4: (80, 120), 2: (160, 240)}


def interleaved(calls: dict[str, callable], rounds: int) -> dict[str, float]:
    """Median seconds per call, the calls taking turns so that a busy CPU slows them alike."""
    for call in calls.values():
        call()
    times = {k: [] for k in calls}
    for _ in range(rounds):
        for k, call in calls.items():
            start = time.perf_counter()
            call()
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def conv_table(rounds: int) -> list[str]:
    calls = {}
    for c in CONV_WIDTHS:
        conv = torch.nn.Conv2d(c, c, 3, padding=1).to(memory_format=torch.channels_last).eval()
        x = torch.rand(1, c, 80, 120).contiguous(memory_format=torch.channels_last)
        calls[c] = (lambda conv=conv, x=x: [conv(x) for _ in range(10)])
    with torch.inference_mode():
        med = interleaved(calls, rounds)
    base = med[52]
    lines = ["| channels in = out | ms per conv | vs 52 | multiply-adds vs 52 | time per multiply-add vs 52 |",
             "|---:|---:|---:|---:|---:|"]
    for c in CONV_WIDTHS:
        macs = c * c / 52 ** 2
        lines.append(f"| {c} | {med[c] / 10 * 1e3:.2f} | {med[c] / base:.2f}x | {macs:.2f}x | "
                     f"{med[c] / base / macs:.2f}x |")
    return lines


def variants_table(rounds: int) -> list[str]:
    from dualsr.models.rlfn import RLFN
    from dualsr.profile import count_parameters

    lines = ["| variant | params x4 | time x4 (120x80) vs released | params x2 | time x2 (240x160) vs released |",
             "|---|---:|---:|---:|---:|"]
    results = {}
    for scale, (h, w) in LR_SIZES.items():
        torch.manual_seed(0)
        models = {k: RLFN(scale=scale, **v).eval().to(memory_format=torch.channels_last) for k, v in VARIANTS.items()}
        _one_by_one_through_onednn(models[FORCED_ONEDNN])
        x = (torch.rand(1, 3, h, w) * 255).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            med = interleaved({k: (lambda m=m: m(x)) for k, m in models.items()}, rounds)
        base = med["RLFN (52, released)"]
        results[scale] = {k: (count_parameters(models[k]), med[k], med[k] / base) for k in models}
    for k in VARIANTS:
        p4, ms4, r4 = results[4][k]
        p2, ms2, r2 = results[2][k]
        lines.append(f"| {k} | {p4:,} | {r4:.2f}x ({ms4 * 1e3:.0f} ms) | {p2:,} | {r2:.2f}x ({ms2 * 1e3:.0f} ms) |")
    return lines


def profile_table() -> list[str]:
    from torch.profiler import ProfilerActivity, profile

    import dualsr

    shipped = REPO / "src" / "dualsr" / "weights" / "rlfn_drc_x4.safetensors"
    from dualsr.models.rlfn import RLFN

    models = {"RLFN x4 (released widths)": RLFN(scale=4)}
    if shipped.is_file():
        models["shipped x4 default"] = dualsr.load(shipped).model
    x = (torch.rand(1, 3, 80, 120) * 255).contiguous(memory_format=torch.channels_last)
    lines = []
    for label, model in models.items():
        model = model.eval().to(memory_format=torch.channels_last)
        with torch.inference_mode():
            for _ in range(2):
                model(x)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(5):
                    model(x)
        events = [e for e in prof.key_averages() if e.key.startswith("aten::") and e.key not in (
            "aten::conv2d", "aten::convolution", "aten::_convolution")]
        total = sum(e.self_cpu_time_total for e in events)
        top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:8]
        lines += [f"{label}: share of self CPU time by operator (5 runs on 120x80)", "",
                  "| operator | share | calls per run |", "|---|---:|---:|"]
        lines += [f"| {e.key} | {e.self_cpu_time_total / total:.1%} | {e.count // 5} |" for e in top]
        lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = [
        "## RLFN on this CPU: cheap widths and where the time goes",
        "",
        f"`python benchmarks/bench_widths.py --rounds {args.rounds}`; {machine_line()}; channels-last, inference mode.",
        "",
        "1. One 3x3 convolution on a 120x80 input (10 calls per timing):",
        "",
        *conv_table(args.rounds),
        "",
        "2. Whole RLFN variants, random weights (inner = c1_r and c2_r outputs of every block; stream = n_feats):",
        "",
        *variants_table(args.rounds),
        "",
        "3. Operator profile:",
        "",
        *profile_table(),
        "The CPU may be shared with other jobs: absolute times move between runs, the ratios (interleaved) less.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("rlfn_widths", text)


if __name__ == "__main__":
    main()
