"""Scenario planner: lays out sleep states and movement events on a trace's clock.

A scenario builder calls :class:`Planner` methods in chronological order (``state`` appends the
next sleep-state segment; event methods place movements inside segments). The planner renders
each event into a :class:`~spasmwatch.simulator.body_model.BodyTimeline` immediately, records its
ground-truth :class:`Label`, and ``finish`` adds the state-dependent background (breathing,
heartbeat, wake fidgeting, active-sleep twitches) and returns the true specific force.

Randomness: every event gets its own child generator drawn from the planning generator, so the
event layout and labels for a seed are the same at every sample rate (only the sampled waveform
changes). State rules enforced here: benign myoclonus only inside sleep and stops at the end of
its sleep segment; spasm clusters are wrapped in a ``wake`` arousal (or sit in ``settling``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from . import movements as mv
from .body_model import BREATHING_BY_STATE, DEG, BodyTimeline, breathing, heartbeat, smooth_noise
from .traceio import Label

STATES: tuple[str, ...] = tuple(BREATHING_BY_STATE)  # quiet-sleep, active-sleep, settling, wake
SLEEP_STATES = ("quiet-sleep", "active-sleep")

#: Named postures by roll angle, used to pick a plausible new posture after a roll/handling.
_POSTURE_ROLLS = np.array([0.0, 90.0, -90.0, 180.0]) * DEG


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2.0 * np.pi) - np.pi)


class Planner:
    """Builds one trace. Times are seconds from the trace start."""

    def __init__(
        self,
        duration_s: float,
        rate_hz: float,
        rng: np.random.Generator,
        *,
        roll0: float,
        incline: float,
        spasm_g: float = 1.0,
    ) -> None:
        self.T = float(duration_s)
        self.rate_hz = float(rate_hz)
        self.rng = rng
        self.spasm_g = float(spasm_g)
        n = int(round(self.T * self.rate_hz))
        self.body = BodyTimeline(self.rate_hz, n, roll0, incline)
        self.states: list[tuple[float, float, str]] = []
        self.labels: list[Label] = []
        self.now = 0.0
        self.current_roll = roll0
        self._last_posture_t = -np.inf
        self.n_clusters = 0

    # ---- helpers --------------------------------------------------------------------------

    def child(self) -> np.random.Generator:
        return np.random.default_rng(int(self.rng.integers(0, 2**63 - 1)))

    def _label(self, start: float, end: float, label: str) -> None:
        self.labels.append(Label(float(start), float(end), label))

    def _render(self, t0: float, window_s: float, fn: Callable[[np.ndarray], mv.Motion]) -> None:
        i0, tau = self.body.local_time(t0, window_s)
        if len(tau):
            self.body.add(i0, fn(tau))

    def times(self, t0: float, t1: float, k: int, min_gap: float) -> list[float]:
        """k sorted random times in [t0, t1] at least ``min_gap`` apart (fewer if no room)."""
        span = t1 - t0 - (k - 1) * min_gap
        while k > 0 and span < 0:
            k -= 1
            span = t1 - t0 - (k - 1) * min_gap
        if k <= 0:
            return []
        u = np.sort(self.rng.uniform(0.0, span, k))
        return [float(t0 + x + i * min_gap) for i, x in enumerate(u)]

    def state_at(self, t: float) -> tuple[float, float, str] | None:
        for seg in self.states:
            if seg[0] <= t < seg[1]:
                return seg
        return None

    # ---- states ---------------------------------------------------------------------------

    def state(self, kind: str, dur_s: float) -> tuple[float, float]:
        """Append a sleep-state segment of ``dur_s`` after the previous one."""
        if kind not in STATES:
            raise ValueError(f"unknown state {kind!r}")
        t0 = self.now
        self.now = t0 + max(0.0, float(dur_s))
        if self.states and self.states[-1][2] == kind:
            self.states[-1] = (self.states[-1][0], self.now, kind)
        else:
            self.states.append((t0, self.now, kind))
        return t0, self.now

    @property
    def remaining(self) -> float:
        return self.T - self.now

    # ---- events ---------------------------------------------------------------------------

    def hypnic_jerk(self, t: float) -> None:
        r = self.child()
        dur = mv.draw_hypnic_duration(r)
        self._render(t, 0.9, lambda tau: mv.hypnic_jerk(tau, r, dur))
        self._label(t, t + dur, "jerk")

    def myoclonus(self, t0: float, total_s: float) -> float:
        """A benign neonatal sleep myoclonus episode: runs of 1-5 Hz jerks with pauses.

        Each run gets a ``burst`` label. The episode is cut at the end of the sleep segment it
        starts in (BNSM stops on arousal). Returns the episode end.
        """
        if t0 >= self.T:
            return t0
        seg = self.state_at(t0)
        if seg is None or seg[2] not in SLEEP_STATES:
            raise ValueError(f"benign myoclonus must start in sleep (t={t0:.1f})")
        end = min(t0 + total_s, seg[1] - 1.0, self.T)
        t = t0
        while t < end - 1.0:
            r = self.child()
            run_s = float(r.uniform(2.0, 20.0))
            plan = mv.plan_myoclonus_run(r, min(run_s, end - t))
            last = t
            for on, d, pk, direc in zip(
                plan.onsets, plan.durs, plan.peaks, plan.directions, strict=True
            ):
                if t + on + d > end:
                    break
                rr = self.child()
                tilt = float(rr.uniform(0.0, 1.5))
                self._render(
                    t + on,
                    d + 0.35,
                    partial(
                        mv.jerk,
                        rng=rr,
                        dur_s=float(d),
                        peak_g=float(pk),
                        direction=direc,
                        tilt_deg=tilt,
                    ),
                )
                last = t + on + d
            if last > t:
                self._label(t, last, "burst")
            t = last + float(self.rng.uniform(1.0, 15.0))
        return end

    def _posture_ok(self, t0: float) -> bool:
        """Posture-changing events must not overlap: one that starts before the previous one
        has finished (only possible when a short ``duration_s`` squeezes a script) or after the
        end of the trace is skipped."""
        return self._last_posture_t <= t0 < self.T

    def roll(
        self, t0: float, *, dur_s: float | None = None, delta_deg: float | None = None
    ) -> float:
        """Roll over about the head-foot axis; the new posture persists. Returns the end time."""
        r = self.child()
        dur = float(r.uniform(1.0, 4.0)) if dur_s is None else dur_s
        if not self._posture_ok(t0):
            return t0
        if delta_deg is None:
            # Roll to another stable lying posture 90 or 180 deg away (plus a little slop).
            deltas = [_wrap(p - self.current_roll) for p in _POSTURE_ROLLS]
            deltas = [d for d in deltas if abs(d) >= 60 * DEG]
            delta = float(r.choice(deltas))
            if abs(abs(delta) - np.pi) < 1e-6:
                delta = np.pi * (1.0 if r.random() < 0.5 else -1.0)
            delta += float(r.normal(0.0, 5.0)) * DEG
        else:
            delta = delta_deg * DEG
        i0, tau = self.body.local_time(t0, dur + 0.5)
        self.body.change_posture(
            i0, mv.roll_path(tau, dur, self.current_roll, delta), self.current_roll + delta
        )
        self.body.add(i0, mv.roll_over(tau, r, dur_s=dur, delta_roll=delta))
        self.current_roll = _wrap(self.current_roll + delta)
        self._last_posture_t = t0 + dur
        self._label(t0, t0 + dur, "roll")
        return t0 + dur

    def handling(
        self,
        t0: float,
        dur_s: float,
        *,
        end_roll: float | None = None,
        violent: bool = False,
        pats: bool | None = None,
        label: str = "handling",
    ) -> float:
        """Carer picks the baby up and puts it down (maybe in a new posture)."""
        r = self.child()
        if not self._posture_ok(t0) or dur_s < 3.0:
            return t0
        if end_roll is None:
            # Mostly put back on the back (safe-sleep advice), sometimes on a side.
            end_roll = float(r.choice(_POSTURE_ROLLS[:3], p=[0.7, 0.15, 0.15]))
        i0, tau = self.body.local_time(t0, dur_s)
        if len(tau) == 0:
            return t0 + dur_s
        m, path = mv.handling(
            tau, r, dur_s=dur_s, start_roll=self.current_roll, end_roll=end_roll, violent=violent,
            pats=pats,
        )
        self.body.change_posture(i0, path, end_roll)
        self.body.add(i0, m)
        self.current_roll = end_roll
        self._last_posture_t = t0 + dur_s
        self._label(t0, t0 + dur_s, label)
        return t0 + dur_s

    def rocking(self, t0: float, dur_s: float) -> float:
        r = self.child()
        if dur_s < 6.0 or t0 >= self.T:  # too short to ramp in and out
            return t0
        self._render(t0, dur_s, lambda tau: mv.rocking(tau, r, dur_s=dur_s))
        self._label(t0, min(t0 + dur_s, self.T), "rocking")
        return t0 + dur_s

    def spasm_cluster(self, t0: float, plan: mv.ClusterPlan, *, cry_after: bool = False) -> float:
        """Render a planned cluster from t0; spasms that would run past the trace are dropped.

        ``cry_after``: every spasm is followed at once by crying (1-4 s, up to 0.3 s before
        the next spasm).
        """
        last_end = t0
        onsets = [t0 + float(on) for on in plan.onsets]
        for i, (ts, sp) in enumerate(zip(onsets, plan.spasms, strict=True)):
            if ts + sp.dur_s > self.T:
                break
            r = self.child()
            self._render(ts, sp.dur_s + 0.2, partial(mv.spasm, rng=r, p=sp))
            self._label(ts, ts + sp.dur_s, "spasm")
            last_end = ts + sp.dur_s
            if cry_after:
                nxt = onsets[i + 1] - 0.3 if i + 1 < len(onsets) else self.T
                cry_end = min(last_end + float(r.uniform(1.0, 4.0)), nxt)
                if cry_end - last_end > 0.5:
                    self.crying(last_end + 0.05, cry_end - last_end - 0.05, label=False)
        if last_end > t0:
            self._label(t0, last_end, "cluster")
            self.n_clusters += 1
        return last_end

    def arousal_with_cluster(
        self,
        *,
        n: int | None = None,
        pre_s: float | None = None,
        post_s: float | None = None,
        state: str = "wake",
        max_n: int | None = None,
        variant: str | None = None,
        cry_after: bool = False,
        crying_start: bool = False,
    ) -> float:
        """Arousal (``wake``) wrapped around one spasm cluster, or a cluster in ``settling``.

        Spasms mostly come on/just after waking, with wake movements around them.
        ``variant`` picks a harder cluster (:func:`~movements.plan_cluster_variant`);
        ``cry_after``: crying right after every spasm; ``crying_start``: the cluster starts
        while the baby cries.
        """
        if variant is None:
            plan = mv.plan_cluster(self.child(), n=n, spasm_g=self.spasm_g)
        else:
            plan = mv.plan_cluster_variant(self.child(), variant, n=n, spasm_g=self.spasm_g)
        if max_n is not None and len(plan.spasms) > max_n:
            plan = mv.ClusterPlan(plan.onsets[:max_n], plan.spasms[:max_n])
        pre = float(self.rng.uniform(5.0, 40.0)) if pre_s is None else pre_s
        post = float(self.rng.uniform(20.0, 90.0)) if post_s is None else post_s
        t0, _ = self.state(state, pre + plan.length + post)
        if crying_start:
            # The cluster starts during crying: crying from 10-30 s before it until a few
            # spasms in.
            lead = min(pre, float(self.rng.uniform(10.0, 30.0)))
            k = min(len(plan.onsets) - 1, int(self.rng.integers(1, 4)))
            self.crying(t0 + pre - lead, lead + float(plan.onsets[k]))
        self.spasm_cluster(t0 + pre, plan, cry_after=cry_after)
        return self.now

    # ---- round 3: clinical mimics ---------------------------------------------------------

    def crying(self, t0: float, dur_s: float, *, vigour: float | None = None,
               label: bool = True) -> float:
        """Crying / vigorous wakefulness for ``dur_s``: back-to-back cry cycles (gasp, a
        0.5-1.5 s cry with the trunk curling forward, a 0.3-0.8 s pause) and vigorous limb
        movements at 1-3 per second. Labelled ``crying``."""
        r = self.child()
        if dur_s <= 0.5 or t0 >= self.T:
            return t0
        v = float(r.uniform(0.6, 1.5)) if vigour is None else vigour
        end = min(t0 + dur_s, self.T)
        t = t0
        while t < end - 0.5:
            cry = min(float(r.uniform(0.5, 1.5)), end - t)
            rr = self.child()
            self._render(t, cry + 0.6, partial(mv.cry_cycle, rng=rr, dur_s=cry, vigour=v))
            t += cry + float(r.uniform(0.3, 0.8))
        t = t0
        while True:
            t += float(r.exponential(1.0 / float(r.uniform(1.0, 3.0))))
            if t >= end - 0.4:
                break
            rr = self.child()
            self._render(t, 2.0, partial(mv.limb_movement, rng=rr,
                                         vigour=float(r.uniform(1.5, 3.0)) * v))
        if label:
            self._label(t0, end, "crying")
        return end

    def hiccups(self, t0: float, dur_s: float) -> float:
        """A hiccup bout: a brief, stereotyped trunk jerk every 1-5 s (+-10 %) for ``dur_s``.
        Labelled ``hiccups`` (one label for the bout)."""
        r = self.child()
        period = float(r.uniform(1.0, 5.0))
        amp = float(r.uniform(0.05, 0.5))
        d = mv._random_direction(r, np.array([0.7, 0.0, 0.7]), 0.3)
        end = min(t0 + dur_s, self.T - 0.5)
        t = t0
        while t < end:
            rr = self.child()
            self._render(t, 0.6, partial(mv.hiccup, rng=rr, peak_g=amp, direction=d))
            t += period * float(r.uniform(0.9, 1.1))
        if end > t0:
            self._label(t0, end, "hiccups")
        return end

    def startle(self, t0: float, *, cry: bool | None = None) -> float:
        """A Moro/startle response (``startle`` label), followed by crying 60 % of the time."""
        r = self.child()
        if t0 >= self.T - 2.0:
            return t0
        scale = float(r.uniform(0.6, 1.4))
        self._render(t0, 2.2, partial(mv.startle, rng=r, scale=scale))
        self._label(t0, t0 + 1.5, "startle")
        if cry if cry is not None else r.random() < 0.6:
            return self.crying(t0 + float(r.uniform(0.8, 2.0)), float(r.uniform(5.0, 40.0)))
        return t0 + 2.0

    def shudder(self, t0: float) -> float:
        """A shuddering attack of 2-15 s (``shudder`` label)."""
        r = self.child()
        dur = float(r.uniform(2.0, 15.0))
        return self._episode(t0, dur, partial(mv.shudder, rng=r, dur_s=dur), "shudder")

    def _episode(self, t0: float, dur: float, movement: Callable[[np.ndarray], mv.Motion],
                 label: str) -> float:
        """Render one labelled movement of ``dur`` s at ``t0`` if it fits in the trace."""
        if t0 >= self.T - dur:
            return t0
        self._render(t0, dur, movement)
        self._label(t0, t0 + dur, label)
        return t0 + dur

    def benign_myoclonus_infancy(self, t0: float) -> float:
        """Benign myoclonus of early infancy (Fejerman): awake, a cluster of 3-15 brief
        flexions of neck and trunk (0.2-0.5 s) or shudders (0.5-2 s) at irregular 1-10 s
        intervals. Labelled ``bmei`` (one label per cluster)."""
        r = self.child()
        k = int(r.integers(3, 16))
        t = t0
        for _ in range(k):
            if t >= self.T - 2.5:
                break
            rr = self.child()
            if r.random() < 0.6:
                d = mv._random_direction(rr, np.array([0.4, 0.0, 1.0]), 0.4)
                dur = float(rr.uniform(0.2, 0.5))
                self._render(t, dur + 1.0, partial(
                    mv.jerk, rng=rr, dur_s=dur, peak_g=float(rr.uniform(0.1, 0.6)),
                    direction=d, tilt_deg=float(rr.uniform(2.0, 8.0))))
                t += dur
            else:
                dur = float(rr.uniform(0.5, 2.0))
                self._render(t, dur, partial(mv.shudder, rng=rr, dur_s=dur))
                t += dur
            t += float(r.lognormal(np.log(3.0), 0.6)) + 0.3
        if t > t0:
            self._label(t0, t, "bmei")
        return t

    def sandifer(self, t0: float) -> float:
        """Sandifer posturing: arching with a neck twist for 10 s - 3 min (``sandifer``)."""
        r = self.child()
        dur = float(r.uniform(10.0, 180.0))
        return self._episode(t0, dur, partial(mv.sandifer, rng=r, dur_s=dur), "sandifer")

    def feeding(self, t0: float, dur_s: float) -> float:
        """Feeding then burping: held (cradled or upright) with sucking bursts, burping pats
        always. Labelled ``feeding``."""
        r = self.child()
        end = self.handling(t0, dur_s, pats=True, label="feeding")
        if end > t0 + 10.0:
            self._render(t0 + 3.0, (end - t0) * 0.6, partial(mv.sucking, rng=r))
        return end

    # ---- background -----------------------------------------------------------------------

    def _state_codes(self) -> np.ndarray:
        n = self.body.n
        codes = np.full(n, STATES.index("quiet-sleep"), dtype=np.int64)
        for a, b, kind in self.states:
            i0, i1 = self.body.index(a), min(n, self.body.index(b))
            codes[i0:i1] = STATES.index(kind)
        if self.states:  # after the last segment the last state simply continues
            codes[self.body.index(self.states[-1][1]) :] = STATES.index(self.states[-1][2])
        return codes

    def _fidget(
        self, a: float, b: float, rate_range: tuple[float, float], vigour: tuple[float, float]
    ) -> None:
        r = self.child()
        t = a
        while True:
            rate = float(r.uniform(*rate_range))  # bout-to-bout variation of activity
            t += float(r.exponential(1.0 / rate))
            if t >= b - 0.4:
                break
            rr = np.random.default_rng(int(r.integers(0, 2**63 - 1)))
            v = float(r.uniform(*vigour))
            self._render(t, 2.0, partial(mv.limb_movement, rng=rr, vigour=v))
        # Slow orientation wander while awake (shifting, head turning), ramped at the edges.
        i0, tau = self.body.local_time(a, b - a)
        if len(tau) > 1:
            ramp = np.clip(tau / 2.0, 0, 1) * np.clip((tau[-1] - tau) / 2.0, 0, 1)
            w = smooth_noise(len(tau), self.rate_hz, 3.0, r, 2) * 2.5 * DEG * vigour[1]
            self.body.flex[i0 : i0 + len(tau)] += ramp * w[:, 0]
            self.body.roll[i0 : i0 + len(tau)] += ramp * w[:, 1]

    def _twitches(self, a: float, b: float) -> None:
        r = self.child()
        t = a + float(r.exponential(10.0))
        while t < b - 1.0:
            k = int(r.integers(2, 9))
            gaps = r.uniform(0.1, 3.0, k - 1)
            onsets = t + np.concatenate([[0.0], np.cumsum(gaps)])
            onsets = onsets[onsets < b - 0.5]
            end = t
            for on in onsets:
                rr = np.random.default_rng(int(r.integers(0, 2**63 - 1)))
                dur = float(r.uniform(0.03, 0.12))
                self._render(float(on), 0.3, partial(mv.twitch, rng=rr, dur=dur))
                end = max(end, float(on) + dur)
            self._label(t, end, "twitch")
            # Bursts recur at intervals mostly <= 10 s (Blumberg), with quieter stretches.
            t = end + float(r.exponential(6.0) if r.random() < 0.7 else r.uniform(15.0, 60.0))
        # An occasional gross body movement in active sleep.
        for tg in self.times(a + 5.0, b - 5.0, int((b - a) // 240), 30.0):
            rr = self.child()
            self._render(tg, 2.0, partial(mv.limb_movement, rng=rr, vigour=0.6))

    def finish(self) -> tuple[np.ndarray, list[Label]]:
        """Add background activity; return (true specific force (n, 3) g, labels)."""
        body = self.body
        for a, b, kind in self.states:
            a, b = max(0.0, a), min(self.T, b)
            if b <= a:
                continue
            if kind == "wake":
                self._fidget(a, b, (0.1, 1.2), (0.4, 1.5))
                self._label(a, b, "wake")
            elif kind == "settling":
                self._fidget(a, b, (0.02, 0.15), (0.2, 0.6))
            elif kind == "active-sleep":
                self._twitches(a, b)
        t = body.t
        br = breathing(t, self._state_codes(), self.child())
        body.add(0, br)
        body.lin += heartbeat(t, self.child())
        labels = [
            Label(lb.start, min(lb.end, self.T), lb.label)
            for lb in self.labels
            if lb.start < self.T
        ]
        labels.sort(key=lambda lb: (lb.start, lb.end, lb.label))
        return body.true_acceleration(), labels
