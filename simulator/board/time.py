"""Simulated ``time`` for the virtual board (MicroPython): the built-in module with its
clock functions on simulator/board/simclock.py's clock.

API: everything the built-in ``time`` has; ``ticks_ms/us/cpu``, ``sleep/_ms/_us``,
``time``/``time_ns`` follow the simulated clock (ticks wrap at 2**30 like the real ones,
so ``ticks_diff``/``ticks_add`` are the built-in ones). MicroPython's unix port lets a
``time.py`` earlier on MICROPYPATH extend the built-in module; the built-in one is
imported here with an empty ``sys.path``.
"""


import builtin_only

with builtin_only.path():
    import time as _builtin
    from time import *  # noqa: F403 - re-export the built-in module

import simclock  # noqa: E402

_MASK = (1 << 30) - 1
_CLOCK = simclock.CLOCK
_EPOCH_NS = _builtin.time_ns()


def ticks_us():
    return _CLOCK.now_us() & _MASK


def ticks_ms():
    return (_CLOCK.now_us() // 1000) & _MASK


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
