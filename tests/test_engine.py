"""Engine: clustering, spasm-chain and jerk-burst alerts, faults, persistence order."""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

from bus import js

from spasmwatch.firmware import wire
from spasmwatch.host.monitor.alerts import Alert, AlertConfig
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.store import Store

SPASM = wire.CLS_SPASM_LIKE
JERK = wire.CLS_JERK
MOVE = wire.CLS_MOVEMENT


def event(t_s: float, cls: int = SPASM, dur_ms: int = 1000) -> tuple:
    # A spasm-shaped event (one peak, a quiet tonic phase): since round 3 the spasm-pair
    # warning needs that (host/monitor/cluster_evidence.py).
    return (wire.KIND_EVENT, round(t_s * 1000), cls, wire.STATE_SETTLING, 1, dur_ms, 400,
            100, 40, 150, 7)


def status(t_s: float, flags: int = wire.ST_SENSOR_OK) -> tuple:
    return (wire.KIND_STATUS, round(t_s * 1000), 3900, flags, 10, 80, 50, 4)


class Feeder:
    """Numbers packets like the device does and keeps every output."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seq = 0
        self.outputs: list[dict[str, Any]] = []

    def __call__(self, rec: tuple) -> list[dict[str, Any]]:
        out = js(self.engine.feed_packet(wire.encode(self.seq, rec)))
        self.seq += 1
        self.outputs += out
        return out


def alerts(outs: list[dict[str, Any]], kind: str | None = None) -> list[dict[str, Any]]:
    return [o for o in outs if o["type"] == "alert" and (kind is None or o["kind"] == kind)]


def test_three_spasms_8s_apart_alarm_at_the_third_exactly_once() -> None:
    feed = Feeder(Engine())
    first = feed(event(100))
    second = feed(event(108))
    third = feed(event(116))
    assert alerts(first) == []
    [warn] = alerts(second)
    assert (warn["level"], warn["kind"]) == ("warning", "spasm_pair")
    ev2 = [o for o in second if o["type"] == "event"][0]
    assert warn["t"] == ev2["end"] == ev2["t"] + ev2["duration_s"]
    [alarm] = alerts(third)
    ev3 = [o for o in third if o["type"] == "event"][0]
    assert (alarm["level"], alarm["kind"]) == ("alarm", "spasm_cluster")
    assert alarm["t"] == ev3["end"]  # as soon as the host knew, not at cluster end
    assert alarm["event_seqs"] == [0, 1, 2]
    assert "3 spasm-like movements" in alarm["message"] and "00:01:40" in alarm["message"]
    assert alarm["details"]["intervals_s"] == [8.0, 8.0]
    # The chain goes on: no second alarm or warning for it.
    for t in (124, 132, 150):
        feed(event(t))
    feed.outputs += js(feed.engine.finish())
    levels = [a["level"] for a in alerts(feed.outputs)]
    assert levels.count("alarm") == 1 and levels.count("warning") == 1
    assert feed.engine.stats["alerts_by_level"]["alarm"] == 1


def test_spasms_90s_apart_raise_nothing() -> None:
    feed = Feeder(Engine())
    for i in range(5):
        feed(event(100 + 90 * i))
    feed.outputs += js(feed.engine.finish())
    assert [a["level"] for a in alerts(feed.outputs)] == ["info"] * 5  # 5 one-event clusters
    assert {a["kind"] for a in alerts(feed.outputs)} == {"cluster_closed"}


def test_a_new_chain_after_a_long_pause_alarms_again() -> None:
    feed = Feeder(Engine())
    for t in (0, 10, 20, 200, 210, 220):
        feed(event(t))
    assert [a["t"] for a in alerts(feed.outputs) if a["level"] == "alarm"] == [
        20 + 0.992, 220 + 0.992]


def test_alarm_threshold_is_configurable() -> None:
    feed = Feeder(Engine(AlertConfig(alarm_min_spasms=4, spasm_gap_s=20)))
    assert [a["kind"] for a in alerts(feed(event(0)))] == []
    assert [a["kind"] for a in alerts(feed(event(10)))] == ["spasm_pair"]
    assert alerts(feed(event(20))) == []
    assert [a["level"] for a in alerts(feed(event(30)))] == ["alarm"]
    # A 25 s gap breaks a chain when spasm_gap_s is 20.
    feed2 = Feeder(Engine(AlertConfig(alarm_min_spasms=4, spasm_gap_s=20)))
    for t in (0, 10, 20, 46):
        feed2(event(t))
    assert [a for a in alerts(feed2.outputs) if a["level"] == "alarm"] == []


def test_ten_jerks_in_20s_raise_one_burst_warning_at_the_eighth() -> None:
    feed = Feeder(Engine(AlertConfig(burst_level="warning")))
    per_jerk = [alerts(feed(event(50 + 2.2 * i, JERK, 120))) for i in range(10)]
    assert [len(a) for a in per_jerk] == [0] * 7 + [1, 0, 0]
    burst = per_jerk[7][0]
    assert (burst["level"], burst["kind"]) == ("warning", "jerk_burst")
    assert "8 brief jerks" in burst["message"]
    assert burst["event_seqs"] == list(range(8))


def test_isolated_jerks_raise_no_warning() -> None:
    feed = Feeder(Engine())
    for i in range(60):  # one every 5 s for 5 minutes: only 6 per 30 s window
        feed(event(10 + 5 * i, JERK, 120))
    assert [a for a in alerts(feed.outputs) if a["level"] != "info"] == []


def test_cluster_closes_on_finish_with_counts_and_intervals() -> None:
    feed = Feeder(Engine())
    feed(event(10, JERK, 120))
    feed(event(15, SPASM))
    feed(event(25, MOVE, 3000))
    feed(event(40, SPASM))
    assert [o for o in feed.outputs if o["type"] == "cluster"] == []
    out = js(feed.engine.finish())
    [cl] = [o for o in out if o["type"] == "cluster"]
    assert (cl["n_events"], cl["n_spasm_like"], cl["n_jerk"], cl["n_movement"]) == (4, 2, 1, 1)
    assert cl["intervals_s"] == [5.0, 10.0, 15.0]
    assert cl["spasm_intervals_s"] == [25.0]
    assert cl["start"] == 10.0 and cl["end"] == 40.992
    [info] = alerts(out, "cluster_closed")
    assert info["level"] == "info" and info["cluster_id"] == cl["id"]
    assert "4 events" in info["message"]
    assert js(feed.engine.finish()) == []  # nothing left open


def test_cluster_closes_on_a_later_event_beyond_the_gap() -> None:
    feed = Feeder(Engine())
    for t in (0, 10, 20):
        feed(event(t, JERK, 120))
    out = feed(event(200, JERK, 120))
    types = [o["type"] for o in out]
    assert types == ["cluster", "alert", "event"]  # closure first: it happened earlier
    cl = out[0]
    assert (cl["n_events"], cl["n_jerk"], cl["intervals_s"]) == (3, 3, [10.0, 10.0])
    assert out[1]["kind"] == "cluster_closed" and out[1]["t"] == cl["end"] + 60
    assert out[2]["cluster_id"] == cl["id"] + 1
    # Exactly at the gap still joins (gap <= cluster_gap_s).
    near = Feeder(Engine())
    near(event(0, JERK, 120))
    assert [o["type"] for o in near(event(60.12, JERK, 120))] == ["event"]


def test_tick_and_status_packets_close_clusters_once_the_gap_has_passed() -> None:
    eng = Engine()
    feed = Feeder(eng)
    feed(event(0, JERK, 120))
    assert js(eng.tick(30.0)) == []
    [cl] = [o for o in js(eng.tick(61.0)) if o["type"] == "cluster"]
    assert cl["n_events"] == 1
    feed(event(100, JERK, 120))
    out = feed(status(170))
    assert [o["type"] for o in out][:2] == ["cluster", "alert"]
    assert eng.stats["clusters"] == 2


def test_sensor_fault_alerts_once_then_clears() -> None:
    feed = Feeder(Engine())
    feed(status(10))
    out = feed(status(20, flags=wire.ST_I2C_ERROR))
    faults = alerts(out)
    assert {(a["level"], a["kind"]) for a in faults} == {
        ("fault", "sensor_fault"), ("fault", "i2c_error")}
    sensor = [a for a in faults if a["kind"] == "sensor_fault"][0]
    assert "NOT being monitored" in sensor["message"] and sensor["t"] == 20.0
    assert alerts(feed(status(30, flags=wire.ST_I2C_ERROR))) == []  # still faulty: quiet
    cleared = alerts(feed(status(40)))
    assert sorted(a["details"]["fault"] for a in cleared) == ["i2c_error", "sensor_fault"]
    assert {(a["level"], a["kind"]) for a in cleared} == {("info", "fault_cleared")}
    assert alerts(feed(status(50))) == []


def test_lost_packets_fault_clears_when_backfilled() -> None:
    eng = Engine()
    js(eng.feed_packet(wire.encode(0, status(10))))
    out = js(eng.feed_packet(wire.encode(3, status(40))))
    [lost] = alerts(out, "packets_lost")
    assert lost["level"] == "fault" and lost["details"]["missing_ranges"] == [[1, 2]]
    assert alerts(js(eng.feed_packet(wire.encode(1, status(20))))) == []
    [clr] = alerts(js(eng.feed_packet(wire.encode(2, status(30)))))
    assert clr["kind"] == "fault_cleared" and clr["details"]["fault"] == "packets_lost"
    assert eng.stats["lost"] == 2 and eng.stats["recovered"] == 2 and eng.stats["missing"] == 0
    json.dumps(lost)


def test_a_run_of_decode_errors_is_a_fault_until_a_good_packet() -> None:
    eng = Engine(AlertConfig(decode_error_run=3))
    good = wire.encode(0, status(10))
    js(eng.feed_packet(good))
    bad = bytes(16)
    assert js(eng.feed_packet(bad)) == [] and js(eng.feed_packet(bad)) == []
    [fault] = js(eng.feed_packet(bad))
    assert (fault["level"], fault["kind"]) == ("fault", "decode_errors")
    assert js(eng.feed_packet(bad)) == []
    [clr] = alerts(js(eng.feed_packet(wire.encode(1, status(20)))))
    assert clr["kind"] == "fault_cleared"
    assert eng.stats["decode_errors"] == 4
    assert eng.stats["decode_errors_by_reason"] == {"crc": 4}


class _CheckingStore(Store):
    """Fails the test if an alert is stored before the events it is about."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path_for_reader = path
        self.checked = 0

    def add_alert(self, alert: Alert, device: str = "sim") -> int:
        reader = sqlite3.connect(self.path_for_reader)  # sees committed rows only
        stored = {s for (s,) in reader.execute("SELECT seq FROM events WHERE device = ?",
                                               (device,))}
        reader.close()
        assert set(alert.event_seqs) <= stored, (alert.kind, alert.event_seqs, stored)
        self.checked += len(alert.event_seqs)
        return super().add_alert(alert, device)


def test_event_rows_are_committed_before_their_alerts(tmp_path) -> None:
    store = _CheckingStore(str(tmp_path / "order.db"))
    feed = Feeder(Engine(store=store))
    for t in (0, 8, 16):
        feed(event(t))
    for i in range(8):
        feed(event(100 + i, JERK, 120))
    feed.outputs += js(feed.engine.finish())
    assert store.checked == 2 + 3 + 8  # warning, alarm, burst each checked their events
    stored = store.alerts()
    assert [a["id"] for a in alerts(feed.outputs)] == list(range(1, len(stored) + 1))
    assert [e.seq for e in store.events()] == list(range(11))
    assert [c.n_events for c in store.clusters()] == [3, 8]
    store.close()


def test_resent_packets_are_not_stored_or_alerted_twice() -> None:
    store = Store()
    eng = Engine(store=store)
    packets = [wire.encode(i, event(8 * i)) for i in range(3)]
    outs = [o for p in packets + packets for o in js(eng.feed_packet(p))]
    assert store.count("events") == 3 and eng.stats["duplicates"] == 3
    assert len(alerts(outs)) == 2


def test_messages_describe_and_never_diagnose() -> None:
    feed = Feeder(Engine())
    for t in (0, 8, 16, 24):
        feed(event(t))
    for i in range(8):
        feed(event(100 + i, JERK, 120))
    feed(status(200, flags=0))
    feed.outputs += js(feed.engine.finish())
    msgs = [a["message"] for a in alerts(feed.outputs)]
    assert len(msgs) >= 6
    for m in msgs:
        assert not re.search(r"epilep|seizure|infantile spasms|West syndrome|\bdiagnosed\b",
                             m, re.I), m
    assert json.loads(json.dumps(feed.outputs)) == feed.outputs  # JSON-ready as promised
    alarm = [a for a in alerts(feed.outputs) if a["level"] == "alarm"][0]["message"]
    assert "spasm-like" in alarm and "not a diagnosis" in alarm


def test_feed_record_matches_the_packet_path_and_stats_add_up() -> None:
    a, b = Engine(), Engine()
    recs = [event(0), event(8, JERK, 120), status(9), event(16), event(24)]
    out_a = [o for i, r in enumerate(recs) for o in a.feed_record(r, i)]
    out_b = [o for i, r in enumerate(recs) for o in b.feed_packet(wire.encode(i, r))]
    assert out_a == out_b
    s = a.stats
    assert s["packets"] == 5 and s["events"] == 4 and s["statuses"] == 1
    assert s["events_by_class"] == {"spasm_like": 3, "jerk": 1}
    assert s["alerts_by_level"] == {"warning": 1, "alarm": 1}
