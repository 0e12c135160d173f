"""Simulated ``time`` for the virtual board (MicroPython): the built-in module with its
clock functions on simulator/board/simclock.py's clock.

API: everything the built-in ``time`` has; ``ticks_ms/us/cpu``, ``sleep/_ms/_us``,
``time``/``time_ns`` follow the simulated clock. Ticks wrap at 2**30 as on the ESP32
(MICROPY_PY_TIME_TICKS_PERIOD there; the 64-bit unix port's built-in ``ticks_diff``
would wrap at 2**62, so ``ticks_diff``/``ticks_add`` are defined here with the board's
period), and a run starts ``SPASMWATCH_SIM_TICKS_START`` ms before the wrap (default
10 s), so every run crosses it. MicroPython's unix port lets a
``time.py`` earlier on MICROPYPATH extend the built-in module; the built-in one is
imported here with an empty ``sys.path``.
"""


import builtin_only

with builtin_only.path():
    import time as _builtin

# What the built-in module has besides the clock functions defined below. (mypy takes
# ``_builtin`` for this file itself: the sys.path trick is invisible to it.)
gmtime = _builtin.gmtime  # type: ignore[attr-defined,misc]
localtime = _builtin.localtime  # type: ignore[attr-defined,misc]
mktime = _builtin.mktime  # type: ignore[attr-defined,misc]

import os  # noqa: E402

import simclock  # noqa: E402

_PERIOD = 1 << 30  # the ESP32's ticks period (small-int range of a 32-bit port)
_MASK = _PERIOD - 1
_HALF = _PERIOD >> 1
_CLOCK = simclock.CLOCK
_EPOCH_NS = _builtin.time_ns()
_START_MS = int(os.getenv("SPASMWATCH_SIM_TICKS_START") or 10000)
_OFFSET_MS = (_PERIOD - _START_MS) & _MASK


def ticks_us():
    return (_CLOCK.now_us() + _OFFSET_MS * 1000) & _MASK


def ticks_ms():
    return (_CLOCK.now_us() // 1000 + _OFFSET_MS) & _MASK


def ticks_diff(a, b):
    """Signed a - b on the 2**30 circle (MicroPython's extmod/modtime.c)."""
    return ((a - b + _HALF) & _MASK) - _HALF


def ticks_add(t, delta):
    return (t + delta) & _MASK


def ticks_cpu():
    return ticks_us()


def sleep_us(us):
    _CLOCK.sleep_us(us)


def sleep_ms(ms):
    _CLOCK.sleep_us(ms * 1000)


def sleep(s):
    _CLOCK.sleep_us(int(s * 1000000))


def time_ns():
    return _EPOCH_NS + _CLOCK.now_us() * 1000


def time():
    return time_ns() // 1000000000
