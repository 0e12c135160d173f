"""MPU6050 sensor model: count conversion, quantisation grid, saturation, noise, bias, DLPF."""

from __future__ import annotations

import numpy as np
import pytest

from spasmwatch.simulator.sensor_model import (
    LSB_PER_G,
    NOISE_DENSITY_G_PER_RTHZ,
    apply_sensor,
    counts_to_g,
    default_bandwidth,
    g_to_counts,
)


def test_g_to_counts_rounds_and_saturates() -> None:
    acc = np.array([0.0, 0.4 / 16384, 0.6 / 16384, 1.0, -1.0, 2.5, -2.5, 1.99997])
    counts = g_to_counts(acc, 2)
    assert counts.dtype == np.int16
    assert counts.tolist() == [0, 0, 1, 16384, -16384, 32767, -32768, 32767]


@pytest.mark.parametrize("range_g", [2, 4, 8, 16])
def test_counts_round_trip(range_g: int) -> None:
    counts = np.array([-32768, -1, 0, 1, 12345, 32767], dtype=np.int16)
    back = g_to_counts(counts_to_g(counts, range_g), range_g)
    assert np.array_equal(back, counts)
    assert counts_to_g(np.array([LSB_PER_G[range_g]]), range_g)[0] == 1.0


def test_invalid_range_rejected() -> None:
    with pytest.raises(ValueError):
        g_to_counts(np.zeros(3), 3)


@pytest.mark.parametrize("range_g", [2, 4, 8, 16])
def test_output_on_quantisation_grid(range_g: int) -> None:
    rng = np.random.default_rng(1)
    acc = rng.normal(0.0, 0.5, size=(2000, 3)) + [0, 0, 1]
    out = apply_sensor(acc, 100.0, range_g, np.random.default_rng(2))
    scaled = out * LSB_PER_G[range_g]
    assert np.allclose(scaled, np.round(scaled), atol=1e-9)
    assert scaled.min() >= -32768 and scaled.max() <= 32767


def test_clipping_at_range() -> None:
    acc = np.zeros((400, 3))
    acc[100:200, 2] = 3.0
    acc[250:300, 0] = -3.0
    out = apply_sensor(acc, 100.0, 2, np.random.default_rng(0))
    assert out[:, 2].max() == 32767 / 16384
    assert out[:, 0].min() == -32768 / 16384
    # The same event at +-4 g is not clipped.
    out4 = apply_sensor(acc, 100.0, 4, np.random.default_rng(0))
    assert 2.8 < out4[:, 2].max() < 3.2


def test_noise_follows_datasheet_density_and_scale() -> None:
    acc = np.tile([0.0, 0.0, 1.0], (20000, 1))
    out = apply_sensor(acc, 100.0, 2, np.random.default_rng(3))
    sd = out.std(axis=0)
    expected = NOISE_DENSITY_G_PER_RTHZ * np.sqrt(default_bandwidth(100.0))  # ~2.7 mg
    assert np.all(sd > 0.7 * expected) and np.all(sd < 1.3 * expected)
    out3 = apply_sensor(acc, 100.0, 2, np.random.default_rng(3), noise_scale=3.0)
    assert np.all(out3.std(axis=0) > 2.5 * sd)


def test_offset_and_gain_within_datasheet_tolerance() -> None:
    acc = np.tile([0.0, 0.0, 1.0], (5000, 1))
    for seed in range(30):
        mean = apply_sensor(acc, 50.0, 4, np.random.default_rng(seed)).mean(axis=0)
        assert abs(mean[0]) <= 0.051 and abs(mean[1]) <= 0.051
        assert 1.0 - 0.03 - 0.081 <= mean[2] <= 1.0 + 0.03 + 0.081
    means = [
        apply_sensor(acc, 50.0, 4, np.random.default_rng(s)).mean(axis=0)[0] for s in range(10)
    ]
    assert np.std(means) > 0.003  # a per-part offset is actually drawn


def test_dlpf_attenuates_above_bandwidth() -> None:
    rate = 200.0
    t = np.arange(4000) / rate
    for f, lo, hi in ((1.0, 0.9, 1.1), (40.0, 0.0, 0.2)):
        acc = np.zeros((len(t), 3))
        acc[:, 0] = 0.5 * np.sin(2 * np.pi * f * t)
        out = apply_sensor(
            acc,
            rate,
            2,
            np.random.default_rng(0),
            noise_scale=0.0,
            bandwidth_hz=10.0,
            offset_scale=0.0,
        )
        amp = (out[200:-200, 0].max() - out[200:-200, 0].min()) / 2.0
        assert lo * 0.5 <= amp <= hi * 0.5, (f, amp)


def test_default_bandwidth_below_nyquist() -> None:
    for rate in (25.0, 50.0, 100.0, 200.0, 400.0):
        assert default_bandwidth(rate) <= rate / 2.0
    assert default_bandwidth(100.0) == 44.0
