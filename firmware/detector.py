"""Streaming movement-event detector: gravity removal, hysteresis, features, class.

MicroPython/CPython common subset, integer arithmetic only, O(1) memory. Per sample:

1. gravity: an exponential average per axis (time constant 2**k samples, a shift);
   the high-passed residual is the movement;
2. magnitude: L1 norm |dx|+|dy|+|dz| of the residual (no sqrt, no multiply);
3. an event starts when the magnitude exceeds the onset threshold and ends after
   ``quiet_ms`` below the (lower) offset threshold: hysteresis against chatter;
4. while an event runs: peak, energy, number of peaks (re-crossings, after dropping
   below offset, of the larger of the onset threshold and ``rel_peak_pct`` of the
   event's peak so far: weak re-crossings are noise or relaxation), excursion of the
   gravity vector from where it was at onset; at the end the net orientation change
   (tilt) is measured. A quiet spell while the posture is still displaced does not end
   the event until ``spasm_max_ms`` from onset: a spasm's tonic phase holds the flexed
   posture before it relaxes, and contraction, hold and relaxation are one movement;
   two splits keep a spasm from merging with wake movement around it: a sharp onset
   well above the recent level of ongoing movement starts a new event (the part before
   is cut: always ``movement``), and a new onset after a short quiet dip ends the event
   at the dip if the event so far is already a complete spasm-like movement;
5. each second the mean magnitude says whether that second was active; an exponential
   average of that over ~2 minutes tags the arousal state (asleep / settling / awake);
   another over ~4 s is the background an event's peak is compared with (prominence).

A finished event is classified: ``jerk`` (shorter than ``jerk_max_ms``), ``spasm_like``
(short, returns to its starting posture, few peaks, a real orientation excursion) or
``movement`` (everything else: rolling over, handling, rocking, fidgeting). The
spasm-like test includes the crest factor (peak over mean magnitude): a sharp phasic
contraction then a quieter tonic phase, rather than energy spread evenly; prominence
(the peak stands out from the preceding seconds, unlike one fidget among many); and an
orientation excursion in proportion to the peak (a held flexion, unlike a jerk's impulse).
See docs/detector.md for every feature and threshold.
Records go to ``pending`` as wire-format tuples (see wire.py); ``pop()`` drains them.
"""

from . import wire

# Arousal state: activity average in 1/256 units, updated once a second.
_ACT_SHIFT = 7  # time constant 128 s
_ASLEEP_BELOW = 13  # < 5 % of seconds active
_SETTLING_BELOW = 64  # < 25 %
_STATE_WARMUP_S = 60


class Detector:
    """Feed int16 counts (x, y, z interleaved) with ``process``; drain records with ``pop``."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.k = cfg.gravity_shift
        self.n = 0  # samples processed since start
        self.gx = self.gy = self.gz = 0
        self.primed = False
        self.pending = []
        self.dropped = 0
        # event state
        self.active = False
        self.ev_start = 0
        self.ev_peak = 0
        self.ev_peak_at = 0
        self.ev_energy = 0
        self.ev_peaks = 0
        self.ev_armed = False
        self.ev_quiet = 0
        self.ev_exc = 0
        self.ev_state = wire.STATE_UNKNOWN
        self.ev_on = cfg.onset_counts
        self.ev_env = 0
        self.ev_dip = 0  # first sample of a quiet dip of >= split_dip_ms, 0 = none
        self.pre_x = self.pre_y = self.pre_z = 0
        self.last_active_end = 0
        # per-second activity
        self.sec_left = cfg.rate_hz
        self.sec_sum = 0
        self.seconds = 0
        self.act_avg = 0
        self.bg = 0  # background: mean magnitude per second, averaged over ~4 s
        self.ev_bg = 0
        # summary period
        self.sum_left = cfg.summary_s
        self.sum_active = 0
        self.sum_events = 0
        self.sum_spasm = 0
        self.sum_peak = 0
        self.sum_mag = 0

    def state(self):
        if self.seconds < _STATE_WARMUP_S:
            return wire.STATE_UNKNOWN
        if self.act_avg < _ASLEEP_BELOW:
            return wire.STATE_ASLEEP
        if self.act_avg < _SETTLING_BELOW:
            return wire.STATE_SETTLING
        return wire.STATE_AWAKE

    def t_ms(self, sample):
        r = self.cfg.rate_hz
        return (sample // r) * 1000 + (sample % r) * 1000 // r

    def process(self, buf, n):
        """Run ``n`` samples from ``buf`` (x, y, z interleaved, int16 counts)."""
        if n <= 0:
            return
        k = self.k
        if not self.primed:
            # Start the gravity estimate at the first sample, not at zero, so start-up
            # is not one huge "movement".
            self.gx = buf[0] << k
            self.gy = buf[1] << k
            self.gz = buf[2] << k
            self.primed = True
        gx = self.gx
        gy = self.gy
        gz = self.gz
        on = self.cfg.onset_counts
        active = self.active
        sec_left = self.sec_left
        sec_sum = self.sec_sum
        base = self.n
        i = 0
        end = 3 * n
        # The quiet path below is the per-sample budget: keep it to locals and
        # integer adds, shifts and compares.
        while i < end:
            dx = buf[i] - (gx >> k)
            gx += dx
            dy = buf[i + 1] - (gy >> k)
            gy += dy
            dz = buf[i + 2] - (gz >> k)
            gz += dz
            m = (dx if dx > 0 else -dx) + (dy if dy > 0 else -dy) + (dz if dz > 0 else -dz)
            sec_sum += m
            if active or m > on:
                active = self._busy(m, base + i // 3, gx >> k, gy >> k, gz >> k)
            i += 3
            sec_left -= 1
            if sec_left == 0:
                self._second(sec_sum)
                sec_left = self.cfg.rate_hz
                sec_sum = 0
        self.gx = gx
        self.gy = gy
        self.gz = gz
        self.active = active
        self.sec_left = sec_left
        self.sec_sum = sec_sum
        self.n = base + n

    def _busy(self, m, idx, gx, gy, gz):
        """One sample during (or starting) an event; returns whether an event runs."""
        cfg = self.cfg
        if self.active:
            env = self.ev_env
            if (
                m * 100 > cfg.split_ratio_pct * env
                and cfg.split_ratio_pct
                and env > cfg.onset_counts
                and idx - self.ev_start >= cfg.split_min_samples
            ):
                # Onset split: a sharp onset well above the recent level of an ongoing
                # movement (env > onset: still moving, not a quiet tonic hold) is a new
                # movement, e.g. a spasm during wake fidgeting. The part before is cut
                # (always `movement`); the new part is classified on its own.
                self._finish(idx - self.ev_quiet, gx, gy, gz, True)
            else:
                if m > env:
                    self.ev_env = m
                else:
                    self.ev_env = env - (env >> cfg.split_env_shift)
                if self.ev_dip and m > cfg.onset_counts:
                    # Completion split: a new onset after a quiet dip of at least
                    # split_dip_ms, and what came before is already a complete
                    # spasm-shaped movement (returned to posture): end it at the dip
                    # instead of merging it with what follows. Checked once per dip.
                    end = self.ev_dip
                    self.ev_dip = 0
                    if (
                        cfg.split_done
                        and self._classify(end, gx, gy, gz, False)[0] == wire.CLS_SPASM_LIKE
                    ):
                        self._finish(end, gx, gy, gz)
        if not self.active:
            self.active = True
            self.ev_start = idx
            self.ev_peak = m
            self.ev_peak_at = idx
            self.ev_energy = 0
            self.ev_peaks = 1
            self.ev_armed = False
            self.ev_quiet = 0
            self.ev_exc = 0
            self.ev_state = self.state()
            self.pre_x = gx
            self.pre_y = gy
            self.pre_z = gz
            self.ev_on = cfg.onset_counts
            self.ev_bg = self.bg
            self.ev_env = m
            self.ev_dip = 0
        self.ev_energy += m
        if m > self.ev_peak:
            self.ev_peak = m
            self.ev_peak_at = idx
            # A new peak counts only when it reaches rel_peak_pct of the largest so
            # far: noise, the relaxation phase and ringing re-cross the fixed onset
            # level, but they are much weaker than the phasic contraction.
            on = m * cfg.rel_peak_pct // 100
            if on > cfg.onset_counts:
                self.ev_on = on
        d = gx - self.pre_x
        e = d if d > 0 else -d
        d = gy - self.pre_y
        e += d if d > 0 else -d
        d = gz - self.pre_z
        e += d if d > 0 else -d
        if e > self.ev_exc:
            self.ev_exc = e
        if m < cfg.offset_counts:
            self.ev_armed = True
            self.ev_quiet += 1
            if self.ev_quiet == cfg.split_dip_samples:
                self.ev_dip = idx - self.ev_quiet + 1  # a dip long enough to end a spasm
            if self.ev_quiet >= cfg.quiet_samples and (
                e <= cfg.hold_counts
                or e * 100 <= cfg.hold_return_pct * self.ev_exc
                or idx - self.ev_start >= cfg.hold_max_samples
            ):
                # Quiet, and either back near the starting posture or held away too
                # long to be a tonic phase: the event is over.
                self._finish(idx - self.ev_quiet + 1, gx, gy, gz)
                return False
        else:
            self.ev_quiet = 0
            if m > self.ev_on and self.ev_armed:
                self.ev_peaks += 1
                self.ev_armed = False
        if idx - self.ev_start >= cfg.max_event_samples:
            # Cap long movement (handling, rocking) so records keep flowing.
            self._finish(idx + 1, gx, gy, gz)
            return False
        return True

    def _classify(self, end, gx, gy, gz, cut):
        """Class of the running event if it ended at sample ``end`` with gravity (gx, gy, gz).

        Returns (cls, dur_ms, tilt_mg, exc_mg, peak_mg).
        """
        cfg = self.cfg
        dur_ms = (end - self.ev_start) * 1000 // cfg.rate_hz
        d = gx - self.pre_x
        tilt = d if d > 0 else -d
        d = gy - self.pre_y
        tilt += d if d > 0 else -d
        d = gz - self.pre_z
        tilt += d if d > 0 else -d
        tilt_mg = cfg.counts_to_mg(tilt)
        exc_mg = cfg.counts_to_mg(self.ev_exc)
        peak_mg = cfg.counts_to_mg(self.ev_peak)
        if cut:
            cls = wire.CLS_MOVEMENT
        elif dur_ms < cfg.jerk_max_ms:
            cls = wire.CLS_JERK
        elif (
            self.ev_start >= cfg.settle_samples
            and dur_ms <= cfg.spasm_max_ms
            and tilt_mg <= cfg.spasm_max_tilt_mg
            and tilt_mg * 100 <= cfg.spasm_max_return_pct * exc_mg
            and exc_mg >= cfg.spasm_min_excursion_mg
            and self.ev_peaks <= cfg.spasm_max_peaks
            and self.ev_peak * 10 >= cfg.spasm_min_prominence_x10 * self.ev_bg
            and exc_mg * 100 >= cfg.spasm_min_exc_pct * peak_mg
            and peak_mg <= cfg.spasm_max_peak_mg
            and self.ev_peak * (end - self.ev_start) * 10
            >= cfg.spasm_min_crest_x10 * self.ev_energy
        ):
            cls = wire.CLS_SPASM_LIKE
        else:
            cls = wire.CLS_MOVEMENT
        return cls, dur_ms, tilt_mg, exc_mg, peak_mg

    def _finish(self, end, gx, gy, gz, cut=False):
        cfg = self.cfg
        self.active = False
        cls, dur_ms, tilt_mg, exc_mg, peak_mg = self._classify(end, gx, gy, gz, cut)
        energy_mgs = cfg.counts_to_mg(self.ev_energy) // cfg.rate_hz
        still = (self.ev_start - self.last_active_end) // cfg.rate_hz
        self.last_active_end = end
        self.sum_events += 1
        if cls == wire.CLS_SPASM_LIKE:
            self.sum_spasm += 1
        if peak_mg > self.sum_peak:
            self.sum_peak = peak_mg
        self._emit((
            wire.KIND_EVENT, self.t_ms(self.ev_start), cls, self.ev_state,
            self.ev_peaks, dur_ms, peak_mg, energy_mgs, tilt_mg, exc_mg,
            still if still < 255 else 255,
        ))

    def _second(self, sec_sum):
        cfg = self.cfg
        self.seconds += 1
        self.bg += (sec_sum // cfg.rate_hz - self.bg) >> cfg.bg_shift
        active = 256 if sec_sum > cfg.active_sum_counts else 0
        self.act_avg += (active - self.act_avg) >> _ACT_SHIFT
        if active:
            self.sum_active += 1
        self.sum_mag += sec_sum
        self.sum_left -= 1
        if self.sum_left == 0:
            period = cfg.summary_s
            mean_mg = cfg.counts_to_mg(self.sum_mag // (period * cfg.rate_hz))
            self._emit((
                wire.KIND_SUMMARY, self.t_ms(self.n_at_second()), period, self.sum_active,
                self.sum_events, self.sum_spasm, self.sum_peak, mean_mg, self.state(),
            ))
            self.sum_left = period
            self.sum_active = 0
            self.sum_events = 0
            self.sum_spasm = 0
            self.sum_peak = 0
            self.sum_mag = 0

    def n_at_second(self):
        return self.seconds * self.cfg.rate_hz

    def _emit(self, rec):
        if len(self.pending) >= self.cfg.max_pending:
            # Bounded RAM: drop the oldest and say so in the next status packet.
            self.pending.pop(0)
            self.dropped += 1
        self.pending.append(rec)

    def pop(self):
        """Return and clear the finished records (events and summaries), oldest first."""
        out = self.pending
        self.pending = []
        return out
