"""Start-up cost: `dualsr upscale` of a 16x16 image next to `python -c "import torch"`, same run.

Both are fresh processes, run interleaved (alternating which goes first), `--repeats` times each;
the figures are medians of wall time. The difference is what dualsr adds on top of importing
torch: its own modules, Pillow, safetensors, tqdm, reading the shipped weights and running the
model once. Also lists the top-level packages the upscale process imports beyond `import torch`.

    python benchmarks/bench_startup.py [--repeats 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, write_section  # noqa: E402

_MODULES = "import sys; print(' '.join(sorted(sys.modules)))"


def _wall(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    from PIL import Image

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "tiny.png"
        Image.new("RGB", (16, 16), (90, 120, 200)).save(src)
        upscale = [sys.executable, "-m", "dualsr", "upscale", str(src), "-o", str(Path(tmp) / "out.png"), "-q"]
        torch_only = [sys.executable, "-c", "import torch"]
        times = {"upscale": [], "torch": []}
        for i in range(args.repeats + 1):  # the first pair warms the page cache and is dropped
            order = [("upscale", upscale), ("torch", torch_only)][:: 1 if i % 2 else -1]
            for name, cmd in order:
                elapsed = _wall(cmd, env)
                if i:
                    times[name].append(elapsed)
        probe = [sys.executable, "-c", "import sys; from dualsr.cli import main; main(sys.argv[1:]); " + _MODULES,
                 "upscale", str(src), "-o", str(Path(tmp) / "out2.png"), "-q"]
        loaded = set(subprocess.run(probe, capture_output=True, text=True, env=env, check=True).stdout.split())
        baseline = set(subprocess.run([sys.executable, "-c", "import torch; " + _MODULES], capture_output=True,
                                      text=True, env=env, check=True).stdout.split())
    extra = sorted({m.split(".")[0] for m in loaded - baseline} - set(sys.stdlib_module_names))
    up, base = statistics.median(times["upscale"]), statistics.median(times["torch"])
    rows = [f"| `dualsr upscale tiny.png -o out.png -q` (16x16 -> 64x64, shipped model) | {up:.2f} |",
            f"| `python -c \"import torch\"` | {base:.2f} |",
            f"| difference: what dualsr adds | {up - base:.2f} |"]
    for row in rows:
        print(row)
    write_section("startup", "\n".join([
        "## Start-up: a tiny upscale next to importing torch",
        "",
        f"`python benchmarks/bench_startup.py --repeats {args.repeats}` ({machine_line()}; fresh processes, "
        f"interleaved, median of {args.repeats} wall times after one dropped warm-up pair).",
        "",
        "| command | seconds |",
        "| --- | --- |",
        *rows,
        "",
        f"Ratio upscale / import torch: {up / base:.2f}. Top-level packages the upscale process imports beyond",
        f"`import torch` (standard library aside): {', '.join(extra)}. `tests/test_cli_conventions.py` checks",
        "that training, compression, evaluation, YAML, ONNX, torch-pruning, pypng and the other model files",
        "stay out of it.",
    ]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
