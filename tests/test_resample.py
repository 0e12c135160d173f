"""Tests for anti-aliased, gap-aware resampling (spasmwatch.simulator.resample)."""

from __future__ import annotations

import numpy as np
import pytest

from spasmwatch.simulator.resample import Resampled, lowpass_taps, resample, resample_trace
from spasmwatch.simulator.traceio import Trace


def sine(f: float, fs: float, seconds: float = 20.0, phase: float = 0.3):
    t = np.arange(int(seconds * fs)) / fs
    return t, np.sin(2 * np.pi * f * t + phase)


def interior(r: Resampled, margin_s: float = 1.0) -> np.ndarray:
    return (r.t > r.t[0] + margin_s) & (r.t < r.t[-1] - margin_s)


def test_grid() -> None:
    t = 3.0 + np.arange(1000) / 200.0
    r = resample(t, np.zeros((1000, 2)), 50.0)
    assert r.t[0] == 3.0
    np.testing.assert_allclose(np.diff(r.t), 0.02, rtol=1e-9)
    assert r.t[-1] <= t[-1] and r.t[-1] > t[-1] - 0.02
    assert r.x.shape == (len(r.t), 2) and r.x.dtype == np.float64
    assert r.gaps == [] and r.rate_hz == 50.0
    assert r.source_rate_hz == pytest.approx(200.0)


def test_slow_sine_kept_in_amplitude_and_phase() -> None:
    t, x = sine(2.0, 200.0)
    r = resample(t, x, 50.0)
    ref = np.sin(2 * np.pi * 2.0 * r.t + 0.3)
    # < 2 % of the amplitude everywhere, ends included (no edge artefacts)
    assert np.max(np.abs(r.x - ref)) < 0.02
    m = interior(r)
    assert np.max(np.abs(r.x[m] - ref[m])) < 0.002  # zero phase: no delay in the middle


def test_fast_sine_is_not_aliased() -> None:
    # 40 Hz sampled at 200 Hz would fold to 10 Hz at 50 Hz; it must be suppressed >= 20 dB.
    t, x = sine(40.0, 200.0)
    r = resample(t, x, 50.0)
    m = interior(r)
    rms = np.sqrt(np.mean(r.x[m] ** 2))
    assert 20 * np.log10(rms / np.sqrt(0.5)) <= -20.0
    # a naive interpolation would have kept it at full amplitude
    naive = np.interp(r.t, t, x)
    assert np.sqrt(np.mean(naive[m] ** 2)) > 0.5


def test_filter_response() -> None:
    # pass band flat to 0.2 %, stop band at >= 55 dB, unit DC gain
    fs, nyq = 400.0, 25.0
    h = lowpass_taps(0.85 * nyq, 0.3 * nyq, fs)
    assert len(h) % 2 == 1
    np.testing.assert_allclose(h, h[::-1])
    assert h.sum() == pytest.approx(1.0, abs=1e-12)
    freqs = np.linspace(0, fs / 2, 2001)
    n = np.arange(len(h)) - len(h) // 2
    resp = np.abs(np.exp(-2j * np.pi * np.outer(freqs, n) / fs) @ h)
    assert np.max(np.abs(resp[freqs <= 0.7 * nyq] - 1)) < 2e-3
    assert np.max(resp[freqs >= nyq]) < 10 ** (-55 / 20)


def test_constant_stays_exactly_constant() -> None:
    for rate in (25.0, 100.0, 400.0):
        n = int(5 * rate)
        t = np.arange(n) / rate
        x = np.tile([0.013, -0.987, 0.1], (n, 1))
        r = resample(t, x, 50.0)
        assert np.all(r.x == x[0])


def test_constant_with_gaps_and_jitter_stays_exact() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(2000) / 200.0 + rng.uniform(-3e-4, 3e-4, 2000)
    keep = np.ones(2000, bool)
    keep[300:320] = False  # 0.1 s: bridged
    keep[900:1200] = False  # 1.5 s: held and reported
    r = resample(t[keep], np.full((keep.sum(), 3), 0.7), 50.0)
    assert np.all(r.x == 0.7)
    assert len(r.gaps) == 1


def test_no_spikes_at_ends_and_gap_edges() -> None:
    # Gravity on z plus a gentle 1.5 Hz wobble; the baby rolls during a 2 s dropout, so
    # the level jumps across the gap. Filtering across the step or past the ends with
    # zero padding would ring / dip far outside the signal's range.
    fs = 200.0
    t = np.arange(int(12 * fs)) / fs
    level = np.where(t < 6.0, 1.0, -1.0)
    x = level + 0.05 * np.sin(2 * np.pi * 1.5 * t)
    keep = (t < 5.0) | (t >= 7.0)
    r = resample(t[keep], x[keep], 50.0)
    assert r.gaps == [(pytest.approx(4.995), pytest.approx(7.0))]
    before = r.t <= 4.995
    after = r.t >= 7.0
    assert np.all(np.abs(r.x[before] - 1.0) <= 0.051)
    assert np.all(np.abs(r.x[after] + 1.0) <= 0.051)
    # inside the gap the last input value before it (t = 4.995) is held
    inside = ~before & ~after
    assert inside.sum() == 100
    assert np.ptp(r.x[inside]) == 0.0
    assert r.x[inside][0] == pytest.approx(x[t < 5.0][-1], abs=1e-9)


def test_gaps_reported_and_filled() -> None:
    fs = 100.0
    t = np.arange(1000) / fs
    keep = np.ones(1000, bool)
    keep[100:140] = False  # 0.41 s step: below max_gap_s, interpolated
    keep[500:600] = False  # 1.01 s step: a reported gap
    keep[800:870] = False  # 0.71 s step: a reported gap
    x = np.sin(2 * np.pi * 0.5 * t)
    r = resample(t[keep], x[keep], 50.0, max_gap_s=0.5)
    assert r.gaps == [
        (pytest.approx(4.99), pytest.approx(6.0)),
        (pytest.approx(7.99), pytest.approx(8.7)),
    ]
    # the short gap is bridged by a straight line between its edge samples
    short = (r.t > 1.0) & (r.t < 1.4)
    line = np.interp(r.t[short], [0.99, 1.40], [x[99], x[140]])
    np.testing.assert_allclose(r.x[short], line, atol=5e-3)
    # long gaps hold their last value; the output is finite and on the grid
    hold = (r.t > 5.0) & (r.t < 6.0)
    assert np.ptp(r.x[hold]) == 0.0
    assert r.x[hold][0] == pytest.approx(x[499], abs=5e-3)
    assert np.isfinite(r.x).all()
    # a larger threshold turns them into bridged gaps
    assert resample(t[keep], x[keep], 50.0, max_gap_s=2.0).gaps == []


@pytest.mark.parametrize("fs", [25.0, 50.0, 100.0, 400.0])
def test_source_rates(fs: float) -> None:
    t, x = sine(1.0, fs, seconds=10.0)
    x3 = np.column_stack([x, 2 * x, np.ones_like(x)])
    r = resample(t, x3, 50.0)
    assert len(r.t) == int(np.floor(t[-1] * 50 + 1e-9)) + 1
    ref = np.sin(2 * np.pi * 1.0 * r.t + 0.3)
    assert np.max(np.abs(r.x[:, 0] - ref)) < 0.01
    assert np.max(np.abs(r.x[:, 1] - 2 * ref)) < 0.02
    assert np.all(r.x[:, 2] == 1.0)


def test_upsampling_is_linear_interpolation() -> None:
    t, x = sine(2.0, 25.0)
    r = resample(t, x, 50.0)
    # every other output sample is an input sample, the others are midpoints
    np.testing.assert_allclose(r.x[::2], x, atol=1e-12)
    np.testing.assert_allclose(r.x[1::2], (x[:-1] + x[1:]) / 2, atol=1e-12)
    ref = np.sin(2 * np.pi * 2.0 * r.t + 0.3)
    assert np.max(np.abs(r.x - ref)) < 0.04  # linear interpolation error at 2 Hz / 25 Hz


def test_one_d_input_gives_one_d_output() -> None:
    t, x = sine(1.0, 100.0, seconds=3.0)
    r = resample(t, x, 50.0)
    assert r.x.shape == r.t.shape


def test_bad_input() -> None:
    t = np.arange(100) / 100.0
    with pytest.raises(ValueError):
        resample(t[::-1], np.zeros(100), 50.0)
    with pytest.raises(ValueError):
        resample(t, np.zeros(99), 50.0)
    with pytest.raises(ValueError):
        resample(t, np.full(100, np.nan), 50.0)
    with pytest.raises(ValueError):
        resample(t, np.zeros(100), 0.0)
    with pytest.raises(ValueError):
        resample(t, np.zeros(100), 50.0, max_gap_s=0.01)
    with pytest.raises(ValueError):
        resample(t[:1], np.zeros(1), 50.0)


def test_resample_trace_keeps_acc_and_gyro_apart() -> None:
    t = np.arange(1000) / 200.0
    acc = np.tile([0.0, 0.0, 1.0], (1000, 1))
    gyro = np.tile([5.0, -3.0, 0.0], (1000, 1))
    tr = Trace(t=t, acc=acc, gyro=gyro, meta={"rate_hz": "200", "posture": "prone"})
    out, gaps = resample_trace(tr, 50.0)
    assert gaps == []
    assert out.meta == {"rate_hz": "50", "posture": "prone"}
    assert out.acc.shape == (len(out.t), 3) and out.gyro is not None
    assert np.all(out.acc == [0.0, 0.0, 1.0]) and np.all(out.gyro == [5.0, -3.0, 0.0])
    out2, _ = resample_trace(Trace(t=t, acc=acc), 50.0)
    assert out2.gyro is None


@pytest.mark.parametrize("trial", range(12))
def test_stream_resampler_equals_resample_for_any_chunking(trial: int) -> None:
    # Same grid, filter, edge padding and gap hold: bit-identical output, whatever the
    # chunk sizes (down- and up-sampling, jittery timestamps, long gaps).
    from spasmwatch.simulator.resample import StreamResampler
    from spasmwatch.simulator.traceio import median_interval

    rng = np.random.default_rng(trial)
    src = float(rng.choice([30.0, 50.0, 100.0, 200.0]))
    dst = float(rng.choice([25.0, 50.0, 100.0]))
    n = int(rng.integers(50, 4000))
    dt = np.full(n - 1, 1 / src) * (1 + rng.uniform(-0.1, 0.1, n - 1) * (trial % 2))
    for _ in range(int(rng.integers(0, 4))):
        dt[rng.integers(0, n - 1)] += rng.uniform(0.6, 3.0)
    t = 100.0 + np.concatenate(([0.0], np.cumsum(dt)))
    x = rng.normal(size=(n, 3)).cumsum(axis=0)
    whole = resample(t, x, dst)
    rs = StreamResampler(dst, float(t[0]), median_interval(t))
    parts, i = [], 0
    while i < n:
        m = int(rng.integers(1, 700))
        parts.append(rs.feed(t[i : i + m], x[i : i + m]))
        i += m
    parts.append(rs.finish())
    got = np.concatenate(parts)
    assert got.shape == whole.x.shape
    assert np.array_equal(got, whole.x)
    assert rs.gaps == whole.gaps


def test_stream_resampler_refuses_time_going_back() -> None:
    from spasmwatch.simulator.resample import StreamResampler

    rs = StreamResampler(50.0, 0.0, 0.01)
    rs.feed(np.arange(10) * 0.01, np.zeros((10, 3)))
    with pytest.raises(ValueError, match="strictly increasing"):
        rs.feed(np.array([0.05]), np.zeros((1, 3)))
