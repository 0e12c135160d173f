"""Store: real SQLite; idempotent adds, round trips, a file database survives reopening."""

from __future__ import annotations

import sqlite3

import pytest

from spasmwatch.host.monitor.alerts import Alert
from spasmwatch.host.monitor.clustering import Cluster
from spasmwatch.host.monitor.records import Event, Status, Summary
from spasmwatch.host.monitor.store import SCHEMA_VERSION, Store


def ev(seq: int, t: float, cls: str = "spasm_like") -> Event:
    return Event(seq=seq, t=t, cls=cls, state="asleep", peaks=2, duration_s=0.96,
                 peak_mg=416, energy_mgs=120, tilt_mg=40, excursion_mg=144, still_s=7,
                 t_ms=int(t * 1000), received_at=t + 1.5)


def test_event_add_is_idempotent_and_returns_the_same_row() -> None:
    with Store() as s:
        first = s.add_event("dev", ev(3, 10.0))
        again = s.add_event("dev", ev(3, 10.0))
        other_device = s.add_event("other", ev(3, 10.0))
        same_seq_new_time = s.add_event("dev", ev(3, 99.0))  # after a device restart
        assert first == again
        assert len({first, other_device, same_seq_new_time}) == 3
        assert s.count("events") == 3


def test_records_round_trip() -> None:
    with Store() as s:
        events = [ev(1, 5.0, "jerk"), ev(2, 12.5), ev(3, 30.0, "movement")]
        for e in events:
            s.add_event("dev", e)
        assert s.events() == events
        assert s.events(since=10.0, until=30.0) == [events[1]]
        summ = Summary(seq=4, t=60.0, period_s=60, active_s=9, events=3, spasm_like=1,
                       peak_mg=800, mean_mg=20, state="settling", t_ms=60000)
        stat = Status(seq=5, t=61.0, battery_mv=3900, flags=("sensor_ok", "charging"),
                      flags_raw=9, buffer_pct=3, heap_kb=80, rate_hz=50, range_g=4,
                      t_ms=61000)
        s.add_summary("dev", summ)
        s.add_status("dev", stat)
        s.add_summary("dev", summ)
        assert s.summaries() == [summ] and s.statuses() == [stat]
        cl = Cluster(id=s.next_cluster_id(), start=5.0, end=31.0, n_events=3, n_spasm_like=1,
                     n_jerk=1, n_movement=1, intervals_s=[7.5, 17.5], first_seq=1, last_seq=3)
        s.upsert_cluster(cl, "dev")
        cl.closed = True
        cl.n_events = 4
        s.upsert_cluster(cl, "dev")
        assert s.clusters() == [cl] and s.next_cluster_id() == cl.id + 1
        a = Alert(31.0, "alarm", "spasm_cluster", "3 spasm-like movements", cl.id, (1, 2, 3),
                  {"n": 3, "onsets": [5.0, 12.5, 30.0]})
        rid = s.add_alert(a, "dev")
        assert rid >= 1 and s.alerts() == [a] and s.alerts(level="info") == []


def test_file_database_reopens_with_its_data(tmp_path) -> None:
    path = tmp_path / "monitor.db"
    with Store(path) as s:
        s.add_event("dev", ev(1, 5.0))
        s.add_alert(Alert(6.0, "warning", "spasm_pair", "2 spasm-like movements"), "dev")
        s.add_counts("dev", {"decode_error:crc": 2, "lost": 1})
        mode = s._conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    with Store(path) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert [e.seq for e in s.events()] == [1]
        assert [a.kind for a in s.alerts()] == ["spasm_pair"]
        s.add_counts("dev", {"decode_error:crc": 3})
        assert s.counters() == {"decode_error:crc": 5, "lost": 1}
        assert s.add_event("dev", ev(1, 5.0)) == 1 and s.count("events") == 1


def test_writes_are_committed_for_other_readers(tmp_path) -> None:
    path = tmp_path / "live.db"
    with Store(path) as s:
        s.add_event("dev", ev(1, 5.0))
        reader = sqlite3.connect(path)
        assert reader.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
        with s.batch():
            s.add_event("dev", ev(2, 6.0))
            assert reader.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
        assert reader.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 2
        reader.close()


def test_newer_schema_is_refused(tmp_path) -> None:
    path = tmp_path / "future.db"
    Store(path).close()
    con = sqlite3.connect(path)
    con.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
    con.commit()
    con.close()
    with pytest.raises(RuntimeError, match="newer"):
        Store(path)
