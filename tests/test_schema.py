"""One schema owner: numbered migrations, ``schema_version`` honoured, old databases open.

``tests/data/monitor_b00779b.sql`` is a database written by the code of commit b00779b
(before ``host/monitor/schema.py``; see ``tests/data/make_monitor_b00779b.py``): schema
version 1 with the tables that other modules created on first use.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from spasmwatch.host.alerts.alarm_state import TransitionLog
from spasmwatch.host.alerts.delivery import DeliveryLog
from spasmwatch.host.monitor import schema
from spasmwatch.host.monitor.store import SCHEMA_VERSION, Store
from spasmwatch.host.records.annotations import all_annotations, markers
from spasmwatch.host.records.nights import find_nights
from spasmwatch.host.records.snippets import snippets_in
from spasmwatch.host.records.video import clips_in

OLD_DUMP = Path(__file__).parent / "data" / "monitor_b00779b.sql"
HOST = Path(__file__).resolve().parents[1] / "host"
LAZY_TABLES = ("snippets", "annotations", "markers", "clips", "alarm_transitions",
               "alarm_deliveries")


def old_db(path: Path, drop: tuple[str, ...] = ()) -> Path:
    con = sqlite3.connect(path)
    con.executescript(OLD_DUMP.read_text(encoding="utf-8"))
    for table in drop:
        con.execute(f"DROP TABLE {table}")
    con.commit()
    con.close()
    return path


def tables(path: Path) -> dict[str, str]:
    con = sqlite3.connect(path)
    try:
        return dict(con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    finally:
        con.close()


def test_a_database_from_b00779b_migrates_and_keeps_everything(tmp_path: Path) -> None:
    path = old_db(tmp_path / "old.db")
    before = tables(path)
    with Store(path) as s:
        assert s.schema_version == SCHEMA_VERSION == 4
        versions = [v for (v,) in s.connection.execute("SELECT version FROM schema_version")]
        assert versions == [1, 2, 3, 4]  # each step recorded once, in order
        assert len(s.events()) == 3 and len(s.summaries()) == 12 and len(s.statuses()) == 1
        assert [c.n_spasm_like for c in s.clusters()] == [3]
        assert [a.kind for a in s.alerts()] == ["spasm_cluster"]
        assert s.counters() == {"decode_error:crc": 1, "lost": 2}
        assert [a.note for a in all_annotations(s)] == ["arms up <b>twice</b>"]
        assert [m.text for m in markers(s)] == ["started treatment X"]
        [snip] = snippets_in(s, 0, 2e9)
        assert snip.complete and len(snip.samples) == 3
        assert [c.path for c in clips_in(s, 0, 2e9)] == ["clips/alarm.mp4"]
        assert [r["to"] for r in TransitionLog(s.connection).rows()] == ["alarm", "acknowledged"]
        assert DeliveryLog(s.connection).conn is not None
        assert s.connection.execute("SELECT COUNT(*) FROM alarm_deliveries").fetchone()[0] == 2
        # the new table is there and usable
        s.connection.execute("INSERT INTO gaps (device, start_t, end_t, reason)"
                             " VALUES ('dev', 1, 2, 'link_lost')")
        [night] = find_nights(s)
        assert night.alerts and night.snippets and night.clips
    after = tables(path)
    # old tables are untouched (same definitions); only the gaps and details tables are new
    assert {k: v for k, v in after.items() if k in before} == before
    assert set(after) - set(before) == {"gaps", "details"}
    with Store(path) as s:  # opening again applies nothing more
        assert [v for (v,) in s.connection.execute("SELECT version FROM schema_version")] == [
            1, 2, 3, 4]


def test_an_old_database_without_the_lazily_made_tables_gains_them(tmp_path: Path) -> None:
    path = old_db(tmp_path / "bare.db", drop=LAZY_TABLES)
    with Store(path) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert snippets_in(s, 0, 2e9) == [] and all_annotations(s) == []
    assert set(LAZY_TABLES) | {"gaps"} <= set(tables(path))


def test_a_new_database_has_every_step(tmp_path: Path) -> None:
    with Store(tmp_path / "new.db") as s:
        got = [v for (v,) in s.connection.execute("SELECT version FROM schema_version")]
    assert got == [n for n, _, _ in schema.MIGRATIONS]
    assert got == list(range(1, SCHEMA_VERSION + 1))  # numbered without holes
    names = set(tables(tmp_path / "new.db"))
    assert {"events", "summaries", "statuses", "clusters", "alerts", "counters",
            *LAZY_TABLES, "gaps", "details", "schema_version"} == names
    cols = [r[1] for r in sqlite3.connect(tmp_path / "new.db").execute("PRAGMA table_info(gaps)")]
    assert cols == ["id", "device", "start_t", "end_t", "reason"]


def test_a_newer_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    Store(path).close()
    con = sqlite3.connect(path)
    con.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
    con.commit()
    con.close()
    before = tables(path)
    with pytest.raises(schema.SchemaError, match="newer than this program"):
        Store(path)
    assert tables(path) == before


def test_a_failing_step_leaves_the_database_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = old_db(tmp_path / "old.db")
    before = tables(path)
    broken = (*schema.MIGRATIONS[:2], (3, "gaps", "CREATE TABLE gaps (x); SELECT nonsense("))
    monkeypatch.setattr(schema, "MIGRATIONS", broken)
    with pytest.raises(sqlite3.OperationalError):
        Store(path)
    assert tables(path) == before  # migration 2 was rolled back with the failing 3
    con = sqlite3.connect(path)
    assert con.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == 1


def test_no_module_but_the_schema_owner_defines_tables() -> None:
    offenders = []
    for py in HOST.rglob("*.py"):
        if py.name == "schema.py" and py.parent.name == "monitor":
            continue
        text = py.read_text(encoding="utf-8")
        if re.search(r"\b(CREATE|ALTER|DROP)\s+(TABLE|INDEX)\b", text, re.I):
            offenders.append(str(py.relative_to(HOST)))
    assert offenders == []
