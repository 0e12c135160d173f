"""The two event patterns that raise alerts: spasm-like chains and bursts of jerks.

Spasm chain: spasm-like events each starting at most ``spasm_gap_s`` after the previous
one ended. Infantile spasms typically come in clusters, one every ~5-30 s, so a chain is
judged as it grows: a warning when it reaches ``warn_spasms``, an alarm the moment it
reaches ``alarm_min_spasms`` (not when it ends, which may be many minutes later). Each
fires once per chain. Since round 3 the chain is also judged on cluster-level evidence
(cluster_evidence.py): the host may count a movement that matches the chain's spasm-like
members, and the alarm and the warning need the chain to look stereotyped.

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
from spasmwatch.host.monitor.cluster_evidence import (
    EvidenceConfig,
    chain_features,
    learned_score,
    matches_template,
    rule_score,
)
from spasmwatch.host.monitor.event_evidence import EventContext, event_score
from spasmwatch.host.monitor.records import Detail, Event

# Members remembered per chain for the message and the evidence (the count is unbounded).
_CHAIN_MEMBERS = 64
# Recent non-spasm events kept for re-classing when a chain forms.
_RECENT = 16
# Re-classed events remembered for evaluation (host recall), bounded.
_RECLASSED_KEEP = 4096
# Details (round 4) kept per event, bounded: more than a chain's members and recent events.
_DETAILS_KEEP = 512


@dataclass
class SpasmChain:
    start: float  # first onset
    end: float  # latest end
    count: int = 0  # members: spasm-like events plus re-classed ones
    n_spasm_like: int = 0
    others: int = 0  # other events that started while the chain was open
    members: list[tuple[float, int, str]] = field(default_factory=list)  # (onset, seq, state)
    events: list[Event] = field(default_factory=list)  # member events, capped
    spasm_events: list[Event] = field(default_factory=list)  # spasm-like members, capped
    reclassed: list[int] = field(default_factory=list)  # seqs of re-classed members
    warned: bool = False
    alarmed: bool = False
    score: float | None = None
    score_sum: float = 0.0  # the members' event scores ("scored" mode), re-classed ones too
    n_firmware: int = 0  # members the firmware itself called spasm-like

    def add(self, ev: Event, reclassed: bool = False, event_score: float = 0.0) -> None:
        self.count += 1
        self.score_sum += event_score
        if ev.cls == "spasm_like":
            self.n_firmware += 1
        self.start = min(self.start, ev.t)
        self.end = max(self.end, ev.end)
        if len(self.members) < _CHAIN_MEMBERS:
            bisect.insort(self.members, (ev.t, ev.seq, ev.state))
            self.events.append(ev)
        if reclassed:
            self.reclassed.append(ev.seq)
        else:
            self.n_spasm_like += 1
            if len(self.spasm_events) < _CHAIN_MEMBERS:
                self.spasm_events.append(ev)


class SpasmChainDetector:
    """Chains of spasm-like events, judged as they grow.

    ``cfg.evidence`` = ``"count"``: the round-1/2 rule (an alarm at ``alarm_min_spasms``
    spasm-like events). ``"rules"`` / ``"learned"``: the host also re-classes a movement or
    jerk that matches the chain's spasm-like members (cluster_evidence.matches_template),
    and the alarm needs the chain's evidence score too (stereotypy, regularity, how busy
    the stretch is), or ``sure_spasms`` spasm-like members whatever the score.
    """

    def __init__(self, cfg: AlertConfig, evidence: EvidenceConfig | None = None) -> None:
        self.cfg = cfg
        self.ev_cfg = evidence or EvidenceConfig()
        self.chain: SpasmChain | None = None
        self.recent: deque[Event] = deque(maxlen=_RECENT)  # non-spasm events, newest last
        self.reconsidered: deque[tuple[float, float]] = deque(maxlen=_RECLASSED_KEEP)
        # (onset, end) of every event the host itself counted as spasm-like (its class,
        # before any re-classing): the firmware's, or the event score's in "scored" mode.
        self.counted: deque[tuple[float, float]] = deque(maxlen=_RECLASSED_KEEP)
        self._detail: Detail | None = None  # the latest detail, waiting for its event
        self.details: dict[tuple[int, int], Detail] = {}  # (event seq, t_ms) -> detail
        self.context = EventContext()  # round 5: the events before, for the event score
        self.scores: dict[tuple[int, int], float] = {}  # (seq, t_ms) -> score, bounded

    def add_detail(self, d: Detail) -> None:
        """A detail packet (round 4): it describes the event that follows it."""
        self._detail = d

    def detail_of(self, ev: Event) -> Detail | None:
        """The detail of ``ev``, or None (an older sensor, or its detail packet was lost)."""
        return self.details.get((ev.seq, ev.t_ms))

    def score_of(self, ev: Event) -> float:
        """The host's event score of ``ev`` (0 when not scored)."""
        return self.scores.get((ev.seq, ev.t_ms), 0.0)

    def _take_detail(self, ev: Event) -> None:
        d = self._detail
        self._detail = None  # a detail describes only the event right after it
        if d is None or not d.describes(ev):
            return
        self.details[(ev.seq, ev.t_ms)] = d
        if len(self.details) > _DETAILS_KEEP:
            del self.details[next(iter(self.details))]

    def add(self, ev: Event, known_at: float, cluster_id: int | None) -> list[Alert]:
        """Feed one event (any class); return the warning/alarm it completes, if any."""
        cfg = self.cfg
        ch = self.chain
        judged = cfg.evidence != "count"
        self._take_detail(ev)
        spasm = ev.cls == "spasm_like"
        if cfg.event_class == "scored" and judged:  # "count" is rounds 1-2's rule, as it was
            # Scored only with its detail record: the model was trained on events that had
            # one. Without (an older sensor, a lost detail packet) the sensor's class holds.
            d = self.detail_of(ev)
            if d is not None:
                p = event_score(self.context.features(ev, d))
                self.scores[(ev.seq, ev.t_ms)] = p
                if len(self.scores) > _DETAILS_KEEP:
                    del self.scores[next(iter(self.scores))]
                spasm = p >= cfg.event_threshold
            self.context.push(ev, d)
        if spasm:
            self.counted.append((ev.t, ev.end))
        else:
            if not judged:
                return []
            if ch is not None and ev.t - ch.end <= cfg.spasm_gap_s and ev.t >= ch.start:
                if matches_template(ev, ch.spasm_events, self.ev_cfg, self.detail_of):
                    ch.add(ev, reclassed=True, event_score=self.score_of(ev))
                    self.reconsidered.append((ev.t, ev.end))
                    return self._judge(ch, known_at, cluster_id)
                ch.others += 1
            self.recent.append(ev)
            return []
        if ch is not None and ev.t - ch.end <= cfg.spasm_gap_s:
            if ev.end < ch.start - cfg.spasm_gap_s:
                return []  # backfilled event from an earlier, already judged chain
        else:
            ch = self.chain = SpasmChain(start=ev.t, end=ev.end)
        ch.add(ev, event_score=self.score_of(ev))
        if judged and ch.n_spasm_like >= self.ev_cfg.min_spasm_like_to_match:
            self._reclass_recent(ch)
        return self._judge(ch, known_at, cluster_id)

    def _reclass_recent(self, ch: SpasmChain) -> None:
        """Earlier movements/jerks near the chain that match its spasm-like members join it
        (a spasm the detector merged or cut, before the chain was recognised)."""
        gap = self.cfg.spasm_gap_s
        keep: deque[Event] = deque(maxlen=_RECENT)
        for old in self.recent:
            near = ch.start - gap <= old.end and old.t <= ch.end
            if near and matches_template(old, ch.spasm_events, self.ev_cfg, self.detail_of):
                if old.t >= ch.start:
                    ch.others = max(0, ch.others - 1)  # it was counted as "other"
                ch.add(old, reclassed=True, event_score=self.score_of(old))
                self.reconsidered.append((old.t, old.end))
            else:
                keep.append(old)
        self.recent = keep

    def _judge(self, ch: SpasmChain, known_at: float, cluster_id: int | None) -> list[Alert]:
        cfg = self.cfg
        if cfg.evidence == "count":
            alarm = ch.count >= cfg.alarm_min_spasms
            warn = ch.count >= cfg.warn_spasms
        else:
            feats = chain_features(ch.events, ch.n_spasm_like, ch.others, self.detail_of)
            if cfg.evidence == "learned":
                ch.score = learned_score(feats)
                ok = ch.score >= cfg.learned_threshold
            else:
                ch.score = rule_score(feats)
                ok = ch.score >= cfg.alarm_score
            sure = ch.n_spasm_like >= cfg.sure_spasms
            alarm = (
                ch.count >= cfg.alarm_min_spasms
                and ch.n_spasm_like >= self.ev_cfg.min_spasm_like_alarm
                and (ok or sure)
                and (cfg.event_class != "scored" or (ch.score_sum >= cfg.event_sum_min
                                                     and ch.n_firmware >= cfg.firmware_min))
            )
            e = self.ev_cfg
            sharp = feats.median_peaks <= e.warn_max_peaks and feats.median_fill <= e.warn_max_fill
            warn = ch.count >= cfg.warn_spasms and ch.n_spasm_like >= 2 and ok and sharp
            if cfg.event_class == "scored":
                # Like the alarm: the score never makes a warning out of movements the
                # sensor itself did not call spasm-like (a pair needs both).
                warn = warn and ch.n_firmware >= min(cfg.firmware_min, ch.count)
        if alarm and not ch.alarmed:
            ch.alarmed = True
            return [self._alarm(ch, known_at, cluster_id)]
        if warn and not ch.warned and not ch.alarmed:
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
            "spasm_gap_s": self.cfg.spasm_gap_s, "n_spasm_like": ch.n_spasm_like,
            "reclassed_seqs": list(ch.reclassed), "evidence": self.cfg.evidence,
            "score": None if ch.score is None else round(ch.score, 3),
            # Round 5: how the members were counted, for the record and the clinician.
            "event_class": self.cfg.event_class, "n_sensor_spasm_like": ch.n_firmware,
            "event_scores": {str(e.seq): round(self.scores[(e.seq, e.t_ms)], 3)
                             for e in ch.events if (e.seq, e.t_ms) in self.scores},
        }
        return onsets, seqs, details

    def _alarm(self, ch: SpasmChain, t: float, cluster_id: int | None) -> Alert:
        onsets, seqs, details = self._facts(ch)
        gaps = details["intervals_s"]
        spacing = f", {fmt_range(gaps)} s apart" if gaps else ""
        alike = ""
        if ch.reclassed:
            alike = (
                f" ({len(ch.reclassed)} of them counted because they match the others in "
                f"duration, strength and posture change)"
            )
        msg = (
            f"{ch.count} spasm-like movements in {fmt_span(ch.end - ch.start)}{spacing}"
            f"{alike} (at {fmt_times(onsets, self.cfg.max_listed)}), each within "
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
        return [Alert(known_at, cfg.burst_level, "jerk_burst", msg, cluster_id,
                      tuple(s for _, s in w), details)]

    def expire(self, now: float) -> None:
        """Drop jerks older than the window; the burst ends when too few remain."""
        w = self.window
        floor = now - self.cfg.burst_window_s
        while w and w[0][0] < floor:
            w.popleft()
        if len(w) < self.cfg.burst_min_jerks:
            self.in_burst = False
