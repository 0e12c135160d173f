"""Fault conditions and their one owner: ``FaultTracker`` knows which faults are active.

A fault is a condition that impairs the monitoring. Whoever finds one reports its state
to the tracker (``update``); the tracker decides the edges: one ``fault`` alert when a
condition starts, one ``fault_cleared`` when it ends, nothing in between. The engine
reports the sensor's status flags (sensor, I2C, FIFO, battery, test mode, dropped
events), the link (lost packets, undecodable or foreign packets), the heartbeat and the
store; the daemon its timer; the alarm state and the delivery hub the host-side
conditions (placement, clock, sample rate, host battery, delivery, "nobody will hear an
alarm": ``source="host"``). In a monitor all of them share the engine's tracker
(``host/compose.py``); the alarm state machine only consumes the edges (notices,
reminders) and reads the active set from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spasmwatch.host.monitor.alerts import FAULT, INFO, Alert, fmt_span
from spasmwatch.host.monitor.records import Status

# Status-derived conditions: kind -> (predicate on a status, onset message, cleared message)
STATUS_FAULTS: dict[str, tuple[Callable[[Status], bool], str, str]] = {
    "sensor_fault": (
        lambda s: not s.sensor_ok,
        "The accelerometer reports it is not working: movements are NOT being monitored.",
        "The accelerometer reports it is working again.",
    ),
    "i2c_error": (
        lambda s: "i2c_error" in s.flags,
        "The device could not read the accelerometer (I2C error): movements may be missed.",
        "Accelerometer reads are working again (no I2C errors).",
    ),
    "fifo_overflow": (
        lambda s: "fifo_overflow" in s.flags,
        "The accelerometer's buffer overflowed: some samples were lost, so movements in "
        "that time may be missed.",
        "No more accelerometer buffer overflows.",
    ),
    "battery_low": (
        lambda s: "battery_low" in s.flags,
        "Sensor battery low ({battery_mv} mV): charge it soon or monitoring will stop.",
        "Sensor battery is no longer low ({battery_mv} mV).",
    ),
    "test_mode": (  # security (issue 9): trace injection replaces the accelerometer
        lambda s: "injection" in s.flags,
        "The sensor is in test mode, not watching: it is processing an injected test "
        "trace instead of the accelerometer. Movements are NOT being monitored.",
        "The sensor left test mode and is watching again.",
    ),
    "events_dropped": (
        lambda s: "events_dropped" in s.flags,
        "The device had to drop queued events (link too slow or down): some movements "
        "were not reported.",
        "The device is no longer dropping events.",
    ),
}


@dataclass(slots=True)
class ActiveFault:
    """A fault condition that has started and not yet cleared."""

    kind: str
    message: str  # the onset message
    since: float
    details: dict[str, Any] = field(default_factory=dict)
    source: str = "engine"  # "engine": found in the data; "host": found by the alerting


class FaultTracker:
    """The set of active fault conditions; alerts on their edges only."""

    def __init__(self) -> None:
        self.active: dict[str, ActiveFault] = {}  # kind -> the fault, in onset order

    def __contains__(self, kind: object) -> bool:
        return kind in self.active

    def update(
        self,
        kind: str,
        active: bool,
        t: float,
        message: str,
        details: dict[str, Any] | None = None,
        source: str = "engine",
    ) -> Alert | None:
        """Report the condition's current state; returns an alert only on a change.

        ``message`` describes the state being reported (the fault on onset, the recovery
        when it clears).
        """
        have = self.active.get(kind)
        if active and have is None:
            self.active[kind] = ActiveFault(kind, message, t, dict(details or {}), source)
            return Alert(t, FAULT, kind, message, details=dict(details or {}))
        if not active and have is not None:
            del self.active[kind]
            return self._cleared(have, t, message, details)
        return None

    @staticmethod
    def _cleared(have: ActiveFault, t: float, message: str,
                 details: dict[str, Any] | None) -> Alert:
        kind, since = have.kind, have.since
        lasted = fmt_span(max(t - since, 0.0))
        if have.source == "host":
            # The alerting's own wording and record (as before the owners were merged).
            text = f"{message} (problem '{kind}' lasted {lasted})"
            return Alert(t, INFO, "fault_cleared", text, details={"fault": kind})
        info = {"fault": kind, "since": since, "lasted_s": round(t - since, 3)}
        info.update(details or {})
        text = f"{message} (fault '{kind}' lasted {lasted})"
        return Alert(t, INFO, "fault_cleared", text, details=info)

    def adopt(self, edge: Alert) -> None:
        """Take an edge another tracker decided (an alarm state fed by an engine it does
        not share a tracker with, as in a test or a replayed log); a no-op when the edge
        is already reflected here (the shared tracker of a monitor)."""
        if edge.level == FAULT:
            if edge.kind not in self.active:
                self.active[edge.kind] = ActiveFault(edge.kind, edge.message, edge.t,
                                                     dict(edge.details))
        elif edge.kind == "fault_cleared":
            self.active.pop(str(edge.details.get("fault", "")), None)

    def from_status(self, st: Status) -> list[Alert]:
        """Update every status-derived condition from one status packet."""
        alerts = []
        fields = {"battery_mv": st.battery_mv}
        for kind, (pred, on_msg, off_msg) in STATUS_FAULTS.items():
            active = bool(pred(st))
            msg = (on_msg if active else off_msg).format(**fields)
            a = self.update(kind, active, st.t, msg, {"flags": list(st.flags), **fields})
            if a is not None:
                alerts.append(a)
        return alerts
