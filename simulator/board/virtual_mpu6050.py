"""A virtual MPU-6050 on the simulated I2C bus (MicroPython).

API:
    VirtualMPU6050(clock, source=None, whoami=0x68, ppm=0)
    .read(reg, buf)            # an I2C register read into buf (auto-increment; FIFO_R_W pops)
    .write(reg, data)          # an I2C register write
    .samples                   # sample ticks produced since wake-up
    .overflows                 # times the FIFO overflowed
    .ppm                       # sample clock error, parts per million (+ = fast)
    .fifo_size()               # 1024, or 512 for the MPU-6500/9250 clones' WHO_AM_I
    CountsSource(path, end="hold")   # the trace: file of int16 counts with a header

Modelled from the register map (rev 4.2): power-on state (asleep, WHO_AM_I 0x68);
PWR_MGMT_1 DEVICE_RESET restores every register and empties the FIFO; SLEEP stops
sampling; sample rate = base / (1 + SMPLRT_DIV) with base 1 kHz when CONFIG's DLPF is
1..6 and 8 kHz otherwise; ACCEL_CONFIG AFS_SEL scales the counts; FIFO_EN selects accel
(6 bytes) and gyro (6 bytes, zeros: the board is not rotating in this model) per
sample, written big-endian in register order when USER_CTRL FIFO_EN is set; USER_CTRL
FIFO_RESET empties the FIFO; FIFO_COUNTH/L give the byte count; reading FIFO_R_W pops
bytes (an empty FIFO returns the last byte again). The FIFO holds 1024 bytes: when it
is full the oldest byte is lost and INT_STATUS bit 4 (FIFO_OFLOW, when enabled in
INT_ENABLE) is set until INT_STATUS is read, as on the chip; 1024 is not a multiple of
6, so after an overflow the FIFO no longer starts on a sample boundary.

The sample clock is the chip's own oscillator, not exact: ``ppm`` (knob ``mpu_ppm``)
makes it run fast (+) or slow (-) against the board's clock, as the MPU-6050's internal
oscillator does (+-1 % and more over temperature). WHO_AM_I 0x70/0x71/0x73 (MPU-6500/
MPU-9250 clones) gives a 512-byte FIFO.

Samples appear on the shared simulated clock (simclock), computed lazily at each bus
transaction. The counts file (made by simulator/board_runner.py through
``simulator.replay.to_sensor_stream``) starts with an 8-byte header: b"SWC1", rate
u16, range g u8, 0; then x, y, z little-endian int16 per sample. Sample tick k of the
chip takes file sample ``k * file_rate // chip_rate``, rescaled from the file's range
to the chip's configured range. After the last sample the chip holds it ("hold": a
still baby) or stops producing samples ("stop").
"""

import struct

SMPLRT_DIV = 0x19
CONFIG = 0x1A
ACCEL_CONFIG = 0x1C
FIFO_EN = 0x23
INT_ENABLE = 0x38
INT_STATUS = 0x3A
ACCEL_XOUT_H = 0x3B
USER_CTRL = 0x6A
PWR_MGMT_1 = 0x6B
FIFO_COUNTH = 0x72
FIFO_COUNTL = 0x73
FIFO_R_W = 0x74
WHO_AM_I = 0x75
FIFO_SIZE = 1024
FIFO512_WHOAMI = (0x70, 0x71, 0x73)
HEADER = 8


class CountsSource:
    """Random access to a counts file by sample index, through a small read cache."""

    def __init__(self, path, end="hold"):
        self.f = open(path, "rb")
        head = self.f.read(HEADER)
        if len(head) != HEADER or head[:4] != b"SWC1":
            raise ValueError(str(path) + " is not a counts file (SWC1 header)")
        self.rate_hz, self.range_g = struct.unpack_from("<HB", head, 4)
        self.f.seek(0, 2)
        self.n = (self.f.tell() - HEADER) // 6
        self.end = end
        self.chunk = bytearray(6 * 512)
        self.c0 = 0
        self.cn = 0
        self.ended = False

    def sample(self, i, out):
        """Fill out[0:3] with sample i; False when there is no sample to give."""
        if i >= self.n:
            self.ended = True
            if self.end != "hold" or self.n == 0:
                return False
            i = self.n - 1
        if not self.c0 <= i < self.c0 + self.cn:
            self.f.seek(HEADER + 6 * i)
            got = self.f.readinto(self.chunk)
            self.c0 = i
            self.cn = (got or 0) // 6
        at = 6 * (i - self.c0)
        c = self.chunk
        for k in range(3):
            v = c[at + 2 * k] | c[at + 2 * k + 1] << 8
            out[k] = v - 65536 if v & 0x8000 else v
        return True


class VirtualMPU6050:
    def __init__(self, clock, source=None, whoami=0x68, ppm=0):
        self.clock = clock
        self.source = source
        self.whoami = whoami
        self.ppm = ppm
        self.regs = bytearray(128)
        self.fifo = bytearray(FIFO_SIZE)
        self.xyz = [0, 0, 0]
        self.samples = 0
        self.overflows = 0
        self._reset()

    def _reset(self):
        for i in range(len(self.regs)):
            self.regs[i] = 0
        self.regs[PWR_MGMT_1] = 0x40  # SLEEP after power-on and reset
        self.head = 0  # FIFO read position
        self.count = 0  # FIFO bytes held
        self.last = 0
        self.next_ns = -1  # next sample time (ns of simulated time); -1 = not sampling

    # -- timing ---------------------------------------------------------------------
    def period_us(self):
        """The nominal sample period (what the registers ask for)."""
        dlpf = self.regs[CONFIG] & 7
        base = 1000 if 1 <= dlpf <= 6 else 8000
        return 1000000 * (1 + self.regs[SMPLRT_DIV]) // base

    def period_ns(self):
        """The actual period on the chip's oscillator (``ppm`` off nominal)."""
        return self.period_us() * 1000 * 1000000 // (1000000 + self.ppm)

    def fifo_size(self):
        return FIFO_SIZE // 2 if self.whoami in FIFO512_WHOAMI else FIFO_SIZE

    def _restart_timing(self):
        if self.regs[PWR_MGMT_1] & 0x40:
            self.next_ns = -1
        else:
            self.next_ns = self.clock.now_us() * 1000 + self.period_ns()

    def sync(self):
        """Produce every sample due by now on the simulated clock."""
        if self.next_ns < 0:
            return
        now = self.clock.now_us() * 1000
        if now < self.next_ns:
            return
        period = self.period_ns()
        due = (now - self.next_ns) // period + 1
        self.next_ns += due * period
        per = self._bytes_per_sample()
        size = self.fifo_size()
        if per and due * per > size + per:
            # Only the newest bytes survive; skip the rest (an overflow for sure).
            skip = due - (size // per + 1)
            self.samples += skip
            self._overflow()
            due -= skip
        for _ in range(due):
            self._sample(per)

    def _bytes_per_sample(self):
        if not self.regs[USER_CTRL] & 0x40:
            return 0
        fe = self.regs[FIFO_EN]
        return (6 if fe & 0x08 else 0) + (6 if fe & 0x70 else 0)

    def _sample(self, per):
        src = self.source
        xyz = self.xyz
        have = True
        if src is not None:
            have = src.sample(self.samples * src.rate_hz // self.rate_hz(), xyz)
            if src.ended:
                self.clock.trace_ended()
        self.samples += 1
        if not have or per == 0:
            return
        fe = self.regs[FIFO_EN]
        if fe & 0x08:
            for k in range(3):
                v = self._scale(xyz[k]) & 0xFFFF
                self._push(v >> 8)
                self._push(v & 0xFF)
        if fe & 0x70:
            for _ in range(6):
                self._push(0)

    def rate_hz(self):
        return 1000000 // self.period_us()

    def range_g(self):
        return 2 << ((self.regs[ACCEL_CONFIG] >> 3) & 3)

    def _scale(self, v):
        src = self.source
        if src is not None and src.range_g != self.range_g():
            v = v * src.range_g // self.range_g()
        return -32768 if v < -32768 else (32767 if v > 32767 else v)

    def _overflow(self):
        self.overflows += 1
        if self.regs[INT_ENABLE] & 0x10:
            self.regs[INT_STATUS] |= 0x10

    def _push(self, b):
        if self.count >= self.fifo_size():
            # Full: the oldest byte is lost.
            self.head = (self.head + 1) % FIFO_SIZE
            self.count -= 1
            if not self.regs[INT_STATUS] & 0x10:
                self._overflow()
        self.fifo[(self.head + self.count) % FIFO_SIZE] = b
        self.count += 1

    def _pop(self):
        if self.count:
            self.last = self.fifo[self.head]
            self.head = (self.head + 1) % FIFO_SIZE
            self.count -= 1
        return self.last

    # -- bus ------------------------------------------------------------------------
    def read(self, reg, buf):
        self.sync()
        for i in range(len(buf)):
            r = reg if reg == FIFO_R_W else reg + i
            buf[i] = self._read_reg(r)

    def _read_reg(self, r):
        if r == FIFO_R_W:
            return self._pop()
        if r == FIFO_COUNTH:
            return self.count >> 8
        if r == FIFO_COUNTL:
            return self.count & 0xFF
        if r == WHO_AM_I:
            return self.whoami
        if r == INT_STATUS:
            v = self.regs[INT_STATUS]
            self.regs[INT_STATUS] = 0  # cleared by reading
            return v
        if ACCEL_XOUT_H <= r < ACCEL_XOUT_H + 6:
            v = self._scale(self.xyz[(r - ACCEL_XOUT_H) >> 1]) & 0xFFFF
            return v >> 8 if (r - ACCEL_XOUT_H) % 2 == 0 else v & 0xFF
        if 0 <= r < 128:
            return self.regs[r]
        return 0

    def write(self, reg, data):
        self.sync()
        for i in range(len(data)):
            self._write_reg(reg + i, data[i])

    def _write_reg(self, r, v):
        if r == PWR_MGMT_1:
            if v & 0x80:
                self._reset()
                return
            self.regs[r] = v
            self._restart_timing()
        elif r == USER_CTRL:
            if v & 0x04 and not v & 0x40:
                # FIFO_RESET is honoured only while FIFO_EN is 0 (register map rev 4.2).
                self.head = 0
                self.count = 0
            self.regs[r] = v & ~0x04  # FIFO_RESET clears itself
        elif r in (SMPLRT_DIV, CONFIG):
            self.regs[r] = v
            self._restart_timing()
        elif r in (INT_STATUS, WHO_AM_I, FIFO_COUNTH, FIFO_COUNTL):
            pass  # read-only
        elif r == FIFO_R_W:
            self._push(v)
        elif 0 <= r < 128:
            self.regs[r] = v
