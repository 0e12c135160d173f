"""MPU6050 accelerometer model: turn true trunk acceleration (g) into what the chip reports.

The chain follows the signal path of the part (InvenSense PS-MPU-6000A-00 rev 3.4):

    true specific force (g)
      -> per-axis sensitivity error (datasheet initial tolerance +-3 %)
      -> per-axis zero-g offset (datasheet +-50 mg X/Y, +-80 mg Z)
      -> white noise, 400 ug/sqrt(Hz) (datasheet "power spectral density")
      -> analogue full-scale saturation
      -> digital low-pass filter (DLPF, bandwidths 260/184/94/44/21/10/5 Hz)
      -> 16-bit two's-complement quantisation, saturating at -32768 / 32767

``apply_sensor`` returns g values that lie exactly on the quantisation grid of the chosen range,
so a detector fed from a simulated trace sees the same resolution it would see from hardware.
"""

from __future__ import annotations

import numpy as np

#: Sensitivity (LSB per g) for each full-scale range (AFS_SEL 0..3).
LSB_PER_G: dict[int, int] = {2: 16384, 4: 8192, 8: 4096, 16: 2048}

#: Accelerometer DLPF bandwidths of the MPU6050 (DLPF_CFG 0..6), Hz.
DLPF_BANDWIDTHS_HZ: tuple[float, ...] = (260.0, 184.0, 94.0, 44.0, 21.0, 10.0, 5.0)

#: Datasheet accelerometer noise power spectral density, g/sqrt(Hz).
NOISE_DENSITY_G_PER_RTHZ = 400e-6

#: Datasheet zero-g output tolerance (X, Y, Z), g.
ZERO_G_TOLERANCE_G = np.array([0.050, 0.050, 0.080])

#: Datasheet initial sensitivity tolerance (fraction).
SENSITIVITY_TOLERANCE = 0.03

INT16_MIN = -32768
INT16_MAX = 32767


def _lsb_per_g(range_g: int) -> int:
    try:
        return LSB_PER_G[int(range_g)]
    except (KeyError, ValueError):
        raise ValueError(f"range_g must be one of {sorted(LSB_PER_G)}, got {range_g!r}") from None


def g_to_counts(acc_g: np.ndarray, range_g: int) -> np.ndarray:
    """Convert g to raw int16 register counts: round to nearest, saturate like the chip."""
    lsb = _lsb_per_g(range_g)
    scaled = np.rint(np.asarray(acc_g, dtype=np.float64) * lsb)
    return np.clip(scaled, INT16_MIN, INT16_MAX).astype(np.int16)


def counts_to_g(counts: np.ndarray, range_g: int) -> np.ndarray:
    """Convert raw int16 register counts back to g."""
    return np.asarray(counts, dtype=np.float64) / _lsb_per_g(range_g)


def default_bandwidth(rate_hz: float) -> float:
    """Widest DLPF setting that stays below Nyquist for the output data rate.

    This is how firmware would normally configure the part (DLPF_CFG chosen so the sample-rate
    divider does not alias); it also decides how much of the 400 ug/sqrt(Hz) noise gets through.
    """
    for bw in DLPF_BANDWIDTHS_HZ:
        if bw <= rate_hz / 2.0:
            return bw
    return DLPF_BANDWIDTHS_HZ[-1]


def lowpass_kernel(rate_hz: float, bandwidth_hz: float, max_taps: int = 129) -> np.ndarray | None:
    """Hann-windowed sinc FIR with unity DC gain, or ``None`` if the band is (nearly) full.

    The real DLPF is a small IIR with a few ms of group delay; a zero-phase FIR is used here
    because numpy has no vectorised IIR, and a few ms of delay is far below label resolution.
    """
    fc = bandwidth_hz / rate_hz  # cycles per sample
    if fc >= 0.45:
        return None
    # ~4 periods of the cut-off on each side keeps the transition band reasonable.
    half = int(min(max_taps // 2, max(2, np.ceil(2.0 / fc))))
    n = np.arange(-half, half + 1)
    h = 2.0 * fc * np.sinc(2.0 * fc * n) * np.hanning(2 * half + 3)[1:-1]
    return h / h.sum()


def _filter_columns(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    # Edge-pad so the first/last samples are not pulled toward zero by the convolution.
    half = len(kernel) // 2
    out = np.empty_like(x)
    for k in range(x.shape[1]):
        padded = np.pad(x[:, k], half, mode="edge")
        out[:, k] = np.convolve(padded, kernel, mode="valid")
    return out


def apply_sensor(
    acc_true_g: np.ndarray,
    rate_hz: float,
    range_g: int,
    rng: np.random.Generator,
    *,
    noise_scale: float = 1.0,
    bandwidth_hz: float | None = None,
    offset_scale: float = 1.0,
) -> np.ndarray:
    """Simulate the MPU6050 accelerometer reading of ``acc_true_g`` ((n, 3) specific force, g).

    ``noise_scale`` multiplies the datasheet noise density (to sweep worse boards / mounting
    vibration). ``bandwidth_hz`` is the DLPF bandwidth, default :func:`default_bandwidth`.
    ``offset_scale`` scales the zero-g offset draw (the offset is drawn with sigma = tolerance/3,
    clipped to the tolerance, i.e. a typical uncalibrated part). Returns (n, 3) float64 g values
    on the quantisation grid of ``range_g``, saturated at the int16 limits.
    """
    acc = np.asarray(acc_true_g, dtype=np.float64)
    if acc.ndim != 2 or acc.shape[1] != 3:
        raise ValueError(f"acc_true_g must have shape (n, 3), got {acc.shape}")
    if rate_hz <= 0:
        raise ValueError("rate_hz must be positive")
    lsb = _lsb_per_g(range_g)
    bw = default_bandwidth(rate_hz) if bandwidth_hz is None else float(bandwidth_hz)

    gain = 1.0 + rng.uniform(-SENSITIVITY_TOLERANCE, SENSITIVITY_TOLERANCE, size=3)
    offset = (
        np.clip(rng.normal(0.0, ZERO_G_TOLERANCE_G / 3.0), -ZERO_G_TOLERANCE_G, ZERO_G_TOLERANCE_G)
        * offset_scale
    )

    # White noise at the full sample-rate band, density 400 ug/sqrt(Hz); the DLPF below then
    # limits it to ~density * sqrt(bandwidth), as on the chip.
    sigma_white = NOISE_DENSITY_G_PER_RTHZ * np.sqrt(rate_hz / 2.0) * noise_scale
    x = acc * gain + offset + rng.normal(0.0, 1.0, size=acc.shape) * sigma_white

    full_scale = INT16_MAX / lsb
    x = np.clip(x, -full_scale - 1.0 / lsb, full_scale)  # ADC input saturation
    kernel = lowpass_kernel(rate_hz, bw)
    if kernel is not None:
        x = _filter_columns(x, kernel)
    return counts_to_g(g_to_counts(x, range_g), range_g)


# --------------------------------------------------------------------------------------------
# Fitting realism (round 3): a loosely fitted sensor and one that slides/rotates in the sack
# --------------------------------------------------------------------------------------------


def _resonance_kernel(rate_hz: float, f0_hz: float, zeta: float) -> np.ndarray:
    """Impulse response of base excitation through a spring-damper (absolute acceleration):

        H(s) = (2 zeta w s + w^2) / (s^2 + 2 zeta w s + w^2),  w = 2 pi f0

    discretised with the bilinear transform (pre-warped at f0) and truncated after ~8 time
    constants; unity DC gain, so gravity passes unchanged.
    """
    w = 2.0 * np.pi * f0_hz
    k = w / np.tan(w / (2.0 * rate_hz))  # pre-warped bilinear constant
    b = np.array([w * w + 2 * zeta * w * k, 2 * w * w, w * w - 2 * zeta * w * k])
    a = np.array([k * k + 2 * zeta * w * k + w * w, 2 * (w * w - k * k),
                  k * k - 2 * zeta * w * k + w * w])
    b, a = b / a[0], a / a[0]
    n = int(min(4096, max(8, np.ceil(8.0 / (zeta * w) * rate_hz))))
    h = np.zeros(n)
    x1 = x2 = y1 = y2 = 0.0
    for i in range(n):
        x0 = 1.0 if i == 0 else 0.0
        y0 = b[0] * x0 + b[1] * x1 + b[2] * x2 - a[1] * y1 - a[2] * y2
        h[i] = y0
        x2, x1, y2, y1 = x1, x0, y1, y0
    return h / h.sum()


def loose_fit(acc_g: np.ndarray, rate_hz: float, f0_hz: float, zeta: float) -> np.ndarray:
    """A loosely fitted sensor: the board sits on fabric that acts as a spring with
    resonance ``f0_hz`` and damping ratio ``zeta``. Movements ring at f0 and are amplified
    near it (by about 1/(2 zeta)). ASSUMPTION: f0 5-15 Hz, zeta 0.1-0.3 for a sensor in a
    pocket of a sleep sack (a lightly damped textile mount); no measurement was found.

    Causal (the ringing follows the movement). Frequencies above rate/2 cannot be
    represented: f0 is capped at 0.4 x rate.
    """
    acc = np.asarray(acc_g, dtype=np.float64)
    f0 = min(float(f0_hz), 0.4 * rate_hz)
    h = _resonance_kernel(rate_hz, f0, float(zeta))
    out = np.empty_like(acc)
    for c in range(acc.shape[1]):
        padded = np.concatenate([np.full(len(h) - 1, acc[0, c]), acc[:, c]])
        out[:, c] = np.convolve(padded, h, mode="valid")
    return out


def slide(
    acc_g: np.ndarray, rate_hz: float, *, angle_deg: float, axis: np.ndarray,
    start_s: float, dur_s: float,
) -> np.ndarray:
    """A sensor that slides or turns in the sack: its frame rotates by ``angle_deg`` about
    ``axis`` (sensor frame) between ``start_s`` and ``start_s + dur_s`` (minimum-jerk, i.e.
    a slow drift over minutes), and stays there. The detector must not read the slow
    rotation as a movement, and must still see movements in the rotated frame.
    """
    acc = np.asarray(acc_g, dtype=np.float64)
    n = len(acc)
    t = np.arange(n) / rate_hz
    u = np.clip((t - start_s) / max(dur_s, 1e-6), 0.0, 1.0)
    s = u**3 * (10.0 - 15.0 * u + 6.0 * u**2)
    phi = np.deg2rad(angle_deg) * s
    k = np.asarray(axis, dtype=np.float64)
    k = k / np.linalg.norm(k)
    # Rodrigues: the sensor rotates by +phi, so vectors rotate by -phi in its frame.
    c, sn = np.cos(-phi)[:, None], np.sin(-phi)[:, None]
    kxv = np.cross(k, acc)
    kdv = (acc @ k)[:, None]
    return acc * c + kxv * sn + k[None, :] * kdv * (1.0 - c)
