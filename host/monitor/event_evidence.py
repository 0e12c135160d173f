"""Event-level evidence: how much does one event, in its recent context, look like a spasm?

Round 5 (docs/detector.md, "The host's event score"). The firmware classes each event by
fixed thresholds (``spasm_like`` only when every spasm test passes); about a third of the
generated spasms fail one test narrowly (``not_prominent`` in a busy stretch, ``flat``,
``impulse``, ``no_return`` on a loosely fitted sensor) and are sent as ``movement`` or
``jerk``. Everything the tests looked at is on the wire: the event's figures, the detail
record (which tests failed, rise, hold, tilt direction) and the events before it. The
host scores each event from those with a small learned model (``event_model.py``, a tree
ensemble exported to plain code by ``tools/train_event_model.py``), so a spasm that failed
one test narrowly but sits among its like can still count, and a ``spasm_like`` fidget in
a stretch of crying can be set aside.

Only past events are used (the score is final when the event arrives; an alarm never
waits for the future). O(1) per event: the context is the last ``_CONTEXT`` events.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from spasmwatch.firmware import wire
from spasmwatch.host.monitor import event_model
from spasmwatch.host.monitor.cluster_evidence import unit
from spasmwatch.host.monitor.records import Detail, Event

_CLASS = {"jerk": 0.0, "spasm_like": 1.0, "movement": 2.0}
_STATE = {"unknown": 0.0, "asleep": 1.0, "settling": 2.0, "awake": 3.0}
#: Events remembered for the context features.
_CONTEXT = 8
#: How far back the context looks (the alarm rule's chain gap).
_WINDOW_S = 60.0
#: "Nothing before it" for the time-since features.
_FAR_S = 120.0

#: Feature names, in the order of :meth:`EventContext.features` (the model's input).
FEATURES: tuple[str, ...] = (
    "cls", "state", "peaks", "dur_s", "log_peak", "log_energy", "tilt_mg", "exc_mg",
    "still_s", "exc_ratio", "tilt_frac", "fill",
    "has_detail", "rise_s", "hold_s", "hold_frac", "rise_frac",
    *(f"fail_{n}" for n in wire.FAIL_NAMES),
    "gap_prev_s", "log_peak_vs_prev", "log_dur_vs_prev", "n_recent",
    "since_spasm_s", "log_peak_vs_spasm", "log_dur_vs_spasm", "ratio_vs_spasm",
    "axis_vs_spasm", "n_recent_spasm",
)


class EventContext:
    """The recent events of one stream and the features of the next one."""

    def __init__(self) -> None:
        self.recent: deque[tuple[Event, Detail | None]] = deque(maxlen=_CONTEXT)
        self.last_spasm: tuple[Event, Detail | None] | None = None  # last firmware spasm_like

    def features(self, ev: Event, d: Detail | None) -> list[float]:
        """The model's input for ``ev`` (with its detail record, if any) after the events
        seen so far. Every value is finite."""
        dur = max(ev.duration_s, 0.01)
        pk = max(ev.peak_mg, 1)
        exc = max(ev.excursion_mg, 0)
        f = [
            _CLASS.get(ev.cls, 2.0), _STATE.get(ev.state, 0.0), float(ev.peaks), dur,
            math.log(pk), math.log1p(max(ev.energy_mgs, 0)), float(ev.tilt_mg), float(exc),
            float(min(ev.still_s, 255)), exc / pk, ev.tilt_mg / max(exc, 1),
            max(ev.energy_mgs, 0) / (pk * dur),
        ]
        if d is not None:
            fails = set(d.fails)
            f += [1.0, d.rise_s, d.hold_s, d.hold_s / dur, d.rise_s / dur]
            f += [1.0 if n in fails else 0.0 for n in wire.FAIL_NAMES]
        else:
            f += [0.0, -1.0, -1.0, -1.0, -1.0] + [-1.0] * len(wire.FAIL_NAMES)
        if self.recent:
            pe = self.recent[-1][0]
            f += [
                min(max(ev.t - pe.end, 0.0), _FAR_S), math.log(pk / max(pe.peak_mg, 1)),
                math.log(dur / max(pe.duration_s, 0.01)),
                float(sum(1 for e, _ in self.recent if ev.t - e.t <= _WINDOW_S)),
            ]
        else:
            f += [_FAR_S, 0.0, 0.0, 0.0]
        ls = self.last_spasm
        if ls is not None and ev.t - ls[0].end <= _WINDOW_S:
            se, sd = ls
            u = unit(d.direction) if d is not None else None
            v = unit(sd.direction) if sd is not None else None
            axis = -1.0
            if u is not None and v is not None:
                axis = abs(u[0] * v[0] + u[1] * v[1] + u[2] * v[2])
            f += [
                max(ev.t - se.end, 0.0), math.log(pk / max(se.peak_mg, 1)),
                math.log(dur / max(se.duration_s, 0.01)),
                (exc / pk) / max(se.excursion_mg / max(se.peak_mg, 1), 0.01), axis,
            ]
        else:
            f += [_FAR_S, 0.0, 0.0, 0.0, -1.0]
        f.append(float(sum(1 for e, _ in self.recent
                           if e.cls == "spasm_like" and ev.t - e.t <= _WINDOW_S)))
        return f

    def push(self, ev: Event, d: Detail | None) -> None:
        """Remember ``ev`` as context for the events after it."""
        self.recent.append((ev, d))
        if ev.cls == "spasm_like":
            self.last_spasm = (ev, d)


def event_score(features: Sequence[float]) -> float:
    """The learned model's probability (0..1) that the event is a spasm."""
    return event_model.predict(list(features))
