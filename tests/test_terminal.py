"""What a parent reads in the terminal: wall-clock times, plain words, a status line."""

from __future__ import annotations

import io

from spasmwatch.host.cli.terminal import ParentTerminal, battery_pct

T = 1_764_640_000.0  # an epoch time: shown on the local wall clock


class Clock:
    def __init__(self) -> None:
        self.t = T

    def __call__(self) -> float:
        return self.t


def event(t: float) -> dict:
    return {"type": "event", "t": t, "end": t + 1.0, "cls": "spasm_like", "duration_s": 1.0,
            "peak_mg": 900, "tilt_mg": 120, "state": "settling"}


def test_movements_only_with_verbose_and_no_measurements_by_default() -> None:
    out = io.StringIO()
    term = ParentTerminal(out, now=Clock())
    term(event(T))
    assert out.getvalue() == ""
    term({"type": "alert", "t": T + 2, "level": "alarm", "kind": "spasm_cluster",
          "message": "3 spasm-like movements in 10 s"})
    line = out.getvalue().strip()
    assert "ALARM" in line and "mg" not in line and line[:2].isdigit() and line[2] == ":"
    verbose = io.StringIO()
    ParentTerminal(verbose, verbose=True, now=Clock())(event(T))
    assert "900 mg" in verbose.getvalue() and "tilt 120 mg" in verbose.getvalue()


def test_status_line_every_few_minutes_with_battery_and_last_movement() -> None:
    out = io.StringIO()
    clock = Clock()
    term = ParentTerminal(out, now=clock, status_every_s=300)
    term({"type": "status", "t": T, "battery_mv": 3900})
    term(event(T + 10))
    assert "monitoring" not in out.getvalue()
    clock.t = T + 301
    term({"type": "summary", "t": T + 300})
    status = out.getvalue().strip().splitlines()[-1]
    assert "monitoring · sensor ok · battery 64 % · last movement" in status
    term({"type": "alert", "t": T + 302, "level": "fault", "kind": "heartbeat_timeout",
          "message": "No data from the sensor for 31 s"})
    clock.t = T + 700
    term({"type": "link", "t": T + 700, "state": "retry", "message": "cannot connect"})
    assert "NO DATA from the sensor" in out.getvalue().strip().splitlines()[-1]


def test_battery_percent_from_voltage() -> None:
    assert battery_pct(4200) == 100 and battery_pct(3300) == 0
    assert battery_pct(0) is None and battery_pct(None) is None
    assert 30 < (battery_pct(3750) or 0) < 48
