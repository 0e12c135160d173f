"""Caregiver annotations: labels on events and clusters, and markers across nights.

A parent who watched (or filmed) an episode can label a stored event or cluster as a
``real_episode``, a ``false_alarm`` or ``unsure``, with free text and a reference to
video (a file name or URL, and/or a time in that video). Markers are dated notes that
apply to the nights from then on ("started treatment X", "dose changed"); the report
draws them on the trend across nights.

Both live in the monitor's own SQLite file, in the ``annotations`` and ``markers``
tables of ``host/monitor/schema.py``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from spasmwatch.host.monitor.store import Store

LABELS = ("real_episode", "false_alarm", "unsure")
TARGETS = ("event", "cluster")
# Short spellings accepted on the command line.
LABEL_ALIASES = {"real": "real_episode", "false": "false_alarm", "fa": "false_alarm"}

class AnnotationError(ValueError):
    """A label, date or target that cannot be stored (the CLI shows it as one line)."""


@dataclass(frozen=True)
class Annotation:
    id: int
    created_at: float
    target: str  # "event" (events.id) or "cluster" (clusters.id)
    target_id: int
    label: str
    note: str = ""
    video: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Marker:
    id: int
    date: str  # YYYY-MM-DD, local
    text: str
    created_at: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalise_label(label: str) -> str:
    lab = LABEL_ALIASES.get(label.strip().lower(), label.strip().lower().replace("-", "_"))
    if lab not in LABELS:
        raise AnnotationError(
            f"unknown label {label!r}; use one of: {', '.join(LABELS)} (or real, false)"
        )
    return lab


def add_annotation(
    store: Store,
    target: str,
    target_id: int,
    label: str,
    note: str = "",
    video: str = "",
    now: float | None = None,
) -> Annotation:
    """Label a stored event (by row id) or cluster (by id). The target must exist."""
    if target not in TARGETS:
        raise AnnotationError(f"can only annotate {' or '.join(TARGETS)}, not {target!r}")
    lab = normalise_label(label)
    table = "events" if target == "event" else "clusters"
    conn = store.connection
    if conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (target_id,)).fetchone() is None:
        raise AnnotationError(f"no {target} with id {target_id} in {store.path}")
    created = time.time() if now is None else now
    cur = conn.execute(
        "INSERT INTO annotations (created_at, target, target_id, label, note, video)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (created, target, target_id, lab, note, video),
    )
    conn.commit()
    assert cur.lastrowid is not None
    return Annotation(cur.lastrowid, created, target, target_id, lab, note, video)


def all_annotations(store: Store) -> list[Annotation]:
    """Every annotation, oldest first."""
    rows = store.connection.execute(
        "SELECT id, created_at, target, target_id, label, note, video FROM annotations"
        " ORDER BY id"
    )
    return [Annotation(*r) for r in rows]


def annotations_for(
    store: Store, event_ids: Iterable[int], cluster_ids: Iterable[int]
) -> list[Annotation]:
    """Annotations on any of these events or clusters."""
    ev, cl = set(event_ids), set(cluster_ids)
    return [
        a for a in all_annotations(store)
        if (a.target == "event" and a.target_id in ev)
        or (a.target == "cluster" and a.target_id in cl)
    ]


def latest_labels(items: Iterable[Annotation]) -> dict[tuple[str, int], Annotation]:
    """The newest annotation per target: a later label overrides an earlier one."""
    out: dict[tuple[str, int], Annotation] = {}
    for a in sorted(items, key=lambda a: a.id):
        out[(a.target, a.target_id)] = a
    return out


def parse_date(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise AnnotationError(f"{text!r} is not a date (use YYYY-MM-DD)") from None


def add_marker(store: Store, date: str, text: str, now: float | None = None) -> Marker:
    day = parse_date(date)
    if not text.strip():
        raise AnnotationError("a marker needs some text")
    created = time.time() if now is None else now
    cur = store.connection.execute(
        "INSERT INTO markers (date, text, created_at) VALUES (?, ?, ?)",
        (day, text.strip(), created),
    )
    store.connection.commit()
    assert cur.lastrowid is not None
    return Marker(cur.lastrowid, day, text.strip(), created)


def markers(store: Store, date_from: str | None = None, date_to: str | None = None) -> list[Marker]:
    """Markers by date (inclusive range), oldest first."""
    rows = store.connection.execute(
        "SELECT id, date, text, created_at FROM markers ORDER BY date, id")
    return [
        Marker(*r) for r in rows
        if (date_from is None or r[1] >= date_from) and (date_to is None or r[1] <= date_to)
    ]


def remove_marker(store: Store, marker_id: int) -> None:
    conn = store.connection
    if conn.execute(
        "DELETE FROM markers WHERE id = ?", (marker_id,)
    ).rowcount == 0:
        raise AnnotationError(f"no marker with id {marker_id}")
    conn.commit()
