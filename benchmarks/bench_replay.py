"""Replay speed and peak memory: a one-hour 100 Hz trace through detector and host.

    python benchmarks/bench_replay.py [--minutes 60] [--rate 100] [--json]

Generates a benign night (no alarms expected) and a spasm night, writes them as CSV,
and times reading, resampling + detection + host engine (in-memory SQLite store), and
the whole ``spasmwatch replay`` path. Prints trace-seconds per wall-second (target:
≥ 500× real time for one hour at 100 Hz) and the peak resident memory of this process.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from spasmwatch.host.monitor.alerts import AlertConfig
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.store import Store
from spasmwatch.simulator import scenarios
from spasmwatch.simulator.replay import iter_replay
from spasmwatch.simulator.traceio import read_trace, write_trace


def bench(scenario: str, minutes: float, rate: float, folder: Path) -> dict[str, float | str]:
    trace, _ = scenarios.generate(scenario, seed=1, rate_hz=rate, duration_s=minutes * 60)
    path = folder / f"{scenario}.csv"
    write_trace(path, trace)
    t0 = time.perf_counter()
    loaded = read_trace(path)
    t_read = time.perf_counter() - t0
    engine = Engine(AlertConfig(), store=Store(":memory:"), t0=float(loaded.t[0]))
    t0 = time.perf_counter()
    outputs = [o for _, o in iter_replay(loaded, engine)]
    t_replay = time.perf_counter() - t0
    seconds = loaded.duration
    return {
        "scenario": scenario,
        "trace_s": round(seconds, 1),
        "samples": len(loaded.t),
        "read_s": round(t_read, 3),
        "replay_s": round(t_replay, 3),
        "speed_x_replay": round(seconds / t_replay, 1),
        "speed_x_with_read": round(seconds / (t_replay + t_read), 1),
        "events": sum(1 for o in outputs if o["type"] == "event"),
        "alarms": sum(1 for o in outputs if o["type"] == "alert" and o["level"] == "alarm"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            bench(s, args.minutes, args.rate, Path(tmp)) for s in ("benign-night", "spasm-night")
        ]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if args.json:
        print(json.dumps({"rows": rows, "peak_rss_mb": round(peak_mb, 1)}))
        return
    print(f"replay of {args.minutes:g} min at {args.rate:g} Hz (CPython, this machine)")
    for r in rows:
        print(
            f"  {r['scenario']:<13} read {r['read_s']:6.3f} s  replay {r['replay_s']:6.3f} s  "
            f"-> {r['speed_x_replay']:>8.0f}x real time ({r['speed_x_with_read']:.0f}x incl. "
            f"reading the CSV); {r['events']} events, {r['alarms']} alarms"
        )
    print(f"  peak RSS of this process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
