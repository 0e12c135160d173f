"""What a running monitor prints for a parent: wall-clock times, plain words.

One line per alarm, warning, fault, cluster and link change; a short status line every
few minutes ("monitoring · sensor ok · battery 80 % · last movement 02:13"); the
measurements (mg, tilt) of every movement only with ``--verbose``. ``--json`` bypasses
this module and prints every output's JSON as it is.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import TextIO

from spasmwatch.host.monitor.outputs import (
    Alert,
    ChannelCheck,
    ClipSaved,
    Cluster,
    Delivery,
    EventOutput,
    Gap,
    LinkNote,
    Output,
    Snippet,
    StatusOutput,
    SummaryOutput,
)

STATUS_EVERY_S = 300.0  # the status line, at most this often

# LiPo cell: mV -> % (rest voltage, rough: the board reads under a small load).
_LIPO_CURVE = ((4200, 100), (4100, 90), (4000, 78), (3900, 64), (3800, 48), (3700, 30),
               (3600, 15), (3500, 6), (3400, 2), (3300, 0))


def battery_pct(mv: int | None) -> int | None:
    """Rough charge of a single LiPo cell from its voltage (None: unknown)."""
    if not mv or mv <= 0:
        return None
    if mv >= _LIPO_CURVE[0][0]:
        return 100
    for (v_hi, p_hi), (v_lo, p_lo) in zip(_LIPO_CURVE, _LIPO_CURVE[1:], strict=False):
        if v_lo <= mv <= v_hi:
            return round(p_lo + (p_hi - p_lo) * (mv - v_lo) / (v_hi - v_lo))
    return 0


def clock(t: float | None) -> str:
    """HH:MM:SS on the local wall clock ("--:--:--" when unknown)."""
    if t is None or t < 1e9:  # not an epoch time: nothing sensible to show
        return "--:--:--"
    return f"{dt.datetime.fromtimestamp(t):%H:%M:%S}"


class ParentTerminal:
    """Turn monitor outputs into lines; keeps just enough state for the status line."""

    def __init__(self, out: TextIO, verbose: bool = False, quiet: bool = False,
                 status_every_s: float = STATUS_EVERY_S,
                 now: Callable[[], float] = time.time) -> None:
        self.out = out
        self.verbose = verbose
        self.quiet = quiet
        self.status_every_s = status_every_s
        self.now = now
        self.battery_mv: int | None = None
        self.last_movement: float | None = None
        self.sensor_ok = False
        self.faults: set[str] = set()
        self._last_status = now()

    def __call__(self, o: Output) -> None:
        line = self.line(o)
        if line is not None:
            self.out.write(line + "\n")
        status = self.status_line()
        if status is not None:
            self.out.write(status + "\n")
        self.out.flush()

    def line(self, o: Output) -> str | None:
        match o:
            case EventOutput(event=ev):
                self.last_movement = float(ev.end)
                self.sensor_ok = True
                if not self.verbose:
                    return None
                return (f"{clock(ev.t)}  movement {ev.cls.replace('_', '-'):<10} "
                        f"{ev.duration_s:.1f} s  peak {ev.peak_mg} mg  tilt {ev.tilt_mg} mg  "
                        f"({ev.state})")
            case SummaryOutput():
                self.sensor_ok = True
                return None
            case StatusOutput(status=st):
                self.sensor_ok = True
                self.battery_mv = st.battery_mv
                return None
            case Alert():
                return self._alert(o)
            case Cluster():
                return (f"{clock(o.end)}  cluster  {o.n_events} movement(s), "
                        f"{o.n_spasm_like} spasm-like, {clock(o.start)}–{clock(o.end)}")
            case LinkNote():
                return f"{clock(o.t)}  sensor   {o.message}"
            case ChannelCheck():
                mark = "ok " if o.ok else "NOT OK"
                return f"{clock(o.t)}  check    {o.channel}: {mark} {o.message}"
            case Delivery():
                return self._delivery(o)
            case ClipSaved():
                return (f"{clock(o.t)}  video    clip of the alarm saved: {o.path} "
                        f"({o.end - o.start:.0f} s)")
            case Snippet():
                state = ("complete" if o.complete
                         else "partial: some packets did not arrive")
                return (f"{clock(o.alert_t)}  record   raw sensor snippet of the alarm "
                        f"saved ({o.t_end - o.t:.1f} s, {state})")
            case Gap():
                return f"{clock(o.t)}  GAP      {o.message}"
        return None

    def _alert(self, o: Alert) -> str | None:
        level, kind = o.level, o.kind
        if level == "fault":
            self.faults.add(kind)
            return f"{clock(o.t)}  FAULT    {o.message}"
        if level == "alarm":
            return f"{clock(o.t)}  ALARM    {o.message}"
        if level == "warning":
            return f"{clock(o.t)}  warning  {o.message}"
        if kind == "fault_cleared":
            self.faults.discard(o.details.get("fault", ""))
            return f"{clock(o.t)}  ok again {o.message}"
        if kind == "cluster_closed" or self.quiet:
            return None  # the cluster line says it
        return f"{clock(o.t)}  note     {o.message}"

    def _delivery(self, o: Delivery) -> str | None:
        if o.ok is False:
            return (f"{clock(o.t)}  NOT DELIVERED {o.level} via {o.channel}: "
                    f"{o.detail}")
        if o.level != "alarm":
            return None
        again = f" (repeat {o.repeat})" if o.repeat else ""
        return f"{clock(o.t)}  alarm sent via {o.channel}{again}: {o.detail}"

    def status_line(self) -> str | None:
        now = self.now()
        if self.quiet or now - self._last_status < self.status_every_s:
            return None
        self._last_status = now
        parts = ["monitoring"]
        if "heartbeat_timeout" in self.faults or not self.sensor_ok:
            parts.append("NO DATA from the sensor")
        else:
            parts.append("sensor ok")
        pct = battery_pct(self.battery_mv)
        if pct is not None:
            parts.append(f"battery {pct} %")
        if self.faults:
            parts.append(f"{len(self.faults)} problem(s) open")
        parts.append(f"last movement {clock(self.last_movement)[:5]}"
                     if self.last_movement else "no movement yet")
        return f"{clock(now)}  " + " · ".join(parts)
