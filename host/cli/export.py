"""``spasmwatch export``: the record as CSV files or one JSON document.

``spasmwatch export --db monitor.db --format csv -o DIR`` writes nights.csv, events.csv,
clusters.csv, alerts.csv, activity.csv, annotations.csv and markers.csv;
``--format json [-o FILE]`` writes one document with the same tables (stdout without
``-o``). Columns: docs/records.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any, TextIO

from spasmwatch.host.cli.report import (
    add_db_option,
    add_selection_options,
    chosen_nights,
    open_db,
    parse_tz,
)
from spasmwatch.host.errors import UserError
from spasmwatch.host.records.annotations import markers
from spasmwatch.host.records.export import FORMATS, build_tables, to_json, write_csv


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    tz = parse_tz(args.tz)
    if args.format == "csv" and not args.output:
        raise UserError("--format csv writes several files: pass -o FOLDER")
    with open_db(args) as store:
        nights = chosen_nights(store, args, tz)
        tables = build_tables(nights, markers(store), tz)
    if args.format == "csv":
        paths = write_csv(tables, args.output)
        out.write(f"wrote {len(paths)} CSV files to {args.output}\n")
        return 0
    now = dt.datetime.now(dt.UTC).astimezone(tz)
    text = to_json(tables, now.isoformat(timespec="seconds")) + "\n"
    if not args.output or args.output == "-":
        out.write(text)
    else:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            raise UserError(f"{args.output}: {exc.strerror}") from None
        out.write(f"wrote {args.output}\n")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="export nights, events, clusters, alerts as CSV or JSON")
    add_db_option(p)
    add_selection_options(p)
    p.add_argument("--format", choices=FORMATS, default="csv")
    p.add_argument("-o", "--output", help="folder (csv) or file (json; default stdout)")
    p.set_defaults(func=cmd_export)
