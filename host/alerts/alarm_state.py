"""The alarm state machine: what the parent should be told, and when.

States, highest first (the state is the highest that applies):

* ``alarm``   an engine alarm (a cluster of spasm-like movements) not yet acknowledged.
              Alarms latch: they stay until someone acknowledges them, repeating every
              ``repeat_every_s`` and widening to the next channel group every
              ``escalate_after_s``.
* ``fault``   monitoring is impaired: an engine fault (sensor error, battery low, packets
              lost, decode errors) or a host-side one found here: no packet within the
              heartbeat timeout, a wrong sample rate, clock anomalies, the host on low
              battery, a failed delivery channel, or the placement check (no body movement
              at all for a long time: is the sensor on the baby? — a placement check, never
              a breathing monitor). A fault lasts while its condition does.
* ``warning`` a warning (two spasm-like movements, a burst of jerks) in the last
              ``warning_hold_s``.
* ``muted``   a parent silenced audible alerts for a while. Muting never hides anything
              new: a new alarm or fault ends the mute (and sounds); a new warning is shown
              (silently).
* ``ok``.

The machine is pure logic on explicit times (no clock, no I/O) and returns ``Notice``
objects; ``delivery.AlertHub`` sends them. Every change of state is written to the
``alarm_transitions`` table on the monitor's SQLite database.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from spasmwatch.host.monitor.alerts import fmt_span, fmt_time
from spasmwatch.host.monitor.schema import ensure as ensure_schema
from spasmwatch.host.settings import AlarmSettings, MonitorSettings

log = logging.getLogger(__name__)

OK = "ok"
WARNING = "warning"
ALARM = "alarm"
FAULT = "fault"
MUTED = "muted"
STATES = (OK, WARNING, ALARM, FAULT, MUTED)

CLOCK_CLEAR_S = 60.0  # the sensor's clock must agree this long before its fault clears
_RECENT_EVENTS = 256  # event features kept to explain alarms (an alarm lists <= 64)

_TITLES = {
    ALARM: "spasmwatch ALARM: spasm-like movements",
    WARNING: "spasmwatch warning",
    FAULT: "spasmwatch: monitoring problem",
    "info": "spasmwatch: monitoring ok again",
}

PLACEMENT_MESSAGE = (
    "No body movement at all for {span} — not even the small motion a worn sensor always "
    "shows. Please check that the sensor is on the baby and fitted snugly in the sleep "
    "sack. (This is a placement check: spasmwatch is not a breathing monitor.)"
)


@dataclass
class Notice:
    """One thing to tell the parent, on some channels."""

    t: float
    level: str  # alarm | warning | fault | info
    kind: str
    title: str
    message: str
    why: dict[str, Any] = field(default_factory=dict)
    audible: bool = False
    repeat: int = 0  # 0 = first time; n = n-th repeat (louder)
    group: int = 0  # highest channel group to use (escalation)
    exclude: frozenset[str] = frozenset()  # channels not to use (e.g. the one that failed)
    test: bool = False
    # "engine": an alert the engine raised and stored; "host": a condition found here
    # (delivery, placement, clock, rate, host battery), recorded by the hub.
    source: str = "engine"

    def body(self) -> str:
        """The message followed by why: the events with their times and features."""
        lines = [self.message]
        events = self.why.get("events") or []
        if events:
            lines.append("Why — the movements that made the pattern:")
            for e in events:
                lines.append(
                    f"  {fmt_time(e['t'])}  {e['cls'].replace('_', '-')}  "
                    f"{e['duration_s']:.1f} s  peak {e['peak_mg']} mg  "
                    f"tilt {e['tilt_mg']} mg  ({e['state']})"
                )
        gaps = (self.why.get("details") or {}).get("intervals_s")
        if gaps:
            lines.append("  intervals: " + ", ".join(f"{g:.0f}" for g in gaps) + " s")
        if self.why.get("snippet") is not None:
            lines.append("A raw sensor snippet of the movement is attached to this alert.")
        if self.repeat:
            lines.append(f"(repeat {self.repeat}: not yet acknowledged)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": self.t, "level": self.level, "kind": self.kind, "title": self.title,
            "message": self.message, "body": self.body(), "why": self.why,
            "audible": self.audible, "repeat": self.repeat, "group": self.group,
            "test": self.test,
        }


class TransitionLog:
    """Every state change, in its own table on the monitor's database."""

    def __init__(self, conn: sqlite3.Connection | None) -> None:
        self.conn = conn
        self.memory: list[dict[str, Any]] = []  # also kept here (for a store-less run)
        self.failing = False  # the last write failed (said once until one succeeds)
        if conn is not None:
            ensure_schema(conn)

    def add(self, t: float, old: str, new: str, reason: str, source: str,
            details: dict[str, Any]) -> None:
        row = {"t": t, "from": old, "to": new, "reason": reason, "source": source,
               "details": details}
        self.memory.append(row)
        if self.conn is not None:
            # A full or read-only disk must not stop the state change itself: that would
            # stop the alarm from being delivered (the engine's storage_failed fault says
            # the record is incomplete).
            try:
                self.conn.execute(
                    "INSERT INTO alarm_transitions (t, from_state, to_state, reason, source,"
                    " details) VALUES (?, ?, ?, ?, ?, ?)",
                    (t, old, new, reason, source, json.dumps(details, default=str)),
                )
                self.conn.commit()
            except sqlite3.Error as exc:
                if not self.failing:
                    log.error("the alarm's state changes cannot be recorded: %s", exc)
                self.failing = True
            else:
                self.failing = False

    def rows(self) -> list[dict[str, Any]]:
        if self.conn is None:
            return list(self.memory)
        cur = self.conn.execute(
            "SELECT t, from_state, to_state, reason, source, details FROM alarm_transitions"
            " ORDER BY id")
        return [{"t": t, "from": a, "to": b, "reason": r, "source": s,
                 "details": json.loads(d)} for t, a, b, r, s, d in cur]


@dataclass
class _Latched:
    alert: dict[str, Any]
    since: float
    last_notice: float
    why: dict[str, Any]
    repeats: int = 0
    group: int = 0
    acked: bool = False


@dataclass
class _Fault:
    kind: str
    message: str
    since: float
    last_notice: float
    details: dict[str, Any]
    acked: bool = False
    repeats: int = 0


class AlarmStateMachine:
    """Consumes the Engine's output dicts and time; yields notices; logs transitions."""

    def __init__(
        self,
        monitor: MonitorSettings,
        alarm: AlarmSettings,
        log: TransitionLog | None = None,
        now: float = 0.0,
    ) -> None:
        self.monitor = monitor
        self.cfg = alarm
        self.log = log if log is not None else TransitionLog(None)
        self.alarm: _Latched | None = None
        self.faults: dict[str, _Fault] = {}
        self.warning: dict[str, Any] | None = None
        self.warning_since = 0.0
        self.warning_until = 0.0
        self.muted_until: float | None = None
        self.mute_started = 0.0
        self.last_data: float = now  # host time of the newest output (start counts)
        self.had_data = False
        self.battery_mv: int | None = None
        self.latest_t: float | None = None  # newest data time (the data's own clock)
        self._still_since: float | None = None
        self._last_status_t: float | None = None
        self._clock_ok_since: float | None = None
        self._events: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._event_times: deque[float] = deque()
        self._state = OK
        self._state_since = now
        self.now = now

    # -- the state -----------------------------------------------------------------------

    @property
    def muted(self) -> bool:
        return self.muted_until is not None and self.now < self.muted_until

    @property
    def state(self) -> str:
        if self.alarm is not None and not self.alarm.acked:
            return ALARM
        if self.faults:
            return FAULT
        if self.warning is not None and self.now < self.warning_until and (
            not self.muted or self.warning_since >= self.mute_started
        ):
            return WARNING
        if self.muted:
            return MUTED
        return OK

    def snapshot(self) -> dict[str, Any]:
        """Everything a status page or Home Assistant shows, JSON-ready."""
        st = self.state
        return {
            "state": st,
            "since": self._state_since,
            "alarm_active": st == ALARM,
            "alarm": None if self.alarm is None else {
                "kind": self.alarm.alert.get("kind"), "message": self.alarm.alert["message"],
                "t": self.alarm.alert.get("t"), "since": self.alarm.since,
                "acknowledged": self.alarm.acked, "repeats": self.alarm.repeats,
                "group": self.alarm.group, "why": self.alarm.why,
            },
            "faults": [
                {"kind": f.kind, "message": f.message, "since": f.since, "acknowledged": f.acked}
                for f in self.faults.values()
            ],
            "warning": None if self.warning is None or self.now >= self.warning_until
            else {"kind": self.warning.get("kind"), "message": self.warning["message"]},
            "muted": self.muted,
            "muted_until": self.muted_until if self.muted else None,
            "sensor_link": self.had_data and "heartbeat_timeout" not in self.faults,
            "last_data_age_s": round(self.now - self.last_data, 1),
            "battery_mv": self.battery_mv,
            "events_last_hour": self.events_last_hour(),
            "now": self.now,
        }

    def events_last_hour(self) -> int:
        if self.latest_t is None:
            return 0
        while self._event_times and self._event_times[0] < self.latest_t - 3600:
            self._event_times.popleft()
        return len(self._event_times)

    # -- inputs --------------------------------------------------------------------------

    def on_output(self, out: dict[str, Any], now: float) -> list[Notice]:
        """Feed one Engine output dict (event, summary, status, cluster or alert)."""
        self.now = max(self.now, now)
        notices: list[Notice] = []
        kind = out.get("type")
        if kind in ("event", "summary", "status"):
            self.last_data = self.now
            self.had_data = True
            self.latest_t = max(self.latest_t or out["t"], out["t"])
        if kind == "event":
            self._on_event(out, notices)
        elif kind == "summary":
            self._on_summary(out, notices)
        elif kind == "status":
            self._on_status(out, notices)
        elif kind == "alert":
            self._on_alert(out, notices)
        elif kind == "snippet" and self.alarm is not None:
            # Raw samples the sensor sent on request (GET_SNIPPET): attached to the latched
            # alarm's "why", so the page, Home Assistant and any repeat carry them.
            self.alarm.why["snippet"] = {k: v for k, v in out.items() if k != "type"}
        self._transition("data", "engine")
        return notices

    def _on_event(self, ev: dict[str, Any], notices: list[Notice]) -> None:
        self._events[ev["seq"]] = {k: ev[k] for k in (
            "seq", "t", "cls", "state", "duration_s", "peak_mg", "tilt_mg", "energy_mgs",
            "excursion_mg", "peaks")}
        if len(self._events) > _RECENT_EVENTS:
            self._events.popitem(last=False)
        self._event_times.append(ev["t"])
        self._moving(notices)

    def _moving(self, notices: list[Notice]) -> None:
        self._still_since = None
        notices += self.set_condition(
            "placement_check", False, self.now, "Body movement is being seen again.")

    def _on_summary(self, s: dict[str, Any], notices: list[Notice]) -> None:
        m = self.monitor
        self._check_clock(s, notices, is_status=False)
        if s["active_s"] > 0 or s["mean_mg"] > m.placement_max_mean_mg:
            self._moving(notices)
            return
        if self._still_since is None:
            self._still_since = s["t"] - s["period_s"]
        still = s["t"] - self._still_since
        if m.placement_check_min > 0 and still >= m.placement_check_min * 60:
            notices += self.set_condition(
                "placement_check", True, self.now,
                PLACEMENT_MESSAGE.format(span=fmt_span(still)),
                {"still_s": still, "mean_mg": s["mean_mg"]})

    def _on_status(self, s: dict[str, Any], notices: list[Notice]) -> None:
        m = self.monitor
        self.battery_mv = s["battery_mv"]
        self._check_clock(s, notices, is_status=True)
        if m.expected_rate_hz > 0:
            off = abs(s["rate_hz"] - m.expected_rate_hz) > (
                m.expected_rate_hz * m.rate_tolerance_pct / 100.0)
            notices += self.set_condition(
                "wrong_rate", off, self.now,
                f"The sensor reports {s['rate_hz']} samples/s instead of "
                f"{m.expected_rate_hz}: its data may not be analysed correctly."
                if off else f"The sensor runs at {s['rate_hz']} samples/s again.",
                {"rate_hz": s["rate_hz"], "expected_hz": m.expected_rate_hz})

    def _check_clock(self, rec: dict[str, Any], notices: list[Notice], is_status: bool) -> None:
        tol = self.monitor.clock_tolerance_s
        rx = rec.get("received_at")
        ahead = rx is not None and rec["t"] - rx > tol
        back = False
        if is_status:
            prev = self._last_status_t
            back = prev is not None and rec["t"] < prev - tol
            self._last_status_t = rec["t"]
        bad = ahead or back
        if not bad and "clock_anomaly" in self.faults:
            # Clears only once the clock has agreed for a while: a clock that flips
            # between right and wrong is one problem, not a storm of alarms and recoveries.
            if self._clock_ok_since is None:
                self._clock_ok_since = self.now
            if self.now - self._clock_ok_since < CLOCK_CLEAR_S:
                return
        self._clock_ok_since = None if bad else self._clock_ok_since
        if bad:
            msg = (f"The sensor's clock is {rec['t'] - rx:.0f} s ahead of this computer's"
                   if ahead and rx is not None else
                   "The sensor's clock jumped backwards without a restart")
            msg += ": event times may be wrong."
        else:
            msg = "The sensor's clock agrees with this computer again."
        notices += self.set_condition("clock_anomaly", bad, self.now, msg,
                                      {"t": rec["t"], "received_at": rx})

    def _on_alert(self, a: dict[str, Any], notices: list[Notice]) -> None:
        level = a["level"]
        if level == ALARM:
            why = self._why(a)
            if self.alarm is not None and not self.alarm.acked:
                # Another alarm while one is latched: tell, but keep the escalation clock.
                self.alarm.alert, self.alarm.why = a, why
            else:
                self.alarm = _Latched(a, self.now, self.now, why)
            self._unmute("a new alarm")
            notices.append(self._notice(ALARM, a["kind"], a["message"], why, audible=True))
        elif level == WARNING:
            self.warning = a
            self.warning_since = self.now
            self.warning_until = self.now + self.cfg.warning_hold_s
            notices.append(self._notice(WARNING, a["kind"], a["message"], self._why(a),
                                        audible=not self.muted))
        elif level == FAULT:
            notices += self.set_condition(a["kind"], True, self.now, a["message"],
                                          a.get("details") or {}, source="engine")
        elif a["kind"] == "fault_cleared":
            fault = (a.get("details") or {}).get("fault")
            if fault:
                notices += self.set_condition(fault, False, self.now, a["message"],
                                              source="engine")
        elif a["kind"] == "device_restart":
            self._last_status_t = None  # its clock started over: not a clock anomaly

    def _why(self, a: dict[str, Any]) -> dict[str, Any]:
        events = [self._events[s] for s in a.get("event_seqs") or () if s in self._events]
        why: dict[str, Any] = {"alert_t": a.get("t"), "cluster_id": a.get("cluster_id"),
                               "event_seqs": list(a.get("event_seqs") or ()),
                               "events": events, "details": a.get("details") or {}}
        snippet = (a.get("details") or {}).get("snippet")
        if snippet is not None:
            why["snippet"] = snippet
        return why

    def _notice(self, level: str, kind: str, message: str, why: dict[str, Any],
                audible: bool, repeat: int = 0, group: int = 0,
                exclude: frozenset[str] = frozenset(), source: str = "engine") -> Notice:
        return Notice(self.now, level, kind, _TITLES[level], message, why, audible, repeat,
                      group, exclude, source=source)

    def set_condition(
        self, kind: str, active: bool, now: float, message: str,
        details: dict[str, Any] | None = None, exclude: frozenset[str] = frozenset(),
        source: str = "host",
    ) -> list[Notice]:
        """Start or end a fault condition (edges only); returns the notice for an edge.

        The state machine owns the set of active faults and their reminders; the edge of
        a condition is decided by whoever finds it: the engine for the sensor, the link
        and the heartbeat (``source="engine"``, already stored), this machine and the hub
        for host-side conditions (``source="host"``, recorded by the hub)."""
        self.now = max(self.now, now)
        have = self.faults.get(kind)
        if active and have is None:
            self.faults[kind] = _Fault(kind, message, self.now, self.now, dict(details or {}))
            self._unmute(f"a new fault ({kind})")
            n = self._notice(FAULT, kind, message, {"details": dict(details or {})},
                             audible=True, exclude=exclude, source=source)
            self._transition(f"fault {kind}", "monitor")
            return [n]
        if not active and have is not None:
            del self.faults[kind]
            text = f"{message} (problem '{kind}' lasted {fmt_span(self.now - have.since)})"
            self._transition(f"fault {kind} cleared", "monitor")
            return [self._notice("info", "fault_cleared", text, {"fault": kind},
                                 audible=False, exclude=exclude, source=source)]
        return []

    def tick(self, now: float) -> list[Notice]:
        """Time-based checks: repeats and escalation, expiring mute/warning. (The heartbeat is
        the engine's: ``MonitorEngine.tick``.)"""
        self.now = max(self.now, now)
        cfg = self.cfg
        notices: list[Notice] = []
        al = self.alarm
        if al is not None and not al.acked:
            group = int((self.now - al.since) // cfg.escalate_after_s)
            if self.now - al.last_notice >= cfg.repeat_every_s or group > al.group:
                al.repeats += 1
                al.group = max(al.group, group)
                al.last_notice = self.now
                notices.append(self._notice(
                    ALARM, al.alert["kind"], al.alert["message"], al.why, audible=True,
                    repeat=al.repeats, group=al.group))
        if cfg.fault_repeat_s > 0:
            for f in self.faults.values():
                if not f.acked and self.now - f.last_notice >= cfg.fault_repeat_s:
                    f.repeats += 1
                    f.last_notice = self.now
                    notices.append(self._notice(FAULT, f.kind, f.message,
                                                {"details": f.details},
                                                audible=not self.muted, repeat=f.repeats))
        self._transition("time passed", "timer")
        return notices

    # -- the parent's actions ------------------------------------------------------------

    def ack(self, now: float, source: str = "api") -> bool:
        """Acknowledge what is showing: the alarm, the faults' reminders, the warning."""
        self.now = max(self.now, now)
        acted = False
        if self.alarm is not None and not self.alarm.acked:
            self.alarm.acked = True
            acted = True
        for f in self.faults.values():
            acted = acted or not f.acked
            f.acked = True
        if self.warning is not None and self.now < self.warning_until:
            self.warning_until = self.now
            acted = True
        self._transition("acknowledged", source)
        return acted

    def mute(self, minutes: float, now: float, source: str = "api") -> float | None:
        """Silence audible alerts for ``minutes`` (0 ends a mute); acknowledges what shows.

        Returns the time the mute ends (None when unmuted).
        """
        if not 0 <= minutes <= self.cfg.max_mute_min:
            raise ValueError(
                f"mute minutes must be between 0 and {self.cfg.max_mute_min:g}, not {minutes:g}")
        self.now = max(self.now, now)
        if minutes == 0:
            self.muted_until = None
            self._transition("unmuted", source)
            return None
        self.ack(now, source)
        self.muted_until = self.now + minutes * 60.0
        self.mute_started = self.now
        self._transition(f"muted for {minutes:g} min", source)
        return self.muted_until

    def _unmute(self, why: str) -> None:
        if self.muted:
            self.muted_until = None
            self._transition(f"mute ended by {why}", "monitor")

    def _transition(self, reason: str, source: str) -> None:
        new = self.state
        if new == self._state:
            return
        details: dict[str, Any] = {}
        if new == ALARM and self.alarm is not None:
            details = {"kind": self.alarm.alert.get("kind"),
                       "message": self.alarm.alert["message"]}
        elif new == FAULT:
            details = {"faults": sorted(self.faults)}
        self.log.add(self.now, self._state, new, reason, source, details)
        self._state = new
        self._state_since = self.now
