"""Event-to-alarm latency through the simulated serial chain (p50 / p95).

For each seed of a spasm scenario, the firmware detector's packets are played onto a
real pty by ``tests/pty_device.PtyDevice`` (a CPython stand-in for the board, NOT the
firmware under MicroPython) and read by the daemon (``SerialLink`` + ``Daemon`` +
``MonitorEngine`` with a SQLite file store). Latency of the alarm =

    device part: send time of the pattern-completing event's packet minus the event's
                 end, in the sensor stream (detector quiet time + FIFO batching), plus
    host part:   wall time from writing that packet to the pty to the alarm being
                 emitted by the daemon (framing, pyserial, decode, store, alerting).

The device plays at ``--speed`` x real time (default 200) so a run takes seconds; the
host part is measured in real time, the device part is exact stream time.

    python benchmarks/bench_chain_latency.py [--seeds 12] [--scenario spasm-cluster]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from spasmwatch.host.daemon import Daemon, DaemonConfig, MonitorEngine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pty_device import PtyDevice, scenario_schedule  # noqa: E402 - the wire stand-in

from spasmwatch.host.links.serial_link import SerialLink  # noqa: E402
from spasmwatch.host.store import Store


def one_run(scenario: str, seed: int, speed: float, folder: Path) -> tuple[float, float] | None:
    items, _ = scenario_schedule(scenario, seed)
    dev = PtyDevice(items, folder / f"tty{seed}", speed=speed)
    alarms: list[tuple[float, dict]] = []

    daemons: list[Daemon] = []

    def emit(o: dict) -> None:
        if o["type"] == "alert" and o["level"] == "alarm":
            alarms.append((time.monotonic(), o))
            daemons[0].stop()  # the first alarm is what is measured

    async def main() -> None:
        with Store(folder / f"b{seed}.db") as store:
            eng = MonitorEngine(store=store, device="bench", heartbeat_s=30)
            d = Daemon(lambda: SerialLink(str(dev.path)), eng, emit,
                       DaemonConfig(tick_s=0.5))
            daemons.append(d)
            await d.run()

    with dev:
        asyncio.run(main())
    if not alarms:
        return None
    t_alarm, alarm = alarms[0]
    last_seq = alarm["event_seqs"][-1]
    written = next(w for s, _, w in dev.sent if s == last_seq)
    seq = 0
    for it in items:  # the device numbers packets in schedule order
        if seq == last_seq:
            ev_end = (it.rec[1] + it.rec[5]) / 1000.0
            device_part = it.send_s - ev_end
            break
        seq += 1
    return device_part, t_alarm - written


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="spasm-cluster")
    ap.add_argument("--seeds", type=int, default=12)
    ap.add_argument("--speed", type=float, default=200.0)
    args = ap.parse_args()
    dev_parts, host_parts, totals = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.seeds + 1):
            r = one_run(args.scenario, seed, args.speed, Path(tmp))
            if r is None:
                print(f"seed {seed}: no alarm")
                continue
            d, h = r
            dev_parts.append(d)
            host_parts.append(h)
            totals.append(d + h)
            print(f"seed {seed:3d}: device {d * 1000:6.0f} ms  host {h * 1000:6.1f} ms  "
                  f"total {(d + h) * 1000:6.0f} ms")
    if not totals:
        raise SystemExit("no alarms: nothing measured")
    print(f"\n{len(totals)} alarms ({args.scenario}, device at {args.speed:g}x)")
    for name, xs in (("device part", dev_parts), ("host part", host_parts),
                     ("event end -> alarm", totals)):
        print(f"{name:>20}: p50 {pct(xs, 50) * 1000:7.1f} ms  p95 {pct(xs, 95) * 1000:7.1f} ms"
              f"  max {max(xs) * 1000:7.1f} ms  mean {statistics.mean(xs) * 1000:7.1f} ms")
    print("target: p95 <= 1000 ms -> " + ("MET" if pct(totals, 95) <= 1.0 else "NOT MET"))


if __name__ == "__main__":
    main()
