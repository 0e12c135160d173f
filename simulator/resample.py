"""Resample irregular, gappy sensor traces onto the uniform grid the firmware runs at.

Pipeline (per stretch of data between long gaps, called a *segment*):

1. Linear interpolation onto a uniform grid at the source's median rate. This absorbs
   timestamp jitter and bridges short gaps (<= ``max_gap_s``).
2. When down-sampling: a zero-phase windowed-sinc (Kaiser) low-pass, applied with
   odd-reflection padding so that segment ends produce no ringing or spikes. The pass band
   ends at 70 % and the stop band (>= 60 dB) starts at 100 % of the target Nyquist
   frequency, so nothing above the target Nyquist can alias back into the signal.
3. Linear interpolation from that grid onto the target grid. When up-sampling there is
   no filtering: the output is plain linear interpolation of the samples, which adds no
   content above the source Nyquist but does not reconstruct it either.

Long gaps (> ``max_gap_s``) are filled by holding the last output value before the gap
(what a still sensor would report) and are listed in ``Resampled.gaps``.
Cost is O(n * taps) with a fixed number of taps per rate ratio, all in numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .traceio import Trace, median_interval

#: Fraction of the target Nyquist frequency where the anti-alias pass band ends.
PASSBAND_EDGE = 0.7
#: Stop-band attenuation of the anti-alias filter (dB).
STOPBAND_DB = 60.0


@dataclass
class Resampled:
    """Output of :func:`resample`.

    ``t`` (m,) uniform grid starting at the first input timestamp; ``x`` (m, k) float64
    (or (m,) if the input was 1-D); ``gaps`` the ``(start, end)`` times of input gaps longer
    than ``max_gap_s``, which were filled by holding the value before them.
    """

    t: np.ndarray
    x: np.ndarray
    gaps: list[tuple[float, float]]
    rate_hz: float = 0.0
    source_rate_hz: float = 0.0


def lowpass_taps(cutoff_hz: float, transition_hz: float, fs_hz: float) -> np.ndarray:
    """Odd-length, symmetric (zero-phase when centred) Kaiser-windowed sinc low-pass.

    ``cutoff_hz`` is the -6 dB point, the transition band is ``transition_hz`` wide and
    centred on it; taps sum to exactly 1 in exact arithmetic (unit DC gain).
    """
    # Kaiser's design formulas (Oppenheim & Schafer, 7.6).
    a = STOPBAND_DB
    beta = 0.1102 * (a - 8.7)
    width = 2.0 * math.pi * transition_hz / fs_hz
    n = int(math.ceil((a - 7.95) / (2.285 * width))) + 1
    n += 1 - n % 2  # odd length, so the centre tap sits on a sample: no half-sample delay
    m = np.arange(n) - (n - 1) / 2
    fc = cutoff_hz / fs_hz
    h = 2.0 * fc * np.sinc(2.0 * fc * m) * np.kaiser(n, beta)
    return h / h.sum()


def _filter_edges_padded(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Zero-phase FIR of the columns of ``x`` (n, k), padded so the ends stay clean.

    The padding is an odd (point) reflection about each end sample, ``2*x[0] - x[i]``,
    which continues the local trend: a constant stays exactly constant and a slope stays
    a slope, so segment boundaries (trace start/end, gap edges) neither ring like a
    zero-padded step nor flatten like edge-value padding (which bends a 1 Hz sine by
    ~1.5 % at the ends). At the very end sample the output equals the input sample.
    """
    half = len(h) // 2
    # np.pad reflects repeatedly when the segment is shorter than the padding, which
    # still continues a linear trend exactly; a single sample can only be repeated.
    out = np.empty_like(x)
    for j in range(x.shape[1]):
        if x.shape[0] > 1:
            padded = np.pad(x[:, j], half, mode="reflect", reflect_type="odd")
        else:
            padded = np.pad(x[:, j], half, mode="edge")
        out[:, j] = np.convolve(padded, h, mode="valid")
    return out


def resample(t: np.ndarray, x: np.ndarray, rate_hz: float, *, max_gap_s: float = 0.5) -> Resampled:
    """Resample samples ``x`` taken at times ``t`` onto a uniform ``rate_hz`` grid.

    ``t`` (n,) strictly increasing seconds, ``x`` (n, k) or (n,). The output grid is
    ``t[0] + i / rate_hz`` up to and including ``t[-1]``. Raises ``ValueError`` for bad
    input (non-increasing or non-finite ``t``, non-finite ``x``, fewer than 2 samples,
    ``max_gap_s`` shorter than two source sample intervals).
    """
    t = np.asarray(t, dtype=np.float64)
    x_in = np.asarray(x, dtype=np.float64)
    one_d = x_in.ndim == 1
    x2 = x_in[:, None] if one_d else x_in
    if t.ndim != 1 or x2.ndim != 2 or x2.shape[0] != len(t):
        raise ValueError(f"t must be (n,) and x (n,) or (n, k); got {t.shape}, {x_in.shape}")
    if len(t) < 2:
        raise ValueError("need at least 2 samples")
    if not (rate_hz > 0 and math.isfinite(rate_hz)):
        raise ValueError(f"rate_hz must be positive, got {rate_hz}")
    if not (np.isfinite(t).all() and np.isfinite(x2).all()):
        raise ValueError("t and x must be finite")
    dt = np.diff(t)
    if not np.all(dt > 0):
        raise ValueError("t must be strictly increasing")
    src_dt = median_interval(t)
    if not max_gap_s >= 2 * src_dt:
        raise ValueError(
            f"max_gap_s={max_gap_s} is shorter than two source sample intervals ({src_dt:.3g} s)"
        )

    # Segments: runs of samples with no step longer than max_gap_s.
    gap_after = np.flatnonzero(dt > max_gap_s)
    seg_first = np.concatenate(([0], gap_after + 1))
    seg_last = np.concatenate((gap_after, [len(t) - 1]))
    gaps = [(float(t[i]), float(t[i + 1])) for i in gap_after]

    n_out = int(math.floor((t[-1] - t[0]) * rate_hz + 1e-9)) + 1
    t_out = t[0] + np.arange(n_out) / rate_hz
    x_out = np.empty((n_out, x2.shape[1]))

    # Filter only when the target cannot represent everything the source can
    # (small slack so that e.g. 100 Hz -> 100 Hz with jittery timestamps is not filtered).
    src_rate = 1.0 / src_dt
    taps = None
    if rate_hz < 0.999 * src_rate:
        nyq = rate_hz / 2.0
        taps = lowpass_taps(
            cutoff_hz=(1.0 + PASSBAND_EDGE) / 2.0 * nyq,
            transition_hz=(1.0 - PASSBAND_EDGE) * nyq,
            fs_hz=src_rate,
        )

    # Output index ranges per segment: from the segment's first sample up to (not
    # including) the next segment's first sample; np.interp clamps past the segment end,
    # which is exactly the "hold the last value" fill for the gap.
    bounds = np.searchsorted(t_out, t[seg_first], side="left")
    bounds = np.append(bounds, n_out)
    for s, (i0, i1) in enumerate(zip(seg_first, seg_last, strict=True)):
        o0, o1 = bounds[s], bounds[s + 1]
        if o0 >= o1:
            continue
        ts, xs = t[i0 : i1 + 1], x2[i0 : i1 + 1]
        if taps is not None:
            # Uniform grid at the source rate covering the segment (last point >= end).
            n_grid = int(math.ceil((ts[-1] - ts[0]) / src_dt - 1e-9)) + 1
            grid = ts[0] + np.arange(n_grid) * src_dt
            # Subtracting the first value makes a constant input exactly zero, which the
            # filter maps to exactly zero: constants survive bit-for-bit.
            ref = xs[0]
            xg = np.column_stack(
                [np.interp(grid, ts, xs[:, j] - ref[j]) for j in range(xs.shape[1])]
            )
            yg = _filter_edges_padded(xg, taps) + ref
            ts, xs = grid, yg
        tq = t_out[o0:o1]
        for j in range(xs.shape[1]):
            x_out[o0:o1, j] = np.interp(tq, ts, xs[:, j])

    return Resampled(
        t=t_out,
        x=x_out[:, 0] if one_d else x_out,
        gaps=gaps,
        rate_hz=float(rate_hz),
        source_rate_hz=src_rate,
    )


def resample_trace(
    trace: Trace, rate_hz: float, *, max_gap_s: float = 0.5
) -> tuple[Trace, list[tuple[float, float]]]:
    """Resample a whole :class:`Trace` (acc and gyro together); returns it and its gaps.

    The result's ``meta`` is a copy of the input's with ``rate_hz`` set to the new rate.
    """
    parts = [trace.acc] if trace.gyro is None else [trace.acc, trace.gyro]
    r = resample(trace.t, np.hstack(parts), rate_hz, max_gap_s=max_gap_s)
    meta = dict(trace.meta)
    meta["rate_hz"] = f"{rate_hz:g}"
    out = Trace(
        t=r.t,
        acc=np.ascontiguousarray(r.x[:, :3]),
        gyro=None if trace.gyro is None else np.ascontiguousarray(r.x[:, 3:6]),
        meta=meta,
        source=trace.source,
    )
    return out, r.gaps


class StreamResampler:
    """:func:`resample` for a trace that arrives in chunks, in constant memory.

    Feed consecutive chunks of ``(t, x)`` (``x`` (n, k)); each call returns the output
    rows that are final so far, and ``finish()`` returns the rest. The output is that of
    :func:`resample` on the whole trace (same grid, filter, padding and gap hold; the
    tests compare them) given the same ``src_dt``: a stream cannot see the whole trace,
    so the source interval is fixed up front (the caller takes the median of the first
    chunk). Memory: the filter's taps plus a chunk, whatever the trace's length.
    """

    def __init__(self, rate_hz: float, t_first: float, src_dt: float, *,
                 max_gap_s: float = 0.5) -> None:
        if not (rate_hz > 0 and math.isfinite(rate_hz)):
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        if not (src_dt > 0 and math.isfinite(src_dt)):
            raise ValueError(f"src_dt must be positive, got {src_dt}")
        if not max_gap_s >= 2 * src_dt:
            raise ValueError(
                f"max_gap_s={max_gap_s} is shorter than two source sample intervals "
                f"({src_dt:.3g} s)"
            )
        self.rate_hz = float(rate_hz)
        self.t0 = float(t_first)
        self.src_dt = float(src_dt)
        self.max_gap_s = max_gap_s
        self.taps: np.ndarray | None = None
        if rate_hz < 0.999 / src_dt:
            nyq = rate_hz / 2.0
            self.taps = lowpass_taps(
                cutoff_hz=(1.0 + PASSBAND_EDGE) / 2.0 * nyq,
                transition_hz=(1.0 - PASSBAND_EDGE) * nyq,
                fs_hz=1.0 / src_dt,
            )
        self.half = 0 if self.taps is None else len(self.taps) // 2
        self.gaps: list[tuple[float, float]] = []  # all gaps found so far
        self.n_out = 0  # outputs returned so far
        self._last_t: float | None = None
        self._seg: _Segment | None = None

    def _t_out(self, i0: int, i1: int) -> np.ndarray:
        return self.t0 + np.arange(i0, i1) / self.rate_hz

    def feed(self, t: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Add the next chunk (strictly after the previous one); return final outputs."""
        t = np.asarray(t, dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or t.ndim != 1 or x.shape[0] != len(t):
            raise ValueError(f"t must be (n,) and x (n, k); got {t.shape}, {x.shape}")
        if not len(t):
            return np.empty((0, x.shape[1]))
        if not (np.isfinite(t).all() and np.isfinite(x).all()):
            raise ValueError("t and x must be finite")
        prev = self._last_t
        steps = np.diff(t) if prev is None else np.diff(t, prepend=prev)
        if not np.all(steps > 0):
            raise ValueError("t must be strictly increasing")
        out: list[np.ndarray] = []
        # Split the chunk at gaps: each part belongs to one segment.
        cuts = (np.flatnonzero(steps > self.max_gap_s) + (1 if prev is None else 0)).tolist()
        bounds = [0, *cuts, len(t)]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            if a == b:
                continue
            if a in cuts and self._seg is not None and self._last_t is not None:
                # A gap before t[a]: the running segment ends; outputs up to t[a] hold it.
                self.gaps.append((self._last_t, float(t[a])))
                out.append(self._close(float(t[a])))
            if self._seg is None:
                self._seg = _Segment(self, float(t[a]), x[a])
            out.append(self._seg.add(t[a:b], x[a:b]))
            self._last_t = float(t[b - 1])
        return np.concatenate(out) if out else np.empty((0, x.shape[1]))

    def finish(self) -> np.ndarray:
        """The outputs after the last chunk (the trace's end: hold, end padding)."""
        if self._seg is None or self._last_t is None:
            raise ValueError("need at least 2 samples")
        n_total = int(math.floor((self._last_t - self.t0) * self.rate_hz + 1e-9)) + 1
        return self._close(None, n_total)

    def _close(self, t_next: float | None, n_total: int = 0) -> np.ndarray:
        seg = self._seg
        assert seg is not None
        self._seg = None
        if t_next is None:
            end = n_total
        else:
            # Outputs before the next segment's first sample hold this segment's end.
            end = int(math.ceil((t_next - self.t0) * self.rate_hz - 1e-9))
            while end > self.n_out and self._t_out(end - 1, end)[0] >= t_next:
                end -= 1
            while self._t_out(end, end + 1)[0] < t_next:
                end += 1
        return seg.close(end)


class _Segment:
    """One stretch of samples without a long gap, resampled as it arrives."""

    def __init__(self, rs: StreamResampler, t_first: float, x_first: np.ndarray) -> None:
        self.rs = rs
        self.t_first = t_first
        self.ref = x_first.copy() if rs.taps is not None else np.zeros_like(x_first)
        k = len(x_first)
        self.src_t = np.empty(0)
        self.src_x = np.empty((0, k))
        self.t_last = t_first
        # Filtered path: grid values xg (from grid index xg_lo; negative = start padding),
        # filtered values yg (from grid index yg_lo), next grid / filtered index to make.
        self.xg = np.empty((0, k))
        self.xg_lo = 0
        self.g_next = 0
        self.padded = False
        self.yg = np.empty((0, k))
        self.yg_lo = 0
        self.f_next = 0

    def _grid(self, j0: int, j1: int) -> np.ndarray:
        return self.t_first + np.arange(j0, j1) * self.rs.src_dt

    def _interp(self, tq: np.ndarray, ts: np.ndarray, xs: np.ndarray) -> np.ndarray:
        return np.column_stack([np.interp(tq, ts, xs[:, j]) for j in range(xs.shape[1])])

    def add(self, t: np.ndarray, x: np.ndarray) -> np.ndarray:
        self.src_t = np.concatenate((self.src_t, t))
        self.src_x = np.concatenate((self.src_x, x - self.ref))
        self.t_last = float(t[-1])
        if self.rs.taps is None:
            return self._emit_direct(None)
        # Grid points up to the last sample (their interpolation bracket is known).
        j1 = int(math.floor((self.t_last - self.t_first) / self.rs.src_dt)) + 1
        while j1 > self.g_next and self._grid(j1 - 1, j1)[0] > self.t_last:
            j1 -= 1
        self._make_grid(j1)
        half = self.rs.half
        if not self.padded and self.g_next >= half + 1:
            # Odd reflection about the first grid value (as _filter_edges_padded does).
            x0 = self.xg[0]
            self.xg = np.concatenate((2 * x0 - self.xg[half:0:-1], self.xg))
            self.xg_lo = -half
            self.padded = True
        if self.padded:
            self._filter(self.g_next - half)
        return self._emit_filtered(None)

    def _make_grid(self, j1: int) -> None:
        if j1 <= self.g_next:
            return
        new = self._interp(self._grid(self.g_next, j1), self.src_t, self.src_x)
        self.xg = np.concatenate((self.xg, new))
        self.g_next = j1
        # Keep the source sample before the next grid point (its left bracket).
        keep = max(0, int(np.searchsorted(self.src_t, self._grid(j1, j1 + 1)[0])) - 1)
        self.src_t = self.src_t[keep:]
        self.src_x = self.src_x[keep:]

    def _filter(self, f1: int) -> None:
        """Filtered values for grid indices [f_next, f1) from the padded grid values."""
        if f1 <= self.f_next:
            return
        half = self.rs.half
        taps = self.rs.taps
        assert taps is not None
        a = self.f_next - half - self.xg_lo
        b = f1 + half - self.xg_lo
        window = self.xg[a:b]
        new = np.column_stack(
            [np.convolve(window[:, j], taps, mode="valid") for j in range(window.shape[1])]
        ) + self.ref
        self.yg = np.concatenate((self.yg, new))
        self.f_next = f1
        # The grid values needed next start half a filter before f_next.
        drop = (self.f_next - half) - self.xg_lo
        if drop > 0:
            self.xg = self.xg[drop:]
            self.xg_lo += drop

    def _emit_filtered(self, end: int | None) -> np.ndarray:
        rs = self.rs
        if self.f_next == 0:
            return np.empty((0, self.xg.shape[1]))
        last_grid = self._grid(self.f_next - 1, self.f_next)[0]
        if end is None:
            end = int(math.floor((last_grid - rs.t0) * rs.rate_hz + 1e-9)) + 1
            while end > rs.n_out and rs._t_out(end - 1, end)[0] > last_grid:
                end -= 1
        if end <= rs.n_out:
            return np.empty((0, self.yg.shape[1]))
        tq = rs._t_out(rs.n_out, end)
        out = self._interp(tq, self._grid(self.yg_lo, self.f_next), self.yg)
        rs.n_out = end
        # Keep the filtered value before the next output (its left bracket).
        nxt = rs._t_out(end, end + 1)[0]
        j = int(math.floor((nxt - self.t_first) / rs.src_dt)) - 1
        drop = min(max(0, j - self.yg_lo), self.f_next - 1 - self.yg_lo)
        if drop > 0:
            self.yg = self.yg[drop:]
            self.yg_lo += drop
        return out

    def _emit_direct(self, end: int | None) -> np.ndarray:
        rs = self.rs
        if end is None:
            end = int(math.floor((self.t_last - rs.t0) * rs.rate_hz + 1e-9)) + 1
            while end > rs.n_out and rs._t_out(end - 1, end)[0] > self.t_last:
                end -= 1
        if end <= rs.n_out:
            return np.empty((0, self.src_x.shape[1]))
        tq = rs._t_out(rs.n_out, end)
        out = self._interp(tq, self.src_t, self.src_x)
        rs.n_out = end
        keep = max(0, int(np.searchsorted(self.src_t, rs._t_out(end, end + 1)[0])) - 1)
        self.src_t = self.src_t[keep:]
        self.src_x = self.src_x[keep:]
        return out

    def close(self, end: int) -> np.ndarray:
        """The segment is complete: outputs up to (not including) index ``end``."""
        rs = self.rs
        if rs.taps is None:
            return self._emit_direct(end)
        # The grid covers the segment (last point >= its end); past the last sample the
        # interpolation holds it, as np.interp does in resample().
        n_grid = int(math.ceil((self.t_last - self.t_first) / rs.src_dt - 1e-9)) + 1
        self._make_grid(n_grid)
        half = rs.half
        if not self.padded:
            # Short segment: filter it whole, exactly as resample() does.
            self.yg = _filter_edges_padded(self.xg, rs.taps) + self.ref
            self.yg_lo = 0
            self.f_next = n_grid
        else:
            last = self.xg[-1]
            tail = 2 * last - self.xg[-2 : -2 - half : -1]
            self.xg = np.concatenate((self.xg, tail))
            self._filter(n_grid)
        return self._emit_filtered(end)
