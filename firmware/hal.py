"""Thin hardware layer: the only firmware module that touches ``machine`` and ``time``.

API:
    Clock()                     .now_ms() -> int, monotonic ms since start (no 2**30 wrap)
    sleep_ms(ms), ticks_ms(), ticks_diff(a, b), ticks_add(t, delta)
    make_i2c() -> machine.I2C   # bus and pins from config
    make_adc(pin) -> machine.ADC with 11 dB attenuation (0..~3.1 V)
    make_input(pin) -> machine.Pin (pull-up) or None when pin < 0
    free_heap() -> bytes free on the heap (after a collection)
    unique_id() -> bytes, reset()
    make_wdt(timeout_ms) -> machine.WDT, or None where the port has none

On the board these are MicroPython's ``machine``/``time``; in the simulator the same
names come from simulator/board/ (a ``machine`` with a virtual I2C bus and MPU6050,
a ``time`` on the simulated clock), so logic and drivers run unchanged.
"""

import gc
import time

import machine

from . import config


def sleep_ms(ms):
    if ms > 0:
        time.sleep_ms(ms)


def ticks_ms():
    return time.ticks_ms()


def ticks_diff(a, b):
    return time.ticks_diff(a, b)


def ticks_add(t, delta):
    return time.ticks_add(t, delta)


class Clock:
    """Milliseconds since start, summed from tick differences (ticks_ms wraps)."""

    def __init__(self):
        self.last = time.ticks_ms()
        self.ms = 0

    def now_ms(self):
        t = time.ticks_ms()
        self.ms += time.ticks_diff(t, self.last)
        self.last = t
        return self.ms


def make_i2c():
    scl = machine.Pin(config.PIN_SCL)
    sda = machine.Pin(config.PIN_SDA)
    if config.I2C_SOFT:
        return machine.SoftI2C(scl=scl, sda=sda, freq=config.I2C_FREQ)
    return machine.I2C(config.I2C_ID, scl=scl, sda=sda, freq=config.I2C_FREQ)


def make_adc(pin):
    adc = machine.ADC(machine.Pin(pin))
    adc.atten(machine.ADC.ATTN_11DB)
    return adc


def make_input(pin):
    if pin < 0:
        return None
    return machine.Pin(pin, machine.Pin.IN, machine.Pin.PULL_UP)


def free_heap():
    gc.collect()
    return gc.mem_free()


def unique_id():
    return machine.unique_id()


def reset():
    machine.reset()


def make_wdt(timeout_ms):
    """The hardware watchdog (cannot be stopped once started); None without one."""
    cls = getattr(machine, "WDT", None)
    if cls is None or timeout_ms <= 0:
        return None
    return cls(timeout=timeout_ms)
