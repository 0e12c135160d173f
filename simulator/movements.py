"""Movement primitives of a sleeping/waking infant's trunk, each on its own local clock.

Every function takes the local sample times ``tau`` (seconds from the movement onset, uniform at
the trace rate) and returns a :class:`~spasmwatch.simulator.body_model.Motion` (angle deltas in
rad, linear acceleration in g, body frame). Durations and rhythms follow the clinical literature
(see docs/clinical-basis.md); every g value and angle is an ASSUMPTION because no accelerometer
recording of these events from a trunk-worn sensor in a sleep sack is published.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .body_model import DEG, MIN_JERK_PEAK_ACC, Motion, biphasic_pulse, min_jerk, smooth_noise

G = 9.80665


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _random_direction(rng: np.random.Generator, bias: np.ndarray, spread: float) -> np.ndarray:
    """Unit vector around ``bias`` with Gaussian scatter ``spread`` (per component)."""
    return _unit(_unit(np.asarray(bias, dtype=float)) + rng.normal(0.0, spread, 3))


def _ring(
    tau: np.ndarray, t0: float, amp_g: float, direction: np.ndarray, freq_hz: float, decay_s: float
) -> np.ndarray:
    """Damped oscillation of the sensor on soft tissue / sleep-sack fabric after an impulse."""
    dt = tau - t0
    env = np.where(dt >= 0.0, np.exp(-np.maximum(dt, 0.0) / decay_s), 0.0)
    return (amp_g * env * np.sin(2.0 * np.pi * freq_hz * np.maximum(dt, 0.0)))[:, None] * direction


# --------------------------------------------------------------------------------------------
# Brief jerks: hypnic jerks, benign sleep myoclonus, twitches, wake limb movements
# --------------------------------------------------------------------------------------------


def jerk(
    tau: np.ndarray,
    rng: np.random.Generator,
    *,
    dur_s: float,
    peak_g: float,
    direction: np.ndarray,
    tilt_deg: float = 0.0,
    ring: bool = True,
) -> Motion:
    """One sharp biphasic trunk jerk of ``dur_s`` with |lin| peak ``peak_g``.

    ``tilt_deg`` is a transient flexion bump that comes back (little net orientation change).
    """
    n = len(tau)
    m = Motion.zeros(n)
    u = tau / dur_s
    m.lin += (peak_g * biphasic_pulse(u))[:, None] * direction
    if ring:
        m.lin += _ring(tau, dur_s, 0.15 * peak_g, direction, rng.uniform(8.0, 15.0), 0.05)
    if tilt_deg:
        # Out and back over ~2.5x the jerk duration.
        v = np.clip(tau / (2.5 * dur_s), 0.0, 1.0)
        m.flex += tilt_deg * DEG * np.sin(np.pi * v) ** 2
    return m


def draw_hypnic_duration(rng: np.random.Generator) -> float:
    """Hypnic jerk duration: 75-250 ms (EMG burst length of sleep starts, ICSD)."""
    return float(rng.uniform(0.075, 0.25))


def hypnic_jerk(
    tau: np.ndarray, rng: np.random.Generator, dur: float, amp_scale: float = 1.0
) -> Motion:
    """Isolated sleep-onset (hypnic) jerk of ``dur`` s, startle-like flexion.

    ASSUMPTION: trunk peak 0.1-1.0 g, mostly anterior (+Z) and along the body axis, 1-6 deg
    transient flexion.
    """
    peak = float(rng.uniform(0.1, 1.0)) * amp_scale
    d = _random_direction(rng, np.array([0.4, 0.0, 1.0]), 0.35)
    tilt = float(rng.uniform(1.0, 6.0)) * (1 if rng.random() < 0.8 else -1)
    return jerk(tau, rng, dur_s=dur, peak_g=peak, direction=d, tilt_deg=tilt)


@dataclass
class BurstPlan:
    """Onset times (s, from burst start), durations and peaks of the jerks of one run."""

    onsets: np.ndarray
    durs: np.ndarray
    peaks: np.ndarray
    directions: np.ndarray  # (k, 3)

    @property
    def length(self) -> float:
        return float(self.onsets[-1] + self.durs[-1]) if len(self.onsets) else 0.0


def plan_myoclonus_run(
    rng: np.random.Generator,
    run_s: float,
    *,
    freq_hz: float | None = None,
    amp_g: float | None = None,
) -> BurstPlan:
    """Benign neonatal sleep myoclonus: a run of jerks at 1-5 Hz (clinical) lasting ``run_s``.

    ASSUMPTION: trunk amplitude 0.03-0.4 g (jerks are mostly distal limb; the trunk sees a
    fraction), 40-150 ms per jerk, +-30 % jerk-to-jerk amplitude, slow waxing and waning.
    """
    f = float(rng.uniform(1.0, 5.0)) if freq_hz is None else freq_hz
    a = float(rng.uniform(0.03, 0.4)) if amp_g is None else amp_g
    period = 1.0 / f
    k = max(2, int(run_s * f))
    intervals = period * (1.0 + rng.normal(0.0, 0.12, k - 1)).clip(0.6, 1.5)
    onsets = np.concatenate([[0.0], np.cumsum(intervals)])
    durs = rng.uniform(0.04, 0.15, k).clip(max=0.8 * period)
    wax = 0.6 + 0.4 * np.sin(np.pi * (np.arange(k) + 0.5) / k)
    peaks = a * wax * rng.uniform(0.7, 1.3, k)
    # BNSM jerks are mostly bilateral and synchronous -> a fairly constant main direction.
    main = _random_direction(rng, np.array([0.5, 0.0, 1.0]), 0.5)
    dirs = np.array([_unit(main + rng.normal(0.0, 0.15, 3)) for _ in range(k)])
    return BurstPlan(onsets, durs, peaks, dirs)


def twitch(tau: np.ndarray, rng: np.random.Generator, dur: float) -> Motion:
    """Active-sleep myoclonic twitch of ``dur`` s as seen on the trunk: tiny and brief.

    ASSUMPTION: 30-120 ms, 0.005-0.05 g (twitches are mostly hands/feet/face; Blumberg et al.).
    """
    peak = float(rng.uniform(0.005, 0.05))
    d = _random_direction(rng, np.array([0.0, 0.0, 1.0]), 1.0)
    return jerk(tau, rng, dur_s=dur, peak_g=peak, direction=d, ring=False)


def limb_movement(tau: np.ndarray, rng: np.random.Generator, vigour: float = 1.0) -> Motion:
    """Wake limb movement (kick/arm swing) felt at the trunk: 0.2-0.35 s, smooth.

    ASSUMPTION: trunk reaction 0.02-0.15 g x vigour, plus a ~2 deg (x vigour) orientation
    shift that eases back over ~4 durations (slow posture wander is added separately). The
    motion fits in a 2 s window.
    """
    dur = float(rng.uniform(0.2, 0.35))
    n = len(tau)
    m = Motion.zeros(n)
    d = _random_direction(rng, np.array([0.0, 0.0, 1.0]), 1.2)
    peak = float(rng.uniform(0.02, 0.15)) * vigour
    _, _, dds = min_jerk(tau / dur)
    m.lin += (peak * dds / MIN_JERK_PEAK_ACC)[:, None] * d
    s, _, _ = min_jerk(tau / dur)
    back, _, _ = min_jerk((tau - dur) / (4.0 * dur))
    shape = s * (1.0 - back)
    m.flex += float(rng.normal(0.0, 2.0)) * vigour * DEG * shape
    m.roll += float(rng.normal(0.0, 2.0)) * vigour * DEG * shape
    return m


# --------------------------------------------------------------------------------------------
# Posture changes: rolling over, handling; rocking
# --------------------------------------------------------------------------------------------


def roll_over(
    tau: np.ndarray, rng: np.random.Generator, *, dur_s: float, delta_roll: float
) -> Motion:
    """Rolling about the head-foot axis by ``delta_roll`` rad over ``dur_s`` (1-4 s).

    The roll angle itself is applied as a posture change by the caller; this returns the extra
    motion: trunk lift/push-off (ASSUMPTION 0.05-0.3 g), a flexion wobble of up to ~15 deg and
    the tangential/centripetal acceleration of rotating about a point ~6 cm from the sensor.
    """
    n = len(tau)
    m = Motion.zeros(n)
    u = tau / dur_s
    _, ds, dds = min_jerk(u)
    r = 0.06  # m, chest sensor to the rolling axis (infant chest half-depth)
    omega = delta_roll * ds / dur_s
    alpha = delta_roll * dds / dur_s**2
    m.lin[:, 1] -= r * alpha / G  # omega x (r z) = -omega r y for a roll about +X
    m.lin[:, 2] += -r * omega**2 / G
    push = float(rng.uniform(0.05, 0.3))
    d = _random_direction(rng, np.array([0.3, np.sign(delta_roll), 0.5]), 0.4)
    m.lin += (push * biphasic_pulse(np.clip(u * 2.5, 0, 1)))[:, None] * d
    m.flex += float(rng.uniform(-15.0, 15.0)) * DEG * np.sin(np.pi * np.clip(u, 0, 1)) ** 2
    m.lin += (
        0.03
        * smooth_noise(n, 1.0 / (tau[1] - tau[0]) if n > 1 else 1.0, 0.15, rng, 3)
        * (np.sin(np.pi * np.clip(u, 0, 1)) ** 2)[:, None]
    )
    return m


def roll_path(tau: np.ndarray, dur_s: float, start: float, delta: float) -> np.ndarray:
    s, _, _ = min_jerk(tau / dur_s)
    return start + delta * s


def handling(
    tau: np.ndarray,
    rng: np.random.Generator,
    *,
    dur_s: float,
    start_roll: float,
    end_roll: float,
    violent: bool = False,
    pats: bool | None = None,
) -> tuple[Motion, np.ndarray]:
    """A carer picks the baby up (held upright/cradled), moves about, and puts it down.

    Returns (motion, absolute roll path for the window). ASSUMPTIONS: carrying/walking sway
    0.05-0.3 g at ~1.5-2 Hz, orientation wander +-25 deg, burping pats 0.2-1 g at 1-2 Hz (half
    of the handlings, or always/never with ``pats``), put-down impact 0.3-1.5 g; ``violent``
    adds a 2.5-3.5 g bump (a knock or a drop onto the mattress) so range saturation can be
    exercised at +-2 g.
    """
    n = len(tau)
    rate = 1.0 / (tau[1] - tau[0]) if n > 1 else 1.0
    m = Motion.zeros(n)
    up_s = float(rng.uniform(1.0, 2.5))
    down_s = float(rng.uniform(1.0, 2.5))
    up, _, _ = min_jerk(tau / up_s)
    down, _, _ = min_jerk((tau - (dur_s - down_s)) / down_s)
    held = up * (1.0 - down)  # 0 lying, 1 held
    # Held upright against the shoulder (flex ~ 60-90 deg), or cradled (flex ~ 20-40 deg).
    hold_flex = float(rng.uniform(60.0, 90.0) if rng.random() < 0.6 else rng.uniform(20.0, 40.0))
    wander = smooth_noise(n, rate, 0.8, rng, 3) * 25.0 * DEG
    m.flex += held * (hold_flex * DEG + wander[:, 0])
    m.yaw += held * wander[:, 2]
    # Absolute roll: from the start posture to roughly upright-facing-carer (0), then to the
    # final posture; wander on top while held.
    roll_abs = start_roll * (1.0 - up) + end_roll * down + held * (0.0 + 0.6 * wander[:, 1])
    # Linear acceleration: lifting and lowering bumps, walking sway, irregular jostling.
    m.lin[:, 2] += 0.25 * biphasic_pulse(tau / up_s) - 0.25 * biphasic_pulse(
        (tau - (dur_s - down_s)) / down_s
    )
    walk_f = float(rng.uniform(1.5, 2.0))
    walk_a = float(rng.uniform(0.05, 0.3))
    m.lin[:, 0] += held * walk_a * np.sin(2 * np.pi * walk_f * tau)
    m.lin[:, 1] += held * 0.5 * walk_a * np.sin(np.pi * walk_f * tau + 0.7)
    m.lin += held[:, None] * smooth_noise(n, rate, 0.12, rng, 3) * float(rng.uniform(0.05, 0.2))
    pat_draw = rng.random() < 0.5  # drawn always: the same stream with or without ``pats``
    if (pat_draw if pats is None else pats) and dur_s > 12.0:
        # Burping pats: rhythmic impulses on the back = a periodic-jerk confounder.
        pat_f = float(rng.uniform(1.0, 2.0))
        pat_start = up_s + float(rng.uniform(0.5, 3.0))
        pat_len = min(float(rng.uniform(5.0, 20.0)), dur_s - down_s - pat_start - 1.0)
        pat_a = float(rng.uniform(0.2, 1.0))
        for k in range(int(max(0.0, pat_len) * pat_f)):
            t0 = pat_start + k / pat_f
            u = (tau - t0) / 0.06
            m.lin[:, 2] += (
                pat_a
                * rng.uniform(0.7, 1.1)
                * np.where((u >= 0) & (u <= 1), biphasic_pulse(u), 0.0)
            )
    impact_t = dur_s - 0.2 * down_s
    impact = float(rng.uniform(2.5, 3.5) if violent else rng.uniform(0.3, 1.5))
    d = _random_direction(rng, np.array([0.0, 0.0, 1.0]), 0.3)
    u = (tau - impact_t) / 0.05
    m.lin += (impact * np.where((u >= 0) & (u <= 1), biphasic_pulse(u), 0.0))[:, None] * d
    m.lin += _ring(tau, impact_t + 0.05, 0.2 * impact, d, 12.0, 0.08)
    return m, roll_abs


def rocking(tau: np.ndarray, rng: np.random.Generator, *, dur_s: float) -> Motion:
    """Carer rocking the baby / bassinet: 0.5-1 Hz sway, 0.05-0.3 g, +-2-8 deg, 3 s ramps."""
    n = len(tau)
    rate = 1.0 / (tau[1] - tau[0]) if n > 1 else 1.0
    m = Motion.zeros(n)
    f = float(rng.uniform(0.5, 1.0))
    a = float(rng.uniform(0.05, 0.3))
    tilt = float(rng.uniform(2.0, 8.0)) * DEG
    fm = f * (1.0 + 0.05 * smooth_noise(n, rate, 10.0, rng)[:, 0])
    phase = 2.0 * np.pi * np.cumsum(fm) / rate
    ramp = np.clip(tau / 3.0, 0, 1) * np.clip((dur_s - tau) / 3.0, 0, 1)
    env = ramp * (1.0 + 0.15 * smooth_noise(n, rate, 5.0, rng)[:, 0])
    axis = _random_direction(rng, np.array([0.2, 1.0, 0.0]), 0.3)
    m.lin += (a * env * np.sin(phase))[:, None] * axis
    m.lin[:, 2] += 0.2 * a * env * np.sin(2.0 * phase)  # the cradle lifts at both ends
    m.roll += tilt * env * np.sin(phase + np.pi)
    return m


# --------------------------------------------------------------------------------------------
# Epileptic spasms
# --------------------------------------------------------------------------------------------

#: Spasm types and probabilities (Kellaway et al. 1979: 33.9 % flexor, 22.5 % extensor,
#: 42.0 % mixed; the remaining ~1.6 % were pure arrests and are not modelled as movements).
SPASM_TYPES: tuple[tuple[str, float], ...] = (("flexor", 0.34), ("extensor", 0.23), ("mixed", 0.43))


@dataclass
class SpasmParams:
    kind: str
    dur_s: float  # whole spasm: phasic contraction + relaxing tonic phase
    rise_s: float  # phasic contraction
    angle_deg: float  # peak flexion (+) / extension (-) of the trunk sensor
    peak_g: float  # peak linear acceleration
    roll_deg: float = 0.0  # asymmetric spasms: a roll component with the pitch (round 3)


def draw_spasm(rng: np.random.Generator, intensity: float, spasm_g: float) -> SpasmParams:
    """Draw one spasm. Durations are clinical, amplitudes are ASSUMPTIONS scaled by intensity.

    Duration: 86 % 0.4-3 s, 14 % 3-7 s (Wang & Cai, 681 spasms). Phasic rise 0.1-0.3 s.
    Pitch 10-40 deg, linear peak 0.3-0.8 g; both x ``intensity`` (crescendo-decrescendo across
    the cluster) x ``spasm_g`` (the sweep knob), pitch capped at 60 deg.
    """
    names = [k for k, _ in SPASM_TYPES]
    probs = np.array([w for _, w in SPASM_TYPES])
    kind = str(names[int(np.searchsorted(np.cumsum(probs) / probs.sum(), rng.random()))])
    if rng.random() < 0.86:
        # Skewed toward ~1 s (Vigevano: "lasting about 1 s").
        dur = float(np.clip(rng.lognormal(np.log(1.1), 0.45), 0.4, 3.0))
    else:
        dur = float(rng.uniform(3.0, 7.0))
    rise = float(rng.uniform(0.1, 0.3))
    rise = min(rise, 0.5 * dur)
    angle = float(rng.uniform(10.0, 40.0)) * intensity * spasm_g
    angle = min(angle, 60.0)
    if kind == "extensor":
        angle = -angle
    elif kind == "mixed":
        angle *= float(rng.uniform(0.3, 0.7))
    peak = float(rng.uniform(0.3, 0.8)) * intensity * spasm_g
    return SpasmParams(kind, dur, rise, angle, peak)


def spasm(tau: np.ndarray, rng: np.random.Generator, p: SpasmParams) -> Motion:
    """A single epileptic spasm: phasic contraction then a gradually relaxing tonic phase.

    The trunk pitches by ``p.angle_deg`` in ``p.rise_s`` (minimum-jerk), holds briefly and then
    relaxes back over the rest of ``p.dur_s``. Linear acceleration is derived from that pitch
    trajectory as rotation of the chest about the hips (tangential r*alpha on body Z,
    centripetal r*omega^2 toward the feet), plus a 12-25 Hz contraction tremor, then scaled to
    ``p.peak_g``. Mixed spasms add a delayed footward kick (leg extension).
    """
    n = len(tau)
    m = Motion.zeros(n)
    theta_pk = p.angle_deg * DEG
    hold = float(rng.uniform(0.0, 0.3)) * (p.dur_s - p.rise_s)
    fall_s = p.dur_s - p.rise_s - hold
    s1, ds1, dds1 = min_jerk(tau / p.rise_s)
    u2 = (tau - p.rise_s - hold) / fall_s
    s2, ds2, dds2 = min_jerk(u2)
    theta = theta_pk * (s1 - s2)
    omega = theta_pk * (ds1 / p.rise_s - ds2 / fall_s)
    alpha = theta_pk * (dds1 / p.rise_s**2 - dds2 / fall_s**2)
    m.flex += theta
    m.roll += float(rng.normal(0.0, 2.0)) * DEG * (s1 - s2)  # slight asymmetry
    if p.roll_deg:
        m.roll += p.roll_deg * DEG * (s1 - s2)  # asymmetric spasm: the trunk also rolls
    r = 0.15  # m, chest sensor to the hip pivot of an infant trunk
    lin = np.zeros((n, 3))
    lin[:, 2] = r * alpha / G
    lin[:, 0] = -r * omega**2 / G
    if p.kind == "mixed":
        delay = float(rng.uniform(0.03, 0.15))
        kick_s = float(rng.uniform(0.1, 0.25))
        kick = biphasic_pulse((tau - delay) / kick_s) * ((tau >= delay) & (tau <= delay + kick_s))
        lin[:, 0] -= 0.5 * np.max(np.abs(lin[:, 2]) + 1e-12) * kick
    # Contraction tremor during the phasic part.
    phasic_env = np.sin(np.pi * np.clip(tau / (1.5 * p.rise_s), 0, 1)) ** 2
    tremor_f = float(rng.uniform(12.0, 25.0))
    lin[:, 2] += (
        0.08 * np.max(np.abs(lin[:, 2]) + 1e-12) * phasic_env * np.sin(2 * np.pi * tremor_f * tau)
    )
    # Scale to the drawn peak using the analytic peak (not the sampled one) so the spasm's
    # strength does not depend on the sample rate.
    analytic_pk = r * abs(theta_pk) * MIN_JERK_PEAK_ACC / p.rise_s**2 / G
    if analytic_pk > 0:
        lin *= p.peak_g / analytic_pk
    m.lin += lin
    return m


@dataclass
class ClusterPlan:
    onsets: np.ndarray  # s from cluster start
    spasms: list[SpasmParams]

    @property
    def length(self) -> float:
        return float(self.onsets[-1] + self.spasms[-1].dur_s) if self.spasms else 0.0


def plan_cluster(
    rng: np.random.Generator, *, n: int | None = None, spasm_g: float = 1.0
) -> ClusterPlan:
    """Plan a cluster of spasms (clinical timing, assumed amplitudes).

    Count: 5-50 typical (log-uniform), ~5 % of clusters 50-120. Interval onset-to-onset ~5-10 s
    (log-normal around 7 s, clipped to 2-30 s), shorter near the peak. Intensity rises to a
    peak at 30-70 % of the cluster then falls (Kellaway et al. 1979).
    """
    if n is None:
        if rng.random() < 0.05:
            n = int(rng.integers(50, 121))
        else:
            n = int(np.round(np.exp(rng.uniform(np.log(5), np.log(50)))))
    n = max(1, int(n))
    peak_at = float(rng.uniform(0.3, 0.7))
    x = (np.arange(n) + 0.5) / n
    # Piecewise sine crescendo/decrescendo with a floor: early/late spasms are weaker.
    phase = np.where(x < peak_at, 0.5 * x / peak_at, 0.5 + 0.5 * (x - peak_at) / (1 - peak_at))
    intensity = 0.35 + 0.65 * np.sin(np.pi * phase) * rng.uniform(0.85, 1.0, n)
    spasms = [draw_spasm(rng, float(k), spasm_g) for k in intensity]
    base = np.exp(rng.normal(np.log(7.0), 0.3, max(n - 1, 0)))
    intervals = np.clip(base * (1.25 - 0.4 * intensity[1:]), 2.0, 30.0)
    durs = np.array([s.dur_s for s in spasms])
    # Never let the next spasm start before the previous one has relaxed (+0.5 s).
    intervals = np.maximum(intervals, durs[:-1] + 0.5)
    onsets = np.concatenate([[0.0], np.cumsum(intervals)])
    return ClusterPlan(onsets, spasms)


# --------------------------------------------------------------------------------------------
# Round 3: harder clusters (variants of plan_cluster) and the clinical mimics
# --------------------------------------------------------------------------------------------


def plan_cluster_variant(
    rng: np.random.Generator,
    variant: str,
    *,
    n: int | None = None,
    spasm_g: float = 1.0,
) -> ClusterPlan:
    """A harder spasm cluster. ``variant``:

    * ``short``: onset-to-onset 2-5 s (the short end of "every few seconds"), 5-20 spasms;
    * ``long``: 20-40 spasms whose amplitude decreases through the cluster (the
      decrescendo tail of Kellaway's clusters, without the crescendo);
    * ``weak``: every spasm at 0.3-0.55 x ``spasm_g`` (a few degrees of pitch);
    * ``asymmetric``: a roll component of 5-20 deg with the pitch, the same side for the
      whole cluster (asymmetric spasms point to a lateralised lesion: Fusco & Vigevano 1993).
    Durations, types and the minimum gap are those of :func:`plan_cluster`.
    """
    if variant == "short":
        n = n or int(rng.integers(5, 21))
    elif variant == "long":
        n = n or int(rng.integers(20, 41))
    g = spasm_g * (float(rng.uniform(0.3, 0.55)) if variant == "weak" else 1.0)
    plan = plan_cluster(rng, n=n, spasm_g=g)
    k = len(plan.spasms)
    if variant == "long":
        # Decreasing amplitude: intensity from 1.0 down to 0.35 (with the usual jitter).
        inten = np.linspace(1.0, 0.35, k) * rng.uniform(0.85, 1.0, k)
        plan = _respace(rng, plan.onsets, [draw_spasm(rng, float(x), g) for x in inten])
    if variant == "short":
        iv = rng.uniform(2.0, 5.0, max(k - 1, 0))
        plan = _respace(rng, np.concatenate([[0.0], np.cumsum(iv)]), plan.spasms)
    if variant == "asymmetric":
        side = 1.0 if rng.random() < 0.5 else -1.0
        plan.spasms = [
            SpasmParams(s.kind, s.dur_s, s.rise_s, s.angle_deg, s.peak_g,
                        roll_deg=side * float(rng.uniform(5.0, 20.0))
                        * min(1.0, abs(s.angle_deg) / 20.0 + 0.3))
            for s in plan.spasms
        ]
    return plan


def _respace(rng: np.random.Generator, onsets: np.ndarray, spasms: list[SpasmParams]
             ) -> ClusterPlan:
    """Keep the planned intervals, but never start a spasm before the previous one relaxed."""
    iv = np.diff(onsets)
    durs = np.array([s.dur_s for s in spasms])
    iv = np.maximum(iv, durs[:-1] + 0.5)
    return ClusterPlan(np.concatenate([[0.0], np.cumsum(iv)]), spasms)


def _pitch_motion(tau: np.ndarray, theta: np.ndarray, r: float = 0.15) -> Motion:
    """Motion of a chest sensor whose trunk pitches by ``theta`` (rad) about the hips.

    Linear acceleration from the trajectory: tangential r*alpha on +Z, centripetal r*omega^2
    footward (as in :func:`spasm`), by finite differences.
    """
    n = len(tau)
    m = Motion.zeros(n)
    m.flex += theta
    if n > 2:
        dt = float(tau[1] - tau[0])
        omega = np.gradient(theta, dt)
        alpha = np.gradient(omega, dt)
        m.lin[:, 2] += r * alpha / G
        m.lin[:, 0] -= r * omega**2 / G
    return m


def hiccup(tau: np.ndarray, rng: np.random.Generator, *, peak_g: float, direction: np.ndarray
           ) -> Motion:
    """One hiccup: a sudden diaphragm contraction closed by the glottis ~35 ms later.

    ASSUMPTION: felt on the chest as a 50-120 ms biphasic jerk of ``peak_g`` (a bout keeps
    its amplitude and direction: hiccups are highly stereotyped) with < 1 deg of transient
    flexion; the duration is clinical in order of magnitude only (the inspiratory burst).
    """
    dur = float(rng.uniform(0.05, 0.12))
    return jerk(tau, rng, dur_s=dur, peak_g=peak_g * float(rng.uniform(0.85, 1.15)),
                direction=_unit(direction + rng.normal(0.0, 0.05, 3)),
                tilt_deg=float(rng.uniform(0.2, 1.0)))


def startle(tau: np.ndarray, rng: np.random.Generator, scale: float = 1.0) -> Motion:
    """A Moro / startle response: abrupt extension (arms fling out, trunk extends) then
    flexion ("embrace") and relaxation, about 1-2 s in all.

    ASSUMPTIONS: an onset impulse of 0.3-1.2 g lasting 0.1-0.2 s, trunk extension of 5-15 deg
    reached in 0.15-0.3 s, then flexion to 0-10 deg at 0.5-0.9 s and back to rest by 1-2 s.
    It resembles an extensor or mixed spasm on purpose: the differences are context (a
    trigger, isolated, often followed by crying) and the lack of a stereotyped series.
    """
    n = len(tau)
    ext = -float(rng.uniform(5.0, 15.0)) * scale * DEG
    flex = float(rng.uniform(0.0, 10.0)) * scale * DEG
    t1 = float(rng.uniform(0.15, 0.3))
    t2 = float(rng.uniform(0.5, 0.9))
    t3 = float(rng.uniform(1.0, 2.0))
    s1, _, _ = min_jerk(tau / t1)
    s2, _, _ = min_jerk((tau - t1) / (t2 - t1))
    s3, _, _ = min_jerk((tau - t2) / (t3 - t2))
    theta = ext * s1 + (flex - ext) * s2 - flex * s3
    m = _pitch_motion(tau, theta)
    d = _random_direction(rng, np.array([-0.3, 0.0, 1.0]), 0.3)
    m.lin += jerk(tau, rng, dur_s=float(rng.uniform(0.1, 0.2)),
                  peak_g=float(rng.uniform(0.3, 1.2)) * scale, direction=d).lin[:n]
    m.roll += float(rng.normal(0.0, 3.0)) * DEG * np.sin(np.pi * np.clip(tau / t3, 0, 1)) ** 2
    return m


def shudder(tau: np.ndarray, rng: np.random.Generator, *, dur_s: float) -> Motion:
    """A shuddering attack: a rapid 4-10 Hz shiver of head, shoulders and trunk for
    ``dur_s`` (2-15 s), awake (often while feeding), consciousness preserved.

    ASSUMPTIONS: 0.05-0.4 g along a main direction, +-0.5-3 deg of flexion at the same
    frequency, a 0.3 s ramp in and out, frequency wandering +-5 %.
    """
    n = len(tau)
    rate = 1.0 / (tau[1] - tau[0]) if n > 1 else 1.0
    m = Motion.zeros(n)
    f = float(rng.uniform(4.0, 10.0))
    fm = f * (1.0 + 0.05 * smooth_noise(n, rate, 1.0, rng)[:, 0])
    phase = 2.0 * np.pi * np.cumsum(fm) / rate
    env = np.clip(tau / 0.3, 0, 1) * np.clip((dur_s - tau) / 0.3, 0, 1)
    env *= 1.0 + 0.2 * smooth_noise(n, rate, 0.8, rng)[:, 0]
    a = float(rng.uniform(0.05, 0.4))
    d = _random_direction(rng, np.array([0.5, 0.5, 0.7]), 0.6)
    m.lin += (a * env * np.sin(phase))[:, None] * d
    m.flex += float(rng.uniform(0.5, 3.0)) * DEG * env * np.sin(phase + 0.5)
    return m


def cry_cycle(tau: np.ndarray, rng: np.random.Generator, *, dur_s: float, vigour: float = 1.0
              ) -> Motion:
    """One cry: an inspiratory gasp (a brief jerk), then an expiratory cry of ``dur_s``
    with the abdomen contracting and the trunk curling forward, then release.

    ASSUMPTIONS: gasp 0.05-0.3 g x vigour; flexion 2-10 deg x vigour held through the cry;
    a 20-40 Hz vocal/abdominal vibration of 5-30 mg while crying. Crying is
    rhythmic (cry cycles of 1-3 s) and comes with vigorous limb movement (added by the
    planner).
    """
    n = len(tau)
    rate = 1.0 / (tau[1] - tau[0]) if n > 1 else 1.0
    up = float(rng.uniform(0.15, 0.4))
    angle = float(rng.uniform(2.0, 10.0)) * vigour * DEG
    s1, _, _ = min_jerk(tau / up)
    s2, _, _ = min_jerk((tau - dur_s) / 0.4)
    m = _pitch_motion(tau, angle * (s1 - s2))
    d = _random_direction(rng, np.array([0.5, 0.0, 1.0]), 0.4)
    m.lin += jerk(tau, rng, dur_s=float(rng.uniform(0.08, 0.2)),
                  peak_g=float(rng.uniform(0.05, 0.3)) * vigour, direction=d).lin[:n]
    vib_f = float(rng.uniform(20.0, 40.0))
    if vib_f < rate / 2.0:
        env = s1 * (1.0 - s2)
        m.lin[:, 2] += float(rng.uniform(0.005, 0.03)) * env * np.sin(2 * np.pi * vib_f * tau)
    return m


def sandifer(tau: np.ndarray, rng: np.random.Generator, *, dur_s: float) -> Motion:
    """Sandifer posturing (reflux): the back arches and the neck twists for ``dur_s``
    (10 s to 3 min), usually awake after a feed, then the posture releases.

    ASSUMPTIONS: trunk extension 10-30 deg with a 5-15 deg roll reached over 1-3 s, held with
    slow writhing of +-3 deg, released over 1-3 s; low linear acceleration.
    """
    n = len(tau)
    rate = 1.0 / (tau[1] - tau[0]) if n > 1 else 1.0
    ramp_in = float(rng.uniform(1.0, 3.0))
    ramp_out = float(rng.uniform(1.0, 3.0))
    a, _, _ = min_jerk(tau / ramp_in)
    b, _, _ = min_jerk((tau - (dur_s - ramp_out)) / ramp_out)
    shape = a * (1.0 - b)
    ext = -float(rng.uniform(10.0, 30.0)) * DEG
    writhe = smooth_noise(n, rate, 2.0, rng, 2) * 3.0 * DEG
    m = _pitch_motion(tau, shape * (ext + writhe[:, 0]))
    side = 1.0 if rng.random() < 0.5 else -1.0
    m.roll += shape * (side * float(rng.uniform(5.0, 15.0)) * DEG + writhe[:, 1])
    return m


def sucking(tau: np.ndarray, rng: np.random.Generator) -> Motion:
    """Feeding: bursts of sucking at 1-2 Hz felt on the chest (jaw and swallowing).

    ASSUMPTION: 0.01-0.05 g, bursts of 5-30 s with 2-10 s pauses.
    """
    n = len(tau)
    rate = 1.0 / (tau[1] - tau[0]) if n > 1 else 1.0
    m = Motion.zeros(n)
    f = float(rng.uniform(1.0, 2.0))
    on = np.zeros(n)
    t = 0.0
    end = float(tau[-1]) if n else 0.0
    while t < end:
        b = float(rng.uniform(5.0, 30.0))
        on[(tau >= t) & (tau < t + b)] = 1.0
        t += b + float(rng.uniform(2.0, 10.0))
    env = np.convolve(on, np.ones(max(1, int(0.3 * rate))) / max(1, int(0.3 * rate)), "same")
    d = _random_direction(rng, np.array([0.6, 0.0, 0.8]), 0.3)
    m.lin += (float(rng.uniform(0.01, 0.05)) * env * np.sin(2 * np.pi * f * tau))[:, None] * d
    return m
