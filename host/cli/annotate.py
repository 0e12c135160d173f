"""``spasmwatch annotate`` and ``spasmwatch marker``: the caregiver's side of the record.

* ``spasmwatch annotate event ID LABEL [--note TEXT] [--video REF]`` (or ``cluster``)
  labels a stored event (its id in the report / events.csv) or cluster as
  ``real_episode`` (``real``), ``false_alarm`` (``false``) or ``unsure``;
  ``spasmwatch annotate list`` shows the labels.
* ``spasmwatch marker add DATE TEXT`` adds a dated note shown across nights ("started
  treatment X"); ``marker list`` and ``marker remove ID``.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from spasmwatch.host.cli import argtypes
from spasmwatch.host.cli.report import add_db_option, open_db
from spasmwatch.host.errors import UserError
from spasmwatch.host.records.annotations import (
    LABELS,
    AnnotationError,
    add_annotation,
    add_marker,
    all_annotations,
    markers,
    remove_marker,
)


def cmd_annotate(args: argparse.Namespace, out: TextIO) -> int:
    with open_db(args) as store:
        if args.target == "list":
            for a in all_annotations(store):
                extra = "".join(f"  {k}: {v}" for k, v in (("note", a.note), ("video", a.video))
                                if v)
                out.write(f"{a.id:>4}  {a.target} {a.target_id}: {a.label}{extra}\n")
            return 0
        if args.id is None or args.label is None:
            raise UserError(f"usage: spasmwatch annotate {args.target} ID LABEL "
                            f"(LABEL: {', '.join(LABELS)})")
        try:
            a = add_annotation(store, args.target, args.id, args.label, args.note or "",
                               args.video or "")
        except AnnotationError as exc:
            raise UserError(str(exc)) from None
    out.write(f"annotation {a.id}: {a.target} {a.target_id} marked {a.label}\n")
    return 0


def cmd_marker(args: argparse.Namespace, out: TextIO) -> int:
    with open_db(args) as store:
        try:
            if args.action == "add":
                if not args.date or not args.text:
                    raise UserError("usage: spasmwatch marker add DATE TEXT")
                m = add_marker(store, args.date, " ".join(args.text))
                out.write(f"marker {m.id}: {m.date} {m.text}\n")
            elif args.action == "remove":
                if not args.date or not args.date.isdigit():
                    raise UserError("usage: spasmwatch marker remove ID")
                remove_marker(store, int(args.date))
                out.write(f"removed marker {args.date}\n")
            else:
                for m in markers(store):
                    out.write(f"{m.id:>4}  {m.date}  {m.text}\n")
        except AnnotationError as exc:
            raise UserError(str(exc)) from None
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("annotate", help="label an event or cluster: real / false / unsure")
    add_db_option(p)
    p.add_argument("target", choices=("event", "cluster", "list"))
    p.add_argument("id", type=argtypes.integer(1), nargs="?",
                   help="event or cluster id (from the report)")
    p.add_argument("label", nargs="?", help=f"one of {', '.join(LABELS)} (or real, false)")
    p.add_argument("--note", help="free text: what you saw")
    p.add_argument("--video", help="video file or URL and/or time in it (e.g. 'VID_1.mp4 0:42')")
    p.set_defaults(func=cmd_annotate)

    m = sub.add_parser("marker", help="dated notes across nights (e.g. started treatment X)")
    add_db_option(m)
    m.add_argument("action", choices=("add", "list", "remove"))
    m.add_argument("date", nargs="?", help="YYYY-MM-DD (add) or marker id (remove)")
    m.add_argument("text", nargs="*", help="the note (add)")
    m.set_defaults(func=cmd_marker)
