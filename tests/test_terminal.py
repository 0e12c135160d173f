"""What a parent reads in the terminal: wall-clock times, plain words, a status line."""

from __future__ import annotations

import io

from spasmwatch.host.cli.terminal import ParentTerminal, battery_pct
from spasmwatch.host.monitor.outputs import (
    Alert,
    EventOutput,
    LinkNote,
    StatusOutput,
    SummaryOutput,
)
from spasmwatch.host.monitor.records import Event, Status, Summary

T = 1_764_640_000.0  # an epoch time: shown on the local wall clock


class Clock:
    def __init__(self) -> None:
        self.t = T

    def __call__(self) -> float:
        return self.t


def event(t: float) -> EventOutput:
    return EventOutput(Event(seq=0, t=t, cls="spasm_like", state="settling", peaks=1,
                             duration_s=1.0, peak_mg=900, energy_mgs=100, tilt_mg=120,
                             excursion_mg=100, still_s=5), "sensor", 1)


def status(t: float, battery_mv: int) -> StatusOutput:
    return StatusOutput(Status(seq=1, t=t, battery_mv=battery_mv, flags=("sensor_ok",),
                               flags_raw=1, buffer_pct=10, heap_kb=80, rate_hz=50,
                               range_g=4), "sensor")


def summary(t: float) -> SummaryOutput:
    return SummaryOutput(Summary(seq=2, t=t, period_s=300, active_s=0, events=0,
                                 spasm_like=0, peak_mg=0, mean_mg=3, state="asleep"), "sensor")


def test_movements_only_with_verbose_and_no_measurements_by_default() -> None:
    out = io.StringIO()
    term = ParentTerminal(out, now=Clock())
    term(event(T))
    assert out.getvalue() == ""
    term(Alert(T + 2, "alarm", "spasm_cluster", "3 spasm-like movements in 10 s"))
    line = out.getvalue().strip()
    assert "ALARM" in line and "mg" not in line and line[:2].isdigit() and line[2] == ":"
    verbose = io.StringIO()
    ParentTerminal(verbose, verbose=True, now=Clock())(event(T))
    assert "900 mg" in verbose.getvalue() and "tilt 120 mg" in verbose.getvalue()


def test_status_line_every_few_minutes_with_battery_and_last_movement() -> None:
    out = io.StringIO()
    clock = Clock()
    term = ParentTerminal(out, now=clock, status_every_s=300)
    term(status(T, 3900))
    term(event(T + 10))
    assert "monitoring" not in out.getvalue()
    clock.t = T + 301
    term(summary(T + 300))
    line = out.getvalue().strip().splitlines()[-1]
    assert "monitoring · sensor ok · battery 64 % · last movement" in line
    term(Alert(T + 302, "fault", "heartbeat_timeout", "No data from the sensor for 31 s"))
    clock.t = T + 700
    term(LinkNote(T + 700, "retry", "cannot connect"))
    assert "NO DATA from the sensor" in out.getvalue().strip().splitlines()[-1]


def test_battery_percent_from_voltage() -> None:
    assert battery_pct(4200) == 100 and battery_pct(3300) == 0
    assert battery_pct(0) is None and battery_pct(None) is None
    assert 30 < (battery_pct(3750) or 0) < 48
