"""The ``spasmwatch`` command: demo, simulate, replay, evaluate.

Errors a user can cause (a malformed trace, a missing file, an unknown scenario) end in
one line on stderr naming the file and problem, and exit code 2; never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from spasmwatch import __version__
from spasmwatch.host.errors import UserError
from spasmwatch.host.monitor.alerts import AlertConfig
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.simulator.traceio import Trace, TraceFormatError, read_trace

EXIT_USAGE = 2
DISCLAIMER = (
    "spasmwatch is a monitoring aid, not a medical device: it describes movements, it "
    "does not diagnose. If you are worried, film an episode and see a doctor urgently."
)


def _clock(t: float) -> str:
    t = max(t, 0.0)
    h, rem = divmod(int(t), 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}.{int((t % 1) * 10)}"


def format_output(out: dict[str, Any]) -> str | None:
    """One human-readable line for an engine output (None: not worth a line)."""
    kind = out["type"]
    if kind == "event":
        return (
            f"{_clock(out['t'])}  event   {out['cls']:<10} {out['duration_s']:4.2f} s  "
            f"peak {out['peak_mg']:>5} mg  tilt {out['tilt_mg']:>4} mg  "
            f"({out['state']})"
        )
    if kind == "alert":
        level = out["level"].upper()
        return f"{_clock(out['t'])}  {level:<7} {out['message']}"
    if kind == "cluster":
        return (
            f"{_clock(out['end'])}  cluster {out['n_events']} events "
            f"({out.get('n_spasm_like', 0)} spasm-like) from {_clock(out['start'])}"
        )
    if kind == "gap":
        return f"{_clock(out['t'])}  GAP     {out['message']}"
    return None


def _load_trace(path: str) -> Trace:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{path}: no such file")
    return read_trace(p)


def _alert_config(args: argparse.Namespace) -> AlertConfig:
    cfg = AlertConfig()
    if getattr(args, "min_spasms", None):
        cfg.alarm_min_spasms = args.min_spasms
    if getattr(args, "gap", None):
        cfg.spasm_gap_s = args.gap
    return cfg


def cmd_replay(args: argparse.Namespace, out: TextIO) -> int:
    from spasmwatch.simulator.replay import iter_replay

    trace = _load_trace(args.trace)
    engine = Engine(_alert_config(args), t0=float(trace.t[0]))
    for _, o in iter_replay(trace, engine):
        if args.json:
            out.write(json.dumps(o) + "\n")
        else:
            line = format_output(o)
            if line and (o["type"] != "event" or not args.quiet):
                out.write(line + "\n")
    if not args.json:
        out.write(_stats_line(engine.stats) + "\n")
    return 0


def _stats_line(stats: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in stats.items() if not isinstance(v, dict)]
    for k, v in stats.items():
        if isinstance(v, dict) and v:
            parts.append(f"{k}=" + ",".join(f"{kk}:{vv}" for kk, vv in v.items()))
    return "summary: " + " ".join(parts)


def cmd_simulate(args: argparse.Namespace, out: TextIO) -> int:
    from spasmwatch.simulator import scenarios

    if args.scenario == "suite":
        paths = scenarios.generate_suite(Path(args.output), seed=args.seed)
        out.write(f"wrote {len(paths)} traces to {args.output}\n")
        return 0
    if args.scenario not in scenarios.SCENARIOS:
        raise UserError(
            f"unknown scenario {args.scenario!r}; choose from: "
            + ", ".join(sorted(scenarios.SCENARIOS)) + ", suite"
        )
    kw: dict[str, Any] = {"rate_hz": args.rate, "range_g": args.range}
    if args.spasm_g is not None:
        kw["spasm_g"] = args.spasm_g
    if args.posture:
        kw["posture"] = args.posture
    path = scenarios.simulate_to_dir(
        args.scenario, Path(args.output), seed=args.seed, gz=args.gz, **kw
    )
    out.write(f"wrote {path}\n")
    return 0


def cmd_evaluate(args: argparse.Namespace, out: TextIO) -> int:
    from spasmwatch.host.evaluate import evaluate_folder

    folder = Path(args.folder)
    if not folder.is_dir():
        raise UserError(f"{args.folder}: not a folder")
    summary, scores = evaluate_folder(folder, _alert_config(args))
    if summary.traces == 0:
        raise UserError(f"{args.folder}: no trace files (*.csv, *.csv.gz)")
    if args.json:
        out.write(json.dumps(summary.as_dict()) + "\n")
        return 0
    for s in scores:
        out.write(
            f"{s.name:<40} {s.hours * 60:6.1f} min  clusters {s.detected}/{s.clusters}  "
            f"false alarms {s.false_alarms}  spasms found {s.spasms_found}/{s.spasms}\n"
        )
    for k, v in summary.as_dict().items():
        out.write(f"{k}: {v}\n")
    return 0


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from spasmwatch.simulator import scenarios

    if args.trace:
        trace = _load_trace(args.trace)
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

    from spasmwatch.host.cli.run import _run, end_when_over, simulated_ble_connect
    from spasmwatch.host.links.serial_link import SerialLink
    from spasmwatch.host.links.sim_link import SimulatedBoard
    from spasmwatch.host.monitor.daemon import Daemon, DaemonConfig, MonitorEngine
    from spasmwatch.host.monitor.store import Store

    link = getattr(args, "link", "serial")
    board = SimulatedBoard(args.scenario, trace=trace, labels=labels, speed=args.speed,
                           link=link)
    first_alarm: float | None = None
    with Store(":memory:") as store, board:
        engine = MonitorEngine(AlertConfig(), store=store, device=board.device_name)
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

        connect = (simulated_ble_connect(board) if link == "ble"
                   else (lambda: SerialLink(board.port)))
        daemon = Daemon(connect, engine, emit, DaemonConfig())
        asyncio.run(_run(daemon))
        st = engine.ingest.stats
        out.write(f"board: {st.accepted} packets from the firmware, "
                  f"{engine.ingest.missing} missing, {st.duplicates} duplicates\n")
    return first_alarm



#: Modules that add their own subcommands: each has ``register(subparsers)`` and sets
#: ``func(args, out) -> int`` as the parser default. One line per module.
COMMAND_MODULES: tuple[str, ...] = (
    "spasmwatch.host.cli.config",
    "spasmwatch.host.cli.alert",
    "spasmwatch.host.cli.run",
    "spasmwatch.host.cli.scan",
    "spasmwatch.host.cli.flash",
    "spasmwatch.host.cli.report",
    "spasmwatch.host.cli.export",
    "spasmwatch.host.cli.annotate",
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spasmwatch",
        description="Local-first monitor for infant sleep-onset movements. " + DISCLAIMER,
    )
    p.add_argument("--version", action="version", version=f"spasmwatch {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

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

    s = sub.add_parser("simulate", help="write a scenario trace and its labels")
    s.add_argument("scenario", help="scenario name, or 'suite' for an evaluation set")
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--rate", type=float, default=100.0, help="sample rate in Hz")
    s.add_argument("--range", type=int, default=4, choices=(2, 4, 8, 16), help="range in g")
    s.add_argument("--posture", help="starting posture (supine, prone, left, right, ...)")
    s.add_argument("--spasm-g", type=float, help="scale of spasm accelerations (assumption)")
    s.add_argument("--gz", action="store_true", help="write .csv.gz")
    s.set_defaults(func=cmd_simulate)

    r = sub.add_parser("replay", help="run a trace through detector and host, fast")
    r.add_argument("trace")
    r.add_argument("--json", action="store_true", help="JSON lines on stdout")
    r.add_argument("--quiet", action="store_true", help="alerts and clusters only")
    r.add_argument("--min-spasms", type=int, help="spasm-like events for an alarm (3)")
    r.add_argument("--gap", type=float, help="max gap between them in s (60)")
    r.set_defaults(func=cmd_replay)

    e = sub.add_parser("evaluate", help="score replay against labels in a folder")
    e.add_argument("folder")
    e.add_argument("--json", action="store_true")
    e.add_argument("--min-spasms", type=int)
    e.add_argument("--gap", type=float)
    e.set_defaults(func=cmd_evaluate)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace, TextIO], int] = args.func
    try:
        return func(args, out or sys.stdout)
    except (TraceFormatError, UserError) as exc:
        print(f"spasmwatch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
