"""Host throughput: wire packets per second through decode, store, clustering and alerts.

    python benchmarks/bench_host_throughput.py [--packets 50000] [--json]

Builds a realistic stream with the firmware's own encoder (spasm-like clusters, jerk
bursts, movements, summaries and status packets) and feeds it to ``Engine.feed_packet``
with no store, an in-memory SQLite store and a file store (WAL). A sensor sends a few
packets per minute, so this is headroom: how many sensors or how much backlog (a
night's backfill after a link drop) one host process can absorb.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from spasmwatch.firmware import wire
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.store import Store


def stream(n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    packets = []
    t_ms = 0
    for seq in range(n):
        t_ms += rng.randint(500, 9000)
        r = rng.random()
        if r < 0.08:
            rec: tuple = (wire.KIND_STATUS, t_ms, 3900, wire.ST_SENSOR_OK, 10, 100, 50, 4)
        elif r < 0.12:
            rec = (wire.KIND_SUMMARY, t_ms, 60, 5, 3, 1, 600, 12, 1)
        else:
            cls = rng.choice((wire.CLS_JERK, wire.CLS_SPASM_LIKE, wire.CLS_MOVEMENT))
            dur = {wire.CLS_JERK: 150, wire.CLS_SPASM_LIKE: 1200}.get(cls, 3000)
            rec = (wire.KIND_EVENT, t_ms, cls, wire.STATE_SETTLING, 1, dur, 600, 150, 40,
                   200, 3)
        packets.append(wire.encode(seq, rec))
    return packets


def run(packets: list[bytes], store: Store | None) -> tuple[float, dict]:
    engine = Engine(store=store)
    t0 = time.perf_counter()
    for p in packets:
        engine.feed_packet(p)
    engine.finish()
    elapsed = time.perf_counter() - t0
    return len(packets) / elapsed, engine.stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=50_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    packets = stream(args.packets)
    results = {}
    t0 = time.perf_counter()
    for p in packets:
        wire.decode(p)
    results["decode_only"] = len(packets) / (time.perf_counter() - t0)
    results["engine_no_store"], stats = run(packets, None)
    results["engine_memory_store"], _ = run(packets, Store(":memory:"))
    with tempfile.TemporaryDirectory() as tmp:
        with Store(Path(tmp) / "bench.db") as store:
            results["engine_file_store"], _ = run(packets, store)
    if args.json:
        print(json.dumps({k: round(v) for k, v in results.items()}))
        return
    print(f"host throughput, {len(packets)} packets ({stats.get('alerts_by_level')})")
    for k, v in results.items():
        print(f"  {k:<22} {v:>10,.0f} packets/s")


if __name__ == "__main__":
    main()
