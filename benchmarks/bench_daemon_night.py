"""A 12-hour simulated night through the host daemon at full speed: RSS and CPU per hour.

The firmware detector (CPython, the same module as on the board) turns a 12-hour night
(one-hour pieces, ``spasm-night`` and ``benign-night`` alternately, seeds 1, 2, ...)
into the packets the board would send: events, summaries and a status every 10 s. A
``PtyDevice`` (tests/pty_device.py, the wire stand-in) plays them on a real pty at
``--speed`` x real time to ``spasmwatch run --serial PTY --db FILE --json`` in a child
process, the daemon as a parent runs it (SQLite file store, alerting; no sound channel
here). At every simulated hour the benchmark reads the daemon's VmRSS (/proc/PID/status)
and CPU time (utime + stime, /proc/PID/stat) and prints RSS at the start, the middle and
the end, the growth from hour 1 to the end, and the CPU seconds each simulated hour
cost. Targets (Raspberry Pi-sized): RSS <= 60 MB, no growth.

    python benchmarks/bench_daemon_night.py [--hours 12] [--speed 360]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from spasmwatch.firmware import config as fwconfig
from spasmwatch.firmware import wire
from spasmwatch.simulator import scenarios
from spasmwatch.simulator.replay import detector_packets, to_sensor_stream

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pty_device import Item, PtyDevice, status_items  # noqa: E402 - the wire stand-in

TICK = os.sysconf("SC_CLK_TCK")
PIECES = ("spasm-night", "benign-night")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


def night_items(hours: int) -> tuple[list[Item], int]:
    """The board's packets for the night, with device send times; and the event count."""
    cfg = fwconfig.DetectorConfig()
    items: list[Item] = []
    events = 0
    for h in range(hours):
        trace, _ = scenarios.generate(PIECES[h % 2], seed=h + 1, duration_s=3600.0)
        stream = to_sensor_stream(trace, cfg)
        for t_block, packets in detector_packets(stream, cfg):
            send = h * 3600.0 + (t_block - stream.t0)
            for p in packets:
                _, rec = wire.decode(p)
                # Event and summary times are device ms: this piece starts at hour h.
                rec = (rec[0], rec[1] + h * 3_600_000, *rec[2:])
                events += rec[0] == wire.KIND_EVENT
                items.append(Item(send, rec))
    items += status_items(fwconfig.STATUS_S, hours * 3600.0, fwconfig.STATUS_S)
    items.sort(key=lambda it: it.send_s)
    return items, events


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=int, default=12)
    ap.add_argument("--speed", type=float, default=360.0, help="x real time (360: 2 min/12 h)")
    args = ap.parse_args()
    t_gen = time.monotonic()
    items, events = night_items(args.hours)
    print(f"{args.hours} h night: {len(items)} packets ({events} events), made in "
          f"{time.monotonic() - t_gen:.0f} s; played at {args.speed:g}x real time")
    code = "import sys; from spasmwatch.host.cli.main import main; sys.exit(main(sys.argv[1:]))"
    samples: list[tuple[int, float, float]] = []  # (hour, rss MB, cpu s)
    with tempfile.TemporaryDirectory() as tmp, \
            PtyDevice(items, Path(tmp) / "tty", args.speed) as dev:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "run", "--serial", str(dev.path), "--insecure", "--db",
             str(Path(tmp) / "night.db"), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        outputs: dict[str, int] = {}

        def drain() -> None:  # read the daemon's output so it never blocks on a pipe
            assert proc.stdout is not None
            for line in proc.stdout:
                kind = line.split('"type": "', 1)[-1].split('"', 1)[0]
                outputs[kind] = outputs.get(kind, 0) + 1

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            while not dev.host_seen.wait(0.1):
                if proc.poll() is not None:
                    raise SystemExit("the daemon exited before connecting")
            samples.append((0, rss_mb(proc.pid), cpu_s(proc.pid)))
            for h in range(1, args.hours + 1):
                while dev.device_time() < h * 3600.0 and not dev.done.is_set():
                    time.sleep(0.05)
                samples.append((h, rss_mb(proc.pid), cpu_s(proc.pid)))
            time.sleep(1.0)
            end = (args.hours, rss_mb(proc.pid), cpu_s(proc.pid))
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        reader.join(timeout=5)
    mid = samples[len(samples) // 2]
    print(f"RSS: start {samples[0][1]:.1f} MB, hour {mid[0]} {mid[1]:.1f} MB, "
          f"end {end[1]:.1f} MB; growth hour 1 -> end {end[1] - samples[1][1]:+.1f} MB")
    per_hour = [b[2] - a[2] for a, b in zip(samples, samples[1:], strict=False)]
    print("CPU s per simulated hour: " + " ".join(f"{c:.2f}" for c in per_hour))
    print(f"CPU total {end[2] - samples[0][2]:.1f} s for {args.hours} h "
          f"(mean {sum(per_hour) / len(per_hour):.2f} s per hour = "
          f"{100 * sum(per_hour) / len(per_hour) / 3600:.3f} % of a core at real time)")
    print("daemon outputs: " + ", ".join(f"{k} {v}" for k, v in sorted(outputs.items())))
    print("targets: RSS <= 60 MB, no growth -> "
          + ("MET" if end[1] <= 60 and end[1] - samples[1][1] <= 2.0 else "NOT MET"))


if __name__ == "__main__":
    main()
