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

from spasmwatch.host.monitor.alerts import Alert, fmt_span, fmt_time
from spasmwatch.host.monitor.faults import ActiveFault, FaultTracker
from spasmwatch.host.monitor.outputs import (
    DATA_OUTPUTS,
    EventOutput,
    Output,
    Snippet,
    StatusOutput,
    SummaryOutput,
)
from spasmwatch.host.monitor.records import Event, Status, Summary
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
    alert: Alert
    since: float
    last_notice: float
    why: dict[str, Any]
    repeats: int = 0
    group: int = 0
    acked: bool = False


@dataclass
class _Shown:
    """A fault the parent has been told about: the owner's record plus its reminders."""

    fault: ActiveFault
    last_notice: float
    acked: bool = False
    repeats: int = 0


class AlarmStateMachine:
    """Consumes the monitor's output records and time; yields notices; logs transitions.

    Fault state is ``fault_owner``'s (``host/monitor/faults.py``; in a monitor the
    engine's tracker, shared): this machine reports its own conditions to it
    (``set_condition``) and turns every edge, its own or the engine's, into a notice,
    keeping only what the parent was told (reminders, acknowledgement)."""

    def __init__(
        self,
        monitor: MonitorSettings,
        alarm: AlarmSettings,
        log: TransitionLog | None = None,
        now: float = 0.0,
        faults: FaultTracker | None = None,
    ) -> None:
        self.monitor = monitor
        self.cfg = alarm
        self.log = log if log is not None else TransitionLog(None)
        self.alarm: _Latched | None = None
        self.fault_owner = faults if faults is not None else FaultTracker()
        self._shown: dict[str, _Shown] = {}  # faults told to the parent, by kind
        self.warning: Alert | None = None
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
    def faults(self) -> dict[str, ActiveFault]:
        """The active faults the parent has been told about, in onset order."""
        return {k: s.fault for k, s in self._shown.items()}

    @property
    def muted(self) -> bool:
        return self.muted_until is not None and self.now < self.muted_until

    @property
    def state(self) -> str:
        if self.alarm is not None and not self.alarm.acked:
            return ALARM
        if self._shown:
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
                "kind": self.alarm.alert.kind, "message": self.alarm.alert.message,
                "t": self.alarm.alert.t, "since": self.alarm.since,
                "acknowledged": self.alarm.acked, "repeats": self.alarm.repeats,
                "group": self.alarm.group, "why": self.alarm.why,
            },
            "faults": [
                {"kind": s.fault.kind, "message": s.fault.message, "since": s.fault.since,
                 "acknowledged": s.acked}
                for s in self._shown.values()
            ],
            "warning": None if self.warning is None or self.now >= self.warning_until
            else {"kind": self.warning.kind, "message": self.warning.message},
            "muted": self.muted,
            "muted_until": self.muted_until if self.muted else None,
            "sensor_link": self.had_data and "heartbeat_timeout" not in self._shown,
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

    def on_output(self, out: Output, now: float) -> list[Notice]:
        """Feed one output record of the monitor (event, summary, status, alert, snippet;
        the others are not its business)."""
        self.now = max(self.now, now)
        notices: list[Notice] = []
        if isinstance(out, DATA_OUTPUTS):
            t = out.t
            self.last_data = self.now
            self.had_data = True
            self.latest_t = max(self.latest_t or t, t)
        match out:
            case EventOutput(event=ev):
                self._on_event(ev, notices)
            case SummaryOutput(summary=s):
                self._on_summary(s, notices)
            case StatusOutput(status=s):
                self._on_status(s, notices)
            case Alert():
                self._on_alert(out, notices)
            case Snippet() if self.alarm is not None:
                # Raw samples the sensor sent on request (GET_SNIPPET): attached to the
                # latched alarm's "why", so the page, Home Assistant and repeats carry them.
                snip = out.to_json()
                del snip["type"]
                self.alarm.why["snippet"] = snip
        self._transition("data", "engine")
        return notices

    def _on_event(self, ev: Event, notices: list[Notice]) -> None:
        # What an alarm's "why" lists of each movement (JSON: the page, MQTT, the body).
        self._events[ev.seq] = {
            "seq": ev.seq, "t": ev.t, "cls": ev.cls, "state": ev.state,
            "duration_s": ev.duration_s, "peak_mg": ev.peak_mg, "tilt_mg": ev.tilt_mg,
            "energy_mgs": ev.energy_mgs, "excursion_mg": ev.excursion_mg, "peaks": ev.peaks}
        if len(self._events) > _RECENT_EVENTS:
            self._events.popitem(last=False)
        self._event_times.append(ev.t)
        self._moving(notices)

    def _moving(self, notices: list[Notice]) -> None:
        self._still_since = None
        notices += self.set_condition(
            "placement_check", False, self.now, "Body movement is being seen again.")

    def _on_summary(self, s: Summary, notices: list[Notice]) -> None:
        m = self.monitor
        self._check_clock(s, notices, is_status=False)
        if s.active_s > 0 or s.mean_mg > m.placement_max_mean_mg:
            self._moving(notices)
            return
        if self._still_since is None:
            self._still_since = s.t - s.period_s
        still = s.t - self._still_since
        if m.placement_check_min > 0 and still >= m.placement_check_min * 60:
            notices += self.set_condition(
                "placement_check", True, self.now,
                PLACEMENT_MESSAGE.format(span=fmt_span(still)),
                {"still_s": still, "mean_mg": s.mean_mg})

    def _on_status(self, s: Status, notices: list[Notice]) -> None:
        m = self.monitor
        self.battery_mv = s.battery_mv
        self._check_clock(s, notices, is_status=True)
        if m.expected_rate_hz > 0:
            off = abs(s.rate_hz - m.expected_rate_hz) > (
                m.expected_rate_hz * m.rate_tolerance_pct / 100.0)
            notices += self.set_condition(
                "wrong_rate", off, self.now,
                f"The sensor reports {s.rate_hz} samples/s instead of "
                f"{m.expected_rate_hz}: its data may not be analysed correctly."
                if off else f"The sensor runs at {s.rate_hz} samples/s again.",
                {"rate_hz": s.rate_hz, "expected_hz": m.expected_rate_hz})

    def _check_clock(self, rec: Summary | Status, notices: list[Notice],
                     is_status: bool) -> None:
        tol = self.monitor.clock_tolerance_s
        rx = rec.received_at
        ahead = rx is not None and rec.t - rx > tol
        back = False
        if is_status:
            prev = self._last_status_t
            back = prev is not None and rec.t < prev - tol
            self._last_status_t = rec.t
        bad = ahead or back
        if not bad and "clock_anomaly" in self.fault_owner:
            # Clears only once the clock has agreed for a while: a clock that flips
            # between right and wrong is one problem, not a storm of alarms and recoveries.
            if self._clock_ok_since is None:
                self._clock_ok_since = self.now
            if self.now - self._clock_ok_since < CLOCK_CLEAR_S:
                return
        self._clock_ok_since = None if bad else self._clock_ok_since
        if bad:
            msg = (f"The sensor's clock is {rec.t - rx:.0f} s ahead of this computer's"
                   if ahead and rx is not None else
                   "The sensor's clock jumped backwards without a restart")
            msg += ": event times may be wrong."
        else:
            msg = "The sensor's clock agrees with this computer again."
        notices += self.set_condition("clock_anomaly", bad, self.now, msg,
                                      {"t": rec.t, "received_at": rx})

    def _on_alert(self, a: Alert, notices: list[Notice]) -> None:
        level = a.level
        if level == ALARM:
            why = self._why(a)
            if self.alarm is not None and not self.alarm.acked:
                # Another alarm while one is latched: tell, but keep the escalation clock.
                self.alarm.alert, self.alarm.why = a, why
            else:
                self.alarm = _Latched(a, self.now, self.now, why)
            self._unmute("a new alarm")
            notices.append(self._notice(ALARM, a.kind, a.message, why, audible=True))
        elif level == WARNING:
            self.warning = a
            self.warning_since = self.now
            self.warning_until = self.now + self.cfg.warning_hold_s
            notices.append(self._notice(WARNING, a.kind, a.message, self._why(a),
                                        audible=not self.muted))
        elif level == FAULT or a.kind == "fault_cleared":
            # An edge the engine decided (already stored): shown, never decided again.
            self.fault_owner.adopt(a)  # a no-op on the tracker the engine shares
            notices += self._fault_edge(a, source="engine")
        elif a.kind == "device_restart":
            self._last_status_t = None  # its clock started over: not a clock anomaly

    def _why(self, a: Alert) -> dict[str, Any]:
        events = [self._events[s] for s in a.event_seqs if s in self._events]
        why: dict[str, Any] = {"alert_t": a.t, "cluster_id": a.cluster_id,
                               "event_seqs": list(a.event_seqs),
                               "events": events, "details": dict(a.details)}
        snippet = a.details.get("snippet")
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
        """Report a host-side condition (placement, clock, rate, host battery, delivery,
        "nobody will hear an alarm") to the fault owner; returns the notice for an edge.

        The owner (``FaultTracker``) decides the edge; ``source="host"``: the hub records
        the fault in the alerts table (the engine stores its own)."""
        self.now = max(self.now, now)
        edge = self.fault_owner.update(kind, active, self.now, message, details, source)
        return [] if edge is None else self._fault_edge(edge, source, exclude)

    def _fault_edge(self, edge: Alert, source: str,
                    exclude: frozenset[str] = frozenset()) -> list[Notice]:
        """Tell the parent about a fault's start or end (once per edge)."""
        if edge.level == FAULT:
            kind = edge.kind
            if kind in self._shown:
                return []
            fault = self.fault_owner.active.get(kind) or ActiveFault(
                kind, edge.message, edge.t, dict(edge.details), source)
            self._shown[kind] = _Shown(fault, self.now)
            self._unmute(f"a new fault ({kind})")
            n = self._notice(FAULT, kind, edge.message, {"details": dict(edge.details)},
                             audible=True, exclude=exclude, source=source)
            self._transition(f"fault {kind}", "monitor")
            return [n]
        kind = str(edge.details.get("fault", ""))
        if self._shown.pop(kind, None) is None:
            return []
        self._transition(f"fault {kind} cleared", "monitor")
        return [self._notice("info", "fault_cleared", edge.message, {"fault": kind},
                             audible=False, exclude=exclude, source=source)]

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
                    ALARM, al.alert.kind, al.alert.message, al.why, audible=True,
                    repeat=al.repeats, group=al.group))
        if cfg.fault_repeat_s > 0:
            for f in self._shown.values():
                if not f.acked and self.now - f.last_notice >= cfg.fault_repeat_s:
                    f.repeats += 1
                    f.last_notice = self.now
                    notices.append(self._notice(FAULT, f.fault.kind, f.fault.message,
                                                {"details": f.fault.details},
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
        for f in self._shown.values():
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
            details = {"kind": self.alarm.alert.kind, "message": self.alarm.alert.message}
        elif new == FAULT:
            details = {"faults": sorted(self._shown)}
        self.log.add(self.now, self._state, new, reason, source, details)
        self._state = new
        self._state_since = self.now
