"""The virtual board's clock, shared by the simulated ``time`` and ``machine`` (MicroPython).

API:
    CLOCK                      # the one Clock of this process, set up from the environment
    Clock(speed)               # speed > 0: at most that many simulated seconds per real
                               # second; speed == 0: as fast as possible
    .now_us() -> int           # simulated µs since start (no wrap)
    .sleep_us(us)              # advance the clock; when paced, wait until the wall clock
                               # catches up with it

Simulated time moves only when the firmware sleeps, in both modes. So the virtual
sensor and the firmware stay in step whatever the machine's load: a busy test machine
makes a paced board late, never makes it lose FIFO samples it would not lose on the
board (FIFO overflow is injected on purpose with the stall knobs instead). Runs are
deterministic for a given trace.
    .jump_us(us)               # advance simulated time at once (a stalled reader)
    .set_speed(speed)          # change pace without a jump in simulated time
    .trace_ended()             # the sensor ran out of trace: apply SPASMWATCH_SIM_AFTER_END

Environment: SPASMWATCH_SIM_SPEED (float, default 1 = real time, 0 = as fast as
possible); SPASMWATCH_SIM_AFTER_END ("realtime", default: after the trace, a fast run
continues at real time so an idle board does not spin; "keep": stay as is).
The firmware never imports this module: it calls ``time.sleep_ms``/``ticks_ms`` and
``machine.I2C``, which the simulator's ``time.py``/``machine.py`` route here, so the
virtual sensor's sample clock and the firmware's sleeps share one clock.
"""

import os

import builtin_only

with builtin_only.path():
    import time as _rt  # the built-in module, not simulator/board/time.py


def _real_us():
    return _rt.time_ns() // 1000


class Clock:
    def __init__(self, speed=1.0):
        self.sim_us = 0  # simulated µs since start
        self.real_us = _real_us()  # real time at the pacing anchor
        self.speed = float(speed)
        self.after_end = os.getenv("SPASMWATCH_SIM_AFTER_END") or "realtime"
        self.ended = False
        self.anchor_sim = 0  # simulated time at real_us, for pacing
        self.watchdog = None  # machine.WDT once started: checked as time moves

    def now_us(self):
        return self.sim_us

    def set_speed(self, speed):
        self.anchor_sim = self.sim_us
        self.real_us = _real_us()
        self.speed = float(speed)

    def sleep_us(self, us):
        if us <= 0:
            return
        self.sim_us += us
        if self.watchdog is not None:
            self.watchdog.check()
        if self.speed > 0:
            due = self.real_us + int((self.sim_us - self.anchor_sim) / self.speed)
            wait = due - _real_us()
            if wait > 0:
                _rt.sleep_us(wait)

    def jump_us(self, us):
        self.sim_us += us
        if self.watchdog is not None:
            self.watchdog.check()

    def trace_ended(self):
        if self.ended:
            return
        self.ended = True
        if self.speed <= 0 and self.after_end == "realtime":
            self.set_speed(1.0)


def _speed_from_env():
    s = os.getenv("SPASMWATCH_SIM_SPEED")
    return float(s) if s else 1.0


CLOCK = Clock(_speed_from_env())  # type: Clock
real_time = _rt
