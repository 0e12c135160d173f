"""What the command line prints: one human line per engine output, shared option helpers."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spasmwatch.host.errors import UserError
from spasmwatch.host.monitor.alerts import AlertConfig
from spasmwatch.host.monitor.outputs import Alert, Cluster, EventOutput, Gap, Output

if TYPE_CHECKING:  # numpy is imported only by the commands that read traces
    from spasmwatch.simulator.traceio import Trace

DISCLAIMER = (
    "spasmwatch is a monitoring aid, not a medical device: it describes movements, it "
    "does not diagnose. If you are worried, film an episode and see a doctor urgently."
)


def clock(t: float) -> str:
    t = max(t, 0.0)
    h, rem = divmod(int(t), 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}.{int((t % 1) * 10)}"


def format_output(out: Output, shift: float = 0.0) -> str | None:
    """One human-readable line for an engine output (None: not worth a line); times are
    shown ``shift`` seconds later (the demo shows a board's times on the trace's clock)."""
    match out:
        case EventOutput(event=ev):
            return (
                f"{clock(ev.t + shift)}  event   {ev.cls:<10} {ev.duration_s:4.2f} s  "
                f"peak {ev.peak_mg:>5} mg  tilt {ev.tilt_mg:>4} mg  "
                f"({ev.state})"
            )
        case Alert():
            level = out.level.upper()
            return f"{clock(out.t + shift)}  {level:<7} {out.message}"
        case Cluster():
            return (
                f"{clock(out.end + shift)}  cluster {out.n_events} events "
                f"({out.n_spasm_like} spasm-like) from {clock(out.start + shift)}"
            )
        case Gap():
            return f"{clock(out.t + shift)}  GAP     {out.message}"
    return None


def load_trace(path: str) -> Trace:
    from spasmwatch.simulator.traceio import read_trace

    p = Path(path)
    if not p.exists():
        raise UserError(f"{path}: no such file")
    return read_trace(p)


def alert_config(args: argparse.Namespace) -> AlertConfig:
    cfg = AlertConfig()
    if getattr(args, "min_spasms", None):
        cfg.alarm_min_spasms = args.min_spasms
    if getattr(args, "gap", None):
        cfg.spasm_gap_s = args.gap
    return cfg



def stats_line(stats: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in stats.items() if not isinstance(v, dict)]
    for k, v in stats.items():
        if isinstance(v, dict) and v:
            parts.append(f"{k}=" + ",".join(f"{kk}:{vv}" for kk, vv in v.items()))
    return "summary: " + " ".join(parts)
