"""`spasmwatch demo`: a simulated night through the whole system, paced."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from typing import Any, TextIO

from spasmwatch.host.cli import argtypes
from spasmwatch.host.cli.output import DISCLAIMER, format_output, load_trace
from spasmwatch.host.errors import UserError
from spasmwatch.host.monitor.alerts import AlertConfig
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.outputs import (
    Alert,
    ChannelCheck,
    Delivery,
    EventOutput,
    LinkNote,
    Output,
    StatusOutput,
)

DEMO_SEED = 2


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
    fallback = False  # no MicroPython here: the firmware's modules run in this process
    if not args.in_process:
        from spasmwatch.host import optional

        if optional.find_micropython() is None:  # a Raspberry Pi: no MicroPython wheel
            if getattr(args, "link", "serial") != "serial":
                raise UserError(f"--link {args.link} needs the virtual board: "
                                + optional.micropython_message())
            out.write(optional.in_process_note() + ".\n")
            fallback = True
        elif getattr(args, "link", "serial") == "ble" and not optional.has_module("bumble"):
            raise UserError(optional.bumble_message())
    if args.in_process:
        out.write(
            f"Replaying {trace.source or args.scenario}: {trace.duration / 60:.1f} min of "
            f"sensor data at {args.speed:g}x through the firmware detector and the host "
            "(in-process, no MicroPython).\n\n"
        )
        out.flush()
        alarms = _demo_in_process(args, out, trace, counts)
    elif fallback:
        out.write(
            f"Playing {trace.source or args.scenario}: {trace.duration / 60:.1f} min of "
            f"sensor data at {args.speed:g}x through the firmware's detector in this "
            "process, into the same monitor as `run` (alarm sound included).\n\n")
        out.flush()
        alarms = _demo_on_board(args, out, trace, labels, counts, in_process_board=True)
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
        alarms = _demo_on_board(args, out, trace, labels, counts)
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
    if counts["_host_fault"]:
        out.write(f"  alert delivery: {counts['_host_fault']} problem(s) (see the 'alerts:' "
                  "lines above; `spasmwatch alert test` checks the sound)\n")
    if labels is not None:
        spasms = sorted(lb.start for lb in labels if lb.label == "spasm")
        jerks = sum(1 for lb in labels if lb.label == "jerk")
        out.write(
            f"  ground truth: {len(spasms)} simulated spasms, {jerks} isolated jerks\n"
        )
        if len(spasms) >= 3:
            # An alarm belongs to the simulated cluster from its third spasm to a minute
            # after its last one; any other alarm is a false alarm of the detector.
            during = [a for a in alarms if spasms[2] <= a <= spasms[-1] + 60.0]
            if during:
                out.write(f"  the alarm came {during[0] - spasms[2]:.1f} s after the onset "
                          "of the third simulated spasm\n")
            else:
                out.write("  the simulated cluster raised NO alarm\n")
            false = len(alarms) - len(during)
            if false:
                out.write(f"  {false} alarm(s) outside the simulated cluster: false alarms "
                          "(docs/evaluation.md says how often)\n")
    out.write("\n" + DISCLAIMER + "\n")
    return 0


def _count(o: Output, counts: Counter[str]) -> bool:
    """Count an output for the demo's summary; True for an alarm."""
    if isinstance(o, EventOutput):
        counts[o.event.cls] += 1
    if isinstance(o, Alert) and o.source == "host":
        counts["_host_" + o.level] += 1  # about delivery, shown apart
    elif isinstance(o, Alert):
        counts[o.level] += 1
        return o.level == "alarm"
    return False


def _demo_in_process(args: argparse.Namespace, out: TextIO, trace: Any,
                     counts: Counter[str]) -> list[float]:
    """The old demo: replay the trace through the detector and engine in this process."""
    from spasmwatch.simulator.replay import iter_replay

    engine = Engine(AlertConfig(), t0=float(trace.t[0]))
    wall0 = time.monotonic()
    t0 = float(trace.t[0])
    alarms: list[float] = []
    for t_known, o in iter_replay(trace, engine):
        if args.speed > 0:
            delay = (t_known - t0) / args.speed - (time.monotonic() - wall0)
            if delay > 0:
                time.sleep(delay)
        _show(o, out, counts, alarms)
    return alarms


def _show(o: Output, out: TextIO, counts: Counter[str], alarms: list[float],
          shift: float = 0.0) -> None:
    """Count an output for the summary, note an alarm's time, print its line (times
    ``shift`` seconds later)."""
    if _count(o, counts):
        assert isinstance(o, Alert)
        alarms.append(o.t + shift)
    line = format_output(o, shift)
    if line:
        out.write(line + "\n")
    out.flush()


def _demo_on_board(args: argparse.Namespace, out: TextIO, trace: Any, labels: Any,
                   counts: Counter[str], in_process_board: bool = False) -> list[float]:
    """The whole chain: firmware under MicroPython -> pty (or virtual radio) -> the
    monitor that ``run`` builds (``host/compose.py``), alarm sound and web page included.

    Times are shown on the trace's clock: device time since boot (the virtual sensor
    starts playing the trace within a second of boot) plus the trace's start.
    """
    from spasmwatch.host.compose import SensorSource, build_monitor, load_for_cli
    from spasmwatch.host.links.sim_link import SimulatedBoard

    link = getattr(args, "link", "serial")
    board: Any
    if in_process_board:
        from spasmwatch.host.links.inprocess_board import InProcessBoard

        board = InProcessBoard(args.scenario, trace=trace, labels=labels, speed=args.speed)
    else:
        board = SimulatedBoard(args.scenario, trace=trace, labels=labels, speed=args.speed,
                               link=link)
    alarms: list[float] = []
    t_trace = float(trace.t[0])
    settings = load_for_cli(getattr(args, "config", None))
    engine_ref: list[Any] = []

    def emit(o: Output) -> None:
        if isinstance(o, LinkNote):
            if o.state == "connected":
                where = ("in this process" if in_process_board
                         else board.port if link == "serial" else board.ble_backend)
                out.write(f"board: connected over {o.link or 'serial'} ({where})\n")
            elif o.state not in ("ended",):
                out.write(f"board: {o.message}\n")
            out.flush()
            return
        if isinstance(o, ChannelCheck):
            mark = "ok" if o.ok else "NOT OK"
            out.write(f"alerts: {o.channel}: {mark}: {o.message}\n")
            out.flush()
            return
        if isinstance(o, Delivery):
            if o.ok is False:
                out.write(f"alerts: {o.level} NOT delivered via {o.channel}: {o.detail}\n")
            elif o.level == "alarm":
                out.write(f"alerts: alarm sent via {o.channel}: {o.detail}\n")
            out.flush()
            return
        if isinstance(o, Alert) and o.source == "host":  # about delivery: wall clock
            _count(o, counts)
            word = "ok again" if o.kind == "fault_cleared" else o.level.upper()
            out.write(f"alerts: {word}: {o.message}\n")
            out.flush()
            return
        if isinstance(o, StatusOutput) and counts["_status"] == 0:
            counts["_status"] += 1
            st = o.status
            out.write(
                f"board: firmware running{'' if in_process_board else ' under MicroPython'}"
                f": free heap {st.heap_kb} "
                f"kB, battery {st.battery_mv} mV, {st.rate_hz} Hz, "
                f"±{st.range_g} g\n"
            )
        # wall-clock record times -> the trace's clock, for the same lines as replay
        shift = t_trace - engine_ref[0].t0 if engine_ref else 0.0
        _show(o, out, counts, alarms, shift)

    # A simulated board pairs itself: the daemon verifies its packets with that key.
    session = board.session() if hasattr(board, "session") else None
    monitor = build_monitor(settings, SensorSource(board=board, session=session), emit,
                            db=None,
                            alerts=not getattr(args, "no_alerts", False),
                            check_clock=args.speed == 1.0)
    engine_ref.append(monitor.engine)
    monitor.run()
    out.write(f"board: {monitor.engine.summary_line()}\n")
    return alarms


def register(sub: Any) -> None:
    d = sub.add_parser("demo", help="run a simulated night through the whole system")
    d.add_argument("--scenario", default="mixed-night")
    d.add_argument("--trace", help="replay this trace file instead of a scenario")
    d.add_argument("--speed", type=argtypes.SPEED, default=60.0,
                   help="times real time (0: as fast as possible; default 60)")
    # Seed 2 of mixed-night: one cluster, and no false alarm. (Seeds 1 and 7 also alarm
    # on a settling stretch: the detector's known false alarms, docs/evaluation.md.)
    d.add_argument("--seed", type=argtypes.SEED, default=DEMO_SEED,
                   help=f"scenario seed (default {DEMO_SEED})")
    d.add_argument("--in-process", action="store_true",
                   help="replay in this process (no MicroPython, no serial port)")
    d.add_argument("--link", choices=("serial", "ble"), default="serial",
                   help="reach the virtual board over its serial port (default) or "
                   "Bluetooth LE (a real Bluetooth stack on a virtual radio)")
    d.add_argument("--config", help="settings file (default: as for run)")
    d.add_argument("--no-alerts", action="store_true",
                   help="no alarm sound, phone or web page (shown here only)")
    d.set_defaults(func=cmd_demo)
