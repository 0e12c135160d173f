"""MPU-6050 driver at register level over ``machine.I2C``: accelerometer via the FIFO.

API:
    MPU6050(i2c, addr=config.MPU_ADDR, rate_hz=config.RATE_HZ, range_g=config.RANGE_G,
            gyro=config.MPU_GYRO, max_read=config.MPU_MAX_READ, sleep_ms=hal.sleep_ms)
    .init() -> bool            # reset + configure; False (status says why) on failure
    .read(out) -> int          # samples written into ``out`` (array('h'), x,y,z
                               # interleaved, >= 3*max_read long); 0 when none or on error
    .ok                        # sensor configured and answering
    .whoami                    # last WHO_AM_I value read (-1 = no answer)
    .overflows, .i2c_errors    # counts since start
    .samples                   # samples read since start (for the host's rate check)
    .overflow_flag, .error_flag   # set on an event, cleared by take_flags()
    .take_flags() -> (overflow, i2c_error)   # report-and-clear for the status packet
    .last_error                # short text of the last failure

Init: PWR_MGMT_1 DEVICE_RESET, wait 100 ms; WHO_AM_I must be one of
config.MPU_WHOAMI_OK; clock source (PLL on gyro X when the gyro runs, else the
internal 8 MHz oscillator, gyros in standby); CONFIG DLPF (accel bandwidth <= rate/2,
which also makes the base rate 1 kHz); SMPLRT_DIV = 1000/rate - 1; ACCEL_CONFIG range;
INT_ENABLE FIFO_OFLOW_EN; FIFO_EN accel (+ gyro if enabled); then the FIFO reset in
the register map's order: USER_CTRL FIFO_EN = 0, FIFO_RESET (honoured only while FIFO_EN
is 0), FIFO_EN = 1. WHO_AM_I 0x70/0x71/0x73 (MPU-6500/9250 clones,
config.MPU_WHOAMI_FIFO512) have a 512-byte FIFO, the MPU-6050 1024 (``fifo_size``).

Read: FIFO_COUNT (2 bytes), INT_STATUS (FIFO_OFLOW bit 4, cleared by reading), then
one burst read of FIFO_R_W of whole samples into a preallocated buffer; big-endian
int16 are converted into ``out`` in place (no allocation per sample). An overflow
(INT_STATUS bit, or a count at the FIFO's size) means samples were lost and
the FIFO no longer starts on a sample boundary: the FIFO is reset, the overflow counted
and flagged, and the samples read in that call are dropped. An I2C error (OSError)
is caught, counted and flagged; the driver marks itself not ok and ``read`` re-runs
``init`` at most every config.MPU_REINIT_MS, so a loose wire heals by itself.
"""

from . import config, hal

SMPLRT_DIV = 0x19
CONFIG = 0x1A
GYRO_CONFIG = 0x1B
ACCEL_CONFIG = 0x1C
FIFO_EN = 0x23
INT_ENABLE = 0x38
INT_STATUS = 0x3A
USER_CTRL = 0x6A
PWR_MGMT_1 = 0x6B
PWR_MGMT_2 = 0x6C
FIFO_COUNTH = 0x72
FIFO_R_W = 0x74
WHO_AM_I = 0x75

DEVICE_RESET = 0x80
CLK_INTERNAL = 0x00
CLK_PLL_XGYRO = 0x01
STBY_GYRO = 0x07  # PWR_MGMT_2: STBY_XG | STBY_YG | STBY_ZG
FIFO_ACCEL = 0x08
FIFO_GYRO = 0x70  # XG | YG | ZG
UC_FIFO_EN = 0x40
UC_FIFO_RESET = 0x04
INT_FIFO_OFLOW = 0x10
FIFO_SIZE = 1024

# DLPF_CFG -> accelerometer bandwidth (Hz), register map rev 4.2 table for CONFIG
_DLPF_BW = (260, 184, 94, 44, 21, 10, 5)
_RANGE_BITS = {2: 0x00, 4: 0x08, 8: 0x10, 16: 0x18}


def dlpf_for_rate(rate_hz):
    """Widest DLPF setting (1..6) whose bandwidth is at most half the sample rate."""
    for cfg in range(1, 7):
        if _DLPF_BW[cfg] * 2 <= rate_hz:
            return cfg
    return 6


def divider_for_rate(rate_hz):
    """SMPLRT_DIV for ``rate_hz`` from the 1 kHz base (DLPF on); rate must divide 1000."""
    if rate_hz < 4 or rate_hz > 1000 or 1000 % rate_hz:
        raise ValueError("rate_hz must divide 1000 and be 4..1000, not %r" % (rate_hz,))
    return 1000 // rate_hz - 1


class MPU6050:
    def __init__(
        self,
        i2c,
        addr=config.MPU_ADDR,
        rate_hz=config.RATE_HZ,
        range_g=config.RANGE_G,
        gyro=config.MPU_GYRO,
        max_read=config.MPU_MAX_READ,
        sleep_ms=hal.sleep_ms,
        ticks_ms=hal.ticks_ms,
    ):
        if range_g not in _RANGE_BITS:
            raise ValueError("range_g must be 2, 4, 8 or 16, not %r" % (range_g,))
        self.i2c = i2c
        self.addr = addr
        self.rate_hz = rate_hz
        self.div = divider_for_rate(rate_hz)
        self.range_g = range_g
        self.gyro = gyro
        self.sample_bytes = 12 if gyro else 6
        self.max_read = max_read
        self.sleep_ms = sleep_ms
        self.ticks_ms = ticks_ms
        self.raw = bytearray(max_read * self.sample_bytes)
        self.raw_mv = memoryview(self.raw)
        self.b1 = bytearray(1)
        self.b2 = bytearray(2)
        self.ok = False
        self.whoami = -1
        self.overflows = 0
        self.i2c_errors = 0
        self.overflow_flag = False
        self.error_flag = False
        self.last_error = ""
        self.last_init = 0
        self.tried = False
        self.fifo_size = FIFO_SIZE
        self.samples = 0

    # -- register access ---------------------------------------------------------
    def _w(self, reg, value):
        self.b1[0] = value
        self.i2c.writeto_mem(self.addr, reg, self.b1)

    def _r(self, reg):
        self.i2c.readfrom_mem_into(self.addr, reg, self.b1)
        return self.b1[0]

    def _fail(self, what, exc):
        self.i2c_errors += 1
        self.error_flag = True
        self.ok = False
        self.last_error = "%s: %r" % (what, exc)

    # -- set-up ------------------------------------------------------------------
    def init(self):
        """Reset and configure the chip; True when it is ready to stream."""
        self.ok = False
        self.tried = True
        self.last_init = self.ticks_ms()
        try:
            self._w(PWR_MGMT_1, DEVICE_RESET)
            self.sleep_ms(100)  # datasheet: registers reset within 100 ms
            self.whoami = self._r(WHO_AM_I)
            small = self.whoami in config.MPU_WHOAMI_FIFO512
            if self.whoami not in config.MPU_WHOAMI_OK and not small:
                self.last_error = "WHO_AM_I 0x%02x, not an MPU-6050" % self.whoami
                return False
            self.fifo_size = FIFO_SIZE // 2 if small else FIFO_SIZE
            # Reset leaves the chip asleep; wake it on its clock source.
            self._w(PWR_MGMT_1, CLK_PLL_XGYRO if self.gyro else CLK_INTERNAL)
            self._w(PWR_MGMT_2, 0 if self.gyro else STBY_GYRO)
            self._w(CONFIG, dlpf_for_rate(self.rate_hz))
            self._w(SMPLRT_DIV, self.div)
            self._w(ACCEL_CONFIG, _RANGE_BITS[self.range_g])
            self._w(INT_ENABLE, INT_FIFO_OFLOW)
            self._w(FIFO_EN, FIFO_ACCEL | (FIFO_GYRO if self.gyro else 0))
            self.reset_fifo()
            self._r(INT_STATUS)  # clear anything latched during set-up
        except OSError as exc:
            if self.whoami < 0:
                self.last_error = "no answer at 0x%02x: %r" % (self.addr, exc)
                self.i2c_errors += 1
                self.error_flag = True
            else:
                self._fail("init", exc)
            return False
        self.ok = True
        self.last_error = ""
        return True

    def reset_fifo(self):
        # Register map rev 4.2, USER_CTRL: FIFO_RESET "while FIFO_EN equals 0".
        self._w(USER_CTRL, 0)
        self._w(USER_CTRL, UC_FIFO_RESET)
        self._w(USER_CTRL, UC_FIFO_EN)

    # -- streaming ---------------------------------------------------------------
    def read(self, out):
        """Move whole samples from the FIFO into ``out``; return how many."""
        if not self.ok:
            if self.tried and hal.ticks_diff(self.ticks_ms(), self.last_init) < (
                config.MPU_REINIT_MS
            ):
                return 0
            if not self.init():
                return 0
        try:
            self.i2c.readfrom_mem_into(self.addr, FIFO_COUNTH, self.b2)
            count = (self.b2[0] << 8) | self.b2[1]
            status = self._r(INT_STATUS)
            if status & INT_FIFO_OFLOW or count >= self.fifo_size:
                self.overflows += 1
                self.overflow_flag = True
                self.reset_fifo()
                return 0
            sb = self.sample_bytes
            n = count // sb
            if n > self.max_read:
                n = self.max_read
            if n == 0:
                return 0
            nbytes = n * sb
            self.i2c.readfrom_mem_into(self.addr, FIFO_R_W, self.raw_mv[:nbytes])
        except OSError as exc:
            self._fail("read", exc)
            return 0
        self.samples += n
        raw = self.raw
        i = 0
        j = 0
        # Accel words come first in each FIFO record (gyro words follow when enabled).
        while i < nbytes:
            v = (raw[i] << 8) | raw[i + 1]
            out[j] = v - 65536 if v & 0x8000 else v
            v = (raw[i + 2] << 8) | raw[i + 3]
            out[j + 1] = v - 65536 if v & 0x8000 else v
            v = (raw[i + 4] << 8) | raw[i + 5]
            out[j + 2] = v - 65536 if v & 0x8000 else v
            i += sb
            j += 3
        return n

    def take_flags(self):
        """(overflow since last call, I2C error since last call); clears both."""
        o = self.overflow_flag
        e = self.error_flag
        self.overflow_flag = False
        self.error_flag = False
        return o, e
