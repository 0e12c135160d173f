"""Alarm state machine: latching, escalation, mute rules, faults, placement, transitions.

Driven by the real Engine (real packets through the wire format) where the input is
engine output, and by a real SQLite store for the transition log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spasmwatch.firmware import wire
from spasmwatch.host.alerts.alarm_state import (
    ALARM,
    FAULT,
    MUTED,
    OK,
    WARNING,
    AlarmStateMachine,
    Notice,
    TransitionLog,
)
from spasmwatch.host.daemon import MonitorEngine
from spasmwatch.host.monitor.outputs import Snippet
from spasmwatch.host.monitor.store import Store
from spasmwatch.host.settings import AlarmSettings, MonitorSettings

T0 = 1_700_000_000.0  # live-like epoch times


def spasm(t: float) -> tuple:
    # Spasm-shaped (one peak, quiet tonic phase): the pair warning needs it since round 3.
    return (wire.KIND_EVENT, round(t * 1000), wire.CLS_SPASM_LIKE, wire.STATE_SETTLING, 1,
            1000, 400, 100, 40, 150, 7)


def status(t: float, flags: int = wire.ST_SENSOR_OK, rate: int = 50) -> tuple:
    return (wire.KIND_STATUS, round(t * 1000), 3900, flags, 10, 80, rate, 4)


def summary(t: float, active: int, mean: int) -> tuple:
    return (wire.KIND_SUMMARY, round(t * 1000), 60, active, 0, 0, mean * 2, mean,
            wire.STATE_ASLEEP)


class Rig:
    """Engine -> state machine, with a real SQLite transition log, on a fake-free clock:
    every time is explicit (device seconds since T0 map to host time T0 + s)."""

    def __init__(self, tmp: Path, shared: bool = False, **alarm: Any) -> None:
        self.store = Store(tmp / "m.db")
        self.log = TransitionLog(self.store.connection)
        # The heartbeat is the engine's (one owner): MonitorEngine raises it, the state
        # machine shows it.
        self.engine = MonitorEngine(store=self.store, t0=T0, heartbeat_s=30.0)
        self.engine.anchored = True
        mon = MonitorSettings(placement_check_min=5)
        # shared: one fault owner for both, as the composition root wires a monitor.
        self.sm = AlarmStateMachine(mon, AlarmSettings(**alarm), self.log, now=T0,
                                    faults=self.engine.faults if shared else None)
        self.seq = 0
        self.notices: list[Notice] = []

    def feed(self, rec: tuple, at: float) -> list[Notice]:
        outs = self.engine.feed_packet(wire.encode(self.seq, rec), received_at=T0 + at)
        self.seq += 1
        got: list[Notice] = []
        for o in outs:
            got += self.sm.on_output(o, T0 + at)
        self.notices += got
        return got

    def tick(self, at: float) -> list[Notice]:
        got: list[Notice] = []
        for o in self.engine.tick(T0 + at):
            got += self.sm.on_output(o, T0 + at)
        got += self.sm.tick(T0 + at)
        self.notices += got
        return got

    def alarm_at(self, base: float) -> list[Notice]:
        got: list[Notice] = []
        for i in range(3):
            got += self.feed(spasm(base + 8 * i), base + 8 * i + 1)
        return got


def test_alarm_latches_until_acknowledged_and_says_why(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    got = rig.alarm_at(100)
    assert [n.level for n in got] == [WARNING, ALARM]
    alarm = got[-1]
    assert alarm.audible and alarm.group == 0 and alarm.repeat == 0
    # Why: the three events with times and features, from the engine's details.
    assert [e["seq"] for e in alarm.why["events"]] == [0, 1, 2]
    body = alarm.body()
    assert "spasm-like" in body and "peak 400 mg" in body and "intervals: 8, 8 s" in body
    assert "diagnos" not in body.replace("not a diagnosis", "")
    assert rig.sm.state == ALARM
    # Time passes, data keeps flowing: still latched.
    rig.feed(status(200), 201)
    assert rig.sm.state == ALARM
    assert rig.sm.ack(T0 + 210, "test")
    assert rig.sm.state == OK
    assert not rig.sm.ack(T0 + 211, "test")  # nothing left to acknowledge
    rows = rig.log.rows()
    assert [(r["from"], r["to"]) for r in rows] == [(OK, WARNING), (WARNING, ALARM), (ALARM, OK)]
    assert rows[-1]["source"] == "test" and rows[1]["details"]["kind"] == "spasm_cluster"
    rig.store.close()
    # Stored: a fresh connection reads the same transitions.
    with Store(tmp_path / "m.db") as again:
        assert len(TransitionLog(again.connection).rows()) == 3


def test_unacknowledged_alarm_repeats_and_widens_to_next_group(tmp_path: Path) -> None:
    rig = Rig(tmp_path, escalate_after_s=120, repeat_every_s=60)
    rig.alarm_at(100)
    t_alarm = rig.sm.alarm.since - T0  # type: ignore[union-attr]
    assert rig.tick(t_alarm + 30) == []
    [r1] = [n for n in rig.tick(t_alarm + 60) if n.level == ALARM]
    assert (r1.repeat, r1.group, r1.audible) == (1, 0, True)
    [r2] = [n for n in rig.tick(t_alarm + 120) if n.level == ALARM]
    assert (r2.repeat, r2.group) == (2, 1)
    rig.sm.ack(T0 + t_alarm + 130)
    assert [n for n in rig.tick(t_alarm + 500) if n.level == ALARM] == []


def test_mute_silences_but_never_hides_a_new_alarm_or_fault(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.feed(status(10), 11)
    until = rig.sm.mute(30, T0 + 20, "test")
    assert until == T0 + 20 + 1800 and rig.sm.state == MUTED
    # A warning during the mute is shown (state) but not audible.
    warn = rig.feed(spasm(100), 101) + rig.feed(spasm(108), 109)
    assert [n.level for n in warn] == [WARNING] and not warn[0].audible
    assert rig.sm.state == WARNING and rig.sm.muted
    # The third spasm-like movement: a new alarm ends the mute and sounds.
    [alarm] = rig.feed(spasm(116), 117)
    assert alarm.level == ALARM and alarm.audible
    assert not rig.sm.muted and rig.sm.state == ALARM
    # Muting again acknowledges; then a new fault ends that mute too.
    rig.sm.mute(10, T0 + 130)
    assert rig.sm.state == MUTED
    [fault] = rig.feed(status(140, flags=0), 141)  # sensor_ok missing
    assert (fault.level, fault.kind, fault.audible) == (FAULT, "sensor_fault", True)
    assert rig.sm.state == FAULT and not rig.sm.muted
    with pytest.raises(ValueError, match="between 0 and 120"):
        rig.sm.mute(500, T0 + 150)
    reasons = [r["reason"] for r in rig.log.rows()]
    assert "mute ended by a new alarm" in reasons
    assert any(r.startswith("mute ended by a new fault") for r in reasons)


def test_mute_expires(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.feed(status(10), 11)
    rig.sm.mute(1, T0 + 12)
    rig.feed(status(40), 41)
    assert rig.sm.state == MUTED
    rig.feed(status(70), 71)
    rig.tick(73)
    assert rig.sm.state == OK


def test_heartbeat_timeout_fault_and_recovery(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.feed(status(10), 10)
    assert rig.tick(39) == [] and rig.sm.state == OK
    [f] = rig.tick(41)
    assert (f.level, f.kind) == (FAULT, "heartbeat_timeout") and "NOT being monitored" in f.message
    assert rig.sm.snapshot()["sensor_link"] is False
    got = rig.feed(status(50), 50)
    assert [(n.level, n.kind) for n in got] == [("info", "fault_cleared")]
    assert rig.sm.state == OK and rig.sm.snapshot()["sensor_link"] is True


def test_engine_faults_clear_with_engine_fault_cleared(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.feed(status(10, flags=wire.ST_SENSOR_OK | wire.ST_BATTERY_LOW), 10)
    assert rig.sm.state == FAULT and "battery_low" in rig.sm.faults
    got = rig.feed(status(20), 20)
    assert rig.sm.state == OK
    assert [n.kind for n in got] == ["fault_cleared"]


@pytest.mark.parametrize("shared", [True, False])
def test_one_fault_owner_for_engine_and_host_faults(tmp_path: Path, shared: bool) -> None:
    """Engine faults (heartbeat, battery) and host faults (sample rate) live in one
    tracker when shared; the machine shows each edge once, the same either way."""
    rig = Rig(tmp_path, shared=shared)
    rig.feed(status(10, flags=wire.ST_SENSOR_OK | wire.ST_BATTERY_LOW, rate=25), 10)
    assert set(rig.sm.faults) == {"battery_low", "wrong_rate"}
    if shared:
        assert set(rig.engine.faults.active) == {"battery_low", "wrong_rate"}
        assert rig.engine.faults.active["wrong_rate"].source == "host"
    [hb] = rig.tick(41)
    assert (hb.level, hb.kind) == (FAULT, "heartbeat_timeout")
    assert rig.sm.snapshot()["sensor_link"] is False
    got = rig.feed(status(50), 50)
    cleared = sorted(n.why["fault"] for n in got if n.kind == "fault_cleared")
    assert cleared == ["battery_low", "heartbeat_timeout", "wrong_rate"]
    # The engine's own wording of how long it lasted, once (not once per owner).
    [hb_ok] = [n for n in got if n.why["fault"] == "heartbeat_timeout"]
    assert hb_ok.message.count("lasted") == 1 and "fault 'heartbeat_timeout'" in hb_ok.message
    [rate_ok] = [n for n in got if n.why["fault"] == "wrong_rate"]
    assert rate_ok.message.count("lasted") == 1 and "problem 'wrong_rate'" in rate_ok.message
    assert rig.sm.state == OK and rig.sm.faults == {}
    assert rig.engine.faults.active == {}
    reasons = [r["reason"] for r in rig.log.rows()]
    # The status comes before the engine's alerts it caused: the rate is seen first.
    assert reasons == ["fault wrong_rate", "fault heartbeat_timeout cleared"]


def test_wrong_rate_and_clock_ahead_are_faults(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.feed(status(10, rate=25), 10)
    assert "wrong_rate" in rig.sm.faults
    rig.feed(status(20), 20)
    assert "wrong_rate" not in rig.sm.faults
    rig.feed(status(400), 30)  # device says 400 s, host received it at 30 s
    assert "clock_anomaly" in rig.sm.faults
    assert "ahead" in rig.sm.faults["clock_anomaly"].message


def test_placement_check_is_worded_as_placement_not_breathing(tmp_path: Path) -> None:
    rig = Rig(tmp_path)  # placement_check_min = 5
    got: list[Notice] = []
    for i in range(1, 6):  # five still minutes: mean motion 1 mg, no active seconds
        got += rig.feed(summary(60 * i, 0, 1), 60 * i)
    [f] = [n for n in got if n.kind == "placement_check"]
    assert f.level == FAULT
    assert "check that the sensor is on the baby" in f.message
    assert "not a breathing monitor" in f.message
    # Breathing-band motion (mean above the threshold) is movement: the check clears.
    got = rig.feed(summary(360, 0, 6), 360)
    assert [n.kind for n in got] == ["fault_cleared"] and rig.sm.state == OK


def test_placement_check_not_raised_when_breathing_band_motion_present(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    for i in range(1, 20):
        rig.feed(summary(60 * i, 0, 6), 60 * i)
    assert "placement_check" not in rig.sm.faults


def test_ack_stops_fault_reminders_but_fault_state_stays(tmp_path: Path) -> None:
    rig = Rig(tmp_path, fault_repeat_s=100)
    rig.feed(status(10, flags=0), 10)
    [rem] = [n for n in rig.tick(5) + rig.tick(110) if n.kind == "sensor_fault"]
    assert rem.repeat == 1
    rig.sm.ack(T0 + 111)
    assert rig.sm.state == FAULT  # acknowledging does not make a broken sensor ok
    rig.feed(status(250, flags=0), 250)
    assert [n for n in rig.tick(260) if n.kind == "sensor_fault"] == []


def test_raw_snippet_is_attached_to_the_latched_alarm(tmp_path: Path) -> None:
    rig = Rig(tmp_path, repeat_every_s=60)
    rig.alarm_at(100)
    snip = Snippet(t=T0 + 128, t_end=T0 + 128.02, alert_id=None, alert_t=T0 + 125,
                   device="sim", rate_hz=50, range_g=4, expected=2, received=2, parts=1,
                   complete=True, samples=[[0, 0, 1000], [5, -3, 990]])
    rig.sm.on_output(snip, T0 + 130)
    [rep] = [n for n in rig.tick(200) if n.level == ALARM]
    assert rep.why["snippet"]["samples"][1] == [5, -3, 990]
    assert "raw sensor snippet" in rep.body()
    assert rig.sm.snapshot()["alarm"]["why"]["snippet"]["rate_hz"] == 50
