"""Group a store's records into nights: from sleep onset to wake, with everything in between.

A *night* is one stretch of monitoring. Stretches are split where the data stops for at
least ``gap_split_s`` (sensor off, baby out of the sack) or where the sensor reports the
baby awake for at least ``awake_split_s``. Within a stretch, *sleep onset* is the start of
the first activity summary whose arousal state is ``asleep`` and *wake* is the end of the
last one; the night keeps the whole stretch (``start``..``end``) because movements while
settling before sleep onset and on waking are the ones that matter most.

Each night is labelled with the local date of the evening it began: the date of
``start - 12 h``, so a stretch that starts at 01:30 belongs to the night of the previous
day and two stretches on the same date get keys ``DATE`` and ``DATE#2``.

Times in the store are host seconds: Unix epoch seconds in live use (shown as local
wall-clock time) or seconds on a replayed trace's clock (below 1e9: shown as elapsed
time, nights keyed ``trace``, ``trace#2``...).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from spasmwatch.host.monitor.alerts import Alert
from spasmwatch.host.monitor.clustering import Cluster
from spasmwatch.host.monitor.records import Event, Summary
from spasmwatch.host.monitor.store import Store

_SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite 3 file
EPOCH_FROM = 1e9  # the same split as alerts.fmt_time: epoch seconds vs a trace clock
NIGHT_SHIFT_S = 12 * 3600  # a night is dated by the evening it began
_EVENT_FIELDS = tuple(f.name for f in fields(Event))


@dataclass(frozen=True)
class NightConfig:
    """Where stretches split. Defaults suit one sensor used overnight."""

    gap_split_s: float = 2 * 3600.0  # no data for this long ends a night
    awake_split_s: float = 2 * 3600.0  # reported awake for this long ends a night
    coverage_gap_s: float = 150.0  # summaries further apart than this leave a data gap


@dataclass(frozen=True)
class Gap:
    """A stretch without sensor data inside a night.

    ``reason`` is what the daemon recorded in the ``gaps`` table (``link_lost``,
    ``packets_lost``, ...), or ``no_summaries`` for a hole found between activity
    summaries that nothing recorded.
    """

    start: float
    end: float
    reason: str
    device: str = ""

    @property
    def duration_s(self) -> float:
        return self.end - self.start

    @property
    def why(self) -> str:
        """The reason in plain words."""
        return GAP_REASONS.get(self.reason, self.reason.replace("_", " "))


GAP_REASONS = {
    "no_summaries": "no activity summaries arrived",
    "link_lost": "link to the sensor lost",
    "packets_lost": "the sensor's buffer overflowed; packets lost",
}


@dataclass(frozen=True)
class Delivery:
    """One attempt to tell someone (``alarm_deliveries``): ``ok`` None = sent, unconfirmed."""

    t: float
    channel: str
    level: str
    kind: str
    repeat: int
    ok: bool | None
    detail: str


@dataclass(frozen=True)
class Transition:
    """One change of the alarm state (``alarm_transitions``), e.g. an acknowledgement."""

    t: float
    from_state: str
    to_state: str
    reason: str
    source: str


@dataclass(frozen=True)
class StoredEvent:
    """An event with its row id (what annotations refer to) and device."""

    id: int
    device: str
    event: Event
    cluster_id: int | None = None


@dataclass
class Night:
    """Everything stored between ``start`` and ``end`` (host seconds, end exclusive)."""

    key: str
    start: float
    end: float
    sleep_onset: float | None
    wake: float | None
    summaries: list[Summary] = field(default_factory=list)
    events: list[StoredEvent] = field(default_factory=list)
    clusters: list[Cluster] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)  # stretches without data, by start
    annotations: list[Any] = field(default_factory=list)  # annotations.Annotation
    clips: list[Any] = field(default_factory=list)  # video.Clip
    snippets: list[Any] = field(default_factory=list)  # snippets.StoredSnippet of alarms
    deliveries: list[Delivery] = field(default_factory=list)  # alarm deliveries, by time
    transitions: list[Transition] = field(default_factory=list)  # alarm state changes

    @property
    def date(self) -> str:
        return self.key.split("#", 1)[0]

    @property
    def origin(self) -> float:
        """Time zero of the night's timeline: sleep onset, else the first data."""
        return self.sleep_onset if self.sleep_onset is not None else self.start

    @property
    def faults(self) -> list[Alert]:
        return [a for a in self.alerts if a.level == "fault"]

    def seconds_in_state(self) -> dict[str, float]:
        """Seconds the sensor reported in each arousal state (from activity summaries)."""
        out: Counter[str] = Counter()
        for s in self.summaries:
            out[s.state] += s.period_s
        return dict(out)

    def stats(self, alarm_min_spasms: int = 3) -> dict[str, Any]:
        """The night in numbers (the per-night row of the report and of nights.csv)."""
        by_cls = Counter(se.event.cls for se in self.events)
        by_level = Counter(a.level for a in self.alerts)
        states = self.seconds_in_state()
        active = sum(s.active_s for s in self.summaries)
        period = sum(s.period_s for s in self.summaries)
        labels = Counter(getattr(a, "label", "") for a in self.annotations)
        return {
            "night": self.key,
            "start": self.start,
            "end": self.end,
            "sleep_onset": self.sleep_onset,
            "wake": self.wake,
            "monitored_s": round(period, 1),
            "asleep_s": round(states.get("asleep", 0.0), 1),
            "settling_s": round(states.get("settling", 0.0), 1),
            "awake_s": round(states.get("awake", 0.0), 1),
            "data_gap_s": round(_covered_s(self.gaps), 1),
            "active_pct": round(100.0 * active / period, 1) if period else 0.0,
            "events": len(self.events),
            "spasm_like": by_cls["spasm_like"],
            "jerks": by_cls["jerk"],
            "movements": by_cls["movement"],
            "clusters": len(self.clusters),
            "spasm_like_clusters": sum(
                1 for c in self.clusters if c.n_spasm_like >= alarm_min_spasms
            ),
            "alarms": by_level["alarm"],
            "warnings": by_level["warning"],
            "faults": by_level["fault"],
            "marked_real": labels["real_episode"],
            "marked_false_alarm": labels["false_alarm"],
            "marked_unsure": labels["unsure"],
        }


# -- time formatting ---------------------------------------------------------------------


def is_wall_clock(t: float) -> bool:
    return t >= EPOCH_FROM


def to_datetime(t: float, tz: dt.tzinfo | None = None) -> dt.datetime:
    """Epoch seconds -> aware datetime in ``tz`` (None: the machine's local zone)."""
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).astimezone(tz)


def fmt_clock(t: float, tz: dt.tzinfo | None = None, seconds: bool = True) -> str:
    """Wall-clock ``HH:MM:SS`` for epoch seconds, elapsed ``+H:MM:SS`` on a trace clock."""
    if is_wall_clock(t):
        return to_datetime(t, tz).strftime("%H:%M:%S" if seconds else "%H:%M")
    return "+" + fmt_elapsed(t, seconds)


def fmt_datetime(t: float, tz: dt.tzinfo | None = None) -> str:
    """``YYYY-MM-DD HH:MM:SS`` (ISO-like, local) or elapsed time on a trace clock."""
    if is_wall_clock(t):
        return to_datetime(t, tz).strftime("%Y-%m-%d %H:%M:%S")
    return "+" + fmt_elapsed(t)


def fmt_elapsed(seconds: float, with_seconds: bool = True) -> str:
    """``H:MM:SS`` (or ``H:MM``), with a minus sign before zero."""
    sign = "-" if seconds < 0 else ""
    s = int(round(abs(seconds)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{sign}{h}:{m:02d}:{sec:02d}" if with_seconds else f"{sign}{h}:{m:02d}"


def iso(t: float | None, tz: dt.tzinfo | None = None) -> str:
    """ISO 8601 with offset for epoch seconds; empty for None; plain seconds on a trace."""
    if t is None:
        return ""
    if is_wall_clock(t):
        return to_datetime(t, tz).isoformat(timespec="milliseconds")
    return f"{t:.3f}"


def night_date(t: float, tz: dt.tzinfo | None = None) -> str:
    """The date of the evening a night starting at ``t`` began (``trace`` off the clock)."""
    if not is_wall_clock(t):
        return "trace"
    return to_datetime(t - NIGHT_SHIFT_S, tz).date().isoformat()


# -- grouping ------------------------------------------------------------------------------


def stored_events(
    store: Store, since: float | None = None, until: float | None = None
) -> list[StoredEvent]:
    """Events with their row ids, oldest first (``since <= t < until``)."""
    where, args = Store.window_sql(since, until)
    sql = f"SELECT id, device, {', '.join(_EVENT_FIELDS)} FROM events{where} ORDER BY t, id"
    rows = store.connection.execute(sql, args)
    return [
        StoredEvent(r[0], r[1], Event(**dict(zip(_EVENT_FIELDS, r[2:], strict=True))))
        for r in rows
    ]


def _spans(store: Store) -> list[tuple[float, float, str | None]]:
    """(start, end, arousal state or None) of every stored record, sorted by start."""
    conn = store.connection
    spans: list[tuple[float, float, str | None]] = [
        (t - p, t, st)
        for t, p, st in conn.execute("SELECT t, period_s, state FROM summaries")
    ]
    spans += [(t, t + d, None) for t, d in conn.execute("SELECT t, duration_s FROM events")]
    spans += [(t, t, None) for (t,) in conn.execute("SELECT t FROM statuses")]
    spans.sort(key=lambda s: (s[0], s[1]))
    return spans


def _stretches(
    spans: list[tuple[float, float, str | None]], cfg: NightConfig
) -> list[tuple[float, float]]:
    """Split the record into monitoring stretches at long data gaps and long awake runs."""
    out: list[tuple[float, float]] = []
    start: float | None = None
    end = 0.0
    awake_from: float | None = None  # start of the current run of awake summaries
    for a, b, state in spans:
        if start is not None and a - end >= cfg.gap_split_s:
            out.append((start, end))
            start, awake_from = None, None
        if start is None:
            start, end = a, b
        if state == "awake":
            awake_from = a if awake_from is None else awake_from
            if b - awake_from >= cfg.awake_split_s and awake_from > start:
                # The long awake run closes the night and opens the next one (nothing
                # is left out; the next night's timeline starts at its sleep onset).
                out.append((start, awake_from))
                start = awake_from
        elif state is not None:
            awake_from = None
        if start is not None:
            end = max(end, b)
    if start is not None:
        out.append((start, end))
    return [s for s in out if s[1] > s[0]]


def _covered_s(gaps: list[Gap]) -> float:
    """Seconds inside any gap (overlapping gaps counted once)."""
    total, reach = 0.0, float("-inf")
    for g in sorted(gaps, key=lambda g: g.start):
        lo = max(g.start, reach)
        if g.end > lo:
            total += g.end - lo
        reach = max(reach, g.end)
    return total


def stored_gaps(store: Store, since: float, until: float) -> list[Gap]:
    """Gaps the daemon recorded that overlap ``[since, until]``, clipped to it; a gap
    still open (no ``end_t``) lasts until ``until``."""
    rows = store.connection.execute(
        "SELECT device, start_t, end_t, reason FROM gaps"
        " WHERE start_t <= ? AND (end_t IS NULL OR end_t >= ?) ORDER BY start_t, id",
        (until, since),
    )
    out = []
    for device, a, b, reason in rows:
        lo, hi = max(a, since), min(until if b is None else b, until)
        if hi > lo:
            out.append(Gap(lo, hi, str(reason or "unknown"), str(device)))
    return out


def _data_gaps(summaries: list[Summary], recorded: list[Gap], cfg: NightConfig) -> list[Gap]:
    """Recorded gaps, and the holes between summaries that no recorded gap explains."""
    gaps = list(recorded)
    for prev, cur in zip(summaries, summaries[1:], strict=False):
        a, b = prev.t, cur.start
        if b - a >= cfg.coverage_gap_s and not any(
            g.start < b and g.end > a for g in recorded
        ):
            gaps.append(Gap(a, b, "no_summaries"))
    return sorted(gaps, key=lambda g: (g.start, g.end))


def find_nights(
    store: Store, cfg: NightConfig | None = None, tz: dt.tzinfo | None = None
) -> list[Night]:
    """All nights in the store, oldest first, with their records attached."""
    cfg = cfg or NightConfig()
    stretches = _stretches(_spans(store), cfg)
    clusters = store.clusters()
    alerts = store.alerts()
    all_events = stored_events(store)
    seen: Counter[str] = Counter()
    nights: list[Night] = []
    ei = 0
    bounds = [s for s, _ in stretches[1:]] + [float("inf")]
    for (a, b), next_start in zip(stretches, bounds, strict=True):
        date = night_date(a, tz)
        seen[date] += 1
        key = date if seen[date] == 1 else f"{date}#{seen[date]}"
        # Half-open windows [a, stop): nudge past the last record's end, never into the
        # next night, so no record is counted twice.
        stop = min(b + 1e-6, next_start)
        # a summary belongs where its period ends (t), and it ends after the night began
        summaries = store.summaries(a + 1e-6, min(b, next_start) + 1e-6)
        asleep = [s for s in summaries if s.state == "asleep"]
        night = Night(
            key=key, start=a, end=b,
            sleep_onset=asleep[0].start if asleep else None,
            wake=asleep[-1].t if asleep else None,
            summaries=summaries,
            clusters=[c for c in clusters if a <= c.start < stop],
            # Alerts can come after the last record (a cluster closes a minute after its
            # last event): they belong to this night until the next one starts.
            alerts=[x for x in alerts if a <= x.t < next_start],
            gaps=_data_gaps(summaries, stored_gaps(store, a, b), cfg),
        )
        while ei < len(all_events) and all_events[ei].event.t < a:
            ei += 1
        evs: list[StoredEvent] = []
        while ei < len(all_events) and all_events[ei].event.t < stop:
            evs.append(all_events[ei])
            ei += 1
        night.events = _with_clusters(evs, night.clusters)
        nights.append(night)
    _attach_extras(store, nights)
    return nights


def _with_clusters(evs: list[StoredEvent], clusters: list[Cluster]) -> list[StoredEvent]:
    """Tag each event with the cluster whose span holds its onset (same rule as the engine)."""
    out = []
    ci = 0
    cs = sorted(clusters, key=lambda c: c.start)
    for se in evs:
        t = se.event.t
        while ci < len(cs) and cs[ci].end < t:
            ci += 1
        cid = cs[ci].id if ci < len(cs) and cs[ci].start <= t <= cs[ci].end else None
        out.append(StoredEvent(se.id, se.device, se.event, cid))
    return out


def _attach_extras(store: Store, nights: list[Night]) -> None:
    """Caregiver annotations, video clips, alarm snippets, deliveries and state changes."""
    from spasmwatch.host.records.annotations import annotations_for
    from spasmwatch.host.records.snippets import snippets_in
    from spasmwatch.host.records.video import clips_in

    for n in nights:
        ev_ids = {se.id for se in n.events}
        cl_ids = {c.id for c in n.clusters}
        n.annotations = annotations_for(store, ev_ids, cl_ids)
        n.clips = clips_in(store, n.start, n.end + 600.0)
        n.snippets = snippets_in(store, n.start, n.end + 600.0)
        n.deliveries = [Delivery(t, ch, lvl, kind, rep, None if ok is None else bool(ok), det)
                        for t, ch, lvl, kind, rep, ok, det in store.connection.execute(
                            "SELECT t, channel, level, kind, repeat, ok, detail"
                            " FROM alarm_deliveries WHERE t >= ? AND t < ? ORDER BY t, id",
                            (n.start, n.end + 600.0))]
        n.transitions = [Transition(*r) for r in store.connection.execute(
            "SELECT t, from_state, to_state, reason, source FROM alarm_transitions"
            " WHERE t >= ? AND t < ? ORDER BY t, id", (n.start, n.end + 600.0))]


def select_nights(
    nights: list[Night],
    night: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
) -> list[Night]:
    """Nights by key/date (``night``) or by an inclusive date range (YYYY-MM-DD)."""
    if night is not None:
        return [n for n in nights if n.key == night or n.date == night]
    out = nights
    if date_from is not None:
        out = [n for n in out if n.date >= date_from]
    if date_to is not None:
        out = [n for n in out if n.date <= date_to]
    return out


def open_existing(path: str) -> Store:
    """Open a monitor database that must already exist; never create or alter a file
    that is not one (reports and exports read what ``run`` wrote).

    Raises ``FileNotFoundError`` when ``path`` is missing and ``ValueError`` (one line for
    the user) for anything that is not a spasmwatch database: a folder, an empty file,
    another kind of file, or another program's SQLite database. A spasmwatch database of
    an older schema is migrated (``host/monitor/schema.py``).
    """
    if path == ":memory:":
        return Store(path)
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(path)
    if not p.is_file():
        raise ValueError(f"{path}: not a spasmwatch database (not a file)")
    try:
        with p.open("rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not head:
        raise ValueError(f"{path}: empty file, not a spasmwatch database")
    if head != _SQLITE_MAGIC:
        raise ValueError(f"{path}: not a spasmwatch database (not an SQLite file)")
    try:
        # Look before opening for writing: a read-only look changes nothing.
        con = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
        try:
            names = {n for (n,) in con.execute("SELECT name FROM sqlite_master")}
        finally:
            con.close()
        if not {"schema_version", "events"} <= names:
            raise ValueError(f"{path}: an SQLite database, but not one spasmwatch wrote")
        return Store(path)
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{path}: not a spasmwatch database ({exc})") from None


def has_records(store: Store) -> bool:
    """Whether anything was ever recorded (an empty database has no nights to show)."""
    return any(store.count(t) for t in ("events", "summaries", "statuses", "alerts"))
