"""dualsr.progress: a bar on a terminal, plain periodic lines elsewhere, an ETA capped by a time limit."""
from __future__ import annotations

import io

import pytest

from dualsr.progress import Progress, eta_seconds, format_duration, format_rate, is_terminal


class FakeStream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class FakeClock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_eta_is_the_sooner_of_the_remaining_steps_and_the_time_left():
    assert eta_seconds(1200, 5000, 2.0) == pytest.approx(1900.0)
    assert eta_seconds(1200, 5000, 2.0, time_left=600.0) == 600.0  # the time budget ends it first
    assert eta_seconds(1200, 5000, 2.0, time_left=1e6) == pytest.approx(1900.0)
    assert eta_seconds(1200, 5000, 2.0, time_left=-5.0) == 0.0  # budget already spent
    assert eta_seconds(10, None, 2.0, time_left=30.0) == 30.0
    assert eta_seconds(10, 100, None) is None and eta_seconds(10, None, 3.0) is None
    assert eta_seconds(120, 100, 2.0) == 0.0


def test_progress_eta_follows_the_rate_and_is_capped_by_the_time_limit():
    clock = FakeClock()
    p = Progress(total=5000, initial=1000, time_limit_s=600.0, disable=True, clock=clock)
    assert p.rate() is None and p.eta() == 600.0  # no rate yet: only the limit is known
    clock.now += 100.0
    p.update(200)  # 2 it/s over the steps done here (the resumed 1000 do not count)
    assert p.rate() == pytest.approx(2.0)
    assert p.time_left() == pytest.approx(500.0)
    assert p.eta() == pytest.approx(500.0)  # 3800 steps would take 1900 s: the limit comes first
    unlimited = Progress(total=5000, initial=1000, disable=True, clock=clock)
    clock.now += 100.0
    unlimited.update(200)
    assert unlimited.eta() == pytest.approx(3800 / 2.0)
    assert "eta 32m" in unlimited.status() and unlimited.status().startswith("1200/5000 (24%) 2 it/s")


def test_without_a_terminal_plain_lines_at_most_every_interval_and_one_closing_line():
    stream, clock = FakeStream(tty=False), FakeClock()
    p = Progress(total=100, desc="train", stream=stream, interval=10.0, clock=clock)
    for _ in range(100):
        clock.now += 1.0
        p.update()
        if p.n == 55:
            p.set_postfix(loss=0.123456)
    p.close()
    p.close()  # closing twice prints once
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) == 9 + 1  # at 10, 20, ..., 90 s (the 100th step is the closing line's)
    assert lines[0] == "train: 10/100 (10%) 1 it/s, eta 1m30s"
    assert lines[5] == "train: 60/100 (60%) 1 it/s, eta 40s, loss=0.1235"
    assert lines[-1] == "train: 100/100 (100%) in 1m40s, 1 it/s, loss=0.1235"


def test_plain_lines_every_n_steps_and_no_periodic_line_without_interval_or_every():
    stream, clock = FakeStream(tty=False), FakeClock()
    with Progress(total=10, desc="tiles", unit="tile", stream=stream, interval=None, every=4, clock=clock) as p:
        for _ in range(10):
            clock.now += 0.5
            p.update()
    assert [line.split(" ")[1] for line in stream.getvalue().splitlines()] == ["4/10", "8/10", "10/10"]
    assert "2 tile/s" in stream.getvalue()

    quiet = FakeStream(tty=False)
    p = Progress(total=10, desc="train", stream=quiet, interval=None, leave=False, clock=clock)
    for _ in range(10):
        clock.now += 1.0
        p.update()
    p.close()
    assert quiet.getvalue() == ""  # the caller logs p.status() itself
    assert p.status() == "10/10 (100%) 1 it/s, eta 0s"


def test_on_a_terminal_a_tqdm_bar_with_the_capped_eta():
    stream, clock = FakeStream(tty=True), FakeClock()
    p = Progress(total=1000, desc="run", stream=stream, time_limit_s=30.0, clock=clock)
    assert p.drawing
    for _ in range(5):
        clock.now += 1.0
        p.update()
    p.set_postfix(loss=1.5)
    p.close()
    text = stream.getvalue()
    assert "\r" in text and "run:" in text and "|" in text  # tqdm frames
    assert "eta 25s" in text and "loss=1.5" in text  # 995 steps at 1 it/s, but only 25 s left
    assert not p.drawing


def test_disabled_reporter_writes_nothing_but_counts():
    for tty in (True, False):
        stream, clock = FakeStream(tty=tty), FakeClock()
        p = Progress(total=4, desc="x", stream=stream, disable=True, interval=0.0, clock=clock)
        for _ in range(4):
            clock.now += 1.0
            p.update()
        p.close()
        assert stream.getvalue() == "" and p.n == 4 and p.rate() == pytest.approx(1.0)


def test_write_prints_one_line_in_both_modes_and_streams_are_asked_safely():
    for tty in (True, False):
        stream = FakeStream(tty=tty)
        with Progress(total=3, desc="x", stream=stream, interval=None, leave=False) as p:
            p.write("a note")
        assert "a note\n" in stream.getvalue()
    closed = io.StringIO()
    closed.close()
    assert not is_terminal(closed) and not is_terminal(object())


def test_compact_durations_and_rates():
    assert [format_duration(s) for s in (None, 0, 44.6, 150, 1200, 3900, 2 * 86400 + 3 * 3600)] == [
        "?", "0s", "45s", "2m30s", "20m", "1h05m", "2d03h"]
    assert format_rate(3.14) == "3.14 it/s" and format_rate(0.08, "tile") == "12.5 s/tile"
    assert format_rate(None) == "? it/s" and format_rate(250.4) == "250 it/s"
