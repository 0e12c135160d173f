#!/usr/bin/env python3
"""Board firmware budgets on the virtual board: free heap after start-up, cost per sample.

    python benchmarks/bench_board.py [--heapsize 256k] [--seconds 600]

Runs the real firmware App (firmware/app.py: driver, detector, ring, snippet, links)
under the MicroPython unix port with simulator/board first on MICROPYPATH, on a
``spasm-cluster`` trace, as fast as possible. Prints:

* free heap right after start-up (``gc.mem_free()`` after a collection) with the given
  heap size, and what the firmware allocated for itself: the unix port's figures,
  not the ESP32's (same bytecode and object sizes on a 64-bit host are larger than on
  the 32-bit ESP32-S3, so the board should use less);
* wall time per sample of one App.step over the trace, and split into the driver's
  FIFO read (which includes the virtual MPU-6050 making its samples in Python) and the
  detector; host time on this machine, for comparing versions, not a board figure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MPY = r"""
import gc, sys
gc.collect()
base_free = gc.mem_free()
import simclock
from firmware import app, config
from firmware.serial_link import SerialLink

from firmware import hal, mpu6050, auth
from firmware.battery import Battery
sensor = mpu6050.MPU6050(hal.make_i2c())
sensor.init()
link = SerialLink(rx=open("/dev/null", "rb"), tx=open("/dev/null", "wb"))
the_app = app.App(sensor, [link], Battery(hal.make_adc(config.PIN_BATTERY_ADC)), b"k")
gc.collect()
print("free_after_startup", gc.mem_free())
print("alloc_by_firmware", base_free - gc.mem_free())
rt = simclock.real_time
seconds = int(sys.argv[1])
t0 = rt.ticks_us()
n0 = the_app.det.n
while the_app.det.n < seconds * config.RATE_HZ:
    ms = the_app.step()
    hal.sleep_ms(ms)
t1 = rt.ticks_us()
samples = the_app.det.n - n0
print("step_us_per_sample", rt.ticks_diff(t1, t0) / samples)
print("packets", the_app.seq)
# driver alone (virtual chip included)
from array import array
buf = array("h", [0] * 192)
got = 0
t0 = rt.ticks_us()
while got < 5000:
    hal.sleep_ms(500)
    got += sensor.read(buf)
print("driver_us_per_sample", rt.ticks_diff(rt.ticks_us(), t0) / got)
gc.collect()
print("free_after_run", gc.mem_free())
"""


def main() -> int:
    from spasmwatch.simulator.board_runner import BOARD_DIR, write_counts
    from spasmwatch.simulator.scenarios import generate

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--heapsize", default="256k")
    ap.add_argument("--seconds", type=int, default=600)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trace, _ = generate("spasm-cluster", 3)
        counts = Path(tmp) / "trace.counts"
        write_counts(trace, counts)
        script = Path(tmp) / "bench.py"
        script.write_text(MPY)
        env = dict(os.environ, MICROPYPATH=f"{BOARD_DIR}:{REPO}:.frozen",
                   SPASMWATCH_SIM_SPEED="0", SPASMWATCH_SIM_COUNTS=str(counts),
                   SPASMWATCH_SIM_AFTER_END="keep")
        proc = subprocess.run(
            ["micropython", "-X", f"heapsize={args.heapsize}", str(script), str(args.seconds)],
            capture_output=True, text=True, env=env, cwd=tmp, timeout=600, check=False,
        )
    if proc.returncode:
        print(proc.stdout + proc.stderr, file=sys.stderr)
        return 1
    vals = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    print(f"heap size                      {args.heapsize} (unix port, -X heapsize)")
    print(f"free heap after start-up       {int(vals['free_after_startup']) / 1024:.1f} kB")
    print(f"allocated by firmware start-up {int(vals['alloc_by_firmware']) / 1024:.1f} kB")
    print(f"free heap after the run        {int(vals['free_after_run']) / 1024:.1f} kB")
    print(f"App.step per sample            {float(vals['step_us_per_sample']):.1f} us "
          f"({args.seconds} s of spasm-cluster, {vals['packets']} packets)")
    print(f"driver read per sample         {float(vals['driver_us_per_sample']):.1f} us "
          "(includes the virtual MPU-6050)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
