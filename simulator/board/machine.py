"""Simulated ``machine`` for the virtual board (MicroPython, unix port).

API (as far as the firmware uses it): the built-in unix ``machine`` plus
    I2C(id, scl=None, sda=None, freq=400000) / SoftI2C   # a virtual bus with the MPU-6050
        .scan(), .readfrom_mem(addr, reg, n), .readfrom_mem_into(addr, reg, buf),
        .writeto_mem(addr, reg, buf)
    Pin(id, mode=-1, pull=-1): .value(), .init(), IN/OUT/PULL_UP/PULL_DOWN
    ADC(pin): .read_uv(), .read_u16(), .atten(), ATTN_*
    WDT(id=0, timeout=5000): .feed()   # resets the board (exit code 5) when not fed
                               # within ``timeout`` ms of simulated time
    freq(), unique_id(), reset(), idle(), lightsleep(ms), deepsleep(ms)
    BUS, MPU, KNOBS            # the simulation's objects, for inspection

The unix port's ``machine`` has no I2C, Pin or ADC; this module (first on MICROPYPATH)
extends it. Knobs (fault injection and board state) come from environment variables
``SPASMWATCH_SIM_<NAME>`` at start and from the file named by SPASMWATCH_SIM_KNOBS
(lines ``name=value``), re-read when it changes (checked every 0.2 s of real time):

    i2c_fail_at=K, i2c_fail_count=N, i2c_errno=110   # transactions K..K+N-1 raise
                                                     # OSError(errno) (110 ETIMEDOUT, 5 EIO)
    absent=1          # nothing answers at the MPU address: OSError(ENODEV), like a NACK
    whoami=0x70       # what WHO_AM_I returns (default 0x68)
    stall_at_ms=T, stall_ms=D   # at simulated time T the reader stalls for D ms (the
                                # clock jumps; the FIFO overflows if D is long enough)
    battery_mv=3900, charging=0 # what the ADC and the charger pin report
    mpu_ppm=P         # the MPU-6050's sample clock runs P ppm fast (negative: slow)
    hang_at_ms=T      # at simulated time T a bus transaction never returns (a stuck bus:
                      # simulated time runs on; only the watchdog gets the board back)
The counts file is SPASMWATCH_SIM_COUNTS (none: the sensor reports a still board);
SPASMWATCH_SIM_END=hold|stop says what the sensor does after it.
"""

import os
import sys

import builtin_only

with builtin_only.path():
    from machine import *  # noqa: F403 - the built-in unix port's machine

import simclock  # noqa: E402
from virtual_mpu6050 import CountsSource, VirtualMPU6050  # noqa: E402

_ENODEV = 19
_CLOCK = simclock.CLOCK
_REAL = simclock.real_time
_DEFAULTS = {
    "i2c_fail_at": -1, "i2c_fail_count": 0, "i2c_errno": 110, "absent": 0, "whoami": 0x68,
    "stall_at_ms": -1, "stall_ms": 0, "battery_mv": 3900, "charging": 0, "mpu_ppm": 0,
    "hang_at_ms": -1,
}
WDT_RESET_EXIT = 5  # exit code of a watchdog reset (machine.reset(): 3)


class Knobs:
    def __init__(self):
        self.values = dict(_DEFAULTS)
        for name in _DEFAULTS:
            v = os.getenv("SPASMWATCH_SIM_" + name.upper())
            if v:
                self.values[name] = int(v, 0)
        self.path = os.getenv("SPASMWATCH_SIM_KNOBS") or ""
        self.text = None
        self.checked = 0
        self.refresh(True)

    def refresh(self, force=False):
        if not self.path:
            return
        now = _REAL.ticks_ms()
        if not force and _REAL.ticks_diff(now, self.checked) < 200:
            return
        self.checked = now
        try:
            with open(self.path) as f:
                text = f.read()
        except OSError:
            return
        if text == self.text:
            return
        self.text = text
        for line in text.split("\n"):
            if "=" in line:
                k, v = line.split("=", 1)
                k = k.strip()
                if k in _DEFAULTS:
                    self.values[k] = int(v.strip(), 0)

    def __getitem__(self, name):
        return self.values[name]


KNOBS = Knobs()
_counts = os.getenv("SPASMWATCH_SIM_COUNTS")
_source = CountsSource(_counts, os.getenv("SPASMWATCH_SIM_END") or "hold") if _counts else None
MPU = VirtualMPU6050(_CLOCK, _source, KNOBS["whoami"], KNOBS["mpu_ppm"])
BUS = {0x68: MPU}


class _Bus:
    transactions = 0
    stalled = False


def _transaction(addr):
    """Fault knobs for one bus transaction; returns the device at ``addr``."""
    KNOBS.refresh()
    n = _Bus.transactions
    _Bus.transactions = n + 1
    at = KNOBS["stall_at_ms"]
    if at >= 0 and not _Bus.stalled and _CLOCK.now_us() >= at * 1000:
        _Bus.stalled = True
        _CLOCK.jump_us(KNOBS["stall_ms"] * 1000)
    hang = KNOBS["hang_at_ms"]
    if 0 <= hang and _CLOCK.now_us() >= hang * 1000:
        while True:  # the transaction never completes; time goes on (WDT)
            _CLOCK.sleep_us(10000)
    fail_at = KNOBS["i2c_fail_at"]
    if 0 <= fail_at <= n < fail_at + KNOBS["i2c_fail_count"]:
        raise OSError(KNOBS["i2c_errno"])
    dev = BUS.get(addr)
    if dev is None or (dev is MPU and KNOBS["absent"]):
        raise OSError(_ENODEV)
    if dev is MPU:
        MPU.whoami = KNOBS["whoami"]
        if MPU.ppm != KNOBS["mpu_ppm"]:
            MPU.sync()  # samples due so far on the old clock
            MPU.ppm = KNOBS["mpu_ppm"]
    return dev


class I2C:
    def __init__(self, id=0, scl=None, sda=None, freq=400000, timeout=50000):
        self.id = id
        self.freq = freq

    def scan(self):
        return [a for a in BUS if not (BUS[a] is MPU and KNOBS["absent"])]

    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        _transaction(addr).read(memaddr, buf)

    def readfrom_mem(self, addr, memaddr, nbytes, addrsize=8):
        buf = bytearray(nbytes)
        _transaction(addr).read(memaddr, buf)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        _transaction(addr).write(memaddr, buf)


class SoftI2C(I2C):
    """Bit-banged I2C: the same virtual bus."""


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        self.v = value if value is not None else (1 if pull == Pin.PULL_UP else 0)

    def init(self, mode=-1, pull=-1, value=None):
        self.mode = mode
        self.pull = pull
        if value is not None:
            self.v = value

    def value(self, v=None):
        if v is not None:
            self.v = 1 if v else 0
            return None
        from firmware import config  # the board's wiring, to know which pin is which

        if self.id == config.PIN_CHARGING and config.PIN_CHARGING >= 0:
            return 0 if KNOBS["charging"] else 1  # charger STAT is active low
        return self.v


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3

    def __init__(self, pin, atten=3):
        self.pin = pin

    def atten(self, a):
        pass

    def read_uv(self):
        from firmware import config

        return int(KNOBS["battery_mv"] * 1000 / config.BATTERY_DIVIDER)

    def read_u16(self):
        return min(65535, self.read_uv() * 65535 // 3100000)


class WDT:
    """The ESP32's task watchdog as MicroPython exposes it: started, never stopped."""

    def __init__(self, id=0, timeout=5000):
        if timeout <= 0:
            raise ValueError("WDT timeout too short")
        self.timeout_us = timeout * 1000
        self.feed()
        _CLOCK.watchdog = self

    def feed(self):
        self.due_us = _CLOCK.now_us() + self.timeout_us

    def check(self):
        if _CLOCK.now_us() > self.due_us:
            sys.stderr.write("virtual board: watchdog reset\n")
            sys.exit(WDT_RESET_EXIT)


def freq(hz=None):
    return 240000000


def unique_id():
    return b"\x5a\x5a\x00\x00\x00\x01"


def reset():
    # The board would reboot; the simulated one ends (the runner sees exit code 3).
    sys.exit(3)


def idle():
    pass


def lightsleep(ms=0):
    _CLOCK.sleep_us(ms * 1000)


def deepsleep(ms=0):
    sys.exit(4)
