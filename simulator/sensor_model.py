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
