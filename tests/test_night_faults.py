"""Faults never stop the watching: lost packets become recorded gaps, a full disk and a
failing timer tick become loud faults while alarms keep being computed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from bus import js

from spasmwatch.firmware import wire
from spasmwatch.host.daemon import Daemon, DaemonConfig, MonitorEngine
from spasmwatch.host.links.base import Link, LinkError
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.outputs import Output, StatusOutput

T0 = 1_700_000_000.0


def event(t_s: float, cls: int = wire.CLS_SPASM_LIKE) -> tuple:
    return (wire.KIND_EVENT, round(t_s * 1000), cls, wire.STATE_SETTLING, 2, 1000, 400,
            120, 40, 150, 7)


def status(t_s: float) -> tuple:
    return (wire.KIND_STATUS, round(t_s * 1000), 3900, wire.ST_SENSOR_OK, 10, 80, 50, 4)


def alerts(outs: list[Output], kind: str) -> list[dict[str, Any]]:
    return [o for o in js(outs) if o["type"] == "alert" and o["kind"] == kind]


def test_packets_lost_fault_stays_until_written_off_as_a_recorded_gap() -> None:
    from spasmwatch.host.monitor.store import Store

    store = Store(":memory:")
    eng = Engine(store=store, t0=T0)
    outs = eng.feed_packet(wire.encode(0, status(600)))
    outs += eng.feed_packet(wire.encode(4, status(3300)))  # 1..3 never arrive
    assert alerts(outs, "packets_lost")
    # A steady link alone does not clear it: the hole is still there.
    for seq in range(5, 40):
        outs += eng.feed_packet(wire.encode(seq, status(3300 + seq)))
    assert alerts(outs, "fault_cleared") == [] and eng.missing == 3
    # The device says they are gone: a gap in the record, then the fault clears.
    got = eng.write_off([(1, 3)], "the sensor's buffer had already dropped them")
    [gap] = alerts(got, "data_gap")
    assert gap["details"]["start"] == T0 + 600 and gap["details"]["end"] == T0 + 3300
    assert gap["details"]["lost"] == 3 and "No data from" in gap["message"]
    [cleared] = alerts(got, "fault_cleared")
    assert cleared["details"]["fault"] == "packets_lost" and "gaps" in cleared["message"]
    assert [o for o in js(got) if o["type"] == "gap"][0]["lost"] == 3
    assert eng.missing == 0
    # ... and the night's record has the stretch without data.
    rows = store.connection.execute("SELECT start_t, end_t, reason FROM gaps").fetchall()
    assert rows == [(T0 + 600, T0 + 3300, "packets_lost")]


FULL_DISK = textwrap.dedent('''
    import json, resource, signal, sys
    from spasmwatch.firmware import wire
    from spasmwatch.host.monitor.engine import Engine
    from spasmwatch.host.monitor.store import Store

    def event(t, cls):
        return (wire.KIND_EVENT, round(t * 1000), cls, wire.STATE_SETTLING, 2, 1000, 400,
                120, 40, 150, 7)

    store = Store(sys.argv[1])
    eng = Engine(store=store, t0=1.7e9)
    store.commit()
    # The disk fills up: writes past the limit fail with EFBIG (SIGXFSZ ignored).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    size = __import__("os").path.getsize(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 8192, size + 8192))
    outs, seq, t = [], 0, 10.0
    while not any(getattr(o, "kind", None) == "storage_failed" for o in outs) and seq < 20000:
        outs += eng.feed_packet(wire.encode(seq, event(t, wire.CLS_JERK)))
        seq, t = seq + 1, t + 120.0
    for i in range(3):  # then a cluster of spasm-like movements
        outs += eng.feed_packet(wire.encode(seq, event(t + 8 * i, wire.CLS_SPASM_LIKE)))
        seq += 1
    outs = [o.to_json() for o in outs]
    print(json.dumps([[o.get("type"), o.get("level"), o.get("kind")] for o in outs
                      if o.get("type") == "alert"]))
''')


def test_full_disk_mid_night_is_a_fault_and_the_alarm_still_comes(tmp_path: Path) -> None:
    db = tmp_path / "night.db"
    proc = subprocess.run([sys.executable, "-c", FULL_DISK, str(db)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    got = [tuple(x) for x in json.loads(proc.stdout.strip().splitlines()[-1])]
    assert ("alert", "fault", "storage_failed") in got
    assert ("alert", "alarm", "spasm_cluster") in got
    assert got.index(("alert", "fault", "storage_failed")) < got.index(
        ("alert", "alarm", "spasm_cluster"))


class NeverConnects(Link):
    name = "nowhere"

    async def open(self) -> None:
        raise LinkError("no sensor here")

    async def close(self) -> None:
        pass

    async def recv(self) -> bytes:  # pragma: no cover - never connected
        raise LinkError("no sensor here")

    async def send_control(self, payload: bytes) -> None:  # pragma: no cover
        raise LinkError("no sensor here")


def test_an_exception_in_one_timer_tick_is_a_fault_and_the_timers_go_on() -> None:
    outs: list[Output] = []
    engine = MonitorEngine(heartbeat_s=0.5)
    real_tick = engine.tick
    calls = {"n": 0}

    def flaky_tick(now: float) -> list[Output]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("injected")
        return real_tick(now)

    engine.tick = flaky_tick  # type: ignore[method-assign]
    cfg = DaemonConfig(tick_s=0.05, backoff_initial_s=0.05, backoff_max_s=0.1)
    daemon = Daemon(NeverConnects, engine, outs.append, cfg)

    async def scenario() -> None:
        task = asyncio.create_task(daemon.run())
        deadline = asyncio.get_running_loop().time() + 10
        while not alerts(outs, "heartbeat_timeout"):
            assert asyncio.get_running_loop().time() < deadline, "timers stopped"
            await asyncio.sleep(0.02)
        daemon.stop()
        await task

    asyncio.run(scenario())
    [failed] = alerts(outs, "timer_failed")
    assert failed["level"] == "fault" and "injected" in failed["message"]
    cleared = [a for a in alerts(outs, "fault_cleared")
               if a["details"]["fault"] == "timer_failed"]
    assert cleared, "the next clean tick clears the timer fault"
    # ... and the heartbeat (a later tick) was still computed.
    assert alerts(outs, "heartbeat_timeout")[0]["level"] == "fault"


def test_a_status_with_an_impossible_range_is_rejected_and_the_alarm_still_comes() -> None:
    from spasmwatch.host.alerts.delivery import AlertHub
    from spasmwatch.host.settings import Settings

    eng = Engine(t0=T0)
    hub = AlertHub(Settings(), None, channels={}, web=False)
    outs: list[Output] = []
    bad = (wire.KIND_STATUS, 1000, 3900, wire.ST_SENSOR_OK, 10, 80, 50, 3)  # ±3 g?
    for seq, rec in enumerate([status(0.5), bad, event(10), event(18), event(26)]):
        for o in eng.feed_packet(wire.encode(seq, rec), received_at=T0 + 30):
            outs.append(o)
            hub.handle(o, now=T0 + 30)
    assert eng.ingest.stats.errors["invalid_field"] == 1
    assert not [o for o in outs if isinstance(o, StatusOutput) and o.status.range_g == 3]
    assert alerts(outs, "spasm_cluster")[0]["level"] == "alarm"
    assert hub.sm.state == "alarm"


def test_a_gap_the_first_resend_fills_is_no_fault_one_it_does_not_is() -> None:
    """A monitor that asks for resends (``defer_lost``, set by the daemon) raises
    ``packets_lost`` only once the gap outlived a resend: a gap filled at once (the link
    was busy with an alarm's snippet for a moment) wakes nobody, but is still counted."""
    eng = Engine(t0=T0)
    eng.defer_lost = True
    outs = eng.feed_packet(wire.encode(0, status(600)))
    outs += eng.feed_packet(wire.encode(3, status(630)))  # 1, 2 missing
    assert eng.lost_pending and not alerts(outs, "packets_lost")
    outs += eng.feed_packet(wire.encode(1, status(610)))
    outs += eng.feed_packet(wire.encode(2, status(620)))  # resent
    assert not eng.lost_pending and eng.confirm_lost() == []
    assert not alerts(outs, "packets_lost") and not alerts(outs, "fault_cleared")
    assert eng.stats["lost"] == 2 and eng.stats["recovered"] == 2
    # A gap nobody fills: the fault, with what is still missing, until it is resent.
    outs = eng.feed_packet(wire.encode(6, status(660)))  # 4, 5 missing
    outs += eng.feed_packet(wire.encode(4, status(640)))
    assert not alerts(outs, "packets_lost")
    [lost] = alerts(eng.confirm_lost(), "packets_lost")
    assert lost["level"] == "fault" and lost["details"]["missing_ranges"] == [[5, 5]]
    [cleared] = alerts(eng.feed_packet(wire.encode(5, status(650))), "fault_cleared")
    assert cleared["details"]["fault"] == "packets_lost"
    # Still missing at the end of the data: the fault is raised then.
    eng.feed_packet(wire.encode(9, status(690)))
    assert alerts(eng.finish(), "packets_lost")


def test_the_daemon_raises_a_pending_gap_after_one_resend_interval() -> None:
    eng = MonitorEngine(device="sim", t0=T0)
    clock = [100.0]
    daemon = Daemon(lambda: None, eng, lambda o: None, DaemonConfig(resend_retry_s=5.0),
                    clock=lambda: clock[0])
    seen: list[Output] = []
    daemon._out = seen.extend  # type: ignore[method-assign]
    assert eng.defer_lost
    eng.feed_packet(wire.encode(0, status(600)))
    eng.feed_packet(wire.encode(3, status(630)))
    daemon._confirm_lost(100.0)
    daemon._confirm_lost(104.9)
    assert not alerts(seen, "packets_lost")
    daemon._confirm_lost(105.0)
    assert alerts(seen, "packets_lost") and not eng.lost_pending
