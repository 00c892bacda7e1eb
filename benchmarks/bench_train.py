"""Training throughput (patches/s) and inference time of DRN-S x4 on this machine.

Training: the trainer's own step (`PrimalDualStep` -> dual-regression loss -> backward -> one Adam
step for the primal and one per dual) on random HR patches of the official size (384) with their
MATLAB pyramid. Named baseline in the same run: the same step with lambda = 0 (no dual models),
so the ratio is the cost of dual regression. The drn_t_x4 CPU preset is measured the same way.
Inference: DRN-S x4 on a 256x256 LR image (1024x1024 output), with torch's bicubic upsampling of
the same image as the reference point.

    python benchmarks/bench_train.py --batch 2 --iters 3 --threads 2
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, median_ms, write_section  # noqa: E402

from dualsr.config import load_config  # noqa: E402
from dualsr.data.degrade import make_pyramid  # noqa: E402
from dualsr.models import create_dual, create_model  # noqa: E402
from dualsr.train.step import PrimalDualStep, make_optimizer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def make_step(name: str, kwargs: dict, scale: int, patch: int, batch: int, dual_weight: float):
    """A closure running one trainer step (zero_grad, loss, backward, Adam steps) on fixed patches."""
    torch.manual_seed(0)
    model = create_model(name, scale, **kwargs)
    duals = create_dual(model, scale) if dual_weight else None
    step = PrimalDualStep(model, duals, dual_weight)
    options = {"type": "Adam", "lr": 1e-4, "betas": [0.9, 0.999], "eps": 1e-8}
    optimizers = [make_optimizer(model.parameters(), options)]
    optimizers += [make_optimizer(d.parameters(), options) for d in duals or []]
    pyramid = make_pyramid(torch.rand(batch, 3, patch, patch) * 255, scale)

    def run() -> float:
        t0 = time.perf_counter()
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        step(pyramid)["total"].backward()
        for opt in optimizers:
            opt.step()
        return time.perf_counter() - t0

    return run


def interleaved_seconds(steps: list, iters: int, warmup: int = 1) -> list[list[float]]:
    """Seconds per iteration of each step, run alternately (order flipped every round: A B, B A, ...)
    so that drifts in the machine's load and who-runs-first effects hit all alike."""
    times: list[list[float]] = [[] for _ in steps]
    for i in range(warmup + iters):
        order = list(enumerate(steps))
        for k, step in order if i % 2 == 0 else order[::-1]:
            t = step()
            if i >= warmup:
                times[k].append(t)
    return times


@torch.no_grad()
def inference_ms(fn, image: torch.Tensor, repeats: int) -> float:
    """Median wall time of fn(image) in ms, after one warm-up call."""
    return median_ms(lambda: fn(image), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2, help="patches per DRN-S step (official: 32)")
    parser.add_argument("--patch", type=int, default=384, help="HR patch side (official: 384)")
    parser.add_argument("--iters", type=int, default=3, help="timed iterations per setting")
    parser.add_argument("--repeats", type=int, default=3, help="timed inference runs")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--no-report", action="store_true", help="print only, do not write REPORT.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []

    def measure(label: str, name: str, kwargs: dict, patch: int, batch: int) -> None:
        steps = [make_step(name, kwargs, 4, patch, batch, w) for w in (0.1, 0.0)]
        dual, plain = (statistics.median(t) for t in interleaved_seconds(steps, args.iters))
        rows.append((label, patch, batch, dual, batch / dual, plain, batch / plain, dual / plain))
        print(f"{label}: patch {patch}, batch {batch}: dual {dual:.3f} s/it ({batch / dual:.2f} patches/s), "
              f"no-dual {plain:.3f} s/it ({batch / plain:.2f} patches/s), ratio {dual / plain:.3f}", flush=True)

    measure("DRN-S x4", "drn-s", {}, args.patch, args.batch)
    preset = load_config(REPO / "configs" / "drn_t_x4.yaml")
    net = dict(preset["network_g"])
    kind = net.pop("type")
    tp, tb = preset["datasets"]["train"]["gt_size"], preset["datasets"]["train"]["batch_size"]
    measure(f"{kind} x4 (configs/drn_t_x4.yaml)", kind, net, tp, tb)

    torch.manual_seed(0)
    lr = torch.rand(1, 3, 256, 256) * 255
    drn_s = create_model("drn-s", 4).eval()
    tiny = create_model(kind, 4, **net).eval()
    ms_drn = inference_ms(lambda x: drn_s(x)[-1], lr, args.repeats)
    ms_tiny = inference_ms(lambda x: tiny(x)[-1], lr, args.repeats)
    ms_bic = inference_ms(lambda x: torch.nn.functional.interpolate(x, scale_factor=4, mode="bicubic"),
                          lr, args.repeats)
    print(f"inference 256x256 -> 1024x1024: DRN-S {ms_drn:.0f} ms, {kind} {ms_tiny:.0f} ms, bicubic {ms_bic:.1f} ms")

    from dualsr.profile import count_dual_macs, count_macs

    lr_side = args.patch // 4
    primal_macs = count_macs(drn_s, (lr_side, lr_side))
    dual_macs = count_dual_macs(drn_s, create_dual(drn_s, 4), (lr_side, lr_side))
    print(f"forward MACs per {args.patch}px patch: primal {primal_macs / 1e9:.1f} G, duals {dual_macs / 1e6:.1f} M "
          f"({100 * dual_macs / primal_macs:.3f}%)")

    command = "python benchmarks/bench_train.py " + " ".join(sys.argv[1:])
    lines = [
        "## Training throughput and inference time (DRN-S x4)",
        "",
        f"`{command.strip()}` ({machine_line()}).",
        "",
        "One training iteration = the trainer's step: primal forward, dual models, dual-regression loss,",
        "backward, one Adam step for the primal and one per dual; random HR patches with their MATLAB",
        f"pyramid; median of {args.iters} iterations after one warm-up. Baseline in the same run: the same",
        "step at lambda = 0 (no dual models); the two settings alternate iteration by iteration (order",
        "flipped every round) so that changes in the machine's load hit both alike.",
        "",
        "| model | HR patch | batch | dual s/it | dual patches/s | no-dual s/it | no-dual patches/s | dual / no-dual time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, patch, batch, dual, dps, plain, pps, ratio in rows:
        lines.append(f"| {label} | {patch} | {batch} | {dual:.3f} | {dps:.2f} | {plain:.3f} | {pps:.2f} | {ratio:.3f} |")
    lines += [
        "",
        f"Inference on a 256x256 LR image (1024x1024 output), median of {args.repeats} runs: DRN-S x4 "
        f"{ms_drn:.0f} ms, {kind} preset {ms_tiny:.0f} ms, torch bicubic upsampling {ms_bic:.1f} ms "
        f"(DRN-S / bicubic = {ms_drn / ms_bic:.0f}x).",
        "",
        f"Why the ratio is about 1: per {args.patch}px HR patch the DRN-S forward is {primal_macs / 1e9:.1f} G",
        f"multiply-adds and its two dual models add {dual_macs / 1e6:.1f} M ({100 * dual_macs / primal_macs:.3f}%),",
        "so the cost of dual regression is below this machine's timing noise; ratios under 1 are noise.",
        "",
        "The CPU is shared with other jobs, so absolute times are noisy; the ratios compare settings",
        "measured alternately in the same process.",
    ]
    if not args.no_report:
        write_section("train-throughput", "\n".join(lines))


if __name__ == "__main__":
    main()
