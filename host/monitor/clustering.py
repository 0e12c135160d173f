"""Grouping events in time: a cluster is a run of events with short gaps between them.

Two events belong together when the next one starts at most ``gap_s`` after the previous
one ended. A cluster is closed once ``gap_s`` passes with nothing new: that is noticed on
the next event, on a clock tick, or at the end of the data. Work per event is O(1); the
interval lists are capped so an hours-long restless spell cannot grow without bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spasmwatch.host.monitor.alerts import fmt_range, fmt_span, fmt_time
from spasmwatch.host.monitor.records import Event


@dataclass
class Cluster:
    """Events close in time. ``intervals_s`` are onset-to-onset gaps between its events."""

    id: int
    start: float  # earliest onset
    end: float  # latest end
    n_events: int = 0
    n_spasm_like: int = 0
    n_jerk: int = 0
    n_movement: int = 0
    intervals_s: list[float] = field(default_factory=list)
    spasm_intervals_s: list[float] = field(default_factory=list)
    first_seq: int | None = None
    last_seq: int | None = None
    closed: bool = False
    # Running state for the intervals (not stored)
    last_onset: float | None = field(default=None, repr=False, compare=False)
    last_spasm_onset: float | None = field(default=None, repr=False, compare=False)

    @property
    def duration_s(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "cluster", "id": self.id, "start": self.start, "end": self.end,
            "duration_s": round(self.duration_s, 3), "n_events": self.n_events,
            "n_spasm_like": self.n_spasm_like, "n_jerk": self.n_jerk,
            "n_movement": self.n_movement, "intervals_s": list(self.intervals_s),
            "spasm_intervals_s": list(self.spasm_intervals_s),
            "first_seq": self.first_seq, "last_seq": self.last_seq, "closed": self.closed,
        }

    def to_json(self) -> dict[str, Any]:
        """The cluster on the output bus's edges (``type`` = ``cluster``)."""
        return self.to_dict()

    def describe(self) -> str:
        """One descriptive sentence: when, how long, what kinds of movement, how spaced."""
        parts = []
        if self.n_spasm_like:
            parts.append(f"{self.n_spasm_like} spasm-like")
        if self.n_jerk:
            parts.append(f"{self.n_jerk} jerk{'s' if self.n_jerk != 1 else ''}")
        if self.n_movement:
            parts.append(f"{self.n_movement} other movement{'s' if self.n_movement != 1 else ''}")
        noun = "event" if self.n_events == 1 else "events"
        text = (
            f"Movement cluster {fmt_time(self.start)}–{fmt_time(self.end)} "
            f"({fmt_span(self.duration_s)}): {self.n_events} {noun} ({', '.join(parts)})"
        )
        gaps = self.spasm_intervals_s
        if gaps:
            med = sorted(gaps)[len(gaps) // 2]
            text += (
                f"; spasm-like movements {fmt_range(gaps)} s apart "
                f"(median {med:.0f} s)"
            )
        return text + "."

    def add(self, ev: Event, max_intervals: int) -> None:
        self.n_events += 1
        if ev.cls == "spasm_like":
            self.n_spasm_like += 1
        elif ev.cls == "jerk":
            self.n_jerk += 1
        else:
            self.n_movement += 1
        if self.first_seq is None:
            self.first_seq = ev.seq
        self.last_seq = ev.seq
        late = self.last_onset is not None and ev.t < self.last_onset
        self.start = min(self.start, ev.t)
        self.end = max(self.end, ev.end)
        if late:
            # A backfilled event: counted, but it has no place in the running intervals.
            return
        if self.last_onset is not None and len(self.intervals_s) < max_intervals:
            self.intervals_s.append(round(ev.t - self.last_onset, 3))
        self.last_onset = ev.t
        if ev.cls == "spasm_like":
            prev = self.last_spasm_onset
            if prev is not None and len(self.spasm_intervals_s) < max_intervals:
                self.spasm_intervals_s.append(round(ev.t - prev, 3))
            self.last_spasm_onset = ev.t


class ClusterTracker:
    """Maintain the open cluster; hand back clusters as they close."""

    def __init__(self, gap_s: float, max_intervals: int = 1000, first_id: int = 1) -> None:
        self.gap_s = gap_s
        self.max_intervals = max_intervals
        self.next_id = first_id
        self.current: Cluster | None = None

    def add(self, ev: Event) -> tuple[Cluster | None, Cluster | None]:
        """Place ``ev``; return (cluster it closed, cluster it joined).

        The joined cluster is None for a late event whose onset lies before the open
        cluster could have begun: its own cluster has already been closed and reported.
        """
        cur = self.current
        if cur is not None:
            if ev.t - cur.end <= self.gap_s and ev.end >= cur.start - self.gap_s:
                cur.add(ev, self.max_intervals)
                return None, cur
            if ev.t < cur.start:
                return None, None
        closed = self._close()
        self.current = Cluster(id=self.next_id, start=ev.t, end=ev.end)
        self.next_id += 1
        self.current.add(ev, self.max_intervals)
        return closed, self.current

    def expire(self, now: float) -> Cluster | None:
        """Close the open cluster if ``gap_s`` has passed since it ended."""
        cur = self.current
        if cur is not None and now - cur.end > self.gap_s:
            return self._close()
        return None

    def finish(self) -> Cluster | None:
        """Close the open cluster regardless (end of data)."""
        return self._close()

    def _close(self) -> Cluster | None:
        cur = self.current
        self.current = None
        if cur is not None:
            cur.closed = True
        return cur
