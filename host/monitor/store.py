"""SQLite persistence for everything the host learns: records, clusters, alerts, counters.

One file (or ``:memory:``) per monitor. Files use WAL journaling with
``synchronous=NORMAL``: readers (a UI, a report) never block the writer, a crash can
lose at most the last few commits but never corrupts the database. Adding a record is
idempotent (unique on device, seq, t) because the device resends packets after a link
drop. Writes commit immediately unless grouped with ``with store.batch():``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from spasmwatch.host.monitor.alerts import Alert
from spasmwatch.host.monitor.clustering import Cluster
from spasmwatch.host.monitor.records import Detail, Event, Status, Summary
from spasmwatch.host.monitor.schema import SCHEMA_VERSION, SchemaError, ensure, version_of

__all__ = ["SCHEMA_VERSION", "SchemaError", "Store"]

_EVENT_COLS = (
    "seq", "t", "t_ms", "cls", "state", "peaks", "duration_s", "peak_mg", "energy_mgs",
    "tilt_mg", "excursion_mg", "still_s", "received_at",
)
_SUMMARY_COLS = (
    "seq", "t", "t_ms", "period_s", "active_s", "events", "spasm_like", "peak_mg", "mean_mg",
    "state", "received_at",
)
_STATUS_COLS = (
    "seq", "t", "t_ms", "battery_mv", "flags", "flags_raw", "buffer_pct", "heap_kb",
    "rate_hz", "range_g", "received_at",
)


_DETAIL_COLS = (
    "seq", "t", "t_ms", "dx", "dy", "dz", "rise_s", "hold_s", "fails", "received_at",
)


def _insert_sql(table: str, cols: tuple[str, ...]) -> str:
    names = ", ".join(("device",) + cols)
    marks = ", ".join("?" * (len(cols) + 1))
    return f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({marks})"


class Store:
    """The monitor's database. Use as a context manager or call ``close()``."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._conn = sqlite3.connect(self.path)
        self._batch_depth = 0
        try:
            if self.path != ":memory:" and not self.path.startswith("file::memory:"):
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
            ensure(self._conn, self.path)
        except BaseException:  # not a database, or a newer one: leave it as it was
            self._conn.close()
            raise
        self._sql_event = _insert_sql("events", _EVENT_COLS)
        self._sql_summary = _insert_sql("summaries", _SUMMARY_COLS)
        self._sql_status = _insert_sql("statuses", _STATUS_COLS)
        self._sql_detail = _insert_sql("details", _DETAIL_COLS)

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._conn.commit()
        self._conn.close()

    def commit(self) -> None:
        self._conn.commit()

    @contextmanager
    def batch(self) -> Iterator[Store]:
        """Group writes into one commit (committed even if the block raises: what was
        learned is kept)."""
        self._batch_depth += 1
        try:
            yield self
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0:
                self._conn.commit()

    def _written(self) -> None:
        if self._batch_depth == 0:
            self._conn.commit()

    @property
    def connection(self) -> sqlite3.Connection:
        """The open connection, for modules that query their own tables in the same file
        (alarm transitions and deliveries, annotations, snippets, video clips; every
        table is defined in ``host/monitor/schema.py``)."""
        return self._conn

    @property
    def schema_version(self) -> int:
        return version_of(self._conn)

    # -- writes --------------------------------------------------------------------------

    def _add_unique(self, sql: str, table: str, device: str, row: tuple) -> int:
        cur = self._conn.execute(sql, (device,) + row)
        if cur.rowcount == 1 and cur.lastrowid is not None:
            rid = cur.lastrowid
        else:  # already there: the same packet was sent again
            rid = self._conn.execute(
                f"SELECT id FROM {table} WHERE device = ? AND seq = ? AND t = ?",
                (device, row[0], row[1]),
            ).fetchone()[0]
        self._written()
        return int(rid)

    def add_event(self, device: str, ev: Event) -> int:
        """Store an event; returns its row id (the existing one if already stored)."""
        row = (
            ev.seq, ev.t, ev.t_ms, ev.cls, ev.state, ev.peaks, ev.duration_s, ev.peak_mg,
            ev.energy_mgs, ev.tilt_mg, ev.excursion_mg, ev.still_s, ev.received_at,
        )
        return self._add_unique(self._sql_event, "events", device, row)

    def add_summary(self, device: str, s: Summary) -> int:
        row = (
            s.seq, s.t, s.t_ms, s.period_s, s.active_s, s.events, s.spasm_like, s.peak_mg,
            s.mean_mg, s.state, s.received_at,
        )
        return self._add_unique(self._sql_summary, "summaries", device, row)

    def add_status(self, device: str, s: Status) -> int:
        row = (
            s.seq, s.t, s.t_ms, s.battery_mv, ",".join(s.flags), s.flags_raw, s.buffer_pct,
            s.heap_kb, s.rate_hz, s.range_g, s.received_at,
        )
        return self._add_unique(self._sql_status, "statuses", device, row)

    def add_detail(self, device: str, d: Detail) -> int:
        row = (d.seq, d.t, d.t_ms, *d.direction, d.rise_s, d.hold_s, ",".join(d.fails),
               d.received_at)
        return self._add_unique(self._sql_detail, "details", device, row)

    def upsert_cluster(self, cluster: Cluster, device: str = "sim") -> int:
        """Insert or update a cluster by its id (the engine numbers them, see
        ``next_cluster_id``)."""
        self._conn.execute(
            "INSERT INTO clusters (id, device, t_start, t_end, n_events, n_spasm_like, n_jerk,"
            " n_movement, intervals_s, spasm_intervals_s, first_seq, last_seq, closed)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET device = excluded.device,"
            " t_start = excluded.t_start, t_end = excluded.t_end,"
            " n_events = excluded.n_events, n_spasm_like = excluded.n_spasm_like,"
            " n_jerk = excluded.n_jerk, n_movement = excluded.n_movement,"
            " intervals_s = excluded.intervals_s,"
            " spasm_intervals_s = excluded.spasm_intervals_s,"
            " first_seq = excluded.first_seq, last_seq = excluded.last_seq,"
            " closed = excluded.closed",
            (
                cluster.id, device, cluster.start, cluster.end, cluster.n_events,
                cluster.n_spasm_like, cluster.n_jerk, cluster.n_movement,
                json.dumps(cluster.intervals_s), json.dumps(cluster.spasm_intervals_s),
                cluster.first_seq, cluster.last_seq, int(cluster.closed),
            ),
        )
        self._written()
        return cluster.id

    def next_cluster_id(self) -> int:
        """First cluster id that is free, so a restarted engine does not reuse ids."""
        return int(self._conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM clusters")
                   .fetchone()[0])

    def add_gap(self, device: str, start_t: float | None, end_t: float | None,
                reason: str) -> int:
        """A stretch without sensor data (``reason``: a short word, e.g. ``packets_lost``);
        a gap whose start is unknown starts at its end."""
        start = start_t if start_t is not None else end_t
        cur = self._conn.execute(
            "INSERT INTO gaps (device, start_t, end_t, reason) VALUES (?, ?, ?, ?)",
            (device, start, end_t, reason))
        self._written()
        return int(cur.lastrowid or 0)

    def add_alert(self, alert: Alert, device: str = "sim") -> int:
        cur = self._conn.execute(
            "INSERT INTO alerts (device, t, level, kind, message, cluster_id, event_seqs,"
            " details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                device, alert.t, alert.level, alert.kind, alert.message, alert.cluster_id,
                json.dumps(list(alert.event_seqs)), json.dumps(alert.details, default=str),
            ),
        )
        self._written()
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def add_counts(self, device: str, counts: Mapping[str, int]) -> None:
        """Add to named counters (decode errors by reason, lost packets, ...)."""
        self._conn.executemany(
            "INSERT INTO counters (device, name, value) VALUES (?, ?, ?)"
            " ON CONFLICT (device, name) DO UPDATE SET value = value + excluded.value",
            [(device, name, int(n)) for name, n in counts.items() if n],
        )
        self._written()

    # -- queries -------------------------------------------------------------------------

    @staticmethod
    def window_sql(
        since: float | None, until: float | None, device: str | None = None
    ) -> tuple[str, list[object]]:
        """SQL ``WHERE`` clause (or "") and its arguments for ``since <= t < until``."""
        where: list[str] = []
        args: list[object] = []
        if since is not None:
            where.append("t >= ?")
            args.append(since)
        if until is not None:
            where.append("t < ?")
            args.append(until)
        if device is not None:
            where.append("device = ?")
            args.append(device)
        return (" WHERE " + " AND ".join(where) if where else ""), args

    def events(
        self, since: float | None = None, until: float | None = None, device: str | None = None
    ) -> list[Event]:
        """Events with ``since <= t < until`` (onset), oldest first."""
        where, args = self.window_sql(since, until, device)
        rows = self._conn.execute(
            f"SELECT {', '.join(_EVENT_COLS)} FROM events{where} ORDER BY t, id", args
        )
        return [Event(**dict(zip(_EVENT_COLS, r, strict=True))) for r in rows]

    def summaries(
        self, since: float | None = None, until: float | None = None, device: str | None = None
    ) -> list[Summary]:
        where, args = self.window_sql(since, until, device)
        rows = self._conn.execute(
            f"SELECT {', '.join(_SUMMARY_COLS)} FROM summaries{where} ORDER BY t, id", args
        )
        return [Summary(**dict(zip(_SUMMARY_COLS, r, strict=True))) for r in rows]

    def details(
        self, since: float | None = None, until: float | None = None, device: str | None = None
    ) -> list[Detail]:
        where, args = self.window_sql(since, until, device)
        rows = self._conn.execute(
            f"SELECT {', '.join(_DETAIL_COLS)} FROM details{where} ORDER BY t, id", args
        )
        return [
            Detail(seq=r[0], t=r[1], t_ms=r[2], direction=(r[3], r[4], r[5]), rise_s=r[6],
                   hold_s=r[7], fails=tuple(f for f in r[8].split(",") if f), received_at=r[9])
            for r in rows
        ]

    def statuses(
        self, since: float | None = None, until: float | None = None, device: str | None = None
    ) -> list[Status]:
        where, args = self.window_sql(since, until, device)
        rows = self._conn.execute(
            f"SELECT {', '.join(_STATUS_COLS)} FROM statuses{where} ORDER BY t, id", args
        )
        out = []
        for r in rows:
            d = dict(zip(_STATUS_COLS, r, strict=True))
            d["flags"] = tuple(f for f in d["flags"].split(",") if f)
            out.append(Status(**d))
        return out

    def alerts(
        self,
        since: float | None = None,
        until: float | None = None,
        device: str | None = None,
        level: str | None = None,
    ) -> list[Alert]:
        where, args = self.window_sql(since, until, device)
        if level is not None:
            where += (" AND" if where else " WHERE") + " level = ?"
            args.append(level)
        rows = self._conn.execute(
            "SELECT t, level, kind, message, cluster_id, event_seqs, details FROM alerts"
            f"{where} ORDER BY t, id", args,
        )
        return [
            Alert(t, lvl, kind, msg, cid, tuple(json.loads(seqs)), json.loads(det))
            for t, lvl, kind, msg, cid, seqs, det in rows
        ]

    def clusters(self, device: str | None = None) -> list[Cluster]:
        where, args = self.window_sql(None, None, device)
        rows = self._conn.execute(
            "SELECT id, t_start, t_end, n_events, n_spasm_like, n_jerk, n_movement,"
            f" intervals_s, spasm_intervals_s, first_seq, last_seq, closed FROM clusters{where}"
            " ORDER BY t_start, id", args,
        )
        return [
            Cluster(
                id=r[0], start=r[1], end=r[2], n_events=r[3], n_spasm_like=r[4], n_jerk=r[5],
                n_movement=r[6], intervals_s=json.loads(r[7]),
                spasm_intervals_s=json.loads(r[8]), first_seq=r[9], last_seq=r[10],
                closed=bool(r[11]),
            )
            for r in rows
        ]

    def counters(self, device: str | None = None) -> dict[str, int]:
        where, args = self.window_sql(None, None, device)
        rows = self._conn.execute(
            f"SELECT name, SUM(value) FROM counters{where} GROUP BY name ORDER BY name", args
        )
        return {name: int(v) for name, v in rows}

    def count(self, table: str) -> int:
        if table not in ("events", "summaries", "statuses", "details", "clusters", "alerts"):
            raise ValueError(f"unknown table {table!r}")
        return int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
