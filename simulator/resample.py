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
