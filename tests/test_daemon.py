"""Daemon over a real pty + pyserial + SQLite: backoff, backfill, heartbeat, restarts.

The device is ``sim_link.PtyDevice`` (real firmware detector output, real wire and
framing, a resend ring) on a pty; the daemon runs in-process with short timings, or as
a subprocess where the test kills it.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spasmwatch.firmware import control, wire
from spasmwatch.host.daemon import (
    Backfill,
    Backoff,
    Daemon,
    DaemonConfig,
    MonitorEngine,
    resume_from_store,
)
from spasmwatch.host.links.sim_link import Item, PtyDevice, SimLink, scenario_schedule, status
from spasmwatch.host.store import Store

FAST = DaemonConfig(heartbeat_s=5.0, tick_s=0.05, backoff_initial_s=0.05, backoff_max_s=0.2,
                    resend_retry_s=0.5)


async def until(cond: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    """Wait for a condition with a deadline (polls; no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.01)


def spasm_items() -> list[Item]:
    items, _ = scenario_schedule("spasm-cluster", seed=1)
    return items


def n_events(items: list[Item]) -> int:
    return sum(1 for it in items if it.rec[0] == wire.KIND_EVENT)


class Harness:
    """A daemon on a device, with every output kept."""

    def __init__(self, dev: PtyDevice, store: Store, cfg: DaemonConfig = FAST) -> None:
        self.outs: list[dict[str, Any]] = []
        self.engine = MonitorEngine(store=store, device="test", heartbeat_s=cfg.heartbeat_s)
        resume_from_store(self.engine, store, time.time())
        self.daemon = Daemon(lambda: SimLink("x", device=dev), self.engine, self.outs.append,
                             cfg, rng=random.Random(1))

    def alerts(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [o for o in self.outs if o["type"] == "alert" and kind in (None, o["kind"])]


def test_backoff_is_capped_exponential_with_jitter() -> None:
    b = Backoff(0.5, 8.0, random.Random(3))
    delays = [b.next_delay() for _ in range(8)]
    caps = [0.5, 1, 2, 4, 8, 8, 8, 8]
    for d, cap in zip(delays, caps, strict=True):
        assert cap / 2 <= d <= cap
    assert len(set(delays)) == len(delays)  # jittered
    b.reset()
    assert b.next_delay() <= 0.5


def test_backfill_requests_once_retries_then_gives_up() -> None:
    bf = Backfill(retry_s=5.0, attempts=2)
    assert bf.due([(10, 20)], now=0.0) == [(10, 20)]
    # The resend streams in: the shrinking range is covered by the request.
    assert bf.due([(12, 20)], now=1.0) == []
    assert bf.due([(15, 20)], now=2.0) == []
    assert bf.due([(15, 20)], now=6.0) == [(15, 20)]  # retry after retry_s
    assert bf.due([(15, 20)], now=20.0) == []  # given up after 2 attempts
    assert bf.given_up == 1
    assert bf.due([(30, 31)], now=21.0) == [(30, 31)]  # a new gap is asked for at once
    bf.reconnected()
    assert bf.due([(15, 20), (30, 31)], now=22.0) == [(15, 20), (30, 31)]


def test_link_dropped_mid_cluster_is_backfilled_without_loss_or_duplicates(
    tmp_path: Path,
) -> None:
    items = spasm_items()
    spasm_at = [i for i, it in enumerate(items)
                if it.rec[0] == wire.KIND_EVENT and it.rec[2] == wire.CLS_SPASM_LIKE]
    dev = PtyDevice(items, tmp_path / "ttyACM0", speed=150.0)

    async def scenario() -> Harness:
        with Store(tmp_path / "night.db") as store:
            h = Harness(dev, store)
            task = asyncio.create_task(h.daemon.run())
            await until(lambda: dev.seq > spasm_at[0], what="first spasm sent")
            dev.unplug()  # mid-cluster: the next spasm-like events go to the ring only
            await until(lambda: dev.seq > spasm_at[2] + 1, what="spasms while unplugged")
            dev.plug()
            await asyncio.wait_for(task, 30)
            assert store.count("events") == n_events(items)
            seqs = [e.seq for e in store.events()]
            assert len(seqs) == len(set(seqs))
            return h

    with dev:
        h = asyncio.run(scenario())
    st = h.engine.stats
    assert st["missing"] == 0 and st["duplicates"] == 0
    assert h.daemon.connects >= 2
    assert any(op == control.RESEND for op, _ in dev.controls)  # backfilled by seq
    assert [a["level"] for a in h.alerts("spasm_cluster")] == ["alarm"]
    assert h.alerts("packets_lost") == [] or any(
        a["details"].get("fault") == "packets_lost" for a in h.alerts("fault_cleared"))


def test_silent_sensor_raises_heartbeat_fault_and_clears_on_data(tmp_path: Path) -> None:
    items = [Item(0.2 * i, status(0.2 * i)) for i in range(400)]
    dev = PtyDevice(items, tmp_path / "ttyACM0", speed=1.0)
    cfg = DaemonConfig(heartbeat_s=0.3, tick_s=0.05, backoff_initial_s=0.05,
                       backoff_max_s=0.2)

    async def scenario() -> Harness:
        with Store(":memory:") as store:
            h = Harness(dev, store, cfg)
            task = asyncio.create_task(h.daemon.run())
            await until(lambda: h.engine.ingest.stats.accepted >= 2, what="data")
            dev.paused.set()  # the firmware stops
            t_stop = time.monotonic()
            await until(lambda: h.alerts("heartbeat_timeout"), what="heartbeat fault")
            silent = time.monotonic() - t_stop
            dev.paused.clear()
            await until(lambda: h.alerts("fault_cleared"), what="fault cleared")
            h.daemon.stop()
            await asyncio.wait_for(task, 5)
            assert 0.3 <= silent < 0.3 + 1.0
            return h

    with dev:
        h = asyncio.run(scenario())
    [fault] = h.alerts("heartbeat_timeout")
    assert fault["level"] == "fault" and "NOT being monitored" in fault["message"]
    [cleared] = h.alerts("fault_cleared")
    assert cleared["details"]["fault"] == "heartbeat_timeout"
    assert cleared["t"] >= fault["t"]


def test_bad_bytes_on_the_wire_are_counted_not_fatal(tmp_path: Path) -> None:
    items = [Item(0.05 * i, status(0.05 * i)) for i in range(40)]
    dev = PtyDevice(items, tmp_path / "ttyACM0", speed=1.0)

    async def scenario() -> tuple[Harness, SimLink]:
        links: list[SimLink] = []

        def connect() -> SimLink:
            links.append(SimLink("x", device=dev))
            return links[-1]

        with Store(":memory:") as store:
            h = Harness(dev, store)
            h.daemon.connect = connect
            task = asyncio.create_task(h.daemon.run())
            await until(lambda: h.engine.ingest.stats.accepted >= 3, what="data")
            dev.write_raw(b"MicroPython v1.24 on ESP32S3\r\n>>> \x00\x00")
            dev.write_raw(b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x00")
            dev.write_raw(bytes(range(1, 256)) * 3 + b"\x00")  # an over-long run
            await asyncio.wait_for(task, 20)
            return h, links[0]

    with dev:
        h, link = asyncio.run(scenario())
    assert h.engine.ingest.stats.accepted == len(items)
    assert link.stats.garbage_bytes > 255 * 3
    assert link.stats.bad_frames >= 2
    assert h.daemon.connects == 1


def _spawn_daemon(port: Path, db: Path, *extra: str) -> subprocess.Popen[str]:
    code = "import sys; from spasmwatch.host.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, "run", "--serial", str(port), "--db", str(db),
         "--json", "--heartbeat", "5", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def _wait_line(proc: subprocess.Popen[str], needle: str, timeout: float = 20.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if needle in line:
            return line
    proc.kill()
    err = proc.stderr.read() if proc.stderr else ""
    raise AssertionError(f"no line with {needle!r}; stderr: {err}")


def test_sigterm_stops_cleanly_with_exit_0(tmp_path: Path) -> None:
    items = [Item(0.1 * i, status(0.1 * i)) for i in range(2000)]
    db = tmp_path / "night.db"
    with PtyDevice(items, tmp_path / "ttyACM0", speed=1.0) as dev:
        proc = _spawn_daemon(dev.path, db)
        try:
            _wait_line(proc, '"connected"')
            _wait_line(proc, '"type": "status"')
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert rc == 0, proc.stderr.read() if proc.stderr else ""
    with Store(db) as store:
        assert store.count("statuses") >= 1


def test_killed_host_restarts_resumes_and_backfills(tmp_path: Path) -> None:
    items = spasm_items()
    db = tmp_path / "night.db"
    dev = PtyDevice(items, tmp_path / "ttyACM0", speed=100.0)
    with dev:
        proc = _spawn_daemon(dev.path, db)
        try:
            _wait_line(proc, '"type": "event"')
            proc.kill()  # no clean shutdown at all
            proc.wait(timeout=10)
            dev.unplug()  # the port closes with the host; the device keeps measuring
            deadline = time.monotonic() + 20
            while dev.seq < len(items) // 2 and time.monotonic() < deadline:
                dev.done.wait(0.01)
            dev.plug()
            proc = _spawn_daemon(dev.path, db)
            _wait_line(proc, '"resumed"')
            assert dev.done.wait(30)
            last_seq = dev.seq - 1

            def complete() -> bool:
                with Store(db) as s:
                    n = s.count("events") + s.count("summaries") + s.count("statuses")
                return n == len(items)

            deadline = time.monotonic() + 20
            while not complete() and time.monotonic() < deadline:
                dev.done.wait(0.05)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    with Store(db) as store:
        events = store.events()
        assert len(events) == n_events(items)
        assert len({e.seq for e in events}) == len(events)  # no duplicates
        assert max(e.seq for e in events) <= last_seq
    assert any(op == control.RESEND for op, _ in dev.controls)  # the gap was asked for


@pytest.mark.parametrize("bad", [
    ["--serial", "/x", "--heartbeat", "0"],
    ["--simulate", "quiet", "--speed", "-1"],
    ["--simulate", "no-such-scenario"],
    [],
])
def test_bad_options_are_user_errors(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from spasmwatch.host.cli import main

    assert main(["run", *bad]) == 2
    assert "spasmwatch: error:" in capsys.readouterr().err


def test_scan_lists_only_sensors_advertising_the_service() -> None:
    """``scan_devices`` on bleak with the Bumble backend: a real stack, virtual radio."""
    from spasmwatch.firmware import ble_link as gatt
    from spasmwatch.firmware import config
    from spasmwatch.host.cmd_scan import scan_devices
    from spasmwatch.host.links.bleak_bumble import BumbleCentral, BumbleScanner
    from spasmwatch.simulator.ble_bridge import PERIPHERAL_ADDRESS, BridgePeripheral, RadioLink

    async def body() -> list[Any]:
        link = RadioLink()
        sensor = BridgePeripheral(link, PERIPHERAL_ADDRESS, lambda *e: None)
        await sensor.power_on()
        await sensor.advertise(50_000, gatt.adv_payload(), gatt.resp_payload("spasmwatch"))
        other = BridgePeripheral(link, "F1:00:00:00:00:02", lambda *e: None)
        await other.power_on()
        heart = "0000180d-0000-1000-8000-00805f9b34fb"
        await other.advertise(50_000, b"\x02\x01\x06\x11\x07" + gatt.uuid_le_bytes(heart),
                              gatt.resp_payload("heart"))
        central = BumbleCentral.on_link(link)
        try:
            return await scan_devices(0.3, BumbleScanner, bumble=central)
        finally:
            await central.close()

    found = asyncio.run(asyncio.wait_for(body(), 20))
    assert [(f.address, f.name) for f in found] == [(PERIPHERAL_ADDRESS, config.DEVICE_NAME)]
