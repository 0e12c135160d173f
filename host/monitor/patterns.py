"""The two event patterns that raise alerts: spasm-like chains and bursts of jerks.

Spasm chain: spasm-like events each starting at most ``spasm_gap_s`` after the previous
one ended. Infantile spasms typically come in clusters, one every ~5-30 s, so a chain is
judged as it grows: a warning when it reaches ``warn_spasms``, an alarm the moment it
reaches ``alarm_min_spasms`` (not when it ends, which may be many minutes later). Each
fires once per chain.

Jerk burst: at least ``burst_min_jerks`` jerks with onsets within ``burst_window_s``.
Fires once; the burst lasts while the count in the window stays at or above the minimum.

Both keep O(1) state per event (the burst window is a deque trimmed from the left).
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

from spasmwatch.host.monitor.alerts import (
    ALARM,
    WARNING,
    Alert,
    AlertConfig,
    fmt_range,
    fmt_span,
    fmt_time,
    fmt_times,
)
from spasmwatch.host.monitor.records import Event

# Members remembered per chain for the message (the count itself is unbounded).
_CHAIN_MEMBERS = 64


@dataclass
class SpasmChain:
    start: float  # first onset
    end: float  # latest end
    count: int = 0
    members: list[tuple[float, int, str]] = field(default_factory=list)  # (onset, seq, state)
    warned: bool = False
    alarmed: bool = False

    def add(self, ev: Event) -> None:
        self.count += 1
        self.start = min(self.start, ev.t)
        self.end = max(self.end, ev.end)
        if len(self.members) < _CHAIN_MEMBERS:
            bisect.insort(self.members, (ev.t, ev.seq, ev.state))


class SpasmChainDetector:
    def __init__(self, cfg: AlertConfig) -> None:
        self.cfg = cfg
        self.chain: SpasmChain | None = None

    def add(self, ev: Event, known_at: float, cluster_id: int | None) -> list[Alert]:
        """Feed one spasm-like event; return the warning/alarm it completes, if any."""
        cfg = self.cfg
        ch = self.chain
        if ch is not None and ev.t - ch.end <= cfg.spasm_gap_s:
            if ev.end < ch.start - cfg.spasm_gap_s:
                return []  # backfilled event from an earlier, already judged chain
        else:
            ch = self.chain = SpasmChain(start=ev.t, end=ev.end)
        ch.add(ev)
        if ch.count >= cfg.alarm_min_spasms and not ch.alarmed:
            ch.alarmed = True
            return [self._alarm(ch, known_at, cluster_id)]
        if ch.count >= cfg.warn_spasms and not ch.warned and not ch.alarmed:
            ch.warned = True
            return [self._warning(ch, known_at, cluster_id)]
        return []

    def _facts(self, ch: SpasmChain) -> tuple[list[float], tuple[int, ...], dict]:
        onsets = [m[0] for m in ch.members]
        seqs = tuple(m[1] for m in ch.members)
        states = sorted({m[2] for m in ch.members})
        gaps = [round(b - a, 3) for a, b in zip(onsets, onsets[1:], strict=False)]
        details = {
            "n": ch.count, "span_s": round(ch.end - ch.start, 3), "first_onset": ch.start,
            "onsets": onsets, "intervals_s": gaps, "states": states,
            "spasm_gap_s": self.cfg.spasm_gap_s,
        }
        return onsets, seqs, details

    def _alarm(self, ch: SpasmChain, t: float, cluster_id: int | None) -> Alert:
        onsets, seqs, details = self._facts(ch)
        gaps = details["intervals_s"]
        spacing = f", {fmt_range(gaps)} s apart" if gaps else ""
        msg = (
            f"{ch.count} spasm-like movements in {fmt_span(ch.end - ch.start)}{spacing} "
            f"(at {fmt_times(onsets, self.cfg.max_listed)}), each within "
            f"{self.cfg.spasm_gap_s:.0f} s of the last: a repeating pattern worth checking "
            f"now. If it continues, film it and contact a doctor. "
            f"This is a monitoring aid, not a diagnosis."
        )
        return Alert(t, ALARM, "spasm_cluster", msg, cluster_id, seqs, details)

    def _warning(self, ch: SpasmChain, t: float, cluster_id: int | None) -> Alert:
        onsets, seqs, details = self._facts(ch)
        if ch.count == 2 and len(onsets) == 2:
            what = (
                f"2 spasm-like movements {onsets[1] - onsets[0]:.0f} s apart "
                f"(at {fmt_times(onsets, self.cfg.max_listed)})"
            )
        else:
            what = (
                f"{ch.count} spasm-like movements in {fmt_span(ch.end - ch.start)} "
                f"(at {fmt_times(onsets, self.cfg.max_listed)})"
            )
        msg = (
            f"{what}; watching for more — {self.cfg.alarm_min_spasms} in a row would "
            f"raise an alarm."
        )
        return Alert(t, WARNING, "spasm_pair", msg, cluster_id, seqs, details)


class JerkBurstDetector:
    def __init__(self, cfg: AlertConfig) -> None:
        self.cfg = cfg
        self.window: deque[tuple[float, int]] = deque()  # (onset, seq), sorted by onset
        self.in_burst = False

    def add(self, ev: Event, known_at: float, cluster_id: int | None) -> list[Alert]:
        """Feed one jerk; return the burst warning if this jerk starts a burst."""
        cfg = self.cfg
        w = self.window
        item = (ev.t, ev.seq)
        if not w or item >= w[-1]:
            w.append(item)
        elif ev.t >= w[-1][0] - cfg.burst_window_s:
            bisect.insort(w, item)  # backfilled: rare, and the window is short
        self.expire(max(ev.t, w[-1][0]))
        if len(w) < cfg.burst_min_jerks or self.in_burst:
            return []
        self.in_burst = True
        onsets = [o for o, _ in w]
        span = onsets[-1] - onsets[0]
        msg = (
            f"Burst of rapid jerks: {len(w)} brief jerks in {fmt_span(span)} "
            f"({fmt_time(onsets[0])}–{fmt_time(onsets[-1])}; alert threshold "
            f"{cfg.burst_min_jerks} within {cfg.burst_window_s:.0f} s). Worth a look."
        )
        details = {
            "n": len(w), "span_s": round(span, 3), "first_onset": onsets[0],
            "window_s": cfg.burst_window_s,
        }
        return [Alert(known_at, WARNING, "jerk_burst", msg, cluster_id,
                      tuple(s for _, s in w), details)]

    def expire(self, now: float) -> None:
        """Drop jerks older than the window; the burst ends when too few remain."""
        w = self.window
        floor = now - self.cfg.burst_window_s
        while w and w[0][0] < floor:
            w.popleft()
        if len(w) < self.cfg.burst_min_jerks:
            self.in_burst = False
