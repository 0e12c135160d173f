"""The monitor database's schema: every table, in numbered migrations, in one place.

``ensure(conn)`` brings a connection's database to ``SCHEMA_VERSION``: it reads the
highest number in ``schema_version`` and applies each later migration in one
transaction, recording its number. A database newer than this program is refused
(``SchemaError``), never altered.

Migration 1 is the store's schema as first released. Before this module, the tables of
migration 2 were created on first use by the modules that write them (snippets,
annotations, markers, video clips, alarm transitions and deliveries) without touching
the version, so a version-1 database may already hold some of them: migration 2 only
creates what is missing (``IF NOT EXISTS``). Later migrations must not rely on that:
a new table or column is a new numbered step.

The modules keep their own queries; they call ``ensure`` (cheap once applied: one
``SELECT``) instead of creating tables.
"""

from __future__ import annotations

import sqlite3

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SchemaError", "ensure", "version_of"]

_V1_STORE = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, seq INTEGER NOT NULL, t REAL NOT NULL,
    t_ms INTEGER NOT NULL, cls TEXT NOT NULL, state TEXT NOT NULL, peaks INTEGER NOT NULL,
    duration_s REAL NOT NULL, peak_mg INTEGER NOT NULL, energy_mgs INTEGER NOT NULL,
    tilt_mg INTEGER NOT NULL, excursion_mg INTEGER NOT NULL, still_s INTEGER NOT NULL,
    received_at REAL, UNIQUE (device, seq, t)
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (t);
CREATE TABLE IF NOT EXISTS summaries (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, seq INTEGER NOT NULL, t REAL NOT NULL,
    t_ms INTEGER NOT NULL, period_s INTEGER NOT NULL, active_s INTEGER NOT NULL,
    events INTEGER NOT NULL, spasm_like INTEGER NOT NULL, peak_mg INTEGER NOT NULL,
    mean_mg INTEGER NOT NULL, state TEXT NOT NULL, received_at REAL,
    UNIQUE (device, seq, t)
);
CREATE TABLE IF NOT EXISTS statuses (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, seq INTEGER NOT NULL, t REAL NOT NULL,
    t_ms INTEGER NOT NULL, battery_mv INTEGER NOT NULL, flags TEXT NOT NULL,
    flags_raw INTEGER NOT NULL, buffer_pct INTEGER NOT NULL, heap_kb INTEGER NOT NULL,
    rate_hz INTEGER NOT NULL, range_g INTEGER NOT NULL, received_at REAL,
    UNIQUE (device, seq, t)
);
CREATE TABLE IF NOT EXISTS clusters (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, t_start REAL NOT NULL, t_end REAL NOT NULL,
    n_events INTEGER NOT NULL, n_spasm_like INTEGER NOT NULL, n_jerk INTEGER NOT NULL,
    n_movement INTEGER NOT NULL, intervals_s TEXT NOT NULL, spasm_intervals_s TEXT NOT NULL,
    first_seq INTEGER, last_seq INTEGER, closed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, t REAL NOT NULL, level TEXT NOT NULL,
    kind TEXT NOT NULL, message TEXT NOT NULL, cluster_id INTEGER,
    event_seqs TEXT NOT NULL, details TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (t);
CREATE TABLE IF NOT EXISTS counters (
    device TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (device, name)
);
"""

_V2_RECORDS = """
CREATE TABLE IF NOT EXISTS snippets (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, alert_id INTEGER, alert_t REAL NOT NULL,
    t REAL NOT NULL, t_end REAL NOT NULL, rate_hz INTEGER NOT NULL, range_g INTEGER NOT NULL,
    expected INTEGER, complete INTEGER NOT NULL, samples TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS snippets_by_alert ON snippets (alert_t);
CREATE TABLE IF NOT EXISTS annotations (
    id INTEGER PRIMARY KEY, created_at REAL NOT NULL, target TEXT NOT NULL,
    target_id INTEGER NOT NULL, label TEXT NOT NULL, note TEXT NOT NULL DEFAULT '',
    video TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS annotations_by_target ON annotations (target, target_id);
CREATE TABLE IF NOT EXISTS markers (
    id INTEGER PRIMARY KEY, date TEXT NOT NULL, text TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS clips (
    id INTEGER PRIMARY KEY, alert_t REAL NOT NULL, start REAL NOT NULL, end REAL NOT NULL,
    path TEXT NOT NULL, source TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS alarm_transitions (
    id INTEGER PRIMARY KEY, t REAL NOT NULL, from_state TEXT NOT NULL,
    to_state TEXT NOT NULL, reason TEXT NOT NULL, source TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alarm_deliveries (
    id INTEGER PRIMARY KEY, t REAL NOT NULL, channel TEXT NOT NULL, level TEXT NOT NULL,
    kind TEXT NOT NULL, repeat INTEGER NOT NULL, ok INTEGER, detail TEXT NOT NULL
);
"""

# Stretches without sensor data (the daemon writes one when packets were lost, the link
# dropped, or the sensor's buffer overflowed): ``reason`` is a short word such as
# ``link_lost`` or ``packets_lost``; ``end_t`` is NULL while the gap is still open.
_V3_GAPS = """
CREATE TABLE gaps (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, start_t REAL NOT NULL, end_t REAL,
    reason TEXT NOT NULL
);
CREATE INDEX gaps_by_time ON gaps (start_t);
"""

# Round 4: the detail record sent before each event (wire KIND_DETAIL): direction of the
# tonic tilt (dx, dy, dz), rise and hold in s, failed spasm tests (comma-separated names).
# Stored like every stream record, so the sequence numbers in the store stay complete.
_V4_DETAILS = """
CREATE TABLE details (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, seq INTEGER NOT NULL, t REAL NOT NULL,
    t_ms INTEGER NOT NULL, dx INTEGER NOT NULL, dy INTEGER NOT NULL, dz INTEGER NOT NULL,
    rise_s REAL NOT NULL, hold_s REAL NOT NULL, fails TEXT NOT NULL, received_at REAL,
    UNIQUE (device, seq, t)
);
"""

# (number, what it does, SQL). Append only: a released step is never edited.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "records, clusters, alerts and counters", _V1_STORE),
    (2, "snippets, annotations, markers, clips, alarm transitions and deliveries",
     _V2_RECORDS),
    (3, "sensor data gaps", _V3_GAPS),
    (4, "event details (round 4)", _V4_DETAILS),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


class SchemaError(RuntimeError):
    """The database was written by a newer spasmwatch (its schema is ahead of ours)."""


def version_of(conn: sqlite3.Connection) -> int:
    """The database's schema version; 0 for a database without the version table."""
    has = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if has is None:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0]) if row[0] is not None else 0


def ensure(conn: sqlite3.Connection, name: str = "database") -> int:
    """Migrate ``conn``'s database to ``SCHEMA_VERSION``; returns the version it had.

    Raises ``SchemaError`` for a database newer than this program (left untouched).
    Pending writes on ``conn`` are committed first.
    """
    have = version_of(conn)
    if have > SCHEMA_VERSION:
        raise SchemaError(
            f"{name}: database schema version {have} is newer than this program's "
            f"({SCHEMA_VERSION}); update spasmwatch to read it"
        )
    if have == SCHEMA_VERSION:
        return have
    conn.commit()
    # Python's sqlite3 would not open a transaction around DDL on its own: do it by
    # hand so a half-applied step never stays behind (SQLite's DDL is transactional).
    conn.execute("BEGIN IMMEDIATE")
    try:
        have = version_of(conn)  # another process may have migrated meanwhile
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        for number, _what, sql in MIGRATIONS:
            if number <= have:
                continue
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?)", (number,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return have


def _statements(script: str) -> list[str]:
    """A script split into statements (none of ours has a ``;`` inside a literal)."""
    return [s.strip() for s in script.split(";") if s.strip()]
