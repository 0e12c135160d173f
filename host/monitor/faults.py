"""Fault conditions: one alert when a condition starts, one ``fault_cleared`` when it ends.

Conditions come from the device's status flags (sensor, I2C, FIFO, battery, dropped
events) and from the link (lost packets, a run of undecodable packets). ``FaultTracker``
is deliberately generic, so the daemon's heartbeat timeout can use the same path:
``tracker.update("heartbeat_timeout", silent_for > limit, now, message)`` from ``tick``.
"""

from __future__ import annotations

from collections.abc import Callable
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


class FaultTracker:
    """Remember which fault conditions are active; alert on their edges only."""

    def __init__(self) -> None:
        self.active: dict[str, float] = {}  # kind -> time it started

    def update(
        self,
        kind: str,
        active: bool,
        t: float,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> Alert | None:
        """Report the condition's current state; returns an alert only on a change.

        ``message`` describes the state being reported (the fault on onset, the recovery
        when it clears).
        """
        since = self.active.get(kind)
        if active and since is None:
            self.active[kind] = t
            return Alert(t, FAULT, kind, message, details=dict(details or {}))
        if not active and since is not None:
            del self.active[kind]
            info = {"fault": kind, "since": since, "lasted_s": round(t - since, 3)}
            info.update(details or {})
            text = f"{message} (fault '{kind}' lasted {fmt_span(max(t - since, 0.0))})"
            return Alert(t, INFO, "fault_cleared", text, details=info)
        return None

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
