"""Named, seeded scenarios of infant sleep-sack accelerometer traces with ground-truth labels.

``generate(name, seed)`` returns a :class:`Trace` (MPU6050-quantised g values at a uniform rate,
t from 0) and its :class:`Label` list; ``simulate_to_dir`` writes both files; ``generate_suite``
writes a varied evaluation set (rates, ranges, postures, noise, spasm strength, dropped samples,
positives with spasm clusters and benign-only negatives).

Label vocabulary: ``spasm`` (one per spasm), ``cluster`` (a whole spasm cluster), ``jerk``
(isolated hypnic jerk), ``burst`` (a run of benign neonatal sleep myoclonus), ``twitch`` (an
active-sleep twitch burst), ``roll``, ``handling``, ``rocking`` and ``wake`` (awake periods).
Clinical basis and modelling assumptions: docs/clinical-basis.md.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import traceio
from .body_model import DEG, resolve_posture
from .planner import Planner
from .sensor_model import apply_sensor, default_bandwidth, loose_fit, slide
from .traceio import Label, Trace

GENERATOR_VERSION = "1.1"  # 1.1: round-3 mimics, hard positives, fitting


@dataclass(frozen=True)
class ScenarioSpec:
    """A named scenario: default duration/posture and a builder that lays out the trace."""

    name: str
    description: str
    duration_s: float
    build: Callable[[Planner], None]
    posture: str = "supine"
    has_spasms: bool = False


# --------------------------------------------------------------------------------------------
# Builders. Each lays states out in order and places events inside them; durations scale with
# p.T so ``duration_s`` overrides work.
# --------------------------------------------------------------------------------------------


def _u(p: Planner, lo: float, hi: float) -> float:
    return float(p.rng.uniform(lo, hi))


def _build_quiet(p: Planner) -> None:
    p.state("quiet-sleep", p.T)


def _build_hypnic(p: Planner) -> None:
    p.state("wake", min(45.0, 0.1 * p.T))
    a, b = p.state("settling", 0.45 * p.T)
    for t in p.times(a + 0.3 * (b - a), b, int(p.rng.integers(3, 7)), 12.0):
        p.hypnic_jerk(t)
    a, b = p.state("quiet-sleep", p.remaining)
    for t in p.times(a + 5.0, min(b, a + 120.0), int(p.rng.integers(0, 3)), 15.0):
        p.hypnic_jerk(t)


def _build_bnsm(p: Planner) -> None:
    p.state("settling", min(60.0, 0.15 * p.T))
    a, b = p.state("quiet-sleep", p.remaining)
    t = a + _u(p, 20.0, 45.0)
    end = p.myoclonus(t, _u(p, 60.0, 180.0))
    if b - end > 90.0:
        p.myoclonus(end + _u(p, 30.0, 60.0), _u(p, 10.0, 60.0))


def _build_active(p: Planner) -> None:
    p.state("quiet-sleep", min(60.0, 0.1 * p.T))
    p.state("active-sleep", p.remaining)


def _build_rolling(p: Planner) -> None:
    a, b = p.state("quiet-sleep", 0.15 * p.T)
    a, b = p.state("active-sleep", 0.3 * p.T)
    p.roll(a + _u(p, 0.3, 0.7) * (b - a))
    a, b = p.state("wake", 0.15 * p.T)
    p.roll(a + _u(p, 0.2, 0.6) * (b - a))
    p.state("settling", 0.1 * p.T)
    a, b = p.state("active-sleep", p.remaining)
    p.roll(a + _u(p, 0.2, 0.6) * (b - a))


def _build_handling(p: Planner) -> None:
    a, _ = p.state("wake", p.T * 0.75)
    t = a + _u(p, 10.0, 30.0)
    t = p.handling(t, _u(p, 20.0, 50.0))
    t = p.handling(t + _u(p, 20.0, 40.0), _u(p, 8.0, 25.0), violent=True)
    p.handling(t + _u(p, 15.0, 30.0), _u(p, 30.0, 60.0))
    p.state("settling", p.remaining)


def _build_rocking(p: Planner) -> None:
    p.state("wake", min(30.0, 0.1 * p.T))
    a, b = p.state("settling", 0.55 * p.T)
    p.rocking(a + 5.0, min(b - a - 20.0, _u(p, 60.0, 240.0)))
    p.state("quiet-sleep", p.remaining)


def _build_spasm_cluster(p: Planner) -> None:
    p.state("quiet-sleep", _u(p, 60.0, 120.0) * min(1.0, p.T / 600.0))
    p.arousal_with_cluster(n=int(p.rng.integers(8, 31)), post_s=_u(p, 20.0, 45.0))
    p.state("settling", max(0.0, p.remaining))


def _build_mixed(p: Planner) -> None:
    s = p.T / 1800.0  # compress the script for shorter duration overrides
    a, _ = p.state("wake", 90.0 * s)
    a, b = p.state("settling", 240.0 * s)
    rock_end = p.rocking(a + 10.0 * s, _u(p, 60.0, 110.0) * s)
    for t in p.times(rock_end + 20.0 * s, b - 5.0, int(p.rng.integers(2, 5)), 12.0 * s):
        p.hypnic_jerk(t)
    a, b = p.state("quiet-sleep", 300.0 * s)
    p.myoclonus(a + 60.0 * s, _u(p, 30.0, 90.0) * s)
    p.hypnic_jerk(b - _u(p, 30.0, 60.0) * s)
    a, b = p.state("active-sleep", 240.0 * s)
    p.roll(a + 120.0 * s)
    a, b = p.state("wake", 60.0 * s)
    p.handling(a + 10.0 * s, _u(p, 20.0, 40.0) * s)
    p.state("settling", 90.0 * s)
    p.state("quiet-sleep", 180.0 * s)
    p.arousal_with_cluster(
        n=int(p.rng.integers(10, 26)), pre_s=_u(p, 10.0, 30.0) * s, post_s=_u(p, 20.0, 40.0) * s
    )
    p.state("settling", 90.0 * s)
    p.state("quiet-sleep", max(0.0, p.remaining))


def _night(
    p: Planner,
    *,
    clusters: list[int | None],
    onset_prob: float = 0.15,
    force_benign: bool = True,
    mimics: bool = False,
) -> None:
    """A stretch of night: awake -> settling -> sleep cycles with arousals.

    Spasm clusters (sizes in ``clusters``; None = drawn) are spread over the night on arousals
    (or, with ``onset_prob``, while settling back to sleep). With ``force_benign`` the night is
    guaranteed at least one of each benign confounder (jerks, myoclonus burst, roll, handling,
    rocking) when there is room. With ``mimics`` (round 3) the clinical look-alikes join in:
    hiccup bouts in sleep, and on arousals crying, startles, shuddering, feeding, benign
    myoclonus of infancy or Sandifer posturing (see :func:`_mimic`).
    """
    rng = p.rng
    s = min(1.0, p.T / 1800.0)
    a, b = p.state("wake", _u(p, 40.0, 150.0) * s)
    need = {"burst", "roll", "handling", "rocking"} if force_benign else set()
    if rng.random() < 0.5 or "handling" in need:
        p.handling(a + _u(p, 0.1, 0.3) * (b - a), min(60.0, _u(p, 0.4, 0.6) * (b - a)))
        need.discard("handling")
    a, b = p.state("settling", _u(p, 120.0, 300.0) * s)
    t = a + 5.0
    if rng.random() < 0.5 or "rocking" in need:
        t = p.rocking(t, _u(p, 0.3, 0.6) * (b - a))
        need.discard("rocking")
    for tj in p.times(t + 10.0, b - 2.0, int(rng.integers(1, 5)), 10.0):
        p.hypnic_jerk(tj)

    # Spread cluster due times over the rest of the night, leaving room for each cluster.
    first = p.now + min(300.0, 0.15 * p.T)
    last = p.T - min(420.0, 0.3 * p.T)
    k = len(clusters)
    dues = sorted(first + (last - first) * (i + rng.uniform(0.2, 0.8)) / k for i in range(k))
    pending = list(clusters)
    while p.remaining > 1.0:
        due = dues[0] if dues else np.inf
        qs, as_ = _u(p, 240.0, 900.0) * s, _u(p, 240.0, 900.0) * s
        if p.now + qs + as_ > due:  # shorten this cycle so the arousal comes at the due time
            f = max(0.0, due - p.now) / (qs + as_)
            qs, as_ = qs * f, as_ * f
        a, b = p.state("quiet-sleep", qs)
        if mimics and b - a > 150.0 and rng.random() < 0.3:
            p.hiccups(a + _u(p, 0.05, 0.3) * (b - a), _u(p, 60.0, min(600.0, 0.6 * (b - a))))
        if b - a > 60.0 and (rng.random() < 0.35 or "burst" in need):
            p.myoclonus(a + _u(p, 0.1, 0.5) * (b - a), _u(p, 10.0, 150.0))
            need.discard("burst")
        a, b = p.state("active-sleep", as_)
        if b - a > 30.0 and (rng.random() < 0.3 or "roll" in need):
            p.roll(a + _u(p, 0.2, 0.8) * (b - a))
            need.discard("roll")
        if p.remaining <= 1.0:
            break
        if dues and p.now >= dues[0] - 1.0:
            dues.pop(0)
            n = pending.pop(0)
            if rng.random() < onset_prob:
                p.state("wake", _u(p, 20.0, 60.0))
                p.arousal_with_cluster(n=n, state="settling", pre_s=_u(p, 10.0, 60.0))
            else:
                p.arousal_with_cluster(n=n)
        elif mimics and rng.random() < 0.7:
            a, b = p.state("wake", _u(p, 40.0, 200.0))
            _mimic(p, a, b)
        else:
            a, b = p.state("wake", _u(p, 20.0, 120.0))
            if rng.random() < 0.3:
                p.handling(a + _u(p, 0.1, 0.3) * (b - a), min(60.0, _u(p, 0.4, 0.65) * (b - a)))
            elif rng.random() < 0.4:
                p.roll(a + _u(p, 0.2, 0.7) * (b - a))
        a, b = p.state("settling", _u(p, 60.0, 200.0) * s)
        for tj in p.times(a + 0.3 * (b - a), b - 2.0, int(rng.integers(0, 3)), 10.0):
            p.hypnic_jerk(tj)


def _mimic(p: Planner, a: float, b: float) -> None:
    """One clinical look-alike of a spasm cluster inside the wake stretch [a, b]."""
    kind = p.rng.choice(["crying", "startle", "shudder", "feeding", "bmei", "sandifer"])
    t = a + _u(p, 0.05, 0.2) * (b - a)
    if kind == "crying":
        p.crying(t, _u(p, 0.3, 0.8) * (b - a))
    elif kind == "startle":
        for ts in p.times(t, b - 3.0, int(p.rng.integers(1, 4)), 8.0):
            p.startle(ts)
    elif kind == "shudder":
        for ts in p.times(t, b - 16.0, int(p.rng.integers(1, 5)), 18.0):
            p.shudder(ts)
    elif kind == "feeding":
        p.feeding(t, min(_u(p, 40.0, 150.0), 0.8 * (b - a)))
    elif kind == "bmei":
        p.benign_myoclonus_infancy(t)
    else:
        p.sandifer(t)


def _build_hiccups(p: Planner) -> None:
    a, b = p.state("settling", 0.3 * p.T)
    p.hiccups(a + _u(p, 0.1, 0.4) * (b - a), _u(p, 60.0, 180.0))
    a, b = p.state("quiet-sleep", p.remaining)
    p.hiccups(a + _u(p, 0.1, 0.3) * (b - a), _u(p, 120.0, 0.6 * (b - a)))


def _build_startles(p: Planner) -> None:
    a, b = p.state("quiet-sleep", 0.3 * p.T)
    for t in p.times(a + 20.0, b - 5.0, int(p.rng.integers(1, 3)), 30.0):
        p.startle(t)
    a, b = p.state("wake", 0.3 * p.T)
    for t in p.times(a + 5.0, b - 5.0, int(p.rng.integers(2, 5)), 10.0):
        p.startle(t, cry=False)
    a, b = p.state("active-sleep", p.remaining)
    for t in p.times(a + 20.0, b - 5.0, int(p.rng.integers(1, 3)), 30.0):
        p.startle(t)


def _build_shuddering(p: Planner) -> None:
    a, b = p.state("wake", 0.7 * p.T)
    for t in p.times(a + 10.0, b - 16.0, int(p.rng.integers(3, 9)), 20.0):
        p.shudder(t)
    p.state("settling", p.remaining)


def _build_crying(p: Planner) -> None:
    a, b = p.state("wake", 0.75 * p.T)
    t = a + _u(p, 5.0, 20.0)
    while t < b - 30.0:
        t = p.crying(t, _u(p, 20.0, 120.0)) + _u(p, 10.0, 60.0)
    p.state("settling", p.remaining)


def _build_bmei(p: Planner) -> None:
    a, b = p.state("wake", 0.8 * p.T)
    t = a + _u(p, 10.0, 40.0)
    for _ in range(int(p.rng.integers(2, 5))):
        if t > b - 60.0:
            break
        t = p.benign_myoclonus_infancy(t) + _u(p, 40.0, 150.0)
    p.state("settling", p.remaining)


def _build_sandifer(p: Planner) -> None:
    a, b = p.state("wake", 0.85 * p.T)
    t = p.feeding(a + 5.0, _u(p, 60.0, 150.0)) + _u(p, 5.0, 30.0)
    for _ in range(int(p.rng.integers(1, 4))):
        if t > b - 60.0:
            break
        t = p.sandifer(t) + _u(p, 10.0, 60.0)
    p.state("settling", p.remaining)


def _build_feeding(p: Planner) -> None:
    a, b = p.state("wake", 0.7 * p.T)
    t = p.feeding(a + _u(p, 5.0, 20.0), _u(p, 0.4, 0.7) * (b - a))
    if b - t > 60.0:
        p.feeding(t + 10.0, _u(p, 30.0, 0.8 * (b - t - 10.0)))
    p.state("settling", p.remaining)


def _build_mimic_night(p: Planner) -> None:
    _night(p, clusters=[], mimics=True)


def _build_spasm_mimic_night(p: Planner) -> None:
    _night(p, clusters=[None], mimics=True)


def _hard_cluster(p: Planner, **kw: object) -> None:
    p.state("quiet-sleep", _u(p, 60.0, 120.0) * min(1.0, p.T / 600.0))
    p.arousal_with_cluster(post_s=_u(p, 20.0, 45.0), **kw)  # type: ignore[arg-type]
    p.state("settling", max(0.0, p.remaining))


def _build_spasm_cry(p: Planner) -> None:
    _hard_cluster(p, n=int(p.rng.integers(5, 21)), cry_after=True)


def _build_short_interval(p: Planner) -> None:
    _hard_cluster(p, variant="short")


def _build_long_cluster(p: Planner) -> None:
    _hard_cluster(p, variant="long")


def _build_weak_cluster(p: Planner) -> None:
    _hard_cluster(p, n=int(p.rng.integers(5, 21)), variant="weak")


def _build_asymmetric(p: Planner) -> None:
    _hard_cluster(p, n=int(p.rng.integers(5, 21)), variant="asymmetric")


def _build_crying_cluster(p: Planner) -> None:
    _hard_cluster(p, n=int(p.rng.integers(5, 21)), crying_start=True, pre_s=_u(p, 20.0, 40.0))


def _build_benign_night(p: Planner) -> None:
    _night(p, clusters=[])


def _build_spasm_night(p: Planner) -> None:
    _night(p, clusters=[None, None])


def _build_small_cluster(p: Planner) -> None:
    _night(p, clusters=[int(p.rng.integers(3, 6))], onset_prob=0.0)


def _build_onset_cluster(p: Planner) -> None:
    _night(p, clusters=[int(p.rng.integers(5, 21))], onset_prob=1.0)


SCENARIOS: dict[str, ScenarioSpec] = {
    s.name: s
    for s in (
        ScenarioSpec(
            "quiet", "asleep (quiet sleep), breathing and heartbeat only", 600.0, _build_quiet
        ),
        ScenarioSpec(
            "hypnic-jerks", "falling asleep with 3-8 isolated hypnic jerks", 480.0, _build_hypnic
        ),
        ScenarioSpec(
            "benign-myoclonus",
            "quiet sleep with benign neonatal sleep myoclonus episodes (runs of 1-5 Hz jerks)",
            480.0,
            _build_bnsm,
        ),
        ScenarioSpec("active-sleep", "active (REM) sleep with twitch bursts", 600.0, _build_active),
        ScenarioSpec(
            "rolling", "sleep and an arousal with three roll-overs", 480.0, _build_rolling
        ),
        ScenarioSpec(
            "handling",
            "awake; picked up and put down three times, one violent",
            360.0,
            _build_handling,
        ),
        ScenarioSpec(
            "rocking", "rocked to sleep (0.5-1 Hz sway), then quiet sleep", 480.0, _build_rocking
        ),
        ScenarioSpec(
            "spasm-cluster",
            "quiet sleep, then waking with one cluster of 8-30 spasms",
            600.0,
            _build_spasm_cluster,
            has_spasms=True,
        ),
        ScenarioSpec(
            "mixed-night",
            "demo: settling with rocking and hypnic jerks, a benign "
            "myoclonus episode, a roll, handling, and one spasm cluster on an "
            "arousal",
            1800.0,
            _build_mixed,
            has_spasms=True,
        ),
        ScenarioSpec(
            "benign-night",
            "an hour of night with every benign confounder, no spasms",
            3600.0,
            _build_benign_night,
        ),
        ScenarioSpec(
            "spasm-night",
            "an hour of night with two spasm clusters among benign movements",
            3600.0,
            _build_spasm_night,
            has_spasms=True,
        ),
        ScenarioSpec(
            "small-cluster",
            "a night stretch with one small cluster of 3-5 spasms",
            1200.0,
            _build_small_cluster,
            has_spasms=True,
        ),
        ScenarioSpec(
            "onset-cluster",
            "a night stretch with one cluster while falling asleep again",
            1200.0,
            _build_onset_cluster,
            has_spasms=True,
        ),
        # Round 3: clinical mimics (negatives) ...
        ScenarioSpec("hiccups", "hiccup bouts while settling and asleep", 600.0, _build_hiccups),
        ScenarioSpec(
            "startles", "Moro/startle responses in sleep and awake, often then crying", 600.0,
            _build_startles,
        ),
        ScenarioSpec("shuddering", "awake with 3-8 shuddering attacks", 480.0, _build_shuddering),
        ScenarioSpec("crying", "crying bouts and vigorous wakefulness", 480.0, _build_crying),
        ScenarioSpec(
            "benign-myoclonus-infancy",
            "awake with clusters of benign myoclonus of early infancy (Fejerman)", 600.0,
            _build_bmei,
        ),
        ScenarioSpec("sandifer", "a feed, then Sandifer posturing", 600.0, _build_sandifer),
        ScenarioSpec("feeding", "feeding and burping (held, patted)", 600.0, _build_feeding),
        ScenarioSpec(
            "mimic-night", "an hour of night with benign confounders and the clinical mimics",
            3600.0, _build_mimic_night,
        ),
        # ... and harder positives
        ScenarioSpec(
            "spasm-mimic-night", "an hour of night with mimics and one spasm cluster", 3600.0,
            _build_spasm_mimic_night, has_spasms=True,
        ),
        ScenarioSpec(
            "spasm-cry", "a cluster where every spasm is followed at once by crying", 600.0,
            _build_spasm_cry, has_spasms=True,
        ),
        ScenarioSpec(
            "short-interval-cluster", "a cluster with spasms 2-5 s apart", 600.0,
            _build_short_interval, has_spasms=True,
        ),
        ScenarioSpec(
            "long-cluster", "a cluster of 20-40 spasms of decreasing amplitude", 900.0,
            _build_long_cluster, has_spasms=True,
        ),
        ScenarioSpec(
            "weak-cluster", "a cluster of weak spasms (0.3-0.55 x spasm_g)", 600.0,
            _build_weak_cluster, has_spasms=True,
        ),
        ScenarioSpec(
            "asymmetric-cluster", "a cluster of asymmetric spasms with a roll component", 600.0,
            _build_asymmetric, has_spasms=True,
        ),
        ScenarioSpec(
            "crying-cluster", "a cluster that starts while the baby is crying", 600.0,
            _build_crying_cluster, has_spasms=True,
        ),
    )
}


def _streams(seed: int, name: str, k: int) -> list[np.random.Generator]:
    """k independent generators for (seed, scenario name)."""
    # crc32, not hash(): str hashes are salted per process and would break determinism.
    root = np.random.SeedSequence([int(seed), zlib.crc32(name.encode())])
    return [np.random.default_rng(s) for s in root.spawn(k)]


def _drop_samples(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean keep-mask losing ~``fraction`` of samples in runs (radio packet loss)."""
    keep = np.ones(n, dtype=bool)
    if fraction <= 0.0 or n < 10:
        return keep
    target = int(fraction * n)
    lost = 0
    while lost < target:
        run = int(min(rng.geometric(1.0 / 8.0), 200))
        i = int(rng.integers(1, n - 1 - run)) if n - 1 - run > 1 else 1
        lost += int(keep[i : i + run].sum())
        keep[i : i + run] = False
    return keep


def generate(
    name: str,
    seed: int = 0,
    *,
    rate_hz: float = 100.0,
    range_g: int = 4,
    posture: str | None = None,
    spasm_g: float = 1.0,
    noise_scale: float = 1.0,
    duration_s: float | None = None,
    dropout_fraction: float = 0.0,
    loose_hz: float = 0.0,
    loose_zeta: float = 0.2,
    slide_deg: float = 0.0,
) -> tuple[Trace, list[Label]]:
    """Generate scenario ``name`` deterministically for ``seed``.

    Returns the sensor-model output (g on the MPU6050 quantisation grid of ``range_g``, t from
    0 uniform at ``rate_hz``; with ``dropout_fraction`` > 0 some runs of samples are removed,
    leaving gaps in t) and the ground-truth labels. The event layout depends only on (name,
    seed, posture, spasm_g, duration_s), not on the rate, range or noise.

    Fitting realism (round 3): ``loose_hz`` > 0 mounts the sensor on fabric with that
    resonance and damping ratio ``loose_zeta`` (:func:`~sensor_model.loose_fit`);
    ``slide_deg`` > 0 lets it turn by that angle in the sack over 2-20 minutes, starting at
    a random time, about an axis mostly normal to the chest (:func:`~sensor_model.slide`).
    """
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    if not 0.0 <= dropout_fraction < 0.5:
        raise ValueError("dropout_fraction must be in [0, 0.5)")
    spec = SCENARIOS[name]
    # Separate streams so e.g. the sensor noise draw cannot shift the event layout.
    plan_rng, posture_rng, sensor_rng, drop_rng, fit_rng = _streams(seed, name, 5)
    posture_name, roll0, incline = resolve_posture(posture or spec.posture, posture_rng)
    duration = spec.duration_s if duration_s is None else float(duration_s)
    if duration * rate_hz < 2:
        raise ValueError("trace too short")

    planner = Planner(duration, rate_hz, plan_rng, roll0=roll0, incline=incline, spasm_g=spasm_g)
    spec.build(planner)
    acc_true, labels = planner.finish()
    fit_meta: dict[str, str] = {}
    if loose_hz > 0.0:
        acc_true = loose_fit(acc_true, rate_hz, loose_hz, loose_zeta)
        fit_meta.update(loose_hz=f"{loose_hz:g}", loose_zeta=f"{loose_zeta:g}")
    if slide_deg > 0.0:
        slide_dur = float(fit_rng.uniform(120.0, 1200.0))
        start = float(fit_rng.uniform(0.0, max(1.0, duration - slide_dur)))
        axis = np.array([0.0, 0.0, 1.0]) + fit_rng.normal(0.0, 0.3, 3)
        acc_true = slide(acc_true, rate_hz, angle_deg=slide_deg, axis=axis, start_s=start,
                         dur_s=slide_dur)
        fit_meta.update(slide_deg=f"{slide_deg:g}", slide_start_s=f"{start:.0f}",
                        slide_dur_s=f"{slide_dur:.0f}")
    acc = apply_sensor(acc_true, rate_hz, range_g, sensor_rng, noise_scale=noise_scale)
    t = np.arange(planner.body.n) / rate_hz
    keep = _drop_samples(len(t), dropout_fraction, drop_rng)
    n_spasm = sum(1 for lb in labels if lb.label == "spasm")
    meta = {
        "scenario": name,
        "seed": str(seed),
        "rate_hz": f"{rate_hz:g}",
        "range_g": str(int(range_g)),
        "posture": posture_name,
        "incline_deg": f"{incline / DEG:.1f}",
        "spasm_g": f"{spasm_g:g}",
        "noise_scale": f"{noise_scale:g}",
        "dlpf_hz": f"{default_bandwidth(rate_hz):g}",
        "duration_s": f"{duration:g}",
        "dropped_samples": str(int((~keep).sum())),
        "n_spasms": str(n_spasm),
        "n_clusters": str(planner.n_clusters),
        "sensor": "MPU6050 (simulated)",
        "generator": "spasmwatch.simulator.scenarios",
        "generator_version": GENERATOR_VERSION,
        **fit_meta,
    }
    trace = Trace(t=t[keep], acc=acc[keep], meta=meta, source=f"simulated:{name}:seed={seed}")
    return trace, labels


def simulate_to_dir(
    name: str, out_dir: str | Path, seed: int = 0, *, gz: bool = False, **kw: object
) -> Path:
    """Generate ``name`` and write ``out_dir/NAME.csv[.gz]`` plus ``NAME.labels.csv``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trace, labels = generate(name, seed, **kw)  # type: ignore[arg-type]
    path = out / (name + (".csv.gz" if gz else ".csv"))
    traceio.write_trace(path, trace)
    traceio.write_labels(traceio.labels_path_for(path), labels)
    return path


SUITE_RATES = (25.0, 50.0, 100.0, 200.0, 400.0)
SUITE_RANGES = (2, 4, 8, 16)
SUITE_POSTURES = ("supine", "prone", "side", "inclined")
SUITE_POSITIVE = (
    "spasm-night",
    "small-cluster",
    "onset-cluster",
    "spasm-cluster",
    "small-cluster",
    "mixed-night",
)
SUITE_NEGATIVE = (
    "benign-night",
    "benign-night",
    "benign-myoclonus",
    "benign-night",
    "hypnic-jerks",
    "handling",
)


#: Round 3 suite: the hard positives and the clinical mimics, beside the classic scenarios.
SUITE_POSITIVE_R3 = (
    "spasm-cry",
    "short-interval-cluster",
    "long-cluster",
    "weak-cluster",
    "asymmetric-cluster",
    "crying-cluster",
    "small-cluster",
    "spasm-mimic-night",
    "onset-cluster",
    "spasm-night",
)
SUITE_NEGATIVE_R3 = (
    "hiccups",
    "startles",
    "shuddering",
    "crying",
    "benign-myoclonus-infancy",
    "sandifer",
    "feeding",
    "mimic-night",
    "benign-night",
    "benign-myoclonus",
    "hypnic-jerks",
    "handling",
)
SUITE_MIXES = ("classic", "round3")


def generate_suite(
    out_dir: str | Path,
    *,
    n_spasm: int = 6,
    n_benign: int = 6,
    seed: int = 0,
    hours: float = 3.0,
    gz: bool = False,
    mix: str = "classic",
) -> list[Path]:
    """Write a varied evaluation set to ``out_dir``; return the trace paths.

    ``n_spasm`` positive traces (clusters on arousals or at sleep onset, including small
    clusters of 3-5 and weak spasms via spasm_g 0.5-1.5) and ``n_benign`` benign-only traces,
    ``hours`` in total, with rates from {25..400} Hz, ranges {2..16} g, all postures, noise
    x0.5-3 and a third of the traces with dropped samples. ``suite_manifest.tsv`` lists the
    parameters of each file.

    ``mix="round3"`` draws from the round-3 pools (hard positives, clinical mimics) and fits
    a third of the traces loosely (fabric resonance 5-15 Hz, damping 0.1-0.3) and lets
    another third slide 10-40 deg in the sack; "classic" (the default) reproduces the suites
    of rounds 1-2 exactly.
    """
    if mix not in SUITE_MIXES:
        raise ValueError(f"mix must be one of {SUITE_MIXES}")
    r3 = mix == "round3"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_total = n_spasm + n_benign
    if n_total <= 0:
        return []
    rng = np.random.default_rng([int(seed), 0x5EED])
    per_trace = max(300.0, hours * 3600.0 / n_total)
    # Shuffle the config axes independently so every value appears and combinations vary.
    rates = rng.permutation(np.resize(SUITE_RATES, n_total))
    ranges = rng.permutation(np.resize(SUITE_RANGES, n_total))
    postures = rng.permutation(np.resize(SUITE_POSTURES, n_total))
    paths: list[Path] = []
    rows = [
        "file\tscenario\tpositive\tseed\trate_hz\trange_g\tposture\tnoise_scale\tspasm_g\t"
        "dropout_fraction\tduration_s\tn_spasms"
        + ("\tloose_hz\tloose_zeta\tslide_deg" if r3 else "")
    ]
    for i in range(n_total):
        positive = i < n_spasm
        if r3:
            pool = SUITE_POSITIVE_R3 if positive else SUITE_NEGATIVE_R3
        else:
            pool = SUITE_POSITIVE if positive else SUITE_NEGATIVE
        name = pool[(i if positive else i - n_spasm) % len(pool)]
        spec = SCENARIOS[name]
        duration = (
            per_trace
            if name.endswith("night") or name.endswith("cluster")
            else min(per_trace, spec.duration_s)
        )
        kw = dict(
            rate_hz=float(rates[i]),
            range_g=int(ranges[i]),
            posture=str(postures[i]),
            noise_scale=float(np.round(rng.uniform(0.5, 3.0), 2)),
            spasm_g=float(np.round(rng.uniform(0.5, 1.5), 2)) if positive else 1.0,
            duration_s=float(round(duration)),
            dropout_fraction=float(rng.choice([0.0, 0.0, rng.uniform(0.002, 0.02)])),
        )
        if r3:
            fit = int(rng.integers(0, 3))  # 0 snug, 1 loose, 2 sliding
            f0, zeta, ang = (float(np.round(rng.uniform(a, b), 2)) for a, b in
                             ((5.0, 15.0), (0.1, 0.3), (10.0, 40.0)))
            if fit == 1:
                kw.update(loose_hz=f0, loose_zeta=zeta)
            elif fit == 2:
                kw.update(slide_deg=ang)
        trace_seed = int(seed) * 1000 + i
        trace, labels = generate(name, trace_seed, **kw)  # type: ignore[arg-type]
        kind = "pos" if positive else "neg"
        path = out / f"suite_{i:03d}_{kind}_{name}.csv{'.gz' if gz else ''}"
        traceio.write_trace(path, trace)
        traceio.write_labels(traceio.labels_path_for(path), labels)
        paths.append(path)
        rows.append(
            f"{path.name}\t{name}\t{int(positive)}\t{trace_seed}\t{kw['rate_hz']:g}\t{kw['range_g']}\t"
            f"{trace.meta['posture']}\t{kw['noise_scale']:g}\t{kw['spasm_g']:g}\t"
            f"{kw['dropout_fraction']:.4f}\t{kw['duration_s']:g}\t{trace.meta['n_spasms']}"
            + (f"\t{kw.get('loose_hz', 0):g}\t{kw.get('loose_zeta', 0):g}"
               f"\t{kw.get('slide_deg', 0):g}" if r3 else "")
        )
    (out / "suite_manifest.tsv").write_text("\n".join(rows) + "\n")
    return paths
