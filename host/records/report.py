"""A self-contained HTML report a caregiver can hand to a clinician.

One file, no scripts, no fonts or styles from the network: plots are inline SVG drawn
here, so the report opens offline in any browser and prints. Contents (see
docs/records.md): the "monitoring aid, not a medical device" note; across nights a
trend of spasm-like movements and clusters per day with the caregiver's markers and a
table of nights; for each night its figures, a timeline (time since sleep onset) of
arousal state, activity, events, clusters (shaded, with their counts) and alerts, a
close-up of each cluster with spasm-like movements showing the intervals between them,
the raw sensor snippet of each alarm (|a| over time, the alarm's events marked),
and tables of clusters, alerts, spasm-like events and all events with wall-clock times.

Wording is descriptive throughout: movements are "spasm-like" (a class of the
detector), never a diagnosis.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from spasmwatch import __version__
from spasmwatch.host.monitor.alerts import Alert
from spasmwatch.host.monitor.clustering import Cluster
from spasmwatch.host.records.annotations import Marker, latest_labels
from spasmwatch.host.records.export import (
    DISCLAIMER,
    alarm_records,
    build_tables,
    cluster_highest_alert,
    gap_text,
    write_csv,
)
from spasmwatch.host.records.nights import (
    Night,
    StoredEvent,
    fmt_clock,
    fmt_datetime,
    fmt_elapsed,
    is_wall_clock,
)

TEMPLATES = Path(__file__).with_name("templates")

# Colours (also in the template's CSS variables); tests look for CLUSTER_RGB in pixels.
CLUSTER_COLOUR = "#e8590c"
CLUSTER_RGB = (0xE8, 0x59, 0x0C)
SPASM_COLOUR = "#c92a2a"
JERK_COLOUR = "#1c7ed6"
MOVE_COLOUR = "#868e96"
STATE_COLOURS = {
    "asleep": "#a5c8ec", "settling": "#d0bfff", "awake": "#ffd8a8", "unknown": "#e9ecef",
}
CLASS_COLOURS = {"spasm_like": SPASM_COLOUR, "jerk": JERK_COLOUR, "movement": MOVE_COLOUR}
LABEL_TEXT = {"real_episode": "real episode", "false_alarm": "false alarm", "unsure": "unsure"}


def _n(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


@dataclass
class Svg:
    """An SVG figure as data: elements (tag, attributes, text) in user units.

    ``macros.html.j2`` renders it; every attribute value and text is escaped there.
    Keyword names become attribute names: ``class_`` -> ``class``,
    ``stroke_width`` -> ``stroke-width``, ``data_count`` -> ``data-count``.
    """

    width: float
    height: float
    label: str
    cls: str
    elements: list[tuple[str, dict[str, str], str | None]] = field(default_factory=list)

    @property
    def viewbox(self) -> str:
        return f"0 0 {_n(self.width)} {_n(self.height)}"

    def add(self, tag: str, text: object = None, **attrs: Any) -> None:
        values = {
            k.rstrip("_").replace("_", "-"): _n(v) if isinstance(v, float) else str(v)
            for k, v in attrs.items() if v is not None
        }
        self.elements.append((tag, values, None if text is None else str(text)))


# -- the night's timeline -----------------------------------------------------------------

W = 1000.0  # SVG width
L, R = 64.0, 14.0  # margins for labels


def _tick_step(span_s: float) -> float:
    for step in (60, 300, 600, 900, 1800, 3600, 7200):
        if span_s / step <= 12:
            return float(step)
    return 10800.0


@dataclass(frozen=True)
class _Lanes:
    """Where the timeline's lanes are, and time -> x."""

    t0: float
    t1: float
    origin: float  # time zero of the axis labels (sleep onset, else the first data)
    y_state: float = 22.0
    h_state: float = 14.0
    y_act: float = 46.0
    h_act: float = 60.0
    y_ev: float = 118.0
    h_ev: float = 58.0

    @property
    def scale(self) -> float:
        return (W - L - R) / (self.t1 - self.t0)

    @property
    def y_axis(self) -> float:
        return self.y_ev + self.h_ev + 4

    def x(self, t: float) -> float:
        return L + (t - self.t0) * self.scale


def timeline_svg(night: Night, tz: dt.tzinfo | None, alarm_min: int) -> Svg:
    """Arousal state, activity, events, clusters, data gaps and alerts over the night."""
    t1 = max([night.end, night.start + 60.0, *(a.t for a in night.alerts)])
    lanes = _Lanes(night.start, t1, night.origin)  # alerts after the last record stay on
    svg = Svg(W, lanes.y_axis + 40, f"Timeline of the night of {night.key}", "timeline")
    _timeline_axes(svg, lanes, night, tz)
    labels = _timeline_clusters(svg, lanes, night.clusters)
    _timeline_activity(svg, lanes, night)
    _timeline_gaps(svg, lanes, night, tz)
    _cluster_counts(svg, lanes, labels)  # last, so activity bars never hide them
    _timeline_events(svg, lanes, night.events)
    _timeline_alerts(svg, lanes, night.alerts)
    return svg


def _timeline_axes(svg: Svg, ln: _Lanes, night: Night, tz: dt.tzinfo | None) -> None:
    """Lane names, grid and time axis (time since sleep onset, wall clock underneath)."""
    svg.add("text", "state", x=4, y=ln.y_state + 11)
    svg.add("text", "activity", x=4, y=ln.y_act + 12)
    svg.add("text", "% active", x=4, y=ln.y_act + 26)
    svg.add("text", "events", x=4, y=ln.y_ev + 12)
    step = _tick_step(ln.t1 - ln.t0)
    k = int((ln.t0 - ln.origin) // step)
    while ln.origin + k * step <= ln.t1:
        t = ln.origin + k * step
        if t >= ln.t0 and ln.x(t) <= W - R - 12:
            xx = ln.x(t)
            svg.add("line", class_="grid", x1=xx, y1=ln.y_state, x2=xx, y2=ln.y_axis)
            svg.add("text", ("+" if k > 0 else "") + fmt_elapsed(t - ln.origin, False),
                    x=xx, y=ln.y_axis + 14, text_anchor="middle")
            svg.add("text", fmt_clock(t, tz, seconds=False), x=xx, y=ln.y_axis + 28,
                    text_anchor="middle", fill="#5f6b7a")
        k += 1
    svg.add("line", class_="axis", x1=L, y1=ln.y_axis, x2=W - R, y2=ln.y_axis)
    if night.sleep_onset is not None:
        xs = ln.x(night.sleep_onset)
        svg.add("line", x1=xs, y1=ln.y_state - 6, x2=xs, y2=ln.y_axis, stroke="#343a40",
                stroke_dasharray="4 3")
        svg.add("text", "sleep onset", x=xs + 3, y=ln.y_state - 8)
    if night.wake is not None and night.wake < night.end - 1:
        xw = ln.x(night.wake)
        svg.add("line", x1=xw, y1=ln.y_state - 6, x2=xw, y2=ln.y_axis, stroke="#343a40",
                stroke_dasharray="4 3")
        svg.add("text", "wake", x=xw - 3, y=ln.y_state - 8, text_anchor="end")


def _timeline_clusters(svg: Svg, ln: _Lanes, clusters: list[Cluster]
                       ) -> list[tuple[float, Cluster]]:
    """Clusters shaded behind the event lane (spasm-like ones in the cluster colour);
    returns where their counts go."""
    labels: list[tuple[float, Cluster]] = []
    for c in clusters:
        if c.n_events < 2 and c.n_spasm_like == 0:
            continue
        x0, x1 = ln.x(c.start), max(ln.x(c.end), ln.x(c.start) + 3.0)
        strong = c.n_spasm_like >= 1
        svg.add(
            "rect", class_="cluster-shade" if strong else "cluster-benign",
            x=x0, y=ln.y_act - 4, width=x1 - x0, height=ln.y_ev + ln.h_ev - ln.y_act + 4,
            fill=CLUSTER_COLOUR if strong else "#ced4da",
            fill_opacity=0.18 if strong else 0.35,
            data_cluster=c.id, data_count=c.n_spasm_like, data_events=c.n_events,
        )
        if strong:
            # a solid band on top of the lane: the shading stays visible when printed
            svg.add("rect", class_="cluster-band", x=x0, y=ln.y_ev - 8, width=x1 - x0,
                    height=6, fill=CLUSTER_COLOUR, data_cluster=c.id)
            labels.append((x0 + (x1 - x0) / 2, c))
    return labels


def _timeline_activity(svg: Svg, ln: _Lanes, night: Night) -> None:
    """The arousal state band and the share of each summary period with movement."""
    for s in night.summaries:
        svg.add("rect", x=ln.x(s.start), y=ln.y_state, width=max(s.period_s * ln.scale, 0.5),
                height=ln.h_state, fill=STATE_COLOURS.get(s.state, "#e9ecef"),
                data_state=s.state)
    bottom = ln.y_act + ln.h_act
    svg.add("line", class_="axis", x1=L, y1=bottom, x2=W - R, y2=bottom)
    for s in night.summaries:
        frac = min(1.0, s.active_s / s.period_s) if s.period_s else 0.0
        svg.add("rect", class_="activity", x=ln.x(s.start), y=bottom - frac * ln.h_act,
                width=max(s.period_s * ln.scale - 0.6, 0.5), height=frac * ln.h_act,
                fill="#74c0fc")


def _timeline_gaps(svg: Svg, ln: _Lanes, night: Night, tz: dt.tzinfo | None) -> None:
    """Stretches without data: hatched, with their times."""
    for g in night.gaps:
        x0, x1 = ln.x(g.start), ln.x(g.end)
        svg.add("rect", class_="gap", x=x0, y=ln.y_state, width=max(x1 - x0, 1.0),
                height=ln.y_ev + ln.h_ev - ln.y_state, fill="#f8f9fa", stroke="#adb5bd",
                stroke_dasharray="3 3", data_reason=g.reason)
        text = "no data" if x1 - x0 < 120 else gap_text(g, tz).split(" (")[0]
        svg.add("text", text, class_="gap-label", x=x0 + 2, y=ln.y_act + 12, fill="#868e96")


def _cluster_counts(svg: Svg, ln: _Lanes, labels: list[tuple[float, Cluster]]) -> None:
    """Each spasm-like cluster's count on a white pill above the event lane."""
    for cx, c in labels:
        text = str(c.n_spasm_like)
        pw = 8.0 + 7.0 * len(text)
        svg.add("rect", x=cx - pw / 2, y=ln.y_ev - 24, width=pw, height=15, rx=7, fill="#fff",
                stroke=CLUSTER_COLOUR, stroke_width=1.5)
        svg.add("text", text, class_="cluster-label", x=cx, y=ln.y_ev - 12.5,
                text_anchor="middle", font_weight="700", fill=CLUSTER_COLOUR,
                data_cluster=c.id)


def _timeline_events(svg: Svg, ln: _Lanes, events: list[StoredEvent]) -> None:
    """Events as ticks, taller for the classes that matter more."""
    heights = {"spasm_like": ln.h_ev, "jerk": ln.h_ev * 0.6, "movement": ln.h_ev * 0.35}
    for se in events:
        e = se.event
        hh = heights.get(e.cls, ln.h_ev * 0.35)
        svg.add("rect", class_=f"ev ev-{e.cls}", x=ln.x(e.t), y=ln.y_ev + ln.h_ev - hh,
                width=max(e.duration_s * ln.scale, 1.2), height=hh,
                fill=CLASS_COLOURS.get(e.cls, MOVE_COLOUR))


def _timeline_alerts(svg: Svg, ln: _Lanes, alerts: list[Alert]) -> None:
    """Alarms as triangles above the state band, faults as grey squares."""
    for a in alerts:
        if a.level == "alarm":
            xa = ln.x(a.t)
            svg.add("path", class_="alarm-mark",
                    d=f"M{_n(xa)} {_n(ln.y_state - 1)} l-5 -9 h10 z", fill=SPASM_COLOUR)
        elif a.level == "fault":
            svg.add("rect", class_="fault-mark", x=ln.x(a.t) - 3, y=ln.y_state - 10, width=6,
                    height=6, fill="#495057")


def cluster_svg(night: Night, c: Cluster, tz: dt.tzinfo | None) -> Svg:
    """A close-up of one cluster: every event, with the gaps between spasm-like ones."""
    evs = [se.event for se in night.events if se.cluster_id == c.id]
    pad = max(5.0, 0.05 * c.duration_s)
    t0, t1 = c.start - pad, c.end + pad
    scale = (W - L - R) / (t1 - t0)

    def x(t: float) -> float:
        return L + (t - t0) * scale

    y0, h = 26.0, 54.0
    height = y0 + h + 36
    svg = Svg(W, height, f"Cluster {c.id}: {c.n_spasm_like} spasm-like movements", "cluster")
    svg.add("rect", class_="cluster-shade", x=x(c.start), y=y0 - 4,
            width=max(x(c.end) - x(c.start), 2.0), height=h + 4, fill=CLUSTER_COLOUR,
            fill_opacity=0.14, data_cluster=c.id, data_count=c.n_spasm_like)
    svg.add("line", class_="axis", x1=L, y1=y0 + h, x2=W - R, y2=y0 + h)
    heights = {"spasm_like": h, "jerk": h * 0.6, "movement": h * 0.35}
    prev: float | None = None
    for e in evs:
        hh = heights.get(e.cls, h * 0.35)
        svg.add("rect", class_=f"ev ev-{e.cls}", x=x(e.t), y=y0 + h - hh,
                width=max(e.duration_s * scale, 1.5), height=hh,
                fill=CLASS_COLOURS.get(e.cls, MOVE_COLOUR))
        if e.cls == "spasm_like":
            if prev is not None and x(e.t) - x(prev) > 16:
                svg.add("text", f"{e.t - prev:.0f} s", class_="interval",
                        x=(x(prev) + x(e.t)) / 2, y=y0 - 8, text_anchor="middle")
            prev = e.t
    step = next((s for s in (5, 10, 15, 30, 60, 120, 300, 600) if (t1 - t0) / s <= 10), 900)
    t = (t0 // step + 1) * step
    while t < t1:
        svg.add("line", class_="grid", x1=x(t), y1=y0 + h, x2=x(t), y2=y0 + h + 4)
        svg.add("text", fmt_clock(t, tz), x=x(t), y=y0 + h + 16, text_anchor="middle")
        t += step
    svg.add("text", "since onset " + fmt_elapsed(c.start - night.origin), x=L,
            y=y0 + h + 32, fill="#5f6b7a")
    return svg


AXIS_COLOURS = (("x", "#1c7ed6"), ("y", "#2b8a3e"), ("z", "#862e9c"))


def _trace_segments(values: list[float | None], per_px: int) -> list[list[tuple[int, float]]]:
    """Runs of (sample index, value) without missing samples; with ``per_px`` > 2 each
    run of ``per_px`` samples becomes its minimum and maximum (peaks stay visible)."""
    runs: list[list[tuple[int, float]]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((i, v))
    if per_px <= 2:
        return [r for r in runs if r]
    out = []
    for run in (r for r in runs if r):
        pts: list[tuple[int, float]] = []
        for k in range(0, len(run), per_px):
            chunk = run[k:k + per_px]
            lo = min(chunk, key=lambda p: p[1])
            hi = max(chunk, key=lambda p: p[1])
            pts += sorted({lo, hi})
        out.append(pts)
    return out


def snippet_svg(night: Night, snip: Any, alarm: Any, tz: dt.tzinfo | None) -> Svg:
    """x, y and z in g over an alarm's raw sensor snippet, with the night's events marked.

    One lane per axis on a shared scale; the events that made the alarm
    (``alarm.event_seqs``) are shaded in the spasm-like colour, other events in grey; the
    alarm time is a red triangle; samples that never arrived leave a break in the traces.
    ``snip`` is a ``snippets.StoredSnippet``; ``alarm`` the matching ``Alert`` or None.
    """
    t0, t1 = snip.t, max(snip.t_end, snip.t + 1.0)
    scale = (W - L - R) / (t1 - t0)
    axes = [snip.axis_g(k) for k in range(3)]
    top = max([1.5, *(abs(v) for a in axes for v in a if v is not None)])
    y0, lane = 22.0, 70.0
    h = 3 * lane

    def x(t: float) -> float:
        return L + (t - t0) * scale

    title = (f"Raw sensor snippet of the alarm at {fmt_clock(snip.alert_t, tz)}: "
             "x, y and z in g" + ("" if snip.complete else " (partial)"))
    svg = Svg(W, y0 + h + 40, title, "snippet")
    mine = set(alarm.event_seqs) if alarm is not None else set()
    for se in night.events:
        e = se.event
        if e.t + e.duration_s < t0 or e.t > t1:
            continue
        ours = e.seq in mine
        xa, xb = x(max(e.t, t0)), x(min(e.t + e.duration_s, t1))
        svg.add("rect", class_="snippet-event" + (" alarm-event" if ours else ""),
                x=xa, y=y0, width=max(xb - xa, 1.5), height=h,
                fill=SPASM_COLOUR if ours else MOVE_COLOUR,
                fill_opacity=0.22 if ours else 0.15, data_seq=e.seq, data_cls=e.cls)
    dt_s = 1.0 / snip.rate_hz
    per_px = max(1, int(len(snip.samples) / (W - L - R)))
    for k, (name, colour) in enumerate(AXIS_COLOURS):
        mid = y0 + lane * k + lane / 2

        def y(g: float, mid: float = mid) -> float:
            return mid - g / top * (lane / 2 - 3)

        svg.add("line", class_="grid", x1=L, y1=mid, x2=W - R, y2=mid)
        svg.add("text", f"{name}", x=L - 30, y=mid + 4, text_anchor="end", fill=colour,
                font_weight="700")
        svg.add("text", f"±{top:.1f} g", x=L - 6, y=mid - lane / 2 + 12, text_anchor="end")
        for seg in _trace_segments(axes[k], per_px):
            pts = " ".join(f"{_n(x(snip.t + i * dt_s))},{_n(y(v))}" for i, v in seg)
            svg.add("polyline", class_="snippet-trace", points=pts, fill="none",
                    stroke=colour, stroke_width=1.0, data_axis=name,
                    data_samples=len(snip.samples))
    if t0 <= snip.alert_t <= t1:
        xa = x(snip.alert_t)
        svg.add("path", class_="alarm-mark", d=f"M{_n(xa)} {_n(y0 - 1)} l-5 -9 h10 z",
                fill=SPASM_COLOUR)
    svg.add("line", class_="axis", x1=L, y1=y0 + h, x2=W - R, y2=y0 + h)
    step = next((s for s in (2, 5, 10, 15, 30, 60, 120, 300) if (t1 - t0) / s <= 10), 600)
    t = (t0 // step + 1) * step
    while t < t1:
        svg.add("text", fmt_clock(t, tz), x=x(t), y=y0 + h + 16, text_anchor="middle")
        t += step
    got = sum(1 for v in snip.samples if v is not None)
    svg.add("text", f"{got} samples at {snip.rate_hz} Hz ({(t1 - t0):.0f} s), "
            f"±{snip.range_g} g sensor"
            + ("" if snip.complete else "; partial: some packets did not arrive")
            + "; shaded red: the movements that made the alarm", x=L, y=y0 + h + 34,
            fill="#5f6b7a")
    return svg


def _alarm_of(night: Night, snip: Any) -> Any:
    """The stored alarm a snippet belongs to (same time), or None."""
    return next((a for a in night.alerts
                 if a.level == "alarm" and abs(a.t - snip.alert_t) < 0.002), None)


# -- across nights -------------------------------------------------------------------------


def _days(first: str, last: str) -> list[str]:
    d, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    out: list[str] = []
    while d <= end and len(out) < 400:
        out.append(d.isoformat())
        d += dt.timedelta(days=1)
    return out


def trend_svg(nights: Sequence[Night], markers: Sequence[Marker], alarm_min: int
              ) -> Svg | None:
    """Spasm-like movements (bars) and clusters of them (numbers) per day, with markers."""
    dated = [n for n in nights if n.date != "trace"]
    if not dated:
        return None
    days = _days(dated[0].date, dated[-1].date)
    per_day: dict[str, list[int]] = {d: [0, 0, 0] for d in days}  # spasm, clusters, nights
    for n in dated:
        st = n.stats(alarm_min)
        row = per_day.setdefault(n.date, [0, 0, 0])
        row[0] += st["spasm_like"]
        row[1] += st["spasm_like_clusters"]
        row[2] += 1
    top = max([r[0] for r in per_day.values()] + [4])
    y0, h = 34.0, 140.0
    height = y0 + h + 50
    slot = (W - L - R) / len(days)
    svg = Svg(W, height, "Spasm-like movements and clusters per night", "trend")
    svg.add("text", "spasm-like", x=4, y=y0 + 10)
    svg.add("text", "movements", x=4, y=y0 + 24)
    for frac in (0.0, 0.5, 1.0):
        yy = y0 + h - frac * h
        svg.add("line", class_="grid", x1=L, y1=yy, x2=W - R, y2=yy)
        svg.add("text", f"{top * frac:.0f}", x=L - 6, y=yy + 4, text_anchor="end")
    every = max(1, int(len(days) / 14) + (1 if len(days) > 14 else 0))
    for i, d in enumerate(days):
        sp, ncl, nn = per_day[d]
        xx = L + i * slot
        bw = min(max(slot * 0.6, 2.0), 48.0)
        bx = xx + (slot - bw) / 2
        if nn == 0:
            svg.add("text", "–", x=xx + slot / 2, y=y0 + h - 4, text_anchor="middle",
                    fill="#adb5bd", class_="no-record", data_date=d)
        else:
            bh = h * sp / top
            svg.add("rect", class_="trend-bar", x=bx, y=y0 + h - bh, width=bw,
                    height=max(bh, 0.5), fill=SPASM_COLOUR, data_date=d, data_spasm_like=sp,
                    data_clusters=ncl)
            svg.add("text", f"{ncl} cl." if ncl else str(sp), class_="trend-count",
                    x=xx + slot / 2, y=y0 + h - bh - 4, text_anchor="middle",
                    fill=CLUSTER_COLOUR if ncl else "#5f6b7a",
                    font_weight="600" if ncl else None)
        if i % every == 0:
            svg.add("text", d[5:], x=xx + slot / 2, y=y0 + h + 14, text_anchor="middle")
    svg.add("line", class_="axis", x1=L, y1=y0 + h, x2=W - R, y2=y0 + h)
    for m in markers:
        if m.date < days[0] or m.date > days[-1]:
            continue
        # through the middle of the day's slot: on that night's bar, not beside it
        xm = L + (days.index(m.date) + 0.5) * slot
        svg.add("line", class_="marker", x1=xm, y1=y0 - 14, x2=xm, y2=y0 + h + 22,
                stroke="#2b8a3e", stroke_width=2, data_date=m.date)
        svg.add("text", m.text[:40], class_="marker-label", x=xm + 4, y=y0 - 18 + 0,
                fill="#2b8a3e", font_weight="600")
    svg.add("text", "bars: spasm-like movements per night; above: clusters with "
            f"≥ {alarm_min} spasm-like movements (cl.); green lines: caregiver markers",
            x=L, y=height - 8, fill="#5f6b7a")
    return svg


# -- what the templates show ------------------------------------------------------------


@functools.cache
def _environment() -> jinja2.Environment:
    # Autoescape everything: stored text (notes, markers, messages) is never trusted.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )


def _intervals_text(gaps: list[float]) -> str:
    if not gaps:
        return ""
    lo, hi = f"{min(gaps):.0f}", f"{max(gaps):.0f}"
    if lo == hi:
        return f"{lo} s"
    return f"{lo}–{hi} s (median {statistics.median(gaps):.0f} s)"


@dataclass
class NightView:
    """One night, ready for ``night.html.j2``: text already formatted, nothing escaped."""

    key: str
    title: str
    monitored_from: str
    monitored_to: str
    onset: str
    wake: str
    figures: list[tuple[str, str]]
    timeline: Svg
    closeups: list[dict[str, Any]]
    clusters: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    alarms: list[dict[str, Any]]
    gaps: list[dict[str, Any]]
    snippets: list[Svg]
    clips: list[dict[str, str]]
    spasm_events: list[dict[str, Any]]
    events: list[dict[str, Any]]


def night_view(night: Night, tz: dt.tzinfo | None, alarm_min: int,
               clip_href: Callable[[str], str]) -> NightView:
    labels = latest_labels(night.annotations)
    title = night.key if night.date == "trace" else (
        f"Night of {dt.date.fromisoformat(night.date).strftime('%A %d %B %Y')}"
        + (f" ({night.key.split('#')[1]})" if "#" in night.key else "")
    )
    events = _event_rows(night, labels, tz)
    return NightView(
        key=night.key, title=title,
        monitored_from=fmt_datetime(night.start, tz), monitored_to=fmt_datetime(night.end, tz),
        onset=fmt_datetime(night.sleep_onset, tz) if night.sleep_onset else "not detected",
        wake=fmt_datetime(night.wake, tz) if night.wake else "—",
        figures=_figures(night, alarm_min),
        timeline=timeline_svg(night, tz, alarm_min),
        closeups=_closeups(night, labels, tz),
        clusters=_cluster_rows(night, labels, tz, clip_href),
        alerts=[{"time": fmt_clock(a.t, tz), "level": a.level, "message": a.message}
                for a in night.alerts
                if not (a.level == "info" and a.kind == "cluster_closed")],  # in the table
        alarms=_alarm_rows(night, tz),
        gaps=[{"start_t": g.start, "text": gap_text(g, tz)} for g in night.gaps],
        snippets=[snippet_svg(night, sn, _alarm_of(night, sn), tz) for sn in night.snippets],
        clips=[{"href": clip_href(cl.path), "name": os.path.basename(cl.path),
                "alarm": fmt_clock(cl.alert_t, tz), "start": fmt_clock(cl.start, tz),
                "end": fmt_clock(cl.end, tz)} for cl in night.clips],
        spasm_events=[r for r in events if r["cls"] == "spasm_like"],
        events=events,
    )


def _figures(night: Night, alarm_min: int) -> list[tuple[str, str]]:
    st = night.stats(alarm_min)
    return [
        (_hours(st["asleep_s"]), "asleep"),
        (str(st["spasm_like"]), "spasm-like movements"),
        (str(st["spasm_like_clusters"]), f"clusters with ≥ {alarm_min} spasm-like"),
        (str(st["jerks"]), "single jerks"),
        (str(st["alarms"]), "alarms"),
        (str(st["faults"]), "sensor/link faults"),
        (f"{st['data_gap_s'] / 60:.0f} min", "without data"),
    ]


def _closeups(night: Night, labels: dict[tuple[str, int], Any],
              tz: dt.tzinfo | None) -> list[dict[str, Any]]:
    """A close-up where there are intervals to show: two or more spasm-like movements."""
    out = []
    for c in night.clusters:
        if c.n_spasm_like < 2:
            continue
        caption = (
            f"Cluster {c.id}: {c.n_spasm_like} spasm-like movements among {c.n_events} "
            f"events, {fmt_clock(c.start, tz)}–{fmt_clock(c.end, tz)} "
            f"({c.duration_s / 60:.1f} min)"
        )
        if c.spasm_intervals_s:
            caption += f"; spasm-like movements {_intervals_text(c.spasm_intervals_s)} apart"
        lab = labels.get(("cluster", c.id))
        if lab is not None:
            caption += f" — caregiver: {LABEL_TEXT.get(lab.label, lab.label)}"
        out.append({"id": c.id, "caption": caption, "figure": cluster_svg(night, c, tz)})
    return out


def _cluster_rows(night: Night, labels: dict[tuple[str, int], Any], tz: dt.tzinfo | None,
                  clip_href: Callable[[str], str]) -> list[dict[str, Any]]:
    """Clusters with more than one event or any spasm-like movement."""
    highest = cluster_highest_alert(night)
    rows = []
    for c in night.clusters:
        if c.n_events < 2 and c.n_spasm_like == 0:
            continue
        clip = next((cl for cl in night.clips if c.start - 60 <= cl.alert_t <= c.end + 60),
                    None)
        rows.append({
            "id": c.id, "start": fmt_clock(c.start, tz), "end": fmt_clock(c.end, tz),
            "since": fmt_elapsed(c.start - night.origin),
            "duration": f"{c.duration_s / 60:.1f} min", "n_events": c.n_events,
            "n_spasm_like": c.n_spasm_like, "n_jerk": c.n_jerk, "n_movement": c.n_movement,
            "intervals": _intervals_text(c.spasm_intervals_s), "level": highest.get(c.id, ""),
            "label": labels.get(("cluster", c.id)),
            "clip": clip_href(clip.path) if clip else "",
        })
    return rows


def _alarm_rows(night: Night, tz: dt.tzinfo | None) -> list[dict[str, Any]]:
    """Each alarm with the deliveries made for it and when it was acknowledged."""
    out = []
    for rec in alarm_records(night):
        a = rec.alert
        out.append({
            "t": f"{a.t:.3f}", "time": fmt_clock(a.t, tz), "message": a.message,
            "deliveries": [{
                "time": fmt_clock(d.t, tz), "channel": d.channel, "repeat": d.repeat,
                "outcome": {True: "ok", False: "failed", None: "sent"}[d.ok],
                "text": ("delivered" if d.ok else "sent, not confirmed" if d.ok is None
                         else f"failed ({d.detail})" if d.detail else "failed"),
            } for d in rec.deliveries],
            "ack_time": fmt_clock(rec.ack.t, tz) if rec.ack else "",
            "ack_after": fmt_elapsed(rec.ack.t - a.t) if rec.ack else "",
            "ack_by": f"by {rec.ack.source}" if rec.ack else "",
        })
    return out


def _event_rows(night: Night, labels: dict[tuple[str, int], Any],
                tz: dt.tzinfo | None) -> list[dict[str, Any]]:
    return [{
        "id": se.id, "time": fmt_clock(se.event.t, tz),
        "since": fmt_elapsed(se.event.t - night.origin), "cls": se.event.cls,
        "cls_text": se.event.cls.replace("_", "-"), "duration": f"{se.event.duration_s:.2f} s",
        "peak_mg": se.event.peak_mg, "state": se.event.state,
        "cluster": se.cluster_id if se.cluster_id is not None else "",
        "label": labels.get(("event", se.id)),
    } for se in night.events]


def _night_row(n: Night, tz: dt.tzinfo | None, alarm_min: int) -> dict[str, Any]:
    st = n.stats(alarm_min)
    return {
        "key": n.key, "onset": fmt_clock(n.sleep_onset, tz, False) if n.sleep_onset else "—",
        "wake": fmt_clock(n.wake, tz, False) if n.wake else "—",
        "asleep": _hours(st["asleep_s"]), "events": st["events"],
        "spasm_like": st["spasm_like"], "clusters": st["spasm_like_clusters"],
        "alarms": st["alarms"], "faults": st["faults"],
        "without_data": f"{st['data_gap_s'] / 60:.0f} min" if st["data_gap_s"] else "—",
        "labels": f"{st['marked_real']} / {st['marked_false_alarm']} / {st['marked_unsure']}",
    }


LEGEND = [
    (STATE_COLOURS["asleep"], "asleep"), (STATE_COLOURS["settling"], "settling"),
    (STATE_COLOURS["awake"], "awake"), (SPASM_COLOUR, "spasm-like"), (JERK_COLOUR, "jerk"),
    (MOVE_COLOUR, "other movement"),
    (CLUSTER_COLOUR, "cluster with spasm-like movements (count above)"),
]


def render_report(
    nights: Sequence[Night],
    markers: Sequence[Marker],
    tz: dt.tzinfo | None = None,
    alarm_min: int = 3,
    source: str = "",
    clip_href: Callable[[str], str] | None = None,
    generated: float | None = None,
) -> str:
    """The whole report as one HTML string."""
    href = clip_href or (lambda p: Path(p).resolve().as_uri())
    dated = [n for n in nights if n.date != "trace"]
    if dated:
        period = (dated[0].date if dated[0].date == dated[-1].date
                  else f"{dated[0].date} to {dated[-1].date}")
    else:
        period = "replayed recording (no wall-clock time)" if nights else "no data"
    gen = time.time() if generated is None else generated
    tzname = (dt.datetime.fromtimestamp(gen, tz=dt.UTC).astimezone(tz).tzname()
              if tz is not None or is_wall_clock(gen) else "local")
    return _environment().get_template("report.html.j2").render(
        title="spasmwatch movement record",
        subtitle=f"{period} · {len(nights)} night{'s' if len(nights) != 1 else ''}",
        disclaimer=DISCLAIMER,
        nights=nights,
        alarm_min=alarm_min,
        trend=trend_svg(nights, markers, alarm_min) if len(nights) > 1 or markers else None,
        night_rows=[_night_row(n, tz, alarm_min) for n in nights],
        markers=markers,
        night_views=[night_view(n, tz, alarm_min, href) for n in nights],
        legend=LEGEND,
        label_text=LABEL_TEXT,
        generated=fmt_datetime(gen, tz),
        version=__version__,
        source=source or "the monitor's database",
        tzname=tzname or "local",
    )


def write_report(
    nights: Sequence[Night],
    markers: Sequence[Marker],
    out_dir: str | Path,
    tz: dt.tzinfo | None = None,
    alarm_min: int = 3,
    source: str = "",
) -> list[Path]:
    """Write ``report.html`` and the CSV tables into ``out_dir``; returns the paths."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)

    def href(p: str) -> str:
        # relative links keep working when the folder (with its clips) is moved
        return Path(os.path.relpath(Path(p).resolve(), folder.resolve())).as_posix()

    page = folder / "report.html"
    page.write_text(render_report(nights, markers, tz, alarm_min, source, href),
                    encoding="utf-8")
    csvs = write_csv(build_tables(nights, markers, tz, href), folder)
    return [page, *csvs]
