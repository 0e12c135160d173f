"""Replay speed and peak memory of `spasmwatch replay` on a long trace (default 12 h, 100 Hz).

    python benchmarks/bench_replay.py [--hours 12] [--rate 100] [--gzip] [--json]

Writes a night of ``--hours`` one-hour pieces (alternately ``spasm-night`` and
``benign-night``, seeds 1, 2, ...; times made continuous) as one CSV file, generated
piece by piece so the benchmark itself stays small, then runs the installed CLI,
``spasmwatch replay --json FILE``, in a child process and reports for that process:
wall time, CPU time (user + sys), trace-seconds per second of each (the target is
≥ 2,000× real time), and its peak RSS (``VmHWM`` read by the child at exit; the target is
≤ 150 MB whatever the length). ``--also-hours 1`` repeats the run on a shorter file so
the two peaks show memory does not grow with length. On a loaded machine the wall-time
figure is the pessimistic one; the CPU figure is what replay costs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

from spasmwatch.simulator import scenarios

SCENARIOS = ("spasm-night", "benign-night")
CHILD = """
import sys
from spasmwatch.host.cli.main import main
rc = main()
with open("/proc/self/status") as f:
    hwm = [line.split()[1] for line in f if line.startswith("VmHWM:")][0]
sys.stderr.write("VmHWM_kB %s\\n" % hwm)
sys.exit(rc)
"""


def write_night(path: Path, hours: float, rate: float) -> tuple[int, int]:
    """Write the trace piece by piece; returns (rows, labelled spasms)."""
    rows = 0
    spasms = 0
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.write(f"# rate_hz: {rate:g}\nt,ax,ay,az\n")
        offset = 0.0
        piece = 0
        while offset < hours * 3600 - 1e-6:
            dur = min(3600.0, hours * 3600 - offset)
            trace, labels = scenarios.generate(
                SCENARIOS[piece % 2], seed=piece + 1, rate_hz=rate, duration_s=dur
            )
            spasms += sum(1 for lb in labels if lb.label == "spasm")
            t = trace.t - trace.t[0] + offset
            _write_rows(f, t, trace.acc)
            rows += len(t)
            offset = float(t[-1]) + 1.0 / rate
            piece += 1
    return rows, spasms


def _write_rows(f: IO[str], t: np.ndarray, acc: np.ndarray) -> None:
    data = np.column_stack((t, acc))
    f.write("\n".join(map("%.6f,%.5f,%.5f,%.5f".__mod__, map(tuple, data.tolist()))))
    f.write("\n")


def run_replay(path: Path) -> dict[str, Any]:
    """`spasmwatch replay --json` in a child; its wall, CPU, peak RSS and outputs."""
    # The child reports its own peak RSS (VmHWM, reset by exec): ru_maxrss of a child
    # forked from this big process would count the parent's pages too.
    cmd = [sys.executable, "-c", CHILD, "replay", "--json", str(path)]
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read() if proc.stderr else ""
        if proc.returncode != 0:
            raise SystemExit(f"replay failed ({proc.returncode}): {err}")
        out.seek(0)
        kinds: dict[str, int] = {}
        alarms = 0
        for line in out:
            o = json.loads(line)
            kinds[o["type"]] = kinds.get(o["type"], 0) + 1
            alarms += o["type"] == "alert" and o.get("level") == "alarm"
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(int(err.split("VmHWM_kB")[1].split()[0]) / 1024.0, 1),
        "events": kinds.get("event", 0),
        "alarms": alarms,
    }


def bench(hours: float, rate: float, gz: bool, folder: Path) -> dict[str, Any]:
    path = folder / f"night_{hours:g}h.csv{'.gz' if gz else ''}"
    rows, spasms = write_night(path, hours, rate)
    r = run_replay(path)
    seconds = hours * 3600
    r.update(
        hours=hours, rate_hz=rate, rows=rows, file_mb=round(path.stat().st_size / 2**20, 1),
        labelled_spasms=spasms,
        speed_x_wall=round(seconds / r["wall_s"]), speed_x_cpu=round(seconds / r["cpu_s"]),
    )
    path.unlink()
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=12.0)
    ap.add_argument("--also-hours", type=float, default=1.0,
                    help="a second, shorter run to compare peak memory (0 = none)")
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--gzip", action="store_true", help="write the trace as .csv.gz")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [h for h in (args.also_hours, args.hours) if h > 0]
        rows = [bench(h, args.rate, args.gzip, Path(tmp)) for h in runs]
    if args.json:
        print(json.dumps({"runs": rows}))
        return
    print(f"spasmwatch replay --json (child process), {args.rate:g} Hz "
          f"{'gzip ' if args.gzip else ''}CSV, benign/spasm nights alternating per hour")
    for r in rows:
        print(
            f"  {r['hours']:5g} h ({r['rows']:,} rows, {r['file_mb']} MB): wall {r['wall_s']} s "
            f"-> {r['speed_x_wall']:,}x real time; CPU {r['cpu_s']} s -> "
            f"{r['speed_x_cpu']:,}x; peak RSS {r['peak_rss_mb']} MB; "
            f"{r['events']} events, {r['alarms']} alarms"
        )
    print("targets: >= 2,000x real time, peak RSS <= 150 MB for any length")


if __name__ == "__main__":
    main()
