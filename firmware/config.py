"""Firmware configuration: one place for pins, rate, range, thresholds and names.

Runs on MicroPython and CPython. Thresholds are in physical units (milli-g, ms, s);
``DetectorConfig`` turns them into the integer counts and sample counts the detector
uses per sample, so the hot loop never converts units.
"""

# Identity and links
DEVICE_NAME = "spasmwatch"
SERVICE_UUID = "6e5f0001-8a1c-4b5e-9f3a-5057a5e0a7c1"

# Board wiring (reference build: see hardware/pins.json, kept equal by a test)
I2C_ID = 0
PIN_SDA = 5
PIN_SCL = 6
PIN_INT = 3
PIN_BATTERY_ADC = 1
BATTERY_DIVIDER = 2.0
I2C_FREQ = 400000
MPU_ADDR = 0x68

# Sampling
RATE_HZ = 50  # samples per second the detector runs at
RANGE_G = 4  # MPU6050 full scale: 2, 4, 8 or 16 g
FIFO_BATCH = 25  # samples per FIFO read (0.5 s at 50 Hz)

# Periodic packets
SUMMARY_S = 60  # activity summary period
STATUS_S = 10  # heartbeat period; the host's fault timeout is a multiple of this
RING_PACKETS = 256  # packets kept for resend after a link drop


def lsb_per_g(range_g):
    """MPU6050 sensitivity for a full-scale range in g (16384 LSB/g at 2 g)."""
    if range_g not in (2, 4, 8, 16):
        raise ValueError("range_g must be 2, 4, 8 or 16, not %r" % (range_g,))
    return 32768 // range_g


class DetectorConfig:
    """Detector thresholds in physical units plus their per-sample integer forms.

    Magnitudes are the L1 norm |x|+|y|+|z| of gravity-removed acceleration, in mg.
    """

    def __init__(
        self,
        rate_hz=RATE_HZ,
        range_g=RANGE_G,
        onset_mg=90,
        offset_mg=45,
        quiet_ms=400,
        gravity_tau_ms=320,
        jerk_max_ms=300,
        spasm_max_ms=4000,
        spasm_max_tilt_mg=260,
        spasm_min_excursion_mg=60,
        spasm_max_peaks=3,
        spasm_min_crest_x10=23,
        max_event_s=60,
        active_mg=15,
        summary_s=SUMMARY_S,
        max_pending=32,
    ):
        if not 10 <= rate_hz <= 1000:
            raise ValueError("rate_hz out of range: %r" % (rate_hz,))
        if offset_mg >= onset_mg:
            raise ValueError("offset_mg must be below onset_mg (hysteresis)")
        self.rate_hz = int(rate_hz)
        self.range_g = int(range_g)
        self.lsb_per_g = lsb_per_g(self.range_g)
        self.onset_mg = onset_mg
        self.offset_mg = offset_mg
        self.quiet_ms = quiet_ms
        self.gravity_tau_ms = gravity_tau_ms
        self.jerk_max_ms = jerk_max_ms
        self.spasm_max_ms = spasm_max_ms
        self.spasm_max_tilt_mg = spasm_max_tilt_mg
        self.spasm_min_excursion_mg = spasm_min_excursion_mg
        self.spasm_max_peaks = spasm_max_peaks
        # Crest factor = peak / mean magnitude over the event, x10. A spasm's sharp
        # phasic contraction followed by a quieter tonic phase gives a high crest;
        # fidgeting and rocking spread their energy evenly (low crest). Shape, not
        # amplitude: it does not depend on the assumed g of a spasm.
        self.spasm_min_crest_x10 = spasm_min_crest_x10
        self.max_event_s = max_event_s
        self.active_mg = active_mg
        self.summary_s = summary_s
        self.max_pending = max_pending

        # Integer forms used per sample
        self.onset_counts = self.mg_to_counts(onset_mg)
        self.offset_counts = self.mg_to_counts(offset_mg)
        self.quiet_samples = max(1, self.ms_to_samples(quiet_ms))
        self.max_event_samples = self.rate_hz * max_event_s
        # A displaced posture after a quiet spell keeps the event open (tonic phase)
        # until spasm_max_ms from onset.
        self.hold_counts = self.mg_to_counts(spasm_max_tilt_mg)
        self.hold_max_samples = self.ms_to_samples(spasm_max_ms)
        # Gravity is an exponential average with time constant 2**k samples: a shift,
        # not a multiply, per sample.
        tau = self.ms_to_samples(gravity_tau_ms)
        k = 1
        while (1 << (k + 1)) <= tau:
            k += 1
        self.gravity_shift = k
        # Per-second activity: mean L1 magnitude over a second above this is "active"
        self.active_sum_counts = self.mg_to_counts(active_mg) * self.rate_hz

    def mg_to_counts(self, mg):
        return (mg * self.lsb_per_g + 500) // 1000

    def counts_to_mg(self, counts):
        return (counts * 1000 + self.lsb_per_g // 2) // self.lsb_per_g

    def ms_to_samples(self, ms):
        return (ms * self.rate_hz + 500) // 1000
