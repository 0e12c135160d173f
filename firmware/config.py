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
RING_PACKETS = 1024  # packets kept for resend after a link drop (>= 60 min of a busy night)


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
        gravity_tau_ms=160,
        jerk_max_ms=300,
        spasm_max_ms=4000,
        spasm_max_tilt_mg=260,
        spasm_max_return_pct=70,
        hold_min_mg=40,
        hold_return_pct=50,
        spasm_min_excursion_mg=60,
        spasm_max_peaks=3,
        spasm_min_crest_x10=18,
        rel_peak_pct=50,
        spasm_min_prominence_x10=110,
        spasm_min_exc_pct=25,
        spasm_max_peak_mg=2500,
        split_ratio_pct=150,
        split_min_ms=600,
        split_env_ms=4000,
        split_done=True,
        split_dip_ms=200,
        max_event_s=60,
        active_mg=15,
        summary_s=SUMMARY_S,
        max_pending=32,
        send_detail=True,
    ):
        if not 10 <= rate_hz <= 1000:
            raise ValueError("rate_hz out of range: %r" % (rate_hz,))
        if offset_mg >= onset_mg:
            raise ValueError("offset_mg must be below onset_mg (hysteresis)")
        if split_ratio_pct and split_ratio_pct <= 100:
            raise ValueError("split_ratio_pct must be 0 (off) or above 100")
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
        # A spasm flexes (or extends) the trunk and relaxes back: the net tilt at the
        # end is a small part of the largest excursion. A posture shift keeps it.
        self.spasm_max_return_pct = spasm_max_return_pct
        # The tonic hold ends once the posture is back within hold_return_pct of the
        # largest excursion: looser than spasm_max_return_pct would cut every slowly
        # relaxing spasm exactly at the classification boundary.
        self.hold_return_pct = hold_return_pct
        self.spasm_min_excursion_mg = spasm_min_excursion_mg
        self.spasm_max_peaks = spasm_max_peaks
        # Crest factor = peak / mean magnitude over the event, x10. A spasm's sharp
        # phasic contraction followed by a quieter tonic phase gives a high crest;
        # fidgeting and rocking spread their energy evenly (low crest). Shape, not
        # amplitude: it does not depend on the assumed g of a spasm.
        self.spasm_min_crest_x10 = spasm_min_crest_x10
        # Peaks are counted relative to the event's largest one (see detector.py).
        self.rel_peak_pct = rel_peak_pct
        # Prominence = peak / background (mean magnitude of the preceding ~4 s), x10.
        # A spasm is a sudden contraction that stands out from what went before; one
        # fidget in a bout of wake fidgeting looks like its neighbours. A ratio.
        self.spasm_min_prominence_x10 = spasm_min_prominence_x10
        # Largest orientation excursion as a % of the acceleration peak: a spasm flexes
        # the trunk and holds it (tonic phase); a hypnic jerk is an impulse that hardly
        # rotates it. A ratio of one event's own figures, not an assumed g.
        self.spasm_min_exc_pct = spasm_min_exc_pct
        # Plausibility ceiling: an infant's trunk rotating about its hips does not reach
        # multi-g (simulated spasms at spasm_g 1.5 peak at up to ~2.2 g L1); impacts,
        # knocks and adult jumps (3.7-4 g) do. An amplitude assumption (docs/detector.md).
        self.spasm_max_peak_mg = spasm_max_peak_mg
        # Onset split: inside an event that has run split_min_ms, a magnitude above
        # split_ratio_pct of the event's recent level (peak envelope decaying with time
        # constant split_env_ms) starts a new event: a sharp phasic onset inside ongoing
        # low-level movement (a spasm during wake fidgeting). The part before the split
        # is always `movement` (its end was not observed); the new part must pass every
        # spasm test on its own. 0 disables. A ratio: no assumed g.
        self.split_ratio_pct = split_ratio_pct
        self.split_min_ms = split_min_ms
        self.split_env_ms = split_env_ms
        # Completion split: when a new onset follows at least split_dip_ms of quiet and
        # the event so far already passes every spasm test (including the return to
        # posture), it ends there: a complete spasm followed by new movement.
        self.split_done = split_done
        self.split_dip_ms = split_dip_ms
        self.split_dip_samples = self.ms_to_samples(split_dip_ms)
        self.max_event_s = max_event_s
        self.active_mg = active_mg
        self.summary_s = summary_s
        self.max_pending = max_pending
        # Round 4: a detail record (wire KIND_DETAIL: direction of the tonic tilt, rise,
        # hold, failed spasm tests) right before each event, for the host's cluster
        # evidence. False: events only, as rounds 1-3 (hosts older than round 4).
        self.send_detail = send_detail

        # Integer forms used per sample
        self.onset_counts = self.mg_to_counts(onset_mg)
        self.offset_counts = self.mg_to_counts(offset_mg)
        self.quiet_samples = max(1, self.ms_to_samples(quiet_ms))
        self.max_event_samples = self.rate_hz * max_event_s
        self.split_min_samples = self.ms_to_samples(split_min_ms)
        # The split envelope decays by 1/2**s per sample (time constant 2**s samples).
        tau = self.ms_to_samples(split_env_ms)
        s = 1
        while (1 << (s + 1)) <= tau:
            s += 1
        self.split_env_shift = s
        # A posture still displaced after a quiet spell (more than hold_min_mg and more
        # than hold_return_pct of the largest excursion) keeps the event open:
        # a tonic phase, to be followed by relaxation. Until spasm_max_ms from onset.
        self.hold_counts = self.mg_to_counts(hold_min_mg)
        self.hold_max_samples = self.ms_to_samples(spasm_max_ms)
        # Gravity is an exponential average with time constant 2**k samples: a shift,
        # not a multiply, per sample.
        tau = self.ms_to_samples(gravity_tau_ms)
        k = 1
        while (1 << (k + 1)) <= tau:
            k += 1
        self.gravity_shift = k
        # Until the gravity estimate has settled (several time constants), an event's
        # shape and tilt are not trustworthy: it can only be a jerk or a movement.
        # Background activity (mean magnitude per second) is averaged over 2**bg_shift
        # seconds; the prominence test needs it settled too (4 time constants).
        self.bg_shift = 2
        self.settle_samples = max(6 << k, (4 << self.bg_shift) * self.rate_hz)
        # Per-second activity: mean L1 magnitude over a second above this is "active"
        self.active_sum_counts = self.mg_to_counts(active_mg) * self.rate_hz

    def mg_to_counts(self, mg):
        return (mg * self.lsb_per_g + 500) // 1000

    def counts_to_mg(self, counts):
        return (counts * 1000 + self.lsb_per_g // 2) // self.lsb_per_g

    def ms_to_samples(self, ms):
        return (ms * self.rate_hz + 500) // 1000


# --- Board firmware (firmware/app.py and its drivers) ------------------------------
# Everything the board needs beyond the detector; the detector's keys are above.
MPU_WHOAMI_OK = (0x68, 0x70, 0x72)  # MPU-6050; 0x70/0x72: common clones (docs/firmware.md)
MPU_GYRO = False  # gyro off: it costs ~3.6 mA and the detector does not use it
MPU_MAX_READ = 64  # samples per FIFO burst at most (bounded read buffer)
MPU_REINIT_MS = 2000  # wait between re-init attempts after an I2C error
I2C_SOFT = False  # bit-banged SoftI2C instead of the hardware controller
PIN_CHARGING = -1  # charger STAT pin (active low), -1 = not wired
BATTERY_LOW_MV = 3450  # below this the status packet says battery low
BATTERY_SAMPLES = 8  # ADC readings averaged per battery measurement
SNIPPET_S = 30  # raw samples kept for GET_SNIPPET
SNIPPET_PER_LOOP = 25  # snippet packets sent per loop iteration (paces the link)
RESEND_PER_LOOP = 32  # resent packets per loop iteration
AUTH_KEY_FILE = "spasmwatch.key"  # pairing key (hex), written by `spasmwatch pair`
AUTH_KEY = b""  # fallback key when there is no key file; empty = unpaired
BOOT_FILE = "spasmwatch.boot"  # boot counter: half of every authentication nonce
INJECT_IDLE_MS = 10  # loop sleep while injecting (samples arrive over serial)
FIFO_BATCH_EVENT = 5  # samples per FIFO read while an event is open (0.1 s at 50 Hz)


# --- Per-device overrides (written by `spasmwatch flash`, see docs/flashing.md) -----
# On the board, device_config.py next to main.py may replace any UPPER_CASE name above
# (not RATE_HZ/RANGE_G/SUMMARY_S: DetectorConfig's defaults are bound already). Only on
# MicroPython, so a stray device_config.py never changes the host's view of the config.
def _apply_device_config():
    import sys

    if sys.implementation.name != "micropython":
        return
    try:
        import device_config  # type: ignore[import-not-found]
    except ImportError:
        return
    g = globals()
    for name in dir(device_config):
        if name.isupper() and name in g:
            g[name] = getattr(device_config, name)


_apply_device_config()


# --- First boot on a real board (docs/firmware.md, "Strict virtual board") ----------
WDT_MS = 8000  # machine.WDT timeout: the loop feeds it every <= ~1 s; a hang resets
REANCHOR_SLACK_MS = 20  # sample clock: lateness beyond one period + this re-anchors
MPU_WHOAMI_FIFO512 = (0x70, 0x71, 0x73)  # MPU-6500/9250 clones: 512-byte FIFO
BLE_RX_BUFFER = 64  # control characteristic's write buffer (default 20: truncates)
FIRMWARE_VERSION = (0, 1, 0)  # reported by INFO (spasmwatch doctor)
REPLY_RETRY_MS = 3000  # a RESEND's final reply is retried this long when the link is busy
SERIAL_STALL_MS = 100  # a USB serial write this slow: the port is open but not read
SERIAL_BACKOFF_MS = 5000  # then packets wait in the ring this long before trying again
