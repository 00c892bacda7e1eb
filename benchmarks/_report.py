"""Shared by the benchmark scripts: each one owns a marked section of benchmarks/REPORT.md.

A script rewrites only its own section, so scripts can be rerun one at a time and every figure in
the report stays next to the command that produced it.
"""
from __future__ import annotations

import fcntl
import os
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

REPORT = Path(__file__).resolve().parent / "REPORT.md"
HEADER = "# dualsr benchmark report\n\nEvery section is written by the script it names; rerun it to refresh the section.\n"


def machine_line() -> str:
    """One line naming the machine a figure was measured on."""
    threads = torch.get_num_threads()
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
            f"{threads} torch threads")


def code_line() -> str:
    """The commit the figures were made with, so a section older than a change in the code shows it."""
    import subprocess

    root = REPORT.parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        # only the code that makes figures counts: the report itself is always being written
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "src", "benchmarks", "configs",
                         "pyproject.toml", ":!benchmarks/REPORT.md"))
    except (OSError, subprocess.SubprocessError):
        commit = ""
    if not commit:
        return "Code: not a git checkout."
    return f"Code: dualsr at commit {commit}" + (" with uncommitted changes." if dirty else ".")


def update_locked(path: Path, change: Callable[[str | None], str]) -> str:
    """Rewrite `path` with `change(current text, None if absent)`, atomically and under a lock
    (`path`.lock), so two benchmark scripts running side by side (one per core) never drop each
    other's writes; returns the text written."""
    from dualsr.fileio import write_text_atomic

    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = change(path.read_text() if path.exists() else None)
        write_text_atomic(path, text)
    return text


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section `name` of REPORT.md with `body` (markdown) and the code line."""
    begin, end = f"<!-- begin:{name} -->", f"<!-- end:{name} -->"
    block = f"{begin}\n{body.rstrip()}\n\n{code_line()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)

    def replace(text: str | None) -> str:
        text = HEADER if text is None else text
        return pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"

    update_locked(REPORT, replace)


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` calls of `fn`, in milliseconds, after one warm-up call
    (allocator, oneDNN primitive caches)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def same_tensors(a: Path, b: Path) -> bool:
    """Whether two safetensors files hold the same tensors, name by name and bit for bit."""
    from safetensors.torch import load_file

    x, y = load_file(a), load_file(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
