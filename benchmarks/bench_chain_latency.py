"""Event-to-alarm latency through the whole chain on the real firmware (p50 / p95).

For each seed, a one-minute cut of the ``spasm-cluster`` scenario around its cluster of
spasm-like movements is played at real-time speed (``--speed 1``) by the unmodified
firmware (``firmware/main.py``) under MicroPython on the virtual board
(``host.links.sim_link.SimulatedBoard`` / ``simulator.board_runner.BoardRunner``), read
over the board's pty by ``SerialLink`` and fed to the ``Daemon`` (``MonitorEngine`` with
a SQLite file store). The runs of all seeds go on in parallel (a board at real time
uses < 1 % of a core), so the benchmark takes about as long as one cut.

Latency of an alarm = wall-clock time the daemon emits it minus the wall-clock time at
which the pattern-completing event ended in the sensor stream. The device clock (ms
since boot, the time of every sample the virtual MPU-6050 produces) is mapped to the
wall clock with the ``SET_TIME`` reply: the firmware reads its clock and writes the
reply at once, so ``t0 = reply received - device ms`` (error: the pty, well under 1 ms).
Breakdown:

    device part: event end -> its packet received by the host (the detector's quiet
                 time that closes the event, waiting for the FIFO batch, MicroPython
                 loop, pty),
    host part:   packet received -> alarm emitted (decode, store, clustering, alerting).

The event's end is where the record says the movement ended: the start of the quiet
spell, or, after a tonic hold and a slow relaxation below the offset level, the moment
the posture was back (docs/detector.md, step 4).

The wall-clock mapping is only as good as the virtual board's pacing: on a loaded
machine the boards fall behind and catch up, which shows as a spread of a few hundred
ms either way (negative device parts). ``detector part (replay)`` is the same quantity
without any clock: the seeds are replayed in CPython with the firmware's FIFO batch
while an event is open, and each alarm-completing event's end is compared with the end
of the FIFO block that emitted it. It is deterministic and bounds the device part from
below (it leaves out only the loop, the pty and the host).

    python benchmarks/bench_chain_latency.py [--seeds 8] [--speed 1] [--lead 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from spasmwatch.firmware import config as fwconfig
from spasmwatch.firmware import control, wire
from spasmwatch.host.daemon import Daemon, DaemonConfig, MonitorEngine
from spasmwatch.host.links.auth_link import AuthLink
from spasmwatch.host.links.base import Link
from spasmwatch.host.links.serial_link import SerialLink
from spasmwatch.host.links.sim_link import SimulatedBoard
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.outputs import Alert, Output
from spasmwatch.host.monitor.store import Store
from spasmwatch.simulator import scenarios
from spasmwatch.simulator.replay import detector_packets, iter_replay, to_sensor_stream
from spasmwatch.simulator.traceio import Trace


class TimedLink(Link):
    """A link that notes when each packet arrived (wall clock) and the SET_TIME anchor."""

    def __init__(self, inner: Link, verifier: Any = None) -> None:
        self.inner = inner
        self.verifier = verifier  # the pairing session: the board tags its packets
        self.arrived: dict[int, tuple[float, tuple[Any, ...]]] = {}  # stream seq -> first
        self.t0: float | None = None  # wall-clock time of device zero

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def send_control(self, payload: bytes) -> None:
        await self.inner.send_control(payload)

    async def recv(self) -> bytes:
        data = await self.inner.recv()
        now = time.time()
        try:
            seq, rec = wire.decode(data, self.verifier)
        except wire.WireError:
            return data
        if rec[0] == wire.KIND_REPLY:
            if rec[2] == control.SET_TIME and self.t0 is None:
                self.t0 = now - rec[4] / 1000.0
        elif rec[0] not in wire.OUT_OF_BAND:
            self.arrived.setdefault(seq, (now, rec))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def cut(seed: int, lead_s: float, window_s: float) -> Trace:
    """``window_s`` of spasm-cluster starting ``lead_s`` before its first spasm."""
    trace, labels = scenarios.generate("spasm-cluster", seed)
    first = min(lb.start for lb in labels if lb.label == "spasm")
    keep = (trace.t >= first - lead_s) & (trace.t < first - lead_s + window_s)
    t = trace.t[keep]
    return Trace(t=t - t[0], acc=trace.acc[keep], meta=dict(trace.meta), source=trace.source)


def has_alarm(trace: Trace) -> bool:
    return any(isinstance(o, Alert) and o.level == "alarm"
               for _, o in iter_replay(trace, Engine(t0=0.0)))


async def one_run(seed: int, trace: Trace, speed: float, folder: Path,
                  limit_s: float) -> tuple[float, float] | None:
    board = SimulatedBoard("spasm-cluster", trace=trace, speed=speed)
    links: list[TimedLink] = []
    alarms: list[tuple[float, Alert]] = []
    daemon: Daemon | None = None

    session = board.session()  # the virtual board pairs itself: verify, sign

    def connect() -> Link:
        links.append(TimedLink(SerialLink(board.port), session))
        return AuthLink(links[-1], session)

    def emit(o: Output) -> None:
        if isinstance(o, Alert) and o.level == "alarm" and not alarms:
            alarms.append((time.time(), o))
            assert daemon is not None
            daemon.stop()  # the first alarm is what is measured

    board.start()
    try:
        with Store(folder / f"b{seed}.db") as store:
            engine = MonitorEngine(store=store, device="bench", heartbeat_s=30,
                                   verifier=session)
            daemon = Daemon(connect, engine, emit, DaemonConfig())
            task = asyncio.create_task(daemon.run())
            try:
                await asyncio.wait_for(asyncio.shield(task), limit_s)
            except TimeoutError:
                daemon.stop()
                await task
    finally:
        board.stop()
    if not alarms:
        return None
    t_alarm, alarm = alarms[0]
    last_seq = alarm.event_seqs[-1]
    link = next(lk for lk in links if last_seq in lk.arrived)
    received, rec = link.arrived[last_seq]
    t0 = next(lk.t0 for lk in links if lk.t0 is not None)
    ev_end = t0 + (rec[1] + rec[5]) / 1000.0  # onset + duration, device ms -> wall
    return received - ev_end, t_alarm - received


def replay_part(trace: Trace) -> float | None:
    """End of the alarm-completing event -> end of the FIFO block that emitted it, in s,
    replayed in CPython with FIFO_BATCH_EVENT-sample blocks (no clocks involved)."""
    cfg = fwconfig.DetectorConfig()
    stream = to_sensor_stream(trace, cfg)
    engine = Engine(t0=0.0)
    for t_block, packets in detector_packets(stream, cfg, block=fwconfig.FIFO_BATCH_EVENT):
        for p in packets:
            _, rec = wire.decode(p)
            for o in engine.feed_packet(p):
                if isinstance(o, Alert) and o.level == "alarm":
                    return t_block - (stream.t0 + (rec[1] + rec[5]) / 1000.0)
    return None


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


async def run_all(args: argparse.Namespace, folder: Path) -> list[tuple[int, Any]]:
    traces = {}
    for seed in range(1, args.seeds + 1):
        tr = cut(seed, args.lead, args.window)
        if has_alarm(tr):
            traces[seed] = tr
        else:
            print(f"seed {seed}: the cut raises no alarm in replay; skipped")
    sem = asyncio.Semaphore(args.parallel)
    limit = args.window / max(args.speed, 1e-9) + 30.0

    async def guarded(seed: int) -> tuple[int, Any]:
        async with sem:
            return seed, await one_run(seed, traces[seed], args.speed, folder, limit)

    return list(await asyncio.gather(*(guarded(s) for s in traces)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=8, help="seeds 1..N of spasm-cluster")
    ap.add_argument("--speed", type=float, default=1.0, help="board speed (1 = real time)")
    ap.add_argument("--lead", type=float, default=20.0,
                    help="s of trace before the first spasm (the detector settles 16 s)")
    ap.add_argument("--window", type=float, default=60.0, help="length of the cut, s")
    ap.add_argument("--parallel", type=int, default=8, help="boards running at once")
    args = ap.parse_args()
    t_start = time.monotonic()
    dev_parts, host_parts, totals = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(run_all(args, Path(tmp)))
    for seed, r in results:
        if r is None:
            print(f"seed {seed}: no alarm from the board within the time limit")
            continue
        d, h = r
        dev_parts.append(d)
        host_parts.append(h)
        totals.append(d + h)
        print(f"seed {seed:3d}: device {d * 1000:6.0f} ms  host {h * 1000:6.1f} ms  "
              f"total {(d + h) * 1000:6.0f} ms")
    if not totals:
        raise SystemExit("no alarms: nothing measured")
    print(f"\n{len(totals)} alarms (spasm-cluster cuts, firmware under MicroPython at "
          f"{args.speed:g}x, {time.monotonic() - t_start:.0f} s)")
    for name, xs in (("device part", dev_parts), ("host part", host_parts),
                     ("event end -> alarm", totals)):
        print(f"{name:>20}: p50 {pct(xs, 50) * 1000:7.1f} ms  p95 {pct(xs, 95) * 1000:7.1f} ms"
              f"  max {max(xs) * 1000:7.1f} ms  mean {statistics.mean(xs) * 1000:7.1f} ms")
    print("target: p95 <= 1000 ms -> " + ("MET" if pct(totals, 95) <= 1.0 else "NOT MET"))
    reps = [r for r in (replay_part(cut(seed, args.lead, args.window))
                        for seed, _ in results) if r is not None]
    if reps:
        print(f"{'detector part (replay)':>20}: p50 {pct(reps, 50) * 1000:7.1f} ms  "
              f"p95 {pct(reps, 95) * 1000:7.1f} ms  max {max(reps) * 1000:7.1f} ms "
              f"({len(reps)} seeds, deterministic)")


if __name__ == "__main__":
    main()
