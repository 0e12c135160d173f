"""`spasmwatch demo`: a simulated night through the whole system, paced."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from typing import Any, TextIO

from spasmwatch.host.cli.output import DISCLAIMER, format_output, load_trace
from spasmwatch.host.errors import UserError
from spasmwatch.host.monitor.alerts import AlertConfig
from spasmwatch.host.monitor.engine import Engine


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from spasmwatch.simulator import scenarios

    if args.trace:
        trace = load_trace(args.trace)
        labels = None
    else:
        if args.scenario not in scenarios.SCENARIOS:
            raise UserError(f"unknown scenario {args.scenario!r}")
        trace, labels = scenarios.generate(args.scenario, seed=args.seed)
    out.write(DISCLAIMER + "\n")
    counts: Counter[str] = Counter()
    if args.in_process:
        out.write(
            f"Replaying {trace.source or args.scenario}: {trace.duration / 60:.1f} min of "
            f"sensor data at {args.speed:g}x through the firmware detector and the host "
            "(in-process, no MicroPython).\n\n"
        )
        out.flush()
        first_alarm = _demo_in_process(args, out, trace, counts)
    else:
        out.write(
            f"Playing {trace.source or args.scenario}: {trace.duration / 60:.1f} min of "
            f"sensor data at {args.speed:g}x into a virtual MPU-6050; the board firmware "
            "runs under MicroPython and the host daemon reads it "
            + ("over Bluetooth LE (a Bumble stack on a virtual radio).\n\n"
               if getattr(args, "link", "serial") == "ble" else
               "over its USB serial port (a pty).\n\n")
        )
        out.flush()
        first_alarm = _demo_on_board(args, out, trace, labels, counts)
    out.write("\nSummary\n")
    out.write(
        "  events: " + ", ".join(f"{counts[c]} {c}" for c in ("jerk", "spasm_like", "movement"))
        + "\n"
    )
    out.write(
        "  alerts: " + ", ".join(
            f"{counts[lv]} {lv}" for lv in ("info", "warning", "alarm", "fault")
        ) + "\n"
    )
    if labels is not None:
        spasms = sorted(lb.start for lb in labels if lb.label == "spasm")
        jerks = sum(1 for lb in labels if lb.label == "jerk")
        out.write(
            f"  ground truth: {len(spasms)} simulated spasms, {jerks} isolated jerks\n"
        )
        if first_alarm is not None and len(spasms) >= 3:
            out.write(
                f"  first alarm {first_alarm - spasms[2]:.1f} s after the onset of the "
                "third simulated spasm\n"
            )
    out.write("\n" + DISCLAIMER + "\n")
    return 0


def _count(o: dict[str, Any], counts: Counter[str]) -> bool:
    """Count an output for the demo's summary; True for the first alarm."""
    if o["type"] == "event":
        counts[o["cls"]] += 1
    if o["type"] == "alert":
        counts[o["level"]] += 1
        if o["level"] == "alarm":
            counts["_alarms"] += 1
            return counts["_alarms"] == 1
    return False


def _demo_in_process(args: argparse.Namespace, out: TextIO, trace: Any,
                     counts: Counter[str]) -> float | None:
    """The old demo: replay the trace through the detector and engine in this process."""
    from spasmwatch.simulator.replay import iter_replay

    engine = Engine(AlertConfig(), t0=float(trace.t[0]))
    wall0 = time.monotonic()
    t0 = float(trace.t[0])
    first_alarm: float | None = None
    for t_known, o in iter_replay(trace, engine):
        if args.speed > 0:
            delay = (t_known - t0) / args.speed - (time.monotonic() - wall0)
            if delay > 0:
                time.sleep(delay)
        if _count(o, counts):
            first_alarm = o["t"]
        line = format_output(o)
        if line:
            out.write(line + "\n")
            out.flush()
    return first_alarm


def _demo_on_board(args: argparse.Namespace, out: TextIO, trace: Any, labels: Any,
                   counts: Counter[str]) -> float | None:
    """The whole chain: firmware under MicroPython -> pty -> SerialLink -> daemon.

    Times are shown on the trace's clock: device time since boot (the virtual sensor
    starts playing the trace within a second of boot) plus the trace's start.
    """
    import asyncio

    from spasmwatch.host.cli.run import _run, end_when_over
    from spasmwatch.host.links.sim_link import SimulatedBoard
    from spasmwatch.host.monitor.daemon import Daemon, DaemonConfig, MonitorEngine
    from spasmwatch.host.monitor.store import Store

    link = getattr(args, "link", "serial")
    board = SimulatedBoard(args.scenario, trace=trace, labels=labels, speed=args.speed,
                           link=link)
    first_alarm: float | None = None
    with Store(":memory:") as store, board:
        engine = MonitorEngine(AlertConfig(), store=store, device=board.device_name,
                               verifier=board.session())  # security: the board pairs itself
        daemon: Daemon | None = None
        t_trace = float(trace.t[0])

        def emit(o: dict[str, Any]) -> None:
            nonlocal first_alarm
            if daemon is not None:
                end_when_over(daemon, board, o)
            if o["type"] == "link":
                if o["state"] == "connected":
                    where = board.port if link == "serial" else board.ble_backend
                    out.write(f"board: connected over {o.get('link', 'serial')} "
                              f"({where})\n")
                elif o["state"] not in ("ended",):
                    out.write(f"board: {o['message']}\n")
                out.flush()
                return
            if o["type"] == "status" and counts["_status"] == 0:
                counts["_status"] += 1
                out.write(
                    f"board: firmware running under MicroPython: free heap {o['heap_kb']} "
                    f"kB, battery {o['battery_mv']} mV, {o['rate_hz']} Hz, "
                    f"±{o['range_g']} g\n"
                )
            # wall-clock record times -> the trace's clock, for the same lines as replay
            shift = t_trace - engine.ingest.clock.t0
            shown = {**o}
            for k in ("t", "start", "end"):
                if isinstance(o.get(k), (int, float)):
                    shown[k] = float(o[k]) + shift
            if _count(shown, counts):
                first_alarm = shown["t"]
            line = format_output(shown)
            if line:
                out.write(line + "\n")
            out.flush()

        connect = board.connect  # security: authenticated serial or BLE (sim_link.py)
        daemon = Daemon(connect, engine, emit, DaemonConfig())
        asyncio.run(_run(daemon))
        st = engine.ingest.stats
        out.write(f"board: {st.accepted} packets from the firmware, "
                  f"{engine.ingest.missing} missing, {st.duplicates} duplicates\n")
    return first_alarm


def register(sub: Any) -> None:
    d = sub.add_parser("demo", help="run a simulated night through the whole system")
    d.add_argument("--scenario", default="mixed-night")
    d.add_argument("--trace", help="replay this trace file instead of a scenario")
    d.add_argument("--speed", type=float, default=60.0,
                   help="times real time (0: as fast as possible; default 60)")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--in-process", action="store_true",
                   help="replay in this process (no MicroPython, no serial port)")
    d.add_argument("--link", choices=("serial", "ble"), default="serial",
                   help="reach the virtual board over its serial port (default) or "
                   "Bluetooth LE (a real Bluetooth stack on a virtual radio)")
    d.set_defaults(func=cmd_demo)
