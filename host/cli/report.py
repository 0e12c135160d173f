"""``spasmwatch report``: a self-contained HTML report plus CSV tables for a clinician.

``spasmwatch report --db monitor.db [--night DATE | --from DATE --to DATE] -o DIR``
writes ``DIR/report.html`` (opens offline, prints) and the CSV tables of
``spasmwatch export`` next to it. Also home of the options and helpers the records
commands share (``--db``, ``--tz``, night selection).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from spasmwatch.host.cli import argtypes
from spasmwatch.host.errors import UserError
from spasmwatch.host.monitor.store import Store
from spasmwatch.host.records.annotations import AnnotationError, markers, parse_date
from spasmwatch.host.records.nights import (
    Night,
    find_nights,
    has_records,
    open_existing,
    select_nights,
)

DB_ENV = "SPASMWATCH_DB"


def add_db_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=os.environ.get(DB_ENV),
                   help=f"the monitor's database file (default: ${DB_ENV}, else the one "
                        "'spasmwatch run' writes)")


def add_selection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--night", metavar="DATE",
                   help="one night, by the date of its evening (YYYY-MM-DD)")
    p.add_argument("--from", dest="date_from", metavar="DATE", help="first night (inclusive)")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="last night (inclusive)")
    p.add_argument("--tz", help="time zone for wall-clock times, e.g. Europe/Berlin "
                                "(default: this computer's)")


def open_db(args: argparse.Namespace) -> Store:
    if not args.db:
        from spasmwatch.host.cli.run import default_db_path  # where the monitor writes

        args.db = str(default_db_path())
    try:
        return open_existing(args.db)
    except FileNotFoundError:
        raise UserError(f"{args.db}: no such database") from None
    except (ValueError, RuntimeError) as exc:
        raise UserError(str(exc)) from None


def parse_tz(name: str | None) -> dt.tzinfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(f"unknown time zone {name!r} (use a name like Europe/Berlin)") from None


def chosen_nights(store: Store, args: argparse.Namespace,
                  tz: dt.tzinfo | None) -> list[Night]:
    """The nights the selection options ask for; a clear error when there are none."""
    if args.night and (args.date_from or args.date_to):
        raise UserError("use either --night or --from/--to, not both")
    try:
        for d in (args.date_from, args.date_to):
            if d:
                parse_date(d)
        if args.night and args.night != "trace" and not args.night.startswith("trace#"):
            parse_date(args.night.split("#", 1)[0])
    except AnnotationError as exc:
        raise UserError(str(exc)) from None
    if not has_records(store):
        raise UserError(f"{args.db}: the database holds no records yet: nothing to report")
    every = find_nights(store, tz=tz)
    picked = select_nights(every, args.night, args.date_from, args.date_to)
    if not picked:
        have = ", ".join(n.key for n in every) or "none"
        raise UserError(f"{args.db}: no nights in the chosen period (nights stored: {have})")
    return picked


def cmd_report(args: argparse.Namespace, out: TextIO) -> int:
    from spasmwatch.host.records.report import write_report

    tz = parse_tz(args.tz)
    with open_db(args) as store:
        nights = chosen_nights(store, args, tz)
        first, last = nights[0].date, nights[-1].date
        marks = [m for m in markers(store) if m.date <= last] if first != "trace" else []
        paths = write_report(nights, marks, args.output, tz, args.min_spasms, args.db)
    out.write(f"wrote {paths[0]} ({len(nights)} night{'s' if len(nights) != 1 else ''}) "
              f"and {len(paths) - 1} CSV files\n")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="HTML report and CSV tables of nights, for a clinician")
    add_db_option(p)
    add_selection_options(p)
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--min-spasms", type=argtypes.MIN_SPASMS, default=3,
                   help="spasm-like movements that make a cluster count in the trend (3)")
    p.set_defaults(func=cmd_report)
