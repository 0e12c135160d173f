"""Streaming movement-event detector: gravity removal, hysteresis, features, class.

MicroPython/CPython common subset, integer arithmetic only, O(1) memory. The per-sample
loop (``_run``) is compiled by MicroPython's viper emitter on the board and runs as plain
Python under CPython (same results: tests/test_parity.py); event start, classification
(``_classify``), records and the per-second work are ordinary methods it calls. A held
event's record ends when the posture is back (step 4 in docs/detector.md). Per sample:

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

import sys

from . import wire

if sys.implementation.name == "micropython":
    import micropython
    from micropython import const
else:
    # CPython runs the same per-sample code as plain Python: the decorator does nothing
    # and ptr16/ptr32 are views with viper's semantics (ptr16 loads zero-extend, hence
    # the sign fix in the loop; ptr32 is only used for non-negative values).
    def const(x):
        return x

    class micropython:  # type: ignore[no-redef]  # noqa: N801 - the module's stand-in
        @staticmethod
        def viper(f):
            return f

    def ptr16(buf):
        return memoryview(buf).cast("B").cast("H")

    def ptr32(arr):
        return arr


# Arousal state: activity average in 1/256 units, updated once a second.
_ACT_SHIFT = 7  # time constant 128 s
_ASLEEP_BELOW = 13  # < 5 % of seconds active
_SETTLING_BELOW = 64  # < 25 %
_STATE_WARMUP_S = 60

# Energy saturates here: a 32-bit machine word on the board (viper), same on the host.
_ENERGY_CAP = const(0x3FFFFFFF)

# Slots of Detector.ci: the config's per-sample integers (all >= 0).
_C_ON = const(0)
_C_OFF = const(1)
_C_RATE = const(2)
_C_QUIET = const(3)
_C_DIP = const(4)
_C_SPLIT_PCT = const(5)
_C_SPLIT_MIN = const(6)
_C_ENV_SHIFT = const(7)
_C_SPLIT_DONE = const(8)
_C_REL_PEAK = const(9)
_C_HOLD = const(10)
_C_HOLD_PCT = const(11)
_C_HOLD_MAX = const(12)
_C_MAX_EVENT = const(13)
_C_SLOTS = 14

# Slots of Detector.ev: the running event (all >= 0: ptr32 loads zero-extend on 64-bit).
_E_START = const(0)  # first sample
_E_PEAK = const(1)  # largest magnitude
_E_ENERGY = const(2)  # sum of magnitudes (saturating)
_E_PEAKS = const(3)  # peaks counted
_E_ARMED = const(4)  # dropped below offset since the last peak
_E_QUIET = const(5)  # samples below offset in a row
_E_EXC = const(6)  # largest gravity excursion from the onset posture
_E_ON = const(7)  # level a new peak must exceed
_E_ENV = const(8)  # peak envelope (onset split)
_E_DIP = const(9)  # first sample of a quiet dip of >= split_dip_ms, 0 = none
_E_BACK = const(10)  # 1 + first sample of this quiet spell back in posture, 0 = not back
_E_PEAK_AT = const(11)  # sample of the largest magnitude (detail: rise)
_E_EXC_AT = const(12)  # sample of the largest excursion (detail: hold)
# The gravity displacement at the largest excursion (detail: tilt direction). These may be
# negative: the loop only writes them (ptr32 stores the low 32 bits, array('i') reads them
# back signed); it never loads them.
_E_DX = const(13)
_E_DY = const(14)
_E_DZ = const(15)
_E_SLOTS = 16

# Bits of the detail record's "fails" field, one per spasm test (wire.FAIL_NAMES).
_F_WARMUP = const(0x001)
_F_LONG = const(0x002)
_F_TILT = const(0x004)
_F_NO_RETURN = const(0x008)
_F_SMALL_EXC = const(0x010)
_F_PEAKS = const(0x020)
_F_NOT_PROMINENT = const(0x040)
_F_IMPULSE = const(0x080)
_F_TOO_STRONG = const(0x100)
_F_FLAT = const(0x200)
_F_CUT = const(0x400)
_F_SHORT = const(0x800)

_CLS_SPASM = const(1)  # wire.CLS_SPASM_LIKE, as a constant the viper code can use


class Detector:
    """Feed int16 counts (x, y, z interleaved) with ``process``; drain records with ``pop``."""

    def __init__(self, cfg):
        from array import array

        if wire.CLS_SPASM_LIKE != _CLS_SPASM:
            raise ValueError("detector and wire disagree on the spasm_like class code")
        self.cfg = cfg
        self.k = cfg.gravity_shift
        self.n = 0  # samples processed since start
        self.gx = self.gy = self.gz = 0
        self.primed = False
        self.pending = []
        self.dropped = 0
        ci = [0] * _C_SLOTS
        ci[_C_ON] = cfg.onset_counts
        ci[_C_OFF] = cfg.offset_counts
        ci[_C_RATE] = cfg.rate_hz
        ci[_C_QUIET] = cfg.quiet_samples
        ci[_C_DIP] = cfg.split_dip_samples
        ci[_C_SPLIT_PCT] = cfg.split_ratio_pct
        ci[_C_SPLIT_MIN] = cfg.split_min_samples
        ci[_C_ENV_SHIFT] = cfg.split_env_shift
        ci[_C_SPLIT_DONE] = 1 if cfg.split_done else 0
        ci[_C_REL_PEAK] = cfg.rel_peak_pct
        ci[_C_HOLD] = cfg.hold_counts
        ci[_C_HOLD_PCT] = cfg.hold_return_pct
        ci[_C_HOLD_MAX] = cfg.hold_max_samples
        ci[_C_MAX_EVENT] = cfg.max_event_samples
        self.ci = array("i", ci)
        # event state
        self.active = False
        self.ev = array("i", [0] * _E_SLOTS)
        self.ev_state = wire.STATE_UNKNOWN
        self.ev_bg = 0
        self.ev_fails = 0  # spasm tests the last classified event failed (detail record)
        self.pre_x = self.pre_y = self.pre_z = 0  # gravity at onset (may be negative)
        self.last_active_end = 0
        # per-second activity
        self.sec_left = cfg.rate_hz
        self.sec_sum = 0
        self.seconds = 0
        self.act_avg = 0
        self.bg = 0  # background: mean magnitude per second, averaged over ~4 s
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
        """Run ``n`` samples from ``buf``: an ``array('h')`` (or a memoryview of one) of
        int16 counts, x, y, z interleaved."""
        if n <= 0:
            return
        if not self.primed:
            # Start the gravity estimate at the first sample, not at zero, so start-up
            # is not one huge "movement".
            k = self.k
            self.gx = buf[0] << k
            self.gy = buf[1] << k
            self.gz = buf[2] << k
            self.primed = True
        self._run(buf, n)
        self.n += n

    def _start(self, idx, gx, gy, gz):
        """An event starts at sample ``idx`` (Python side: arousal state, background)."""
        self.ev_state = self.state()
        self.ev_bg = self.bg
        self.pre_x = gx
        self.pre_y = gy
        self.pre_z = gz

    def _decide(self, end, gx, gy, gz, rec_end):
        """End the running event at ``end`` if it is spasm-like there; returns whether."""
        if self._classify(end, gx, gy, gz, False)[0] == wire.CLS_SPASM_LIKE:
            self._finish(end, gx, gy, gz, False, rec_end)
            return True
        return False

    # The per-sample loop. On the board it is compiled by the viper emitter to machine
    # code (integer locals in registers, ptr16/ptr32 memory access); under CPython it is
    # plain Python with the same results. Everything that is not per sample (event
    # start, classification, records, the per-second work) is a call back into Python.
    @micropython.viper
    def _run(self, buf, n: int):
        p = ptr16(buf)
        c = ptr32(self.ci)
        e = ptr32(self.ev)
        k = int(self.k)
        gx = int(self.gx)
        gy = int(self.gy)
        gz = int(self.gz)
        on = c[_C_ON]
        off = c[_C_OFF]
        sec_left = int(self.sec_left)
        sec_sum = int(self.sec_sum)
        idx = int(self.n)
        active = 0
        if self.active:
            active = 1
        pre_x = int(self.pre_x)
        pre_y = int(self.pre_y)
        pre_z = int(self.pre_z)
        i = 0
        end = 3 * n
        while i < end:
            # Quiet path (the per-sample budget): gravity, residual, L1 magnitude.
            v = p[i]
            dx = ((v ^ 0x8000) - 0x8000) - (gx >> k)
            gx += dx
            v = p[i + 1]
            dy = ((v ^ 0x8000) - 0x8000) - (gy >> k)
            gy += dy
            v = p[i + 2]
            dz = ((v ^ 0x8000) - 0x8000) - (gz >> k)
            gz += dz
            if dx < 0:
                dx = 0 - dx
            if dy < 0:
                dy = 0 - dy
            if dz < 0:
                dz = 0 - dz
            m = dx + dy + dz
            sec_sum += m
            if active or m > on:
                ax = gx >> k
                ay = gy >> k
                az = gz >> k
                if active:
                    env = e[_E_ENV]
                    split = c[_C_SPLIT_PCT]
                    if (
                        split
                        and m * 100 > split * env
                        and env > on
                        and idx - e[_E_START] >= c[_C_SPLIT_MIN]
                    ):
                        # Onset split: a sharp onset well above the recent level of an
                        # ongoing movement (env > onset: still moving, not a quiet tonic
                        # hold) is a new movement, e.g. a spasm during wake fidgeting.
                        # The part before is cut (always `movement`); the new part is
                        # classified on its own.
                        self._finish(idx - e[_E_QUIET], ax, ay, az, True)
                        active = 0
                    else:
                        if m > env:
                            e[_E_ENV] = m
                        else:
                            e[_E_ENV] = env - (env >> c[_C_ENV_SHIFT])
                        dip = e[_E_DIP]
                        if dip and m > on:
                            # Completion split: a new onset after a quiet dip of at least
                            # split_dip_ms, and what came before is already a complete
                            # spasm-shaped movement (returned to posture): end it at the
                            # dip instead of merging it with what follows. Once per dip.
                            e[_E_DIP] = 0
                            if c[_C_SPLIT_DONE] and self._decide(dip, ax, ay, az, dip):
                                active = 0
                if not active:
                    active = 1
                    e[_E_START] = idx
                    e[_E_PEAK] = m
                    e[_E_ENERGY] = 0
                    e[_E_PEAKS] = 1
                    e[_E_ARMED] = 0
                    e[_E_QUIET] = 0
                    e[_E_EXC] = 0
                    e[_E_ON] = on
                    e[_E_ENV] = m
                    e[_E_DIP] = 0
                    e[_E_BACK] = 0
                    e[_E_PEAK_AT] = idx
                    e[_E_EXC_AT] = idx
                    e[_E_DX] = 0
                    e[_E_DY] = 0
                    e[_E_DZ] = 0
                    pre_x = ax
                    pre_y = ay
                    pre_z = az
                    self._start(idx, ax, ay, az)
                energy = e[_E_ENERGY]
                if energy < _ENERGY_CAP:
                    e[_E_ENERGY] = energy + m
                if m > e[_E_PEAK]:
                    e[_E_PEAK] = m
                    e[_E_PEAK_AT] = idx
                    # A new peak counts only when it reaches rel_peak_pct of the largest
                    # so far: noise, the relaxation phase and ringing re-cross the fixed
                    # onset level, but they are much weaker than the phasic contraction.
                    lvl = m * c[_C_REL_PEAK] // 100
                    if lvl > on:
                        e[_E_ON] = lvl
                # Excursion of the gravity vector from the onset posture (L1).
                d = ax - pre_x
                if d < 0:
                    d = 0 - d
                x = d
                d = ay - pre_y
                if d < 0:
                    d = 0 - d
                x += d
                d = az - pre_z
                if d < 0:
                    d = 0 - d
                x += d
                exc = e[_E_EXC]
                if x > exc:
                    exc = x
                    e[_E_EXC] = x
                    e[_E_EXC_AT] = idx
                    e[_E_DX] = ax - pre_x
                    e[_E_DY] = ay - pre_y
                    e[_E_DZ] = az - pre_z
                if m < off:
                    e[_E_ARMED] = 1
                    quiet = e[_E_QUIET] + 1
                    e[_E_QUIET] = quiet
                    if quiet == c[_C_DIP]:
                        e[_E_DIP] = idx - quiet + 1  # a dip long enough to end a spasm
                    back = e[_E_BACK]
                    if x <= c[_C_HOLD] or x * 100 <= c[_C_HOLD_PCT] * exc:
                        if back == 0:
                            back = idx + 1
                            e[_E_BACK] = back
                    elif back:
                        back = 0
                        e[_E_BACK] = 0
                    if quiet >= c[_C_QUIET]:
                        # The active part ends where the quiet spell began: the class is
                        # judged on it. The movement ends when the posture is back too
                        # (after a tonic hold and a slow relaxation below the offset
                        # level): that is the end the record reports.
                        qs = idx - quiet + 1
                        if back or idx - e[_E_START] >= c[_C_HOLD_MAX]:
                            # Quiet, and either back near the starting posture or held
                            # away too long to be a tonic phase: the event is over.
                            if back - 1 > qs:
                                qs_back = back - 1
                            else:
                                qs_back = qs
                            self._finish(qs, ax, ay, az, False, qs_back)
                            active = 0
                else:
                    e[_E_BACK] = 0
                    e[_E_QUIET] = 0
                    if m > e[_E_ON] and e[_E_ARMED]:
                        e[_E_PEAKS] += 1
                        e[_E_ARMED] = 0
                if active and idx - e[_E_START] >= c[_C_MAX_EVENT]:
                    # Cap long movement (handling, rocking) so records keep flowing.
                    self._finish(idx + 1, ax, ay, az)
                    active = 0
            i += 3
            idx += 1
            sec_left -= 1
            if sec_left == 0:
                self._second(sec_sum)
                sec_left = c[_C_RATE]
                sec_sum = 0
        self.gx = gx
        self.gy = gy
        self.gz = gz
        self.active = active != 0
        self.sec_left = sec_left
        self.sec_sum = sec_sum

    def _classify(self, end, gx, gy, gz, cut):
        """Class of the running event if it ended at sample ``end`` with gravity (gx, gy, gz).

        Returns (cls, dur_ms, tilt_mg, exc_mg, peak_mg).
        """
        cfg = self.cfg
        dur_ms = (end - self.ev[_E_START]) * 1000 // cfg.rate_hz
        d = gx - self.pre_x
        tilt = d if d > 0 else -d
        d = gy - self.pre_y
        tilt += d if d > 0 else -d
        d = gz - self.pre_z
        tilt += d if d > 0 else -d
        tilt_mg = cfg.counts_to_mg(tilt)
        exc_mg = cfg.counts_to_mg(self.ev[_E_EXC])
        peak_mg = cfg.counts_to_mg(self.ev[_E_PEAK])
        fails = self._fails(end, cut, dur_ms, tilt_mg, exc_mg, peak_mg)
        if cut:
            cls = wire.CLS_MOVEMENT
        elif dur_ms < cfg.jerk_max_ms:
            cls = wire.CLS_JERK
        elif fails == 0:
            cls = wire.CLS_SPASM_LIKE
        else:
            cls = wire.CLS_MOVEMENT
        self.ev_fails = fails
        return cls, dur_ms, tilt_mg, exc_mg, peak_mg

    def _fails(self, end, cut, dur_ms, tilt_mg, exc_mg, peak_mg):
        """Bit mask of the spasm tests the running event fails (0: spasm-like), one bit
        per test of docs/detector.md, in the order of wire.FAIL_NAMES."""
        cfg = self.cfg
        ev = self.ev
        f = 0
        if cut:
            f |= _F_CUT
        if dur_ms < cfg.jerk_max_ms:
            f |= _F_SHORT
        if ev[_E_START] < cfg.settle_samples:
            f |= _F_WARMUP
        if dur_ms > cfg.spasm_max_ms:
            f |= _F_LONG
        if tilt_mg > cfg.spasm_max_tilt_mg:
            f |= _F_TILT
        if tilt_mg * 100 > cfg.spasm_max_return_pct * exc_mg:
            f |= _F_NO_RETURN
        if exc_mg < cfg.spasm_min_excursion_mg:
            f |= _F_SMALL_EXC
        if ev[_E_PEAKS] > cfg.spasm_max_peaks:
            f |= _F_PEAKS
        if ev[_E_PEAK] * 10 < cfg.spasm_min_prominence_x10 * self.ev_bg:
            f |= _F_NOT_PROMINENT
        if exc_mg * 100 < cfg.spasm_min_exc_pct * peak_mg:
            f |= _F_IMPULSE
        if peak_mg > cfg.spasm_max_peak_mg:
            f |= _F_TOO_STRONG
        if ev[_E_PEAK] * (end - ev[_E_START]) * 10 < cfg.spasm_min_crest_x10 * ev[_E_ENERGY]:
            f |= _F_FLAT
        return f

    def _detail(self, t_ms):
        """The detail record of the running event (wire KIND_DETAIL), sent before it."""
        ev = self.ev
        dx = ev[_E_DX]
        dy = ev[_E_DY]
        dz = ev[_E_DZ]
        big = dx if dx > 0 else -dx
        if dy > big or -dy > big:
            big = dy if dy > 0 else -dy
        if dz > big or -dz > big:
            big = dz if dz > 0 else -dz
        if big:
            # Scaled so the largest component is +-127: a direction, integer only.
            dx = dx * 127 // big
            dy = dy * 127 // big
            dz = dz * 127 // big
        r = self.cfg.rate_hz
        rise = (ev[_E_PEAK_AT] - ev[_E_START]) * 100 // r
        hold = (ev[_E_EXC_AT] - ev[_E_START]) * 50 // r
        return (
            wire.KIND_DETAIL, t_ms, dx, dy, dz, rise if rise < 255 else 255,
            hold if hold < 255 else 255, self.ev_fails,
        )

    def _finish(self, end, gx, gy, gz, cut=False, rec_end=0):
        """Emit the running event: classified as if it ended at ``end`` (the active part);
        the record's duration runs to ``rec_end`` when that is later (posture back)."""
        cfg = self.cfg
        self.active = False
        cls, dur_ms, tilt_mg, exc_mg, peak_mg = self._classify(end, gx, gy, gz, cut)
        if rec_end > end:
            end = rec_end
            dur_ms = (end - self.ev[_E_START]) * 1000 // cfg.rate_hz
        energy_mgs = cfg.counts_to_mg(self.ev[_E_ENERGY]) // cfg.rate_hz
        still = (self.ev[_E_START] - self.last_active_end) // cfg.rate_hz
        self.last_active_end = end
        self.sum_events += 1
        if cls == wire.CLS_SPASM_LIKE:
            self.sum_spasm += 1
        if peak_mg > self.sum_peak:
            self.sum_peak = peak_mg
        t_ms = self.t_ms(self.ev[_E_START])
        if cfg.send_detail:
            self._emit(self._detail(t_ms))
        self._emit((
            wire.KIND_EVENT, t_ms, cls, self.ev_state,
            self.ev[_E_PEAKS], dur_ms, peak_mg, energy_mgs, tilt_mg, exc_mg,
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
