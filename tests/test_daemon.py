"""Daemon over a real pty + pyserial + SQLite: backoff, backfill, heartbeat, restarts.

The device is the real firmware under MicroPython on the virtual board
(``SimulatedBoard`` / ``BoardRunner``), reached through ``tests/pty_device.UsbCable``
(a relay that can be unplugged) where a test pulls the cable; ``PtyDevice`` (a wire
stand-in) only where the wire must carry bytes no firmware sends (REPL text, noise).
The daemon runs in-process with short timings, or as a subprocess the test kills.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pty_device import UsbCable

from spasmwatch.firmware import config as fwconfig
from spasmwatch.firmware import control, wire
from spasmwatch.host.compose import SimulationEnd
from spasmwatch.host.daemon import (
    Backfill,
    Backoff,
    Daemon,
    DaemonConfig,
    MonitorEngine,
)
from spasmwatch.host.links.auth_link import AuthLink
from spasmwatch.host.links.serial_link import SerialLink
from spasmwatch.host.links.sim_link import SimulatedBoard
from spasmwatch.host.monitor.outputs import Output
from spasmwatch.host.monitor.store import Store
from spasmwatch.simulator import scenarios
from spasmwatch.simulator.replay import detector_packets, to_sensor_stream

FAST = DaemonConfig(tick_s=0.05, backoff_initial_s=0.05, backoff_max_s=0.2,
                    resend_retry_s=0.5)


async def until(cond: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    """Wait for a condition with a deadline (polls; no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.01)


def spasm_events(seed: int = 1) -> list[tuple]:
    """The event records the firmware detector finds in ``spasm-cluster``."""
    trace, _ = scenarios.generate("spasm-cluster", seed=seed)
    cfg = fwconfig.DetectorConfig()
    return [rec for _, ps in detector_packets(to_sensor_stream(trace, cfg), cfg)
            for rec in (wire.decode(p)[1] for p in ps) if rec[0] == wire.KIND_EVENT]


class Harness:
    """A daemon on a port, with every output kept (ends with a simulated board)."""

    def __init__(self, port: str | Path, store: Store, cfg: DaemonConfig = FAST,
                 board: SimulatedBoard | None = None, heartbeat_s: float = 5.0,
                 session: Any = None) -> None:
        self.outs: list[dict[str, Any]] = []
        # A simulated board pairs itself: the daemon verifies and signs with its key.
        if session is None and board is not None:
            session = board.session()
        self.engine = MonitorEngine(store=store, device="sim", heartbeat_s=heartbeat_s,
                                    verifier=session)
        self.links: list[SerialLink] = []
        self.board = board
        ender = SimulationEnd(board) if board is not None else None

        def connect() -> Any:
            self.links.append(SerialLink(str(port)))
            return self.links[-1] if session is None else AuthLink(self.links[-1], session)

        def emit(o: Output) -> None:
            self.outs.append(o.to_json())  # as --json prints it
            if ender is not None:
                ender.observe(self.daemon, o)

        self.daemon = Daemon(connect, self.engine, emit, cfg, rng=random.Random(1))

    def alerts(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [o for o in self.outs
                if o["type"] == "alert" and (kind is None or o["kind"] == kind)]


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
    events = spasm_events()
    spasm_ms = [r[1] for r in events if r[2] == wire.CLS_SPASM_LIKE]
    board = SimulatedBoard("spasm-cluster", seed=1, speed=100.0)

    async def scenario(cable: UsbCable) -> Harness:
        with Store(tmp_path / "night.db") as store:
            h = Harness(cable.path, store, board=board)
            task = asyncio.create_task(h.daemon.run())
            await until(lambda: any(o["type"] == "event" and o["cls"] == "spasm_like"
                                    for o in h.outs), what="first spasm received")
            cable.unplug()  # mid-cluster: the next spasm-like events go to the ring only
            await until(lambda: cable.device_ms > spasm_ms[2] + 2000,
                        what="spasms while unplugged")
            cable.plug()
            await asyncio.wait_for(task, 30)
            assert store.count("events") == len(events)
            seqs = [e.seq for e in store.events()]
            assert len(seqs) == len(set(seqs))
            return h

    with board, UsbCable(board.port, tmp_path / "ttyACM0") as cable:
        h = asyncio.run(scenario(cable))
    assert cable.dropped_bytes > 0  # the board really sent while unplugged
    st = h.engine.stats
    assert st["missing"] == 0 and st["duplicates"] == 0
    assert h.daemon.connects >= 2
    assert control.RESEND in cable.controls  # backfilled by seq
    assert [a["level"] for a in h.alerts("spasm_cluster")] == ["alarm"]
    assert h.alerts("packets_lost") == [] or any(
        a["details"].get("fault") == "packets_lost" for a in h.alerts("fault_cleared"))


def test_stopped_firmware_raises_heartbeat_fault_and_clears_on_data(tmp_path: Path) -> None:
    # At 100x a status packet comes every 0.1 s; SIGSTOP freezes MicroPython (a hung
    # firmware), SIGCONT lets it go on.
    cfg = DaemonConfig(tick_s=0.05, backoff_initial_s=0.05, backoff_max_s=0.2)
    board = SimulatedBoard("quiet", seed=1, speed=100.0)

    async def scenario() -> Harness:
        with Store(":memory:") as store:
            h = Harness(board.port, store, cfg, heartbeat_s=1.0, session=board.session())
            task = asyncio.create_task(h.daemon.run())
            await until(lambda: h.engine.ingest.stats.accepted >= 5, what="data")
            board.runner.proc.send_signal(signal.SIGSTOP)  # the firmware stops
            t_stop = time.monotonic()
            try:
                await until(lambda: h.alerts("heartbeat_timeout"), what="heartbeat fault")
                silent = time.monotonic() - t_stop
            finally:
                board.runner.proc.send_signal(signal.SIGCONT)
            await until(lambda: h.alerts("fault_cleared"), what="fault cleared")
            h.daemon.stop()
            await asyncio.wait_for(task, 5)
            # The last packet came up to one status period (0.1 s) before the stop.
            assert 1.0 - 0.15 <= silent < 1.0 + 1.0
            return h

    with board:
        h = asyncio.run(scenario())
    [fault] = h.alerts("heartbeat_timeout")
    assert fault["level"] == "fault" and "NOT being monitored" in fault["message"]
    [cleared] = h.alerts("fault_cleared")
    assert cleared["details"]["fault"] == "heartbeat_timeout"
    assert cleared["t"] >= fault["t"]


def test_bad_bytes_on_the_wire_are_counted_not_fatal(tmp_path: Path) -> None:
    board = SimulatedBoard("quiet", seed=1, speed=200.0)

    async def scenario(cable: UsbCable) -> Harness:
        with Store(":memory:") as store:
            h = Harness(cable.path, store, board=board)
            task = asyncio.create_task(h.daemon.run())
            await until(lambda: h.engine.ingest.stats.accepted >= 3, what="data")
            cable.inject(b"MicroPython v1.24 on ESP32S3\r\n>>> \x00\x00")
            cable.inject(b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x00")
            cable.inject(bytes(range(1, 256)) * 3 + b"\x00")  # an over-long run
            await asyncio.wait_for(task, 20)
            seqs = sorted(r.seq for r in [*store.summaries(), *store.statuses()])
            assert seqs == list(range(len(seqs)))  # every packet, once
            return h

    with board, UsbCable(board.port, tmp_path / "ttyACM0") as cable:
        h = asyncio.run(scenario(cable))
    link = h.links[0]
    assert h.engine.ingest.stats.accepted >= 600 // fwconfig.STATUS_S
    assert link.stats.garbage_bytes > 255 * 3
    assert link.stats.bad_frames >= 2
    assert h.daemon.connects == 1


def _spawn_daemon(port: Path, db: Path, *extra: str,
                  board: SimulatedBoard | None = None) -> subprocess.Popen[str]:
    code = "import sys; from spasmwatch.host.cli.main import main; sys.exit(main(sys.argv[1:]))"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if board is not None:
        # This host is paired with the board (as `spasmwatch pair` leaves it).
        from spasmwatch.host.pairing import Pairing, save_pairing

        cfg_home = db.parent / "config-home"
        save_pairing(cfg_home / "spasmwatch", Pairing(board.key, "spasmwatch", time.time()))
        env["XDG_CONFIG_HOME"] = str(cfg_home)
        env.pop("SPASMWATCH_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-c", code, "run", "--serial", str(port), "--db", str(db),
         "--json", "--heartbeat", "5", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _wait_line(proc: subprocess.Popen[str], needle: str, timeout: float = 60.0) -> str:
    # A daemon's start (imports, settings, the board's first packets) takes ~1-2 s here;
    # the margin is for a loaded machine only.
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
    db = tmp_path / "night.db"
    with SimulatedBoard("quiet", seed=1, speed=10.0) as board:
        proc = _spawn_daemon(Path(board.port), db, board=board)
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
    events = spasm_events()
    db = tmp_path / "night.db"
    board = SimulatedBoard("spasm-cluster", seed=1, speed=100.0)
    with board, UsbCable(board.port, tmp_path / "ttyACM0") as cable:
        proc = _spawn_daemon(cable.path, db, board=board)
        try:
            _wait_line(proc, '"type": "event"')
            proc.kill()  # no clean shutdown at all
            proc.wait(timeout=10)
            cable.unplug()  # the port closes with the host; the device keeps measuring
            down_at = cable.device_ms
            deadline = time.monotonic() + 20
            while cable.device_ms < down_at + 60_000 and time.monotonic() < deadline:
                time.sleep(0.01)  # polling the board's progress, not a fixed wait
            cable.plug()
            proc = _spawn_daemon(cable.path, db, board=board)
            _wait_line(proc, '"resumed"')
            # Keep reading its output (an alarm's snippet line is ~40 kB): a full pipe
            # would block the daemon's writes and with them its SIGTERM handling.
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # type: ignore[union-attr]

            def complete() -> bool:
                with Store(db) as s:
                    return (s.count("events") == len(events)
                            and cable.device_ms > board.end_ms)

            deadline = time.monotonic() + 60  # ~6 s of board time at 100x; load margin
            while not complete() and time.monotonic() < deadline:
                time.sleep(0.05)
            with Store(db) as s:
                got_n = s.count("events")
            assert complete(), (f"{got_n} of {len(events)} events stored, board at "
                                f"{cable.device_ms} ms of {board.end_ms}")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert cable.dropped_bytes > 0
    with Store(db) as store:
        got = store.events()
        assert len(got) == len(events)
        assert len({e.seq for e in got}) == len(got)  # no duplicates
        # The firmware's events, each once: the detector's times on one time base.
        ms = sorted(e.t_ms for e in got)
        assert [m - ms[0] for m in ms] == [r[1] - events[0][1] for r in events]
    assert control.RESEND in cable.controls  # the gap was asked for


@pytest.mark.parametrize("bad", [
    ["--serial", "/x", "--heartbeat", "0"],
    ["--simulate", "quiet", "--speed", "-1"],
    ["--simulate", "no-such-scenario"],
    [],
])
def test_bad_options_are_user_errors(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from spasmwatch.host.cli.main import main

    assert main(["run", *bad]) == 2
    assert "spasmwatch: error:" in capsys.readouterr().err


def test_scan_lists_only_sensors_advertising_the_service() -> None:
    """``scan_devices`` on bleak with the Bumble backend: a real stack, virtual radio."""
    from spasmwatch.firmware import ble_link as gatt
    from spasmwatch.firmware import config
    from spasmwatch.host.cli.scan import scan_devices
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
