"""Trunk kinematics of a lying infant: posture, gravity in the sensor frame, breathing, heartbeat.

Sensor frame (as the firmware assumes; board on the chest): +X toward the head, +Y to the
baby's right, +Z out of the chest -- right-handed (X x Y = Z), so it is the chip's own frame
with no sign flips. An accelerometer reports specific force, so at rest it reads "up": supine
(0, 0, +1) g, prone (0, 0, -1) g, lying on the left side (left side down, "up" is the baby's
right) (0, +1, 0) g, on the right side (0, -1, 0) g, and a head-up incline of alpha moves
sin(alpha) g into +X.

Orientation is parametrised by four angles (radians), composed world -> sensor as

    incline  about world Y  (mattress / car-seat tilt, head up positive)
    roll     about body X   (posture: 0 supine, +pi/2 left side down, -pi/2 right side down,
                             pi prone; positive roll lifts the baby's right side)
    flex     about body Y   (trunk flexion positive = chest/head curling toward the front)
    yaw      about body Z   (twist; only matters during handling)

so that specific force = R_yaw^T R_flex^T R_roll^T R_incline^T (0, 0, 1). Movement primitives
add to these angles and add linear acceleration (g, body frame) on top; :class:`BodyTimeline`
accumulates them for a whole trace with vectorised numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEG = np.pi / 180.0

#: Resting posture -> (roll, incline) in degrees.
POSTURES: dict[str, tuple[float, float]] = {
    "supine": (0.0, 0.0),
    "prone": (180.0, 0.0),
    "left": (90.0, 0.0),  # left side down: up = +Y (baby's right)
    "right": (-90.0, 0.0),  # right side down: up = -Y
    "inclined": (0.0, 20.0),
}
#: Accepted aliases; "side" resolves to left or right at random (deterministic per seed).
POSTURE_ALIASES = ("side",)

#: Default head-up incline for the "inclined" posture is drawn from this range (deg).
INCLINE_RANGE_DEG = (10.0, 30.0)


def resolve_posture(name: str, rng: np.random.Generator) -> tuple[str, float, float]:
    """Return (resolved name, roll rad, incline rad) for a posture name or alias."""
    if name == "side":
        name = "left" if rng.random() < 0.5 else "right"
    if name not in POSTURES:
        raise ValueError(f"unknown posture {name!r}; use one of {sorted(POSTURES)} or 'side'")
    roll, incline = POSTURES[name]
    if name == "inclined":
        incline = float(rng.uniform(*INCLINE_RANGE_DEG))
    return name, roll * DEG, incline * DEG


def specific_force(
    roll: np.ndarray, flex: np.ndarray, yaw: np.ndarray, incline: float = 0.0
) -> np.ndarray:
    """Gravity reaction (the 1 g "up" vector) expressed in the sensor frame, shape (n, 3)."""
    # up in the inclined-mattress frame (rotation about world Y by -incline lifts +X).
    ux, uz = np.sin(incline), np.cos(incline)
    # roll about body X: (x, y, z) -> (x, z*sin(r), z*cos(r))  [y is 0 before the roll];
    # r = +90 deg (left side down) puts "up" on +Y, the baby's right.
    sr, cr = np.sin(roll), np.cos(roll)
    x1 = np.full_like(roll, ux)
    y1 = uz * sr
    z1 = uz * cr
    # flexion about body Y: positive flexion moves the up-vector toward +X when supine.
    sf, cf = np.sin(flex), np.cos(flex)
    x2 = x1 * cf + z1 * sf
    z2 = -x1 * sf + z1 * cf
    # yaw about body Z.
    sy, cy = np.sin(yaw), np.cos(yaw)
    x3 = x2 * cy + y1 * sy
    y3 = -x2 * sy + y1 * cy
    return np.stack([x3, y3, z2], axis=1)


def min_jerk(u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-jerk step 0 -> 1 on u in [0, 1]: (s, ds/du, d2s/du2).

    Human/infant reaching and postural movements are close to minimum-jerk; it also gives a
    smooth biphasic (accelerate, decelerate) acceleration profile with no step at the ends.
    """
    u = np.clip(u, 0.0, 1.0)
    s = u**3 * (10.0 - 15.0 * u + 6.0 * u**2)
    ds = 30.0 * u**2 * (1.0 - u) ** 2
    dds = 60.0 * u * (1.0 - u) * (1.0 - 2.0 * u)
    return s, ds, dds


#: max |d2s/du2| of :func:`min_jerk` (at u = (3 - sqrt 3)/6).
MIN_JERK_PEAK_ACC = 10.0 / np.sqrt(3.0)


def biphasic_pulse(u: np.ndarray) -> np.ndarray:
    """Zero-mean biphasic pulse on u in [0, 1], peak |value| 1 (velocity returns to zero)."""
    u = np.clip(u, 0.0, 1.0)
    return 2.0 * np.sin(np.pi * u) ** 2 * np.cos(np.pi * u) / 0.7698003589195009


def smooth_noise(
    n: int, rate_hz: float, corr_s: float, rng: np.random.Generator, size: int = 1
) -> np.ndarray:
    """Smooth zero-mean unit-variance-ish random signal(s), shape (n, size).

    Random knots every ``corr_s`` seconds joined by cosine interpolation: cheap, vectorised and
    C1-smooth, good enough for drifting breathing rates, amplitude envelopes and handling motion.
    """
    n_knots = int(np.ceil(n / (rate_hz * corr_s))) + 2
    knots = rng.normal(0.0, 1.0, size=(n_knots, size))
    pos = np.arange(n) / (rate_hz * corr_s)
    i = pos.astype(np.int64)
    w = (1.0 - np.cos(np.pi * (pos - i))) / 2.0
    return knots[i] * (1.0 - w)[:, None] + knots[i + 1] * w[:, None]


@dataclass
class Motion:
    """A movement primitive on its own local clock: angle deltas (rad) and linear acc (g)."""

    flex: np.ndarray
    roll: np.ndarray
    yaw: np.ndarray
    lin: np.ndarray  # (n, 3), body frame, g

    @classmethod
    def zeros(cls, n: int) -> Motion:
        return cls(np.zeros(n), np.zeros(n), np.zeros(n), np.zeros((n, 3)))


@dataclass
class BodyTimeline:
    """Accumulates posture and movements for one trace on a uniform clock."""

    rate_hz: float
    n: int
    roll0: float
    incline: float
    flex: np.ndarray = field(init=False)
    roll: np.ndarray = field(init=False)
    yaw: np.ndarray = field(init=False)
    lin: np.ndarray = field(init=False)
    _posture_changes: list[tuple[int, np.ndarray, float]] = field(init=False)

    def __post_init__(self) -> None:
        self.flex = np.zeros(self.n)
        self.roll = np.zeros(self.n)
        self.yaw = np.zeros(self.n)
        self.lin = np.zeros((self.n, 3))
        self._posture_changes = []

    @property
    def t(self) -> np.ndarray:
        return np.arange(self.n) / self.rate_hz

    def index(self, t_s: float) -> int:
        return int(round(t_s * self.rate_hz))

    def local_time(self, t0: float, dur: float) -> tuple[int, np.ndarray]:
        """(first index, local times since t0) of the samples in [t0, t0 + dur) inside the trace."""
        i0 = max(0, int(np.ceil(t0 * self.rate_hz - 1e-9)))
        i1 = min(self.n, int(np.ceil((t0 + dur) * self.rate_hz - 1e-9)))
        if i1 <= i0:
            return i0, np.zeros(0)
        return i0, np.arange(i0, i1) / self.rate_hz - t0

    def add(self, i0: int, m: Motion) -> None:
        """Add a motion whose first sample lands on index ``i0`` (clipped to the trace)."""
        k = min(len(m.flex), self.n - i0)
        if k <= 0:
            return
        sl = slice(i0, i0 + k)
        self.flex[sl] += m.flex[:k]
        self.roll[sl] += m.roll[:k]
        self.yaw[sl] += m.yaw[:k]
        self.lin[sl] += m.lin[:k]

    def change_posture(self, i0: int, roll_path: np.ndarray, new_roll: float) -> None:
        """From sample i0 the absolute roll follows ``roll_path`` and then stays at ``new_roll``.

        Changes must be added in chronological order (the scenario planner does this), so each
        one simply overrides the resting roll from its start onward.
        """
        if self._posture_changes and i0 < self._posture_changes[-1][0]:
            raise ValueError("posture changes must be added in chronological order")
        self._posture_changes.append((i0, roll_path, new_roll))

    def resting_roll(self) -> np.ndarray:
        base = np.full(self.n, self.roll0)
        for i0, path, new in self._posture_changes:
            if i0 >= self.n:
                break
            k = min(len(path), self.n - i0)
            base[i0 : i0 + k] = path[:k]
            base[i0 + k :] = new
        return base

    def true_acceleration(self) -> np.ndarray:
        """Specific force in the sensor frame, (n, 3) g: rotated gravity + linear acceleration."""
        roll = self.resting_roll() + self.roll
        return specific_force(roll, self.flex, self.yaw, self.incline) + self.lin


# --------------------------------------------------------------------------------------------
# Physiological background: breathing and heartbeat
# --------------------------------------------------------------------------------------------

#: Breathing rate (breaths/min) centre and spread per sleep state, and irregularity.
#: Infant rates 30-60 /min (clinical reference ranges); quiet sleep is slow and regular,
#: active sleep and wake faster and irregular.
BREATHING_BY_STATE: dict[str, tuple[float, float, float]] = {
    "quiet-sleep": (34.0, 3.0, 0.10),
    "active-sleep": (44.0, 5.0, 0.30),
    "settling": (40.0, 4.0, 0.20),
    "wake": (50.0, 6.0, 0.35),
}


def breathing(
    t: np.ndarray, state_code: np.ndarray, rng: np.random.Generator, amp_scale: float = 1.0
) -> Motion:
    """Chest-wall motion from breathing over the whole trace.

    ``state_code`` indexes into the keys of :data:`BREATHING_BY_STATE` per sample. Amplitudes
    are ASSUMPTIONS: ~0.1-0.5 deg of chest tilt and 1-5 mg of linear acceleration (a 2-4 mm
    chest excursion at 0.5-1 Hz gives (2 pi f)^2 x ~ 2-16 mg).
    """
    n = len(t)
    rate_hz = 1.0 / (t[1] - t[0]) if n > 1 else 1.0
    states = list(BREATHING_BY_STATE.values())
    centre = np.array([s[0] for s in states])[state_code]
    spread = np.array([s[1] for s in states])[state_code]
    irreg = np.array([s[2] for s in states])[state_code]
    # The per-state rate is smoothed so a state change does not step the breathing frequency.
    drift = smooth_noise(n, rate_hz, 20.0, rng)[:, 0]
    jitter = smooth_noise(n, rate_hz, 2.0, rng)[:, 0]
    bpm = centre + spread * drift + 8.0 * irreg * jitter
    bpm = np.clip(_smooth(bpm, int(rate_hz * 5.0)), 25.0, 70.0)
    phase = 2.0 * np.pi * np.cumsum(bpm / 60.0) / rate_hz
    # Irregular depth: slow envelope, deeper in wake; occasional sighs come from the spikes.
    env = np.exp(0.25 * smooth_noise(n, rate_hz, 8.0, rng)[:, 0] + 0.4 * irreg * jitter)
    env = env * amp_scale
    wave = np.sin(phase)
    m = Motion.zeros(n)
    tilt = float(rng.uniform(0.15, 0.45)) * DEG
    m.flex = tilt * env * wave
    m.roll = 0.3 * tilt * env * np.sin(phase + 0.6)
    lin_amp = float(rng.uniform(0.001, 0.004))
    # Acceleration is the second derivative of a sinusoidal displacement -> phase-shifted by pi.
    m.lin[:, 2] = -lin_amp * env * wave
    m.lin[:, 0] = -0.3 * lin_amp * env * np.sin(phase + 0.3)
    return m


def heartbeat(t: np.ndarray, rng: np.random.Generator, bpm: float | None = None) -> np.ndarray:
    """Ballistocardiogram-like trunk recoil, (n, 3) g. ASSUMPTION: ~0.3-1 mg, below sensor noise.

    Infant heart rate ~100-160 /min; each beat is a short biphasic recoil along the body axis.
    """
    n = len(t)
    if n < 2:
        return np.zeros((n, 3))
    rate_hz = 1.0 / (t[1] - t[0])
    hr = (bpm if bpm is not None else float(rng.uniform(110.0, 150.0))) / 60.0
    hr_t = hr * (1.0 + 0.04 * smooth_noise(n, rate_hz, 5.0, rng)[:, 0])
    phase = np.cumsum(hr_t) / rate_hz
    u = (phase % 1.0) / 0.15  # recoil occupies the first 15 % of each beat (~100 ms)
    pulse = np.where(u < 1.0, biphasic_pulse(u), 0.0)
    amp = float(rng.uniform(0.0003, 0.001))
    out = np.zeros((n, 3))
    out[:, 0] = amp * pulse
    out[:, 2] = 0.4 * amp * pulse
    return out


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return x
    k = np.ones(width) / width
    return np.convolve(np.pad(x, (width // 2, width - 1 - width // 2), mode="edge"), k, "valid")
