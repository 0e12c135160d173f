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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spasmwatch.host.monitor.alerts import LEVELS, Alert
from spasmwatch.host.records.annotations import Marker, latest_labels
from spasmwatch.host.records.nights import (
    Delivery,
    Gap,
    Night,
    Transition,
    fmt_clock,
    iso,
)

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
    "alarms": (
        "night", "time", "t", "cluster_id", "message", "deliveries", "delivered",
        "failed", "acknowledged", "acknowledged_t", "acknowledged_after_s",
        "acknowledged_by",
    ),
    "deliveries": (
        "night", "alarm_time", "alarm_t", "time", "t", "channel", "repeat", "outcome",
        "detail",
    ),
    "gaps": ("night", "start", "end", "start_t", "end_t", "duration_s", "reason", "text"),
    "snippets": (
        "night", "snippet_id", "alarm_time", "alarm_t", "start", "start_t", "end_t",
        "rate_hz", "range_g", "complete", "n_samples", "samples_g",
    ),
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


# Deliveries and state changes are matched to an alarm by time: the notice goes out
# right after the engine raised the alarm, a little earlier on the host's clock at most.
_ALARM_SLACK_S = 5.0
_ACK_REASONS = ("acknowledged", "muted")


@dataclass(frozen=True)
class AlarmRecord:
    """An alarm with what was done about it: deliveries, and the acknowledgement."""

    alert: Alert
    deliveries: list[Delivery]
    ack: Transition | None


def alarm_records(night: Night) -> list[AlarmRecord]:
    """Each alarm of the night, with the deliveries of alarm notices made until the next
    alarm, and the first acknowledgement (or mute) that ended its alarm state."""
    alarms = [a for a in night.alerts if a.level == "alarm"]
    out = []
    for i, a in enumerate(alarms):
        lo = a.t - _ALARM_SLACK_S
        hi = alarms[i + 1].t - _ALARM_SLACK_S if i + 1 < len(alarms) else float("inf")
        dels = [d for d in night.deliveries if d.level == "alarm" and lo <= d.t < hi]
        ack = next((tr for tr in night.transitions
                    if tr.from_state == "alarm" and lo <= tr.t < hi
                    and tr.reason.startswith(_ACK_REASONS)), None)
        out.append(AlarmRecord(a, dels, ack))
    return out


def gap_text(g: Gap, tz: dt.tzinfo | None = None) -> str:
    """``no data 01:10–01:55 (45 min; link to the sensor lost)``."""
    minutes = g.duration_s / 60
    span = f"{minutes:.0f} min" if minutes >= 1 else f"{g.duration_s:.0f} s"
    return (f"no data {fmt_clock(g.start, tz, seconds=False)}–"
            f"{fmt_clock(g.end, tz, seconds=False)} ({span}; {g.why})")


def _outcome(d: Delivery) -> str:
    return {True: "delivered", False: "failed", None: "sent"}[d.ok]


def _alarm_tables(night: Night, tz: dt.tzinfo | None) -> tuple[list[dict[str, Any]],
                                                                 list[dict[str, Any]]]:
    alarms, deliveries = [], []
    for rec in alarm_records(night):
        a, ack = rec.alert, rec.ack
        alarms.append({
            "night": night.key, "time": iso(a.t, tz), "t": round(a.t, 3),
            "cluster_id": a.cluster_id if a.cluster_id is not None else "",
            "message": a.message,
            "deliveries": "; ".join(f"{d.channel} {_outcome(d)}" for d in rec.deliveries),
            "delivered": sum(1 for d in rec.deliveries if d.ok),
            "failed": sum(1 for d in rec.deliveries if d.ok is False),
            "acknowledged": iso(ack.t, tz) if ack else "",
            "acknowledged_t": round(ack.t, 3) if ack else "",
            "acknowledged_after_s": round(ack.t - a.t, 1) if ack else "",
            "acknowledged_by": ack.source if ack else "",
        })
        deliveries += [{
            "night": night.key, "alarm_time": iso(a.t, tz), "alarm_t": round(a.t, 3),
            "time": iso(d.t, tz), "t": round(d.t, 3), "channel": d.channel,
            "repeat": d.repeat, "outcome": _outcome(d), "detail": d.detail,
        } for d in rec.deliveries]
    return alarms, deliveries


def _gap_rows(night: Night, tz: dt.tzinfo | None) -> list[dict[str, Any]]:
    return [{
        "night": night.key, "start": iso(g.start, tz), "end": iso(g.end, tz),
        "start_t": round(g.start, 3), "end_t": round(g.end, 3),
        "duration_s": round(g.duration_s, 1), "reason": g.reason, "text": gap_text(g, tz),
    } for g in night.gaps]


def _snippet_rows(night: Night, tz: dt.tzinfo | None) -> list[dict[str, Any]]:
    return [{
        "night": night.key, "snippet_id": sn.id, "alarm_time": iso(sn.alert_t, tz),
        "alarm_t": round(sn.alert_t, 3), "start": iso(sn.t, tz), "start_t": round(sn.t, 3),
        "end_t": round(sn.t_end, 3), "rate_hz": sn.rate_hz, "range_g": sn.range_g,
        "complete": sn.complete, "n_samples": len(sn.samples),
        # x, y, z in g, one sample every 1/rate_hz s from start_t (null: not received)
        "samples_g": sn.samples,
    } for sn in night.snippets]


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
    alarm_rows, delivery_rows = _alarm_tables(night, tz)
    return {
        "nights": [stats], "events": events, "clusters": clusters, "alerts": alerts,
        "activity": activity, "annotations": annotations, "alarms": alarm_rows,
        "deliveries": delivery_rows, "gaps": _gap_rows(night, tz),
        "snippets": _snippet_rows(night, tz),
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
            # lists (a snippet's samples) as JSON in their cell
            w.writerows({k: json.dumps(v, separators=(",", ":")) if isinstance(v, list) else v
                         for k, v in r.items()} for r in rows)
        paths.append(p)
    return paths


def to_json(tables: dict[str, list[dict[str, Any]]], generated_at: str) -> str:
    doc = {"format": "spasmwatch-export", "version": 1, "generated_at": generated_at,
           "disclaimer": DISCLAIMER, **tables}
    return json.dumps(doc, indent=1, ensure_ascii=False)
