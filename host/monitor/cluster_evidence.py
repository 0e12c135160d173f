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

Round 4: when the sensor sends a detail record per event (wire KIND_DETAIL), the chain
also has the **direction of each member's tonic tilt**: spasms of one cluster flex (or
extend) the trunk along the same axis; crying, fidgets and handling tilt it every which
way. ``dir_axis`` is the typical |cosine| between members' tilt directions (sign-free:
flexor and extensor spasms share the pitch axis), ``dir_same`` the signed one. A member
without a detail (older sensor, lost packet) simply does not count for them; a chain
with fewer than 2 directions gets the "unknown" values (-1, -2).

Everything is O(members) per call, the direction features O(members^2); members are
capped by the chain (64).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from spasmwatch.host.monitor.records import Detail, Event

#: Looks up an event's detail record (None: the sensor sent none, or it was lost).
DetailOf = Callable[[Event], Detail | None]
#: "No direction known" values of dir_axis / dir_same (fewer than 2 members with one).
NO_AXIS = -1.0
NO_SAME = -2.0
#: The detail features of a chain without any detail record (tools/train_cluster_model.py).
DETAIL_UNKNOWN = {"dir_axis": NO_AXIS, "dir_same": NO_SAME, "median_rise_s": -1.0,
                  "median_hold_frac": -1.0}

#: Feature names, in the order of :meth:`ChainFeatures.vector` (the learned model's input).
FEATURES = (
    "n_members", "n_spasm_like", "peak_spread", "dur_spread", "ratio_spread", "interval_cv",
    "busy_per_member", "awake_frac", "median_dur_s", "median_peaks", "median_ratio",
    "median_interval_s", "median_tilt_frac", "median_fill",
    "dir_axis", "dir_same", "median_rise_s", "median_hold_frac",
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
    # Round 4, from the detail records (NO_AXIS / NO_SAME / -1.0 when unknown):
    dir_axis: float = NO_AXIS  # typical |cos| between members' tilt directions
    dir_same: float = NO_SAME  # typical signed cos
    median_rise_s: float = -1.0  # onset to the largest magnitude
    median_hold_frac: float = -1.0  # onset to the largest excursion, / duration

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


def unit(direction: Sequence[int]) -> tuple[float, float, float] | None:
    """The unit vector of a detail's direction, or None for (0, 0, 0)."""
    x, y, z = (float(v) for v in direction)
    n = math.sqrt(x * x + y * y + z * z)
    return None if n == 0 else (x / n, y / n, z / n)


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def direction_consistency(units: Sequence[Sequence[float]]) -> tuple[float, float]:
    """(typical |cos|, typical cos) between tilt directions: for each member the median
    over the others, then the median over members. (NO_AXIS, NO_SAME) for fewer than 2."""
    if len(units) < 2:
        return NO_AXIS, NO_SAME
    ax, same = [], []
    for i, u in enumerate(units):
        cs = [_dot(u, v) for j, v in enumerate(units) if j != i]
        ax.append(statistics.median(abs(c) for c in cs))
        same.append(statistics.median(cs))
    return round(statistics.median(ax), 4), round(statistics.median(same), 4)


def chain_axis(units: Sequence[Sequence[float]]) -> tuple[float, float, float] | None:
    """The members' common tilt axis (sign-free), or None for fewer than 2 directions.

    The medoid (the direction with the largest median |cos| to the others) fixes the
    sign; the axis is the sum of all directions flipped onto its side, normalised."""
    if len(units) < 2:
        return None
    ref = max(units, key=lambda u: statistics.median(abs(_dot(u, v)) for v in units))
    sx = sy = sz = 0.0
    for u in units:
        s = 1.0 if _dot(u, ref) >= 0 else -1.0
        sx += s * u[0]
        sy += s * u[1]
        sz += s * u[2]
    return unit((sx, sy, sz))  # type: ignore[arg-type]


def member_units(members: Sequence[Event], detail_of: DetailOf | None
                 ) -> list[tuple[float, float, float]]:
    if detail_of is None:
        return []
    out = []
    for m in members:
        d = detail_of(m)
        u = unit(d.direction) if d is not None else None
        if u is not None:
            out.append(u)
    return out


def chain_features(members: Sequence[Event], n_spasm_like: int, others: int,
                   detail_of: DetailOf | None = None) -> ChainFeatures:
    """Features of a chain from its members (onset order) and the count of other events
    (neither member nor re-classed) that started between its first and last member;
    ``detail_of`` gives the members' detail records when the sensor sends them."""
    onsets = sorted(m.t for m in members)
    iv = [b - a for a, b in zip(onsets, onsets[1:], strict=False)]
    if len(iv) >= 2:
        mean = sum(iv) / len(iv)
        cv = statistics.pstdev(iv) / mean if mean > 0 else 1.0
    else:
        cv = 1.0
    n = len(members)
    dir_axis, dir_same = direction_consistency(member_units(members, detail_of))
    dets = [(m, d) for m in members
            if detail_of is not None and (d := detail_of(m)) is not None]
    rise = statistics.median(d.rise_s for _, d in dets) if dets else -1.0
    hold = (statistics.median(d.hold_s / max(m.duration_s, 0.02) for m, d in dets)
            if dets else -1.0)
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
        dir_axis=dir_axis,
        dir_same=dir_same,
        median_rise_s=rise,
        median_hold_frac=round(hold, 4),
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
    # Round 4: a candidate with a tilt direction must lie along the chain's tilt axis
    # (|cos| at least this) when the chain has >= 2 directions; 0 disables.
    match_min_axis_cos: float = 0.0
    # ... and a candidate that lies this close to the axis (|cos|) and failed only the
    # spasm tests in LOOSE_FAILS is matched with wider windows (0 disables): a spasm the
    # detector called a movement because crying raised the background (not prominent),
    # or because its tonic tilt was small for its peak (impulse-like).
    match_loose_axis_cos: float = 0.0
    match_loose_lo: float = 0.33
    match_loose_hi: float = 3.0


#: Spasm tests a candidate may have failed and still be matched loosely on its direction.
LOOSE_FAILS = frozenset({"not_prominent", "impulse", "flat", "peaks"})


def matches_template(ev: Event, spasm_like: Sequence[Event], cfg: EvidenceConfig,
                     detail_of: DetailOf | None = None) -> bool:
    """Does ``ev`` (a movement or jerk) look like the chain's spasm-like members?"""
    if len(spasm_like) < cfg.min_spasm_like_to_match:
        return False
    d = detail_of(ev) if detail_of is not None else None
    cos = None
    if d is not None and (cfg.match_min_axis_cos > 0 or cfg.match_loose_axis_cos > 0):
        u = unit(d.direction)
        axis = chain_axis(member_units(spasm_like, detail_of)) if u is not None else None
        if u is not None and axis is not None:
            cos = abs(_dot(u, axis))
    if cos is not None and cos < cfg.match_min_axis_cos:
        return False
    if (cos is not None and cfg.match_loose_axis_cos > 0 and cos >= cfg.match_loose_axis_cos
            and d is not None and set(d.fails) <= LOOSE_FAILS
            and ev.duration_s >= cfg.match_min_dur_s):
        dur = statistics.median(m.duration_s for m in spasm_like)
        peak = statistics.median(m.peak_mg for m in spasm_like)
        lo, hi = cfg.match_loose_lo, cfg.match_loose_hi
        if lo * dur <= ev.duration_s <= hi * dur and lo * peak <= ev.peak_mg <= hi * peak:
            return True
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
    # Round 4: a chain whose members' tilt directions are known must share an axis
    # (dir_axis at least this; 0 = off). 0.6 on the three tuning suites: 2 of 93 clusters
    # for 11 of 39 false alarms (0.7: 4 for 18), docs/evaluation.md.
    "min_axis": 0.6,
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
    (tools/train_cluster_model.py data) and rounded; see docs/detector.md. Since round 4 a
    chain whose members' tilt directions scatter (``dir_axis`` < ``min_axis``) gets 0.
    """
    r = RULE
    if f.dir_axis != NO_AXIS and f.dir_axis < r["min_axis"]:
        return 0.0
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
