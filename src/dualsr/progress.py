"""Progress of long jobs: a tqdm bar on a terminal, plain periodic lines in a log file.

    from dualsr.progress import Progress

    with Progress(total=len(tiles), desc="tiles", unit="tile", interval=30) as bar:
        for tile in tiles:
            ...
            bar.update()
            bar.set_postfix(loss=0.12)       # or bar.set_postfix("any text")

On a terminal (`stream.isatty()`) this draws a tqdm bar. Anywhere else (stderr redirected to a
file, a pipe, a test's captured output) no `\\r` frame is ever written; instead a plain line such as

    train: 1200/5000 (24%) 3.1 it/s, eta 20m, loss=0.12

is printed at most every `interval` seconds and/or each time `every` more steps are done, and,
with `leave`, one closing line `train: 5000/5000 (100%) in 27m03s, 3.1 it/s` when it is closed.
Passing neither `interval` nor `every` prints no periodic line: the caller then puts `status()`
into its own log lines (as `dualsr train` does, once per logging interval).

The ETA is remaining steps / rate, capped by `time_limit_s` when a time budget ends the job first
(see `eta_seconds`). `disable=True` draws and prints nothing but still counts, so `status()` and
`eta()` keep working. The clock is injectable for tests.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable, TextIO


def is_terminal(stream: Any) -> bool:
    """True when `stream` is an interactive terminal (a closed or odd stream counts as not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def eta_seconds(done: float, total: float | None, rate: float | None, time_left: float | None = None) -> float | None:
    """Seconds until the job ends: min(remaining steps / rate, time left of its time limit).

    None when neither is known (no total or no rate yet, and no time limit).
    """
    estimates = []
    if total is not None and rate is not None and rate > 0:
        estimates.append(max(0.0, total - done) / rate)
    if time_left is not None:
        estimates.append(max(0.0, time_left))
    return min(estimates) if estimates else None


def format_duration(seconds: float | None) -> str:
    """Compact duration: '45s', '2m30s', '20m', '1h05m', '2d03h'; '?' when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    if s < 600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 3600:
        return f"{round(s / 60)}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def format_rate(rate: float | None, unit: str = "it") -> str:
    """'3.1 it/s', or '12.5 s/it' below one step per second; '? it/s' when unknown."""
    if rate is None or rate <= 0:
        return f"? {unit}/s"
    if rate < 1:
        return f"{1 / rate:.1f} s/{unit}"
    return f"{rate:.3g} {unit}/s" if rate < 100 else f"{rate:.0f} {unit}/s"


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write(message: str, stream: TextIO | None = None) -> None:
    """Print one line without breaking a bar being drawn (tqdm.write); plain print otherwise."""
    from tqdm import tqdm

    tqdm.write(message, file=stream if stream is not None else sys.stderr)


class Progress:
    """Counts steps of a job and reports them: a bar on a terminal, plain lines elsewhere.

    total: number of steps (None: unknown, no percentage or rate-based ETA).
    desc: name shown before the bar / at the start of each plain line.
    unit: what a step is ('it', 'tile', 'img').
    initial: steps already done (a resumed job); the rate counts only the steps done here.
    stream: where to report (default sys.stderr); a terminal gets a bar, anything else lines.
    disable: report nothing (counting, `status()` and `eta()` still work).
    interval: plain mode: a line at most every this many seconds (None: no timed lines).
    every: plain mode: a line each time this many more steps are done (None: no counted lines).
    time_limit_s: seconds the job may still run (a time budget): caps the ETA.
    leave: keep the bar when closed (terminal) / print one closing line (plain mode).
    tty: force bar (True) or plain mode (False) instead of asking `stream.isatty()`.
    clock: the time source, seconds (time.monotonic; a fake one in tests).
    """

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it", *, initial: int = 0,
                 stream: TextIO | None = None, disable: bool = False, interval: float | None = 30.0,
                 every: int | None = None, time_limit_s: float | None = None, leave: bool = True,
                 tty: bool | None = None, clock: Callable[[], float] = time.monotonic):
        self.total = None if total is None else int(total)
        self.desc, self.unit = desc, unit
        self.initial = self.n = int(initial)
        self.stream = stream if stream is not None else sys.stderr
        self.disable = bool(disable)
        self.interval = interval
        self.every = int(every) if every else None
        self.time_limit_s = time_limit_s
        self.leave = leave
        self.clock = clock
        self.start = self._last_line_time = clock()
        self._last_line_n = self.n
        self.postfix = ""
        self.closed = False
        self._updates = 0
        self.tty = is_terminal(self.stream) if tty is None else bool(tty)
        self._bar = None
        if not self.disable and self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=unit, initial=self.n, file=self.stream, leave=leave,
                             dynamic_ncols=True,
                             bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]"
                             if self.total is not None else None)

    # ----------------------------------------------------------- numbers
    def elapsed(self) -> float:
        """Seconds since this reporter started."""
        return max(0.0, self.clock() - self.start)

    def rate(self) -> float | None:
        """Steps per second done here (resumed steps excluded); None before the first."""
        elapsed, steps = self.elapsed(), self.n - self.initial
        return steps / elapsed if steps > 0 and elapsed > 0 else None

    def time_left(self) -> float | None:
        """Seconds left of `time_limit_s` (None without a limit)."""
        return None if self.time_limit_s is None else self.time_limit_s - self.elapsed()

    def eta(self) -> float | None:
        """Seconds until the end: remaining steps at the current rate, capped by the time limit."""
        return eta_seconds(self.n, self.total, self.rate(), self.time_left())

    @property
    def drawing(self) -> bool:
        """True while a bar is drawn (a terminal, not disabled, not closed): worth a postfix."""
        return self._bar is not None and not self.closed

    def count_text(self) -> str:
        """'1200/5000 (24%)', or '1200 it' without a total."""
        if self.total:
            return f"{self.n}/{self.total} ({100 * self.n / self.total:.0f}%)"
        return f"{self.n} {self.unit}"

    def status(self) -> str:
        """'1200/5000 (24%) 3.1 it/s, eta 20m' (no description, no postfix)."""
        text = f"{self.count_text()} {format_rate(self.rate(), self.unit)}"
        eta = self.eta()
        if eta is not None or self.total:
            text += f", eta {format_duration(eta)}"
        return text

    def line(self) -> str:
        """The plain progress line: 'desc: status, postfix'."""
        head = f"{self.desc}: " if self.desc else ""
        return head + self.status() + (f", {self.postfix}" if self.postfix else "")

    def closing_line(self) -> str:
        """'desc: 5000/5000 (100%) in 27m03s, 3.1 it/s, postfix'."""
        head = f"{self.desc}: " if self.desc else ""
        return (head + f"{self.count_text()} in {format_duration(self.elapsed())}, {format_rate(self.rate(), self.unit)}"
                + (f", {self.postfix}" if self.postfix else ""))

    # ----------------------------------------------------------- reporting
    def update(self, n: int = 1) -> None:
        """Count `n` more steps done; redraw the bar or print a line when one is due."""
        self.n += n
        self._updates += 1
        if self.disable or self.closed:
            return
        if self._bar is not None:
            self._bar.update(n)
            self._refresh_bar_postfix()
            return
        if self.n == self._last_line_n or (self.leave and self.total is not None and self.n >= self.total):
            return  # nothing new, or the closing line will say it
        due = False
        if self.every and self.n // self.every > self._last_line_n // self.every:
            due = True
        now = self.clock()
        if self.interval is not None and now - self._last_line_time >= self.interval:
            due = True
        if due:
            self._print(self.line())
            self._last_line_time, self._last_line_n = now, self.n

    def set_postfix(self, text: str | None = None, **values: Any) -> None:
        """Extra text after the numbers: a string, and/or key=value pairs (floats to 4 digits)."""
        parts = [text] if text else []
        parts += [f"{k}={_format_value(v)}" for k, v in values.items()]
        self.postfix = ", ".join(parts)
        if self._bar is not None and not self.closed:
            self._refresh_bar_postfix()

    def _refresh_bar_postfix(self) -> None:
        parts = []
        if self.total is not None or self.time_limit_s is not None:
            parts.append(f"eta {format_duration(self.eta())}")
        if self.postfix:
            parts.append(self.postfix)
        self._bar.set_postfix_str(", ".join(parts), refresh=False)

    def write(self, message: str) -> None:
        """Print a message line (above the bar on a terminal); shown even when disabled."""
        write(message, self.stream)

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        """End the bar (kept with `leave`) or print the closing line (plain mode, with `leave`)."""
        if self.closed:
            return
        self.closed = True
        if self.disable:
            return
        if self._bar is not None:
            self._refresh_bar_postfix()
            self._bar.close()
        elif self.leave and (self.n > self.initial or self._updates):
            self._print(self.closing_line())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
