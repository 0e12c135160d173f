"""Cluster-level evidence: is a chain of spasm-like movements stereotyped like a spasm cluster?

The spasms of one cluster resemble each other: similar duration, strength and orientation
excursion, at quasi-regular intervals, standing out from what happens between them
(docs/detector.md, "Cluster evidence on the host"; the look-alikes are described in
docs/clinical-basis.md). The look-alikes mostly do not: hiccups are periodic but too
brief (``jerk`` events, which join a chain only if they match its spasm-like members),
shudders are fast oscillation (many peaks), fidgeting and crying are irregular and busy
(many other movements between the spasm-like ones).

This module turns the members of a chain (plus how much else moved meanwhile) into a few
ratios, and

* :func:`matches_template` lets the host re-class a ``movement`` or ``jerk`` event that
  looks like the chain's spasm-like members (a spasm cut or merged by the detector);
* :func:`rule_score` is the hand-written evidence score; :func:`learned_score` the learned
  alternative (a small tree ensemble exported to plain code by
  ``tools/train_cluster_model.py``, see docs/evaluation.md).

Everything is O(members) per call; members are capped by the chain (64).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from spasmwatch.host.monitor.records import Event

#: Feature names, in the order of :meth:`ChainFeatures.vector` (the learned model's input).
FEATURES = (
    "n_members", "n_spasm_like", "peak_spread", "dur_spread", "ratio_spread", "interval_cv",
    "busy_per_member", "awake_frac", "median_dur_s", "median_peaks", "median_ratio",
    "median_interval_s", "median_tilt_frac", "median_fill",
)


@dataclass(frozen=True)
class ChainFeatures:
    """Evidence about one chain. Spreads are median absolute deviations of the log."""

    n_members: int
    n_spasm_like: int
    peak_spread: float  # of log peak
    dur_spread: float  # of log duration
    ratio_spread: float  # of log(excursion / peak)
    interval_cv: float  # of onset-to-onset intervals (1.0 when fewer than 2 intervals)
    busy_per_member: float  # other events between the first and last member, per member
    awake_frac: float  # members whose arousal state was "awake"
    median_dur_s: float
    median_peaks: float
    median_ratio: float  # excursion / peak
    median_interval_s: float
    median_tilt_frac: float  # net tilt / excursion: how far from back to the posture
    median_fill: float  # mean magnitude / peak (1 / crest): energy spread through the event

    def vector(self) -> list[float]:
        return [float(getattr(self, name)) for name in FEATURES]


def _ratio(ev: Event) -> float:
    return max(ev.excursion_mg, 1) / max(ev.peak_mg, 1)


def _tilt_frac(ev: Event) -> float:
    return ev.tilt_mg / max(ev.excursion_mg, 1)


def _fill(ev: Event) -> float:
    return ev.energy_mgs / max(ev.peak_mg, 1) / max(ev.duration_s, 0.02)


def _mad_log(values: Sequence[float]) -> float:
    logs = [math.log(max(v, 1e-3)) for v in values]
    med = statistics.median(logs)
    return statistics.median(abs(x - med) for x in logs)


def chain_features(members: Sequence[Event], n_spasm_like: int, others: int) -> ChainFeatures:
    """Features of a chain from its members (onset order) and the count of other events
    (neither member nor re-classed) that started between its first and last member."""
    onsets = sorted(m.t for m in members)
    iv = [b - a for a, b in zip(onsets, onsets[1:], strict=False)]
    if len(iv) >= 2:
        mean = sum(iv) / len(iv)
        cv = statistics.pstdev(iv) / mean if mean > 0 else 1.0
    else:
        cv = 1.0
    n = len(members)
    return ChainFeatures(
        n_members=n,
        n_spasm_like=n_spasm_like,
        peak_spread=_mad_log([m.peak_mg for m in members]),
        dur_spread=_mad_log([m.duration_s for m in members]),
        ratio_spread=_mad_log([_ratio(m) for m in members]),
        interval_cv=round(cv, 4),
        busy_per_member=others / n if n else 0.0,
        awake_frac=sum(1 for m in members if m.state == "awake") / n if n else 0.0,
        median_dur_s=statistics.median(m.duration_s for m in members),
        median_peaks=statistics.median(m.peaks for m in members),
        median_ratio=statistics.median(_ratio(m) for m in members),
        median_interval_s=statistics.median(iv) if iv else 0.0,
        median_tilt_frac=statistics.median(_tilt_frac(m) for m in members),
        median_fill=statistics.median(_fill(m) for m in members),
    )


@dataclass
class EvidenceConfig:
    """Thresholds of the cluster evidence (tuned on the tuning suites only, evaluation.md)."""

    # Re-classing a movement/jerk as a member: within these factors of the spasm-like
    # members' medians (duration, peak) and at least this share of their excursion/peak.
    match_dur_lo: float = 0.5
    match_dur_hi: float = 2.0
    match_peak_lo: float = 0.5
    match_peak_hi: float = 2.0
    match_ratio_min: float = 0.6
    match_max_peaks: int = 4
    match_max_tilt_pct: int = 80  # net tilt at most this % of the excursion (it returned)
    match_min_dur_s: float = 0.25
    match_max_dur_s: float = 4.5
    min_spasm_like_to_match: int = 2  # re-class only next to this many spasm-like members
    min_spasm_like_alarm: int = 2  # detector spasm-like members an alarm needs at least
    # The spasm-pair warning (2 members: no interval spread yet) also needs the typical
    # member to be a single sharp contraction: at most this many peaks, this mean/peak.
    warn_max_peaks: float = 1.0
    warn_max_fill: float = 0.3


def matches_template(ev: Event, spasm_like: Sequence[Event], cfg: EvidenceConfig) -> bool:
    """Does ``ev`` (a movement or jerk) look like the chain's spasm-like members?"""
    if len(spasm_like) < cfg.min_spasm_like_to_match:
        return False
    if not cfg.match_min_dur_s <= ev.duration_s <= cfg.match_max_dur_s:
        return False
    if ev.peaks > cfg.match_max_peaks or ev.excursion_mg <= 0:
        return False
    if ev.tilt_mg * 100 > cfg.match_max_tilt_pct * ev.excursion_mg:
        return False
    dur = statistics.median(m.duration_s for m in spasm_like)
    peak = statistics.median(m.peak_mg for m in spasm_like)
    ratio = statistics.median(_ratio(m) for m in spasm_like)
    return (
        cfg.match_dur_lo * dur <= ev.duration_s <= cfg.match_dur_hi * dur
        and cfg.match_peak_lo * peak <= ev.peak_mg <= cfg.match_peak_hi * peak
        and _ratio(ev) >= cfg.match_ratio_min * ratio
    )


#: Thresholds of :func:`rule_score` (set on the tuning suites only, docs/evaluation.md).
RULE = {
    "one_peak": 1.5,  # median peaks per member at most this: one phasic contraction
    "interval_s": 12.0,  # ... and intervals this short,
    "interval_cv": 0.65,  # ... or this regular
    "awake_frac": 0.4,  # several-peak members: only outside wakefulness,
    "fill": 0.35,  # ... and with a quiet tonic phase (mean/peak at most this)
}


def rule_score(f: ChainFeatures) -> float:
    """Hand-written evidence that a chain is a spasm cluster: 1.0 yes, 0.0 no.

    Two ways a chain looks like spasms (each a ratio or a timing, no assumed g):

    * its typical member is one phasic contraction (median peaks <= 1.5) and the members
      come quasi-regularly: at short intervals (median <= 12 s) or with a low spread of
      the intervals (CV <= 0.65) -- the stereotyped series of a cluster; or
    * its typical member has a sharp contraction then a quieter tonic phase (mean/peak
      <= 0.35) and the members are mostly not in wakefulness (awake share < 0.4): fidgets
      and crying are awake, many-peaked and fill their events evenly.

    It was read off a depth-3 decision tree fitted on the tuning suites' chain snapshots
    (tools/train_cluster_model.py data) and rounded; see docs/detector.md.
    """
    r = RULE
    regular = f.median_interval_s <= r["interval_s"] or f.interval_cv <= r["interval_cv"]
    if f.median_peaks <= r["one_peak"] and regular:
        return 1.0
    if f.awake_frac < r["awake_frac"] and f.median_fill <= r["fill"]:
        return 1.0
    return 0.0


def learned_score(f: ChainFeatures) -> float:
    """Score of the learned chain model (probability-like, 0..1; 0.5 is the boundary)."""
    from spasmwatch.host.monitor import cluster_model  # generated by tools/train_cluster_model

    return cluster_model.predict(f.vector())
