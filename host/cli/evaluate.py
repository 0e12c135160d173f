"""`spasmwatch evaluate`: score replay against the labels in a folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from spasmwatch.host.cli import argtypes
from spasmwatch.host.cli.output import alert_config
from spasmwatch.host.errors import UserError


def cmd_evaluate(args: argparse.Namespace, out: TextIO) -> int:
    from spasmwatch.host.evaluate import evaluate_folder

    folder = Path(args.folder)
    if not folder.is_dir():
        raise UserError(f"{args.folder}: not a folder")
    cfg = alert_config(args)
    if args.evidence:
        cfg.evidence = args.evidence
    if args.event_class:
        cfg.event_class = args.event_class
    cache = Path(args.cache) if args.cache else None
    summary, scores = evaluate_folder(folder, cfg, cache_dir=cache)
    if summary.traces == 0:
        raise UserError(f"{args.folder}: no trace files (*.csv, *.csv.gz)")
    if args.json:
        out.write(json.dumps(summary.as_dict()) + "\n")
        return 0
    for s in scores:
        out.write(
            f"{s.name:<40} {s.hours * 60:6.1f} min  clusters {s.detected}/{s.clusters}  "
            f"false alarms {s.false_alarms}  warnings {s.warnings}  "
            f"spasms found {s.spasms_found}/{s.spasms}\n"
        )
    for k, v in summary.as_dict().items():
        out.write(f"{k}: {v}\n")
    return 0


def register(sub: Any) -> None:
    e = sub.add_parser("evaluate", help="score replay against labels in a folder")
    e.add_argument("folder")
    e.add_argument("--json", action="store_true")
    e.add_argument("--min-spasms", type=argtypes.MIN_SPASMS)
    e.add_argument("--gap", type=argtypes.GAP_S)
    e.add_argument(
        "--evidence", choices=("count", "rules", "learned"),
        help="how spasm chains are judged: count (rounds 1-2), rules (default), learned",
    )
    e.add_argument(
        "--event-class", choices=("scored", "firmware"),
        help="which events count as spasm-like: scored (default, the host's event score) "
             "or firmware (the sensor's own class, rounds 1-4)",
    )
    e.add_argument(
        "--cache", metavar="DIR",
        help="keep the detector's packets per trace here; later runs replay only the host",
    )
    e.set_defaults(func=cmd_evaluate)
