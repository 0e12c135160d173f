"""Host cost of the event score (round 5): microseconds per event, features plus model.

    python benchmarks/bench_event_score.py [--seeds 3] [--repeat 20]

Generates ``mixed-night`` traces (seeds 1..N), runs the firmware detector over them and
collects every event with its detail record, as the monitor sees them; then times
``EventContext.features`` + ``event_score`` over all of them, ``--repeat`` times, and
prints the median per event. A sensor sends a few events per minute, so this is
headroom, not a budget the night path comes close to.
"""

from __future__ import annotations

import argparse
import statistics
import time

from spasmwatch.host.evaluate import trace_packets
from spasmwatch.host.monitor.alerts import AlertConfig
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.event_evidence import EventContext, event_score
from spasmwatch.host.monitor.outputs import EventOutput
from spasmwatch.host.monitor.records import Detail, Event
from spasmwatch.simulator import scenarios


def events(seeds: int) -> list[tuple[Event, Detail | None]]:
    out = []
    for seed in range(1, seeds + 1):
        trace, _ = scenarios.generate("mixed-night", seed)
        eng = Engine(AlertConfig(event_class="firmware"), t0=float(trace.t[0]))
        for p in trace_packets(trace):
            for o in eng.feed_packet(p):
                if isinstance(o, EventOutput):
                    out.append((o.event, eng.spasms.detail_of(o.event)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args()
    evs = events(a.seeds)
    with_detail = sum(d is not None for _, d in evs)
    runs = []
    for _ in range(a.repeat):
        ctx = EventContext()
        t0 = time.perf_counter()
        for ev, d in evs:
            event_score(ctx.features(ev, d))
            ctx.push(ev, d)
        runs.append((time.perf_counter() - t0) / len(evs))
    print(f"events: {len(evs)} ({with_detail} with a detail record), {a.repeat} runs")
    print(f"event score: median {statistics.median(runs) * 1e6:.1f} us per event "
          f"(min {min(runs) * 1e6:.1f}, max {max(runs) * 1e6:.1f})")


if __name__ == "__main__":
    main()
