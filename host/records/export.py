"""Flat tables of the record, night by night, as CSV files or one JSON document.

The same rows feed ``spasmwatch export``, the CSV files written next to a report and
the report's tables. ``COLUMNS`` fixes every table's columns and their order; each one
is documented in docs/records.md (a test keeps the two in step). Times are given twice:
ISO 8601 local time with its UTC offset (for people and spreadsheets) and host seconds
(Unix epoch in live use, for programs).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from spasmwatch.host.monitor.alerts import LEVELS
from spasmwatch.host.records.annotations import Marker, latest_labels
from spasmwatch.host.records.nights import Night, iso

DISCLAIMER = (
    "spasmwatch is a monitoring aid, not a medical device. It describes movements "
    "('spasm-like' is a movement class), it does not diagnose; it can miss events and "
    "raise false alarms."
)

COLUMNS: dict[str, tuple[str, ...]] = {
    "nights": (
        "night", "start", "end", "sleep_onset", "wake", "monitored_s", "asleep_s",
        "settling_s", "awake_s", "data_gap_s", "active_pct", "events", "spasm_like", "jerks",
        "movements", "clusters", "spasm_like_clusters", "alarms", "warnings", "faults",
        "marked_real", "marked_false_alarm", "marked_unsure",
    ),
    "events": (
        "night", "event_id", "device", "seq", "onset", "onset_t", "since_sleep_onset_s",
        "class", "state", "duration_s", "peaks", "peak_mg", "energy_mgs", "tilt_mg",
        "excursion_mg", "still_s", "cluster_id", "label", "note", "video",
    ),
    "clusters": (
        "night", "cluster_id", "start", "end", "start_t", "end_t", "since_sleep_onset_s",
        "duration_s", "n_events", "n_spasm_like", "n_jerk", "n_movement",
        "spasm_interval_median_s", "spasm_interval_min_s", "spasm_interval_max_s",
        "spasm_intervals_s", "highest_alert", "label", "note", "video", "clip",
    ),
    "alerts": (
        "night", "time", "t", "since_sleep_onset_s", "level", "kind", "cluster_id", "message",
    ),
    "activity": (
        "night", "period_end", "t", "period_s", "active_s", "events", "spasm_like",
        "peak_mg", "mean_mg", "state",
    ),
    "annotations": (
        "night", "annotation_id", "created", "target", "target_id", "label", "note", "video",
    ),
    "markers": ("marker_id", "date", "text"),
}
FORMATS = ("csv", "json")


def _since(t: float, night: Night) -> float:
    return round(t - night.origin, 3)


def _level_rank(level: str) -> int:
    # info < warning < alarm; a fault is about the link, not the movements
    return {"info": 0, "warning": 1, "alarm": 2}.get(level, -1)


def cluster_highest_alert(night: Night) -> dict[int, str]:
    out: dict[int, str] = {}
    for a in night.alerts:
        if a.cluster_id is None or a.level not in LEVELS:
            continue
        cur = out.get(a.cluster_id)
        if cur is None or _level_rank(a.level) > _level_rank(cur):
            out[a.cluster_id] = a.level
    return out


def night_tables(
    night: Night, tz: dt.tzinfo | None = None, clip_href: Any = None
) -> dict[str, list[dict[str, Any]]]:
    """One night's rows for every table except ``markers``.

    ``clip_href(path) -> str`` rewrites clip paths (the report links them relative to
    itself); by default the stored path is given.
    """
    k = night.key
    labels = latest_labels(night.annotations)
    empty = {"label": "", "note": "", "video": ""}

    def lab(target: str, tid: int) -> dict[str, str]:
        a = labels.get((target, tid))
        return {"label": a.label, "note": a.note, "video": a.video} if a else dict(empty)

    events = []
    for se in night.events:
        e = se.event
        events.append({
            "night": k, "event_id": se.id, "device": se.device, "seq": e.seq,
            "onset": iso(e.t, tz), "onset_t": round(e.t, 3),
            "since_sleep_onset_s": _since(e.t, night), "class": e.cls, "state": e.state,
            "duration_s": e.duration_s, "peaks": e.peaks, "peak_mg": e.peak_mg,
            "energy_mgs": e.energy_mgs, "tilt_mg": e.tilt_mg,
            "excursion_mg": e.excursion_mg, "still_s": e.still_s,
            "cluster_id": se.cluster_id if se.cluster_id is not None else "",
            **lab("event", se.id),
        })
    highest = cluster_highest_alert(night)
    clusters = []
    for c in night.clusters:
        gaps = c.spasm_intervals_s
        clip = next((cl.path for cl in night.clips if c.start - 60 <= cl.alert_t <= c.end + 60),
                    "")
        clusters.append({
            "night": k, "cluster_id": c.id, "start": iso(c.start, tz), "end": iso(c.end, tz),
            "start_t": round(c.start, 3), "end_t": round(c.end, 3),
            "since_sleep_onset_s": _since(c.start, night),
            "duration_s": round(c.duration_s, 3), "n_events": c.n_events,
            "n_spasm_like": c.n_spasm_like, "n_jerk": c.n_jerk, "n_movement": c.n_movement,
            "spasm_interval_median_s": round(statistics.median(gaps), 1) if gaps else "",
            "spasm_interval_min_s": round(min(gaps), 1) if gaps else "",
            "spasm_interval_max_s": round(max(gaps), 1) if gaps else "",
            "spasm_intervals_s": " ".join(f"{g:g}" for g in gaps),
            "highest_alert": highest.get(c.id, ""),
            **lab("cluster", c.id),
            "clip": (clip_href(clip) if clip_href and clip else clip),
        })
    alerts = [
        {
            "night": k, "time": iso(a.t, tz), "t": round(a.t, 3),
            "since_sleep_onset_s": _since(a.t, night), "level": a.level, "kind": a.kind,
            "cluster_id": a.cluster_id if a.cluster_id is not None else "",
            "message": a.message,
        }
        for a in night.alerts
    ]
    activity = [
        {
            "night": k, "period_end": iso(s.t, tz), "t": round(s.t, 3), "period_s": s.period_s,
            "active_s": s.active_s, "events": s.events, "spasm_like": s.spasm_like,
            "peak_mg": s.peak_mg, "mean_mg": s.mean_mg, "state": s.state,
        }
        for s in night.summaries
    ]
    annotations = [
        {
            "night": k, "annotation_id": a.id, "created": iso(a.created_at, tz),
            "target": a.target, "target_id": a.target_id, "label": a.label, "note": a.note,
            "video": a.video,
        }
        for a in night.annotations
    ]
    stats = night.stats()
    stats.update(
        start=iso(night.start, tz), end=iso(night.end, tz),
        sleep_onset=iso(night.sleep_onset, tz), wake=iso(night.wake, tz),
    )
    return {
        "nights": [stats], "events": events, "clusters": clusters, "alerts": alerts,
        "activity": activity, "annotations": annotations,
    }


def build_tables(
    nights: Iterable[Night],
    markers: Iterable[Marker],
    tz: dt.tzinfo | None = None,
    clip_href: Any = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every table for these nights, rows in time order, columns as in ``COLUMNS``."""
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in COLUMNS}
    for n in nights:
        for name, rows in night_tables(n, tz, clip_href).items():
            out[name].extend(rows)
    out["markers"] = [{"marker_id": m.id, "date": m.date, "text": m.text} for m in markers]
    for name, rows in out.items():
        cols = COLUMNS[name]
        out[name] = [{c: r[c] for c in cols} for r in rows]
    return out


def write_csv(tables: dict[str, list[dict[str, Any]]], folder: str | Path) -> list[Path]:
    """One ``NAME.csv`` per table (header row even when empty); returns the paths."""
    out_dir = Path(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rows in tables.items():
        p = out_dir / f"{name}.csv"
        with p.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(COLUMNS[name]))
            w.writeheader()
            w.writerows(rows)
        paths.append(p)
    return paths


def to_json(tables: dict[str, list[dict[str, Any]]], generated_at: str) -> str:
    doc = {"format": "spasmwatch-export", "version": 1, "generated_at": generated_at,
           "disclaimer": DISCLAIMER, **tables}
    return json.dumps(doc, indent=1, ensure_ascii=False)
