"""Memory of ``spasmwatch run --serial`` through a night with alarms: VmRSS and peak.

``tools/pty_sensor.py`` plays a scenario (default ``mixed-night``: 30 min with a
cluster, jerks, a roll, handling) through the firmware's detector onto a pty at
``--speed`` x real time; the installed ``spasmwatch run --serial`` reads it into a
SQLite file, as the systemd unit does (no ``--config``: the defaults). VmRSS and
VmHWM (peak) come from /proc/PID/status every 0.5 s until the scenario is over.

    python benchmarks/bench_daemon_rss.py [--scenario mixed-night] [--speed 30]

Runs ``duration / speed`` + a few seconds (about 75 s by default). Linux only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_daemon_idle import mem_kb  # noqa: E402 - one /proc reader for both benchmarks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default="mixed-night")
    ap.add_argument("--speed", type=float, default=30.0)
    args = ap.parse_args()
    from spasmwatch.simulator import scenarios

    duration = scenarios.SCENARIOS[args.scenario].duration_s
    exe = shutil.which("spasmwatch", path=str(Path(sys.executable).parent)) or "spasmwatch"
    with tempfile.TemporaryDirectory() as tmp:
        tty = Path(tmp) / "tty"
        sensor = subprocess.Popen(
            [sys.executable, str(REPO / "tools" / "pty_sensor.py"), args.scenario,
             "--speed", str(args.speed), "--seconds", str(duration / args.speed + 60),
             "--link", str(tty)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert sensor.stdout is not None
        sensor.stdout.readline()  # the pty is there
        env = {**os.environ, "HOME": tmp, "XDG_CONFIG_HOME": f"{tmp}/config",
               "XDG_DATA_HOME": f"{tmp}/data"}
        # --insecure: tools/pty_sensor.py is an unpaired stand-in sensor (no key to prove).
        daemon = subprocess.Popen([exe, "run", "--serial", str(tty), "--insecure",
                                   "--db", f"{tmp}/n.db", "--quiet"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, env=env)
        t_end = time.monotonic() + duration / args.speed + 5
        samples = []
        try:
            while time.monotonic() < t_end and daemon.poll() is None:
                samples.append(mem_kb(daemon.pid))
                time.sleep(0.5)
        finally:
            daemon.send_signal(signal.SIGINT)
            out, _ = daemon.communicate(timeout=30)
            sensor.terminate()
            sensor.wait(10)
    alarms = out.count(" ALARM ")
    last = samples[-1]
    print(f"{args.scenario}: {duration / 60:.0f} min at {args.speed:g}x, {alarms} alarm(s), "
          f"{len(samples)} samples, Python {sys.version_info.major}.{sys.version_info.minor}")
    print(f"RSS at the end: {last['VmRSS'] / 1024:.1f} MiB; peak (VmHWM) "
          f"{last['VmHWM'] / 1024:.1f} MiB")
    return 0 if alarms else 1


if __name__ == "__main__":
    sys.exit(main())
