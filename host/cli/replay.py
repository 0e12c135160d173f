"""`spasmwatch replay`: run any trace through the detector and host as fast as possible.

The file is streamed block by block (``TraceStream``): memory stays flat whatever the
trace's length (benchmarks/bench_replay.py measures it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from spasmwatch.host.cli import argtypes
from spasmwatch.host.cli.output import alert_config, format_output, stats_line
from spasmwatch.host.errors import UserError
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.outputs import EventOutput


def cmd_replay(args: argparse.Namespace, out: TextIO) -> int:
    from spasmwatch.simulator.replay import replay_file
    from spasmwatch.simulator.traceio import TraceStream

    path = Path(args.trace)
    if not path.exists():
        raise UserError(f"{args.trace}: no such file")
    try:
        stream = TraceStream(path)
    except OSError as exc:
        raise UserError(f"{args.trace}: cannot read ({exc.strerror or exc})") from None
    with stream:
        engine = Engine(alert_config(args), t0=stream.t_first)
        for _, o in replay_file(stream, engine):
            if args.json:
                out.write(json.dumps(o.to_json()) + "\n")
            else:
                line = format_output(o)
                if line and (not isinstance(o, EventOutput) or not args.quiet):
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
