"""Typed host-side records built from decoded wire tuples (see ``firmware/wire.py``).

The wire format carries compact integer tuples on the device clock; the host works with
these dataclasses on its own clock (``t`` in seconds). Field meanings follow
``wire.EVENT_FIELDS`` / ``SUMMARY_FIELDS`` / ``STATUS_FIELDS``; names are resolved here
(class, state, status flags) so nothing downstream needs the numeric codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spasmwatch.firmware import wire

# Status flag bit -> name, in bit order. Names are the wire constants without ``ST_``.
STATUS_FLAGS: tuple[tuple[int, str], ...] = (
    (wire.ST_SENSOR_OK, "sensor_ok"),
    (wire.ST_FIFO_OVERFLOW, "fifo_overflow"),
    (wire.ST_I2C_ERROR, "i2c_error"),
    (wire.ST_CHARGING, "charging"),
    (wire.ST_BATTERY_LOW, "battery_low"),
    (wire.ST_INJECTION, "injection"),
    (wire.ST_EVENTS_DROPPED, "events_dropped"),
)


def flag_names(flags: int) -> tuple[str, ...]:
    """Names of the status flag bits set in ``flags`` (unknown bits are ignored)."""
    return tuple(name for bit, name in STATUS_FLAGS if flags & bit)


def _name(names: tuple[str, ...], code: int) -> str:
    return names[code] if 0 <= code < len(names) else f"unknown_{code}"


@dataclass(frozen=True, slots=True)
class Event:
    """One movement event. ``t`` is the onset in host seconds; ``end`` is when it finished."""

    seq: int
    t: float
    cls: str
    state: str
    peaks: int
    duration_s: float
    peak_mg: int
    energy_mgs: int
    tilt_mg: int
    excursion_mg: int
    still_s: int
    t_ms: int = 0  # raw device clock (u32 ms since boot), kept for forensics
    received_at: float | None = None

    @property
    def end(self) -> float:
        return self.t + self.duration_s

    def to_dict(self) -> dict[str, Any]:
        # Spelled out rather than dataclasses.asdict: this runs once per event and asdict
        # (recursive deep copy) was the engine's largest cost.
        return {
            "seq": self.seq, "t": self.t, "end": self.t + self.duration_s, "cls": self.cls,
            "state": self.state, "peaks": self.peaks, "duration_s": self.duration_s,
            "peak_mg": self.peak_mg, "energy_mgs": self.energy_mgs, "tilt_mg": self.tilt_mg,
            "excursion_mg": self.excursion_mg, "still_s": self.still_s, "t_ms": self.t_ms,
            "received_at": self.received_at,
        }


@dataclass(frozen=True, slots=True)
class Summary:
    """Activity over one period; ``t`` is the period end in host seconds."""

    seq: int
    t: float
    period_s: int
    active_s: int
    events: int
    spasm_like: int
    peak_mg: int
    mean_mg: int
    state: str
    t_ms: int = 0
    received_at: float | None = None

    @property
    def start(self) -> float:
        return self.t - self.period_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "t": self.t, "period_s": self.period_s, "active_s": self.active_s,
            "events": self.events, "spasm_like": self.spasm_like, "peak_mg": self.peak_mg,
            "mean_mg": self.mean_mg, "state": self.state, "t_ms": self.t_ms,
            "received_at": self.received_at,
        }


@dataclass(frozen=True, slots=True)
class Status:
    """Device heartbeat. ``flags`` are decoded names, ``flags_raw`` the byte as sent."""

    seq: int
    t: float
    battery_mv: int
    flags: tuple[str, ...]
    flags_raw: int
    buffer_pct: int
    heap_kb: int
    rate_hz: int
    range_g: int
    t_ms: int = 0
    received_at: float | None = None

    @property
    def sensor_ok(self) -> bool:
        return "sensor_ok" in self.flags

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "t": self.t, "battery_mv": self.battery_mv,
            "flags": list(self.flags), "flags_raw": self.flags_raw,
            "buffer_pct": self.buffer_pct, "heap_kb": self.heap_kb, "rate_hz": self.rate_hz,
            "range_g": self.range_g, "t_ms": self.t_ms, "received_at": self.received_at,
        }


@dataclass(frozen=True, slots=True)
class Detail:
    """Round 4: more about the event that follows it (wire KIND_DETAIL, same ``t_ms``).

    ``direction`` is the tonic tilt's direction in sensor axes (each -127..127, scaled so
    the largest is +-127; (0, 0, 0) when the posture did not move); ``fails`` names the
    spasm tests the event failed (wire.FAIL_NAMES).
    """

    seq: int
    t: float
    direction: tuple[int, int, int]
    rise_s: float
    hold_s: float
    fails: tuple[str, ...]
    t_ms: int = 0
    received_at: float | None = None

    def describes(self, ev: Event) -> bool:
        """Is this the detail of ``ev`` (sent right before it, same onset)?"""
        return self.t_ms == ev.t_ms and (self.seq + 1) & 0xFFFF == ev.seq

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "t": self.t, "direction": list(self.direction),
            "rise_s": self.rise_s, "hold_s": self.hold_s, "fails": list(self.fails),
            "t_ms": self.t_ms, "received_at": self.received_at,
        }


def fail_names(bits: int) -> tuple[str, ...]:
    return tuple(n for i, n in enumerate(wire.FAIL_NAMES) if bits >> i & 1)


Record = Event | Summary | Status | Detail


#: Accelerometer ranges the MPU-6050 has (g); anything else on the wire is corrupt.
VALID_RANGES_G = (2, 4, 8, 16)
MAX_RATE_HZ = 1000


def invalid_field(rec: tuple) -> str | None:
    """Why a decoded record cannot be true (a CRC-valid packet from a buggy or hostile
    sender), or None. Fields the host computes with are checked before anything uses
    them: a status's range and rate (they scale every snippet sample), an event's class
    and state."""
    kind = rec[0]
    if kind == wire.KIND_STATUS:
        rate, rng = rec[6], rec[7]
        if rng not in VALID_RANGES_G:
            return f"status range_g {rng!r} is not one of 2, 4, 8, 16"
        if not 0 < rate <= MAX_RATE_HZ:
            return f"status rate_hz {rate!r} is outside 1..{MAX_RATE_HZ}"
    elif kind == wire.KIND_EVENT:
        cls, state, dur_ms = rec[2], rec[3], rec[5]
        if not (0 <= cls < len(wire.CLASS_NAMES) and 0 <= state < len(wire.STATE_NAMES)):
            return f"event class {cls!r} / state {state!r} unknown"
        if dur_ms <= 0:
            return f"event duration {dur_ms!r} ms is not positive"
    elif kind == wire.KIND_SUMMARY:
        if rec[2] <= 0:
            return f"summary period {rec[2]!r} s is not positive"
    return None


def record_from_tuple(
    seq: int, rec: tuple, t: float, received_at: float | None = None
) -> Record:
    """Build the typed record for a decoded wire tuple whose device time maps to ``t``."""
    kind = rec[0]
    if kind == wire.KIND_EVENT:
        _, t_ms, cls, state, peaks, dur_ms, peak, energy, tilt, exc, still = rec
        return Event(
            seq=seq, t=t, cls=_name(wire.CLASS_NAMES, cls), state=_name(wire.STATE_NAMES, state),
            peaks=peaks, duration_s=dur_ms / 1000.0, peak_mg=peak, energy_mgs=energy,
            tilt_mg=tilt, excursion_mg=exc, still_s=still, t_ms=t_ms, received_at=received_at,
        )
    if kind == wire.KIND_SUMMARY:
        _, t_ms, period, active, events, spasm, peak, mean, state = rec
        return Summary(
            seq=seq, t=t, period_s=period, active_s=active, events=events, spasm_like=spasm,
            peak_mg=peak, mean_mg=mean, state=_name(wire.STATE_NAMES, state), t_ms=t_ms,
            received_at=received_at,
        )
    if kind == wire.KIND_STATUS:
        _, t_ms, mv, flags, buf, heap, rate, rng = rec
        return Status(
            seq=seq, t=t, battery_mv=mv, flags=flag_names(flags), flags_raw=flags,
            buffer_pct=buf, heap_kb=heap, rate_hz=rate, range_g=rng, t_ms=t_ms,
            received_at=received_at,
        )
    if kind == wire.KIND_DETAIL:
        _, t_ms, dx, dy, dz, rise, hold, fails = rec
        return Detail(
            seq=seq, t=t, direction=(dx, dy, dz), rise_s=rise / 100.0, hold_s=hold / 50.0,
            fails=fail_names(fails), t_ms=t_ms, received_at=received_at,
        )
    raise ValueError(f"unknown record kind {kind!r}")
