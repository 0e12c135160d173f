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
import html
import os
import statistics
import string
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from spasmwatch import __version__
from spasmwatch.host.monitor.clustering import Cluster
from spasmwatch.host.records.annotations import Marker, latest_labels
from spasmwatch.host.records.export import (
    DISCLAIMER,
    build_tables,
    cluster_highest_alert,
    write_csv,
)
from spasmwatch.host.records.nights import (
    Night,
    fmt_clock,
    fmt_datetime,
    fmt_elapsed,
    is_wall_clock,
)

TEMPLATE = Path(__file__).with_name("report_template.html")

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


def esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def _n(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


class Svg:
    """A tiny SVG builder: elements are appended as strings, coordinates in user units."""

    def __init__(self, width: float, height: float, label: str, cls: str) -> None:
        self.w, self.h = width, height
        self.parts: list[str] = []
        self.label = label
        self.cls = cls

    def add(self, tag: str, text: str | None = None, **attrs: Any) -> None:
        a = " ".join(
            f'{k.rstrip("_").replace("_", "-")}="{esc(_n(v) if isinstance(v, float) else v)}"'
            for k, v in attrs.items() if v is not None
        )
        if text is None:
            self.parts.append(f"<{tag} {a}/>")
        else:
            self.parts.append(f"<{tag} {a}>{esc(text)}</{tag}>")

    def raw(self, s: str) -> None:
        self.parts.append(s)

    def render(self) -> str:
        return (
            f'<svg class="{self.cls}" viewBox="0 0 {_n(self.w)} {_n(self.h)}" role="img" '
            f'aria-label="{esc(self.label)}" xmlns="http://www.w3.org/2000/svg">'
            f"<title>{esc(self.label)}</title>" + "".join(self.parts) + "</svg>"
        )


# -- the night's timeline -----------------------------------------------------------------

W = 1000.0  # SVG width
L, R = 64.0, 14.0  # margins for labels


def _tick_step(span_s: float) -> float:
    for step in (60, 300, 600, 900, 1800, 3600, 7200):
        if span_s / step <= 12:
            return float(step)
    return 10800.0


def timeline_svg(night: Night, tz: dt.tzinfo | None, alarm_min: int) -> str:
    """Arousal state, activity, events, clusters and alerts over the whole night."""
    t0, t1 = night.start, max(night.end, night.start + 60.0)
    for a in night.alerts:  # alerts a minute after the last record stay on the chart
        t1 = max(t1, a.t)
    origin = night.origin
    scale = (W - L - R) / (t1 - t0)

    def x(t: float) -> float:
        return L + (t - t0) * scale

    y_state, h_state = 22.0, 14.0
    y_act, h_act = 46.0, 60.0
    y_ev, h_ev = 118.0, 58.0
    y_axis = y_ev + h_ev + 4
    height = y_axis + 40
    svg = Svg(W, height, f"Timeline of the night of {night.key}", "timeline")
    svg.add("text", "state", x=4, y=y_state + 11)
    svg.add("text", "activity", x=4, y=y_act + 12)
    svg.add("text", "% active", x=4, y=y_act + 26)
    svg.add("text", "events", x=4, y=y_ev + 12)
    # grid and time axis: time since sleep onset, wall clock underneath
    step = _tick_step(t1 - t0)
    k = int((t0 - origin) // step)
    while origin + k * step <= t1:
        t = origin + k * step
        if t >= t0 and x(t) <= W - R - 12:
            xx = x(t)
            svg.add("line", class_="grid", x1=xx, y1=y_state, x2=xx, y2=y_axis)
            svg.add("text", ("+" if k > 0 else "") + fmt_elapsed(t - origin, False),
                    x=xx, y=y_axis + 14, text_anchor="middle")
            svg.add("text", fmt_clock(t, tz, seconds=False), x=xx, y=y_axis + 28,
                    text_anchor="middle", fill="#5f6b7a")
        k += 1
    svg.add("line", class_="axis", x1=L, y1=y_axis, x2=W - R, y2=y_axis)
    if night.sleep_onset is not None:
        xs = x(night.sleep_onset)
        svg.add("line", x1=xs, y1=y_state - 6, x2=xs, y2=y_axis, stroke="#343a40",
                stroke_dasharray="4 3")
        svg.add("text", "sleep onset", x=xs + 3, y=y_state - 8)
    if night.wake is not None and night.wake < night.end - 1:
        xw = x(night.wake)
        svg.add("line", x1=xw, y1=y_state - 6, x2=xw, y2=y_axis, stroke="#343a40",
                stroke_dasharray="4 3")
        svg.add("text", "wake", x=xw - 3, y=y_state - 8, text_anchor="end")
    # clusters: shaded behind the event lane; spasm-like ones in the cluster colour
    labels: list[tuple[float, Cluster]] = []
    for c in night.clusters:
        if c.n_events < 2 and c.n_spasm_like == 0:
            continue
        x0, x1c = x(c.start), max(x(c.end), x(c.start) + 3.0)
        strong = c.n_spasm_like >= 1
        svg.add(
            "rect", class_="cluster-shade" if strong else "cluster-benign",
            x=x0, y=y_act - 4, width=x1c - x0, height=y_ev + h_ev - y_act + 4,
            fill=CLUSTER_COLOUR if strong else "#ced4da",
            fill_opacity=0.18 if strong else 0.35,
            data_cluster=c.id, data_count=c.n_spasm_like, data_events=c.n_events,
        )
        if strong:
            # a solid band on top of the lane: the shading stays visible when printed
            svg.add("rect", class_="cluster-band", x=x0, y=y_ev - 8, width=x1c - x0,
                    height=6, fill=CLUSTER_COLOUR, data_cluster=c.id)
            labels.append((x0 + (x1c - x0) / 2, c))
    # arousal state band
    for s in night.summaries:
        svg.add("rect", x=x(s.start), y=y_state, width=max(s.period_s * scale, 0.5),
                height=h_state, fill=STATE_COLOURS.get(s.state, "#e9ecef"),
                data_state=s.state)
    # activity: share of each summary period with movement
    svg.add("line", class_="axis", x1=L, y1=y_act + h_act, x2=W - R, y2=y_act + h_act)
    for s in night.summaries:
        frac = min(1.0, s.active_s / s.period_s) if s.period_s else 0.0
        hh = frac * h_act
        svg.add("rect", class_="activity", x=x(s.start), y=y_act + h_act - hh,
                width=max(s.period_s * scale - 0.6, 0.5), height=hh, fill="#74c0fc")
    # data gaps: hatched
    for g0, g1 in night.gaps:
        svg.add("rect", class_="gap", x=x(g0), y=y_state, width=max(x(g1) - x(g0), 1.0),
                height=y_ev + h_ev - y_state, fill="#f8f9fa", stroke="#adb5bd",
                stroke_dasharray="3 3")
        svg.add("text", "no data", x=x(g0) + 2, y=y_act + 12, fill="#868e96")
    # cluster counts last, on a white pill, so activity bars never hide them
    for cx, c in labels:
        text = str(c.n_spasm_like)
        pw = 8.0 + 7.0 * len(text)
        svg.add("rect", x=cx - pw / 2, y=y_ev - 24, width=pw, height=15, rx=7, fill="#fff",
                stroke=CLUSTER_COLOUR, stroke_width=1.5)
        svg.add("text", text, class_="cluster-label", x=cx, y=y_ev - 12.5,
                text_anchor="middle", font_weight="700", fill=CLUSTER_COLOUR,
                data_cluster=c.id)
    # events: taller ticks for the classes that matter more
    heights = {"spasm_like": h_ev, "jerk": h_ev * 0.6, "movement": h_ev * 0.35}
    for se in night.events:
        e = se.event
        hh = heights.get(e.cls, h_ev * 0.35)
        svg.add("rect", class_=f"ev ev-{e.cls}", x=x(e.t), y=y_ev + h_ev - hh,
                width=max(e.duration_s * scale, 1.2), height=hh,
                fill=CLASS_COLOURS.get(e.cls, MOVE_COLOUR))
    # alerts: alarms as triangles above the state band, faults as grey squares
    for a in night.alerts:
        if a.level == "alarm":
            xa = x(a.t)
            svg.add("path", class_="alarm-mark", d=f"M{_n(xa)} {_n(y_state - 1)} l-5 -9 h10 z",
                    fill=SPASM_COLOUR)
        elif a.level == "fault":
            svg.add("rect", class_="fault-mark", x=x(a.t) - 3, y=y_state - 10, width=6,
                    height=6, fill="#495057")
    return svg.render()


def cluster_svg(night: Night, c: Cluster, tz: dt.tzinfo | None) -> str:
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
    return svg.render()


def snippet_svg(night: Night, snip: Any, alarm: Any, tz: dt.tzinfo | None) -> str:
    """|a| in g over an alarm's raw sensor snippet, with the night's events marked.

    The events that made the alarm (``alarm.event_seqs``) are shaded in the spasm-like
    colour, other events in grey; the alarm time is a red triangle. ``snip`` is a
    ``snippets.StoredSnippet``; ``alarm`` the matching ``Alert`` or None.
    """
    mags = snip.magnitudes_g()
    t0, t1 = snip.t, max(snip.t_end, snip.t + 1.0)
    scale = (W - L - R) / (t1 - t0)
    lo = min([0.0, *mags])
    hi = max([2.0, *mags])
    y0, h = 22.0, 120.0

    def x(t: float) -> float:
        return L + (t - t0) * scale

    def y(g: float) -> float:
        return y0 + h - (g - lo) / (hi - lo) * h

    title = (f"Raw sensor snippet of the alarm at {fmt_clock(snip.alert_t, tz)}: "
             "|a| in g" + ("" if snip.complete else " (partial)"))
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
    for g in range(int(lo), int(hi) + 1):
        svg.add("line", class_="grid", x1=L, y1=y(g), x2=W - R, y2=y(g))
        svg.add("text", f"{g} g", x=L - 6, y=y(g) + 4, text_anchor="end")
    dt_s = 1.0 / snip.rate_hz
    pts = " ".join(f"{_n(x(snip.t + i * dt_s))},{_n(y(m))}" for i, m in enumerate(mags))
    svg.add("polyline", class_="snippet-trace", points=pts, fill="none", stroke="#1c7ed6",
            stroke_width=1.2, data_samples=len(mags))
    if t0 <= snip.alert_t <= t1:
        xa = x(snip.alert_t)
        svg.add("path", class_="alarm-mark", d=f"M{_n(xa)} {_n(y0 - 1)} l-5 -9 h10 z",
                fill=SPASM_COLOUR)
    svg.add("line", class_="axis", x1=L, y1=y0 + h, x2=W - R, y2=y0 + h)
    step = next((s for s in (2, 5, 10, 15, 30, 60) if (t1 - t0) / s <= 10), 120)
    t = (t0 // step + 1) * step
    while t < t1:
        svg.add("text", fmt_clock(t, tz), x=x(t), y=y0 + h + 16, text_anchor="middle")
        t += step
    svg.add("text", f"{len(mags)} samples at {snip.rate_hz} Hz, ±{snip.range_g} g sensor"
            + ("" if snip.complete else "; partial: some packets did not arrive")
            + "; shaded red: the movements that made the alarm", x=L, y=y0 + h + 34,
            fill="#5f6b7a")
    return svg.render()


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


def trend_svg(nights: Sequence[Night], markers: Sequence[Marker], alarm_min: int) -> str:
    """Spasm-like movements (bars) and clusters of them (numbers) per day, with markers."""
    dated = [n for n in nights if n.date != "trace"]
    if not dated:
        return ""
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
        xm = L + days.index(m.date) * slot + 1
        svg.add("line", class_="marker", x1=xm, y1=y0 - 14, x2=xm, y2=y0 + h + 22,
                stroke="#2b8a3e", stroke_width=2, data_date=m.date)
        svg.add("text", m.text[:40], class_="marker-label", x=xm + 4, y=y0 - 18 + 0,
                fill="#2b8a3e", font_weight="600")
    svg.add("text", "bars: spasm-like movements per night; above: clusters with "
            f"≥ {alarm_min} spasm-like movements (cl.); green lines: caregiver markers",
            x=L, y=height - 8, fill="#5f6b7a")
    return svg.render()


# -- tables --------------------------------------------------------------------------------


def _table(cls: str, head: Sequence[str], rows: Iterable[Sequence[str]],
           num: Sequence[int] = (), row_cls: Sequence[str] | None = None) -> str:
    """An HTML table; cells are pre-escaped HTML."""
    th = "".join(
        f'<th class="num">{esc(h)}</th>' if i in num else f"<th>{esc(h)}</th>"
        for i, h in enumerate(head)
    )
    body = []
    for k, r in enumerate(rows):
        rc = f' class="{row_cls[k]}"' if row_cls and row_cls[k] else ""
        tds = "".join(
            f'<td class="num">{c}</td>' if i in num else f"<td>{c}</td>"
            for i, c in enumerate(r)
        )
        body.append(f"<tr{rc}>{tds}</tr>")
    if not body:
        return f'<p class="sub {cls}-empty">None.</p>'
    return (f'<table class="{cls}"><thead><tr>{th}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _label_html(a: Any) -> str:
    if a is None:
        return ""
    out = f'<span class="label-{esc(a.label)}">{esc(LABEL_TEXT.get(a.label, a.label))}</span>'
    if a.note:
        out += f"<br>{esc(a.note)}"
    if a.video:
        out += f"<br>video: {esc(a.video)}"
    return out


def _gaps_text(gaps: list[float]) -> str:
    if not gaps:
        return ""
    lo, hi = f"{min(gaps):.0f}", f"{max(gaps):.0f}"
    if lo == hi:
        return f"{lo} s"
    return f"{lo}–{hi} s (median {statistics.median(gaps):.0f} s)"


def night_section(night: Night, tz: dt.tzinfo | None, alarm_min: int,
                  clip_href: Any) -> str:
    st = night.stats(alarm_min)
    labels = latest_labels(night.annotations)
    highest = cluster_highest_alert(night)
    title = night.key if night.date == "trace" else (
        f"Night of {dt.date.fromisoformat(night.date).strftime('%A %d %B %Y')}"
        + (f" ({night.key.split('#')[1]})" if "#" in night.key else "")
    )
    out = [f'<section class="night" id="night-{esc(night.key)}" data-night="{esc(night.key)}">',
           f"<h2>{esc(title)}</h2>"]
    onset = fmt_datetime(night.sleep_onset, tz) if night.sleep_onset else "not detected"
    wake = fmt_datetime(night.wake, tz) if night.wake else "—"
    out.append(
        f'<p class="sub">Monitored {esc(fmt_datetime(night.start, tz))} to '
        f"{esc(fmt_datetime(night.end, tz))}; sleep onset {esc(onset)}, wake {esc(wake)}.</p>"
    )
    figs = [
        (_hours(st["asleep_s"]), "asleep"),
        (str(st["spasm_like"]), "spasm-like movements"),
        (str(st["spasm_like_clusters"]), f"clusters with ≥ {alarm_min} spasm-like"),
        (str(st["jerks"]), "single jerks"),
        (str(st["alarms"]), "alarms"),
        (str(st["faults"]), "sensor/link faults"),
        (f"{st['data_gap_s'] / 60:.0f} min", "without data"),
    ]
    out.append('<ul class="figures">' + "".join(
        f"<li><b>{esc(v)}</b><span>{esc(k)}</span></li>" for v, k in figs) + "</ul>")
    out.append(
        '<p class="legend">'
        f'<span class="sw" style="background:{STATE_COLOURS["asleep"]}"></span>asleep'
        f'<span class="sw" style="background:{STATE_COLOURS["settling"]}"></span>settling'
        f'<span class="sw" style="background:{STATE_COLOURS["awake"]}"></span>awake'
        f'<span class="sw" style="background:{SPASM_COLOUR}"></span>spasm-like'
        f'<span class="sw" style="background:{JERK_COLOUR}"></span>jerk'
        f'<span class="sw" style="background:{MOVE_COLOUR}"></span>other movement'
        f'<span class="sw" style="background:{CLUSTER_COLOUR}"></span>cluster with '
        "spasm-like movements (count above) ▼ alarm</p>"
    )
    out.append(timeline_svg(night, tz, alarm_min))
    # close-ups where there are intervals to show: two or more spasm-like movements
    spasm_clusters = [c for c in night.clusters if c.n_spasm_like >= 2]
    for c in spasm_clusters:
        lab = labels.get(("cluster", c.id))
        caption = (
            f"Cluster {c.id}: {c.n_spasm_like} spasm-like movement"
            f"{'s' if c.n_spasm_like != 1 else ''} among {c.n_events} events, "
            f"{fmt_clock(c.start, tz)}–{fmt_clock(c.end, tz)} ({c.duration_s / 60:.1f} min)"
        )
        if c.spasm_intervals_s:
            caption += f"; spasm-like movements {_gaps_text(c.spasm_intervals_s)} apart"
        if lab is not None:
            caption += f" — caregiver: {LABEL_TEXT.get(lab.label, lab.label)}"
        out.append(f'<h3 class="cluster-title" data-cluster="{c.id}">{esc(caption)}</h3>')
        out.append(cluster_svg(night, c, tz))
    # clusters table
    rows, rcls = [], []
    for c in night.clusters:
        if c.n_events < 2 and c.n_spasm_like == 0:
            continue
        lvl = highest.get(c.id, "")
        clip = next((cl for cl in night.clips if c.start - 60 <= cl.alert_t <= c.end + 60),
                    None)
        rows.append([
            esc(c.id), esc(fmt_clock(c.start, tz)), esc(fmt_clock(c.end, tz)),
            esc(fmt_elapsed(c.start - night.origin)), esc(f"{c.duration_s / 60:.1f} min"),
            esc(c.n_events),
            f'<b class="cls-spasm_like">{c.n_spasm_like}</b>' if c.n_spasm_like else "0",
            esc(c.n_jerk), esc(c.n_movement), esc(_gaps_text(c.spasm_intervals_s)),
            f'<span class="lvl-{esc(lvl)}">{esc(lvl)}</span>',
            _label_html(labels.get(("cluster", c.id)))
            + (f'<br><a class="clip" href="{esc(clip_href(clip.path))}">video clip</a>'
               if clip else ""),
        ])
        rcls.append("alarm cluster-row" if lvl == "alarm" else "cluster-row")
    out.append("<h3>Clusters (events at most a minute apart)</h3>")
    out.append(_table(
        "clusters",
        ["#", "start", "end", "since sleep onset", "duration", "events", "spasm-like",
         "jerks", "other", "between spasm-like", "highest alert", "caregiver / video"],
        rows, num=(0, 5, 6, 7, 8), row_cls=rcls,
    ))
    # alerts
    arows, acls = [], []
    for a in night.alerts:
        if a.level == "info" and a.kind == "cluster_closed":
            continue  # the clusters table already says this
        arows.append([
            esc(fmt_clock(a.t, tz)), f'<span class="lvl-{esc(a.level)}">{esc(a.level)}</span>',
            esc(a.message),
        ])
        acls.append("alarm" if a.level == "alarm" else "")
    out.append("<h3>Alarms, warnings and faults</h3>")
    out.append(_table("alerts", ["time", "level", "message"], arows, row_cls=acls))
    if night.snippets:
        out.append("<h3>Raw sensor snippets of alarms</h3>")
        for sn in night.snippets:
            out.append(snippet_svg(night, sn, _alarm_of(night, sn), tz))
    clips = night.clips
    if clips:
        out.append("<h3>Video clips</h3><ul class='clips'>" + "".join(
            f'<li><a class="clip" href="{esc(clip_href(cl.path))}">{esc(os.path.basename(cl.path))}'
            f"</a> — alarm at {esc(fmt_clock(cl.alert_t, tz))}, video "
            f"{esc(fmt_clock(cl.start, tz))}–{esc(fmt_clock(cl.end, tz))}</li>"
            for cl in clips) + "</ul>")

    def ev_rows(evs: Iterable[Any]) -> list[list[str]]:
        return [[
            esc(se.id), esc(fmt_clock(se.event.t, tz)),
            esc(fmt_elapsed(se.event.t - night.origin)),
            f'<span class="cls-{esc(se.event.cls)}">{esc(se.event.cls.replace("_", "-"))}</span>',
            esc(f"{se.event.duration_s:.2f} s"), esc(se.event.peak_mg),
            esc(se.event.state), esc(se.cluster_id if se.cluster_id is not None else ""),
            _label_html(labels.get(("event", se.id))),
        ] for se in evs]

    head = ["event", "time", "since sleep onset", "class", "duration", "peak mg",
            "state", "cluster", "caregiver"]
    spasm_events = [se for se in night.events if se.event.cls == "spasm_like"]
    out.append("<h3>Spasm-like movements</h3>")
    out.append(_table("events spasm-events", head, ev_rows(spasm_events), num=(0, 5)))
    out.append(f"<details><summary>All {len(night.events)} events of the night</summary>")
    out.append(_table("events all-events", head, ev_rows(night.events), num=(0, 5)))
    out.append("</details></section>")
    return "\n".join(out)


def render_report(
    nights: Sequence[Night],
    markers: Sequence[Marker],
    tz: dt.tzinfo | None = None,
    alarm_min: int = 3,
    source: str = "",
    clip_href: Any = None,
    generated: float | None = None,
) -> str:
    """The whole report as one HTML string."""
    href = clip_href or (lambda p: Path(p).resolve().as_uri())
    body = []
    if not nights:
        body.append('<p class="empty">No nights with data in the chosen period.</p>')
    dated = [n for n in nights if n.date != "trace"]
    if dated:
        period = (dated[0].date if dated[0].date == dated[-1].date
                  else f"{dated[0].date} to {dated[-1].date}")
    else:
        period = "replayed recording (no wall-clock time)" if nights else "no data"
    if len(nights) > 1 or markers:
        body.append("<h2>Across nights</h2>")
        body.append(trend_svg(nights, markers, alarm_min))
    if nights:
        rows = []
        for n in nights:
            st = n.stats(alarm_min)
            rows.append([
                f'<a href="#night-{esc(n.key)}">{esc(n.key)}</a>',
                esc(fmt_clock(n.sleep_onset, tz, False) if n.sleep_onset else "—"),
                esc(fmt_clock(n.wake, tz, False) if n.wake else "—"),
                esc(_hours(st["asleep_s"])), esc(st["events"]),
                f'<b class="cls-spasm_like">{st["spasm_like"]}</b>',
                esc(st["spasm_like_clusters"]), esc(st["alarms"]), esc(st["faults"]),
                esc(f"{st['marked_real']} / {st['marked_false_alarm']} / {st['marked_unsure']}"),
            ])
        body.append("<h3>Nights</h3>")
        body.append(_table(
            "nights",
            ["night", "sleep onset", "wake", "asleep", "events", "spasm-like",
             f"clusters ≥ {alarm_min} spasm-like", "alarms", "faults",
             "caregiver: real / false alarm / unsure"],
            rows, num=(4, 5, 6, 7, 8),
        ))
    if markers:
        body.append("<h3>Caregiver markers</h3>")
        body.append(_table("markers", ["date", "note"],
                           [[esc(m.date), esc(m.text)] for m in markers]))
    for n in nights:
        body.append(night_section(n, tz, alarm_min, href))
    gen = time.time() if generated is None else generated
    tzname = (dt.datetime.fromtimestamp(gen, tz=dt.UTC).astimezone(tz).tzname()
              if tz is not None or is_wall_clock(gen) else "local")
    return string.Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        title="spasmwatch movement record",
        subtitle=esc(f"{period} · {len(nights)} night{'s' if len(nights) != 1 else ''}"),
        disclaimer=esc(DISCLAIMER),
        body="\n".join(body),
        generated=esc(fmt_datetime(gen, tz)),
        version=esc(__version__),
        source=esc(source or "the monitor's database"),
        tzname=esc(tzname or "local"),
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
