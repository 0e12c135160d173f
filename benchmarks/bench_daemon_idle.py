"""Host daemon at idle: RSS and CPU of ``spasmwatch run --serial`` with no events.

A ``sim_link.PtyDevice`` on a pty sends only status heartbeats (every 10 s, as the
firmware does) in real time; the daemon runs as a subprocess with a SQLite file store.
After it has connected and settled, CPU time (utime + stime from /proc/PID/stat) and
VmRSS / VmHWM (/proc/PID/status) are read over ``--seconds`` (default 15).

    python benchmarks/bench_daemon_idle.py [--seconds 15]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spasmwatch.firmware import config as fwconfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pty_device import Item, PtyDevice, status  # noqa: E402 - the wire stand-in

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def mem_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    every = float(fwconfig.STATUS_S)
    n = int((args.seconds + 10) / every) + 3
    items = [Item(every * i, status(every * i)) for i in range(n)]
    code = "import sys; from spasmwatch.host.cli.main import main; sys.exit(main(sys.argv[1:]))"
    with tempfile.TemporaryDirectory() as tmp, PtyDevice(items, Path(tmp) / "tty", 1.0) as dev:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "run", "--serial", str(dev.path), "--insecure", "--db",
             str(Path(tmp) / "idle.db"), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:  # wait until connected and the first status is in
                if '"type": "status"' in line:
                    break
            time.sleep(1.0)  # let start-up work (imports, first commits) finish
            c0, t0 = cpu_s(proc.pid), time.monotonic()
            time.sleep(args.seconds)
            c1, t1 = cpu_s(proc.pid), time.monotonic()
            mem = mem_kb(proc.pid)
        finally:
            proc.terminate()
            rc = proc.wait(timeout=10)
    cpu_pct = 100.0 * (c1 - c0) / (t1 - t0)
    print(f"idle {t1 - t0:.1f} s, connected, status every {every:g} s")
    print(f"CPU: {c1 - c0:.2f} s over {t1 - t0:.1f} s = {cpu_pct:.2f} % of one core "
          f"(clock tick {1 / TICK * 1000:.0f} ms)")
    print(f"RSS: {mem['VmRSS'] / 1024:.1f} MiB (peak {mem['VmHWM'] / 1024:.1f} MiB)")
    print(f"exit code after SIGTERM: {rc}")
    print("target: idle CPU <= 1 % -> " + ("MET" if cpu_pct <= 1.0 else "NOT MET"))


if __name__ == "__main__":
    main()
