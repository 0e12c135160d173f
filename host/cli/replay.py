"""`spasmwatch replay`: run any trace through the detector and host as fast as possible."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from spasmwatch.host.cli import argtypes
from spasmwatch.host.cli.output import alert_config, format_output, load_trace, stats_line
from spasmwatch.host.monitor.engine import Engine


def cmd_replay(args: argparse.Namespace, out: TextIO) -> int:
    from spasmwatch.simulator.replay import iter_replay

    trace = load_trace(args.trace)
    engine = Engine(alert_config(args), t0=float(trace.t[0]))
    for _, o in iter_replay(trace, engine):
        if args.json:
            out.write(json.dumps(o) + "\n")
        else:
            line = format_output(o)
            if line and (o["type"] != "event" or not args.quiet):
                out.write(line + "\n")
    if not args.json:
        out.write(stats_line(engine.stats) + "\n")
    return 0


def register(sub: Any) -> None:
    r = sub.add_parser("replay", help="run a trace through detector and host, fast")
    r.add_argument("trace")
    r.add_argument("--json", action="store_true", help="JSON lines on stdout")
    r.add_argument("--quiet", action="store_true", help="alerts and clusters only")
    r.add_argument("--min-spasms", type=argtypes.MIN_SPASMS,
                   help="spasm-like events for an alarm (3)")
    r.add_argument("--gap", type=argtypes.GAP_S, help="max gap between them in s (60)")
    r.set_defaults(func=cmd_replay)
