"""Rogue devices on the Bumble virtual radio against the real firmware and host.

The sensor is the unmodified firmware under MicroPython (``BoardRunner`` with its radio
on an in-process ``BleBridge``), paired with a key; the host is the real ``BleLink`` +
``AuthLink`` + daemon/engine with the pairing ``Session``. Attackers are Bumble
peripherals and centrals on the same radio:

* a rogue advertising the sensor's name (name squatting) is ignored and reported;
* a rogue sending forged spasm-like events and "all ok" statuses raises no alarm and
  does not hide a silent sensor (the heartbeat fault comes);
* authentic packets replayed within and beyond the sequence window, and after the
  device rebooted, are dropped and counted; replayed INJECT_START / SET_PARAM after a
  reboot are refused by the firmware;
* an unpaired central gets no data and its commands are refused.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from bleak import BleakClient, BleakScanner
from test_ble_bumble import Sensor

from spasmwatch.firmware import ble_link as gatt
from spasmwatch.firmware import config, control, wire
from spasmwatch.host.daemon import Daemon, DaemonConfig, MonitorEngine
from spasmwatch.host.links.auth_link import AuthLink
from spasmwatch.host.links.base import LinkError
from spasmwatch.host.links.ble_link import BleLink
from spasmwatch.host.links.bleak_bumble import BumbleCentral, BumbleClient, BumbleScanner
from spasmwatch.host.monitor.outputs import Alert
from spasmwatch.host.pairing import Session
from spasmwatch.simulator.ble_bridge import BleBridge
from spasmwatch.simulator.board_runner import BoardRunner

# skips without MicroPython, fails under CI (tests/tooling.py)
pytestmark = pytest.mark.usefixtures("micropython_exe")

KEY = bytes(range(100, 116))
ROGUE_ADDRESS = "F1:0B:AD:00:00:02"


def run(body: Callable[[], Awaitable[None]], timeout: float = 90) -> None:
    asyncio.run(asyncio.wait_for(body(), timeout))


async def until(cond: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.02)


def start_board(bridge: BleBridge, workdir: Path, speed: float = 10.0) -> BoardRunner:
    """The real firmware on the virtual board, its radio on ``bridge``, paired (KEY)."""
    saved = os.environ.get("SPASMWATCH_BLE_BRIDGE")
    os.environ["SPASMWATCH_BLE_BRIDGE"] = f"127.0.0.1:{bridge.firmware_port}"
    try:
        runner = BoardRunner(None, speed=speed, key=KEY, workdir=workdir, heapsize="320k")
        runner.start()
    finally:
        if saved is None:
            os.environ.pop("SPASMWATCH_BLE_BRIDGE", None)
        else:
            os.environ["SPASMWATCH_BLE_BRIDGE"] = saved
    return runner


def rogue_packets(key: bytes | None) -> list[bytes]:
    """Four spasm-like events and "all ok" statuses, untagged or under a wrong key."""
    from spasmwatch.firmware import auth

    tagger = (lambda body: auth.packet_tag(key, 1, body)) if key else None
    out = []
    for i in range(4):
        ev = (wire.KIND_EVENT, 10_000 + 5_000 * i, wire.CLS_SPASM_LIKE, wire.STATE_ASLEEP,
              3, 900, 1200, 500, 80, 400, 20)
        st = (wire.KIND_STATUS, 10_500 + 5_000 * i, 3900, wire.ST_SENSOR_OK, 0, 100, 50, 4)
        out += [wire.encode(2 * i, ev, tagger), wire.encode(2 * i + 1, st, tagger)]
    return out


class Rogue(Sensor):
    """A Bumble peripheral squatting the sensor's name; sends forged packets when asked."""

    def __init__(self, bridge: BleBridge, address: str = ROGUE_ADDRESS) -> None:
        super().__init__(bridge.link, name=config.DEVICE_NAME, address=address)

    def writes(self) -> list[bytes]:
        from spasmwatch.simulator.ble_bridge import IRQ_GATTS_WRITE

        return [data for args, data in self.of(IRQ_GATTS_WRITE) if data is not None]

    async def spray(self, packets: list[bytes]) -> None:
        for conn in list(self.per.device.connections):
            for p in packets:
                await self.per.notify(conn, self.h_event, p)


def test_rogue_name_squatter_is_ignored_and_reported(tmp_path: Path) -> None:
    async def body() -> None:
        bridge = BleBridge()
        await bridge.start()
        rogue = await Rogue(bridge).start()  # advertises 5x faster than the sensor
        runner = start_board(bridge, tmp_path / "board")
        central = BumbleCentral.on_link(bridge.link)
        session = Session(KEY)
        link = AuthLink(BleLink(config.DEVICE_NAME, backend=central, session=session,
                                scan_timeout=10), session)
        try:
            await link.open()
            inner = link.inner
            assert isinstance(inner, BleLink)
            assert inner.proven and inner.device is not None
            assert inner.device.address != ROGUE_ADDRESS  # the real sensor
            assert [a for a, _ in inner.rejected] == [ROGUE_ADDRESS]  # reported
            assert "did not prove the pairing key" in inner.rejected[0][1]
            # ... and reported through the engine's fault path.
            eng = MonitorEngine(device="cot", verifier=session)
            [fault] = [o for o in eng.tick(time.time())
                       if isinstance(o, Alert) and o.kind == "foreign_packets"]
            assert fault.level == "fault" and ROGUE_ADDRESS in fault.message
            # The rogue saw a challenge it could not answer, and nothing else.
            assert [w[0] for w in rogue.writes()] == [control.HELLO]
            # The sensor's signed answer comes first, then (after a signed command)
            # authenticated packets.
            answer = await asyncio.wait_for(link.recv(), 10)
            assert wire.decode(answer, session)[1][2] == control.HELLO
            await link.send_control(control.encode_ping(3))
            got = await asyncio.wait_for(link.recv(), 10)
            assert wire.decode(got, session)
        finally:
            await link.close()
            await central.close()
            runner.stop()
            await bridge.close()

    run(body)


def test_forged_events_and_statuses_from_rogue_raise_no_alarm_and_hide_no_silence() -> None:
    """Only the rogue is on the air (the real sensor is silent): no alarm, heartbeat fault."""
    async def body() -> None:
        bridge = BleBridge()
        await bridge.start()
        rogue = await Rogue(bridge).start()
        central = BumbleCentral.on_link(bridge.link)
        session = Session(KEY)
        engine = MonitorEngine(device="cot", heartbeat_s=2.0, verifier=session)
        outs: list[dict[str, Any]] = []
        cfg = DaemonConfig(tick_s=0.1, backoff_initial_s=0.1,
                           backoff_max_s=0.3)

        def connect() -> AuthLink:
            return AuthLink(BleLink(config.DEVICE_NAME, backend=central, session=session,
                                    scan_timeout=1), session)

        async def forge() -> None:
            while True:  # forged packets whenever someone is connected to the rogue
                await rogue.spray(rogue_packets(None) + rogue_packets(b"\x01" * 16))
                await asyncio.sleep(0.05)

        daemon = Daemon(connect, engine, lambda o: outs.append(o.to_json()), cfg)
        task = asyncio.create_task(daemon.run())
        forger = asyncio.create_task(forge())
        try:
            await until(lambda: any(o.get("kind") == "heartbeat_timeout" for o in outs),
                        timeout=20)
            # The host connected to the rogue (it answers to the name) but did not keep
            # it: "did not prove the pairing key".
            await until(lambda: any(o["type"] == "link" and "pairing key" in o["message"]
                                    for o in outs), timeout=20)
        finally:
            daemon.stop()
            forger.cancel()
            await asyncio.gather(task, forger, return_exceptions=True)
            await central.close()
            await bridge.close()
        assert not [o for o in outs if o["type"] == "alert" and o["level"] == "alarm"]
        assert not [o for o in outs if o["type"] in ("event", "status")]
        [fault] = [o for o in outs if o.get("kind") == "heartbeat_timeout"]
        assert fault["level"] == "fault"
        assert not any(o.get("kind") == "fault_cleared" for o in outs)
        assert engine.ingest.stats.accepted == 0

    run(body)


async def _collect(link: AuthLink, session: Session, n: int) -> list[bytes]:
    got: list[bytes] = []
    while len(got) < n:
        data = await asyncio.wait_for(link.recv(), 15)
        if wire.peek_kind(data) not in wire.OUT_OF_BAND:
            wire.decode(data, session)  # authentic
            got.append(data)
    return got


def test_replay_of_authentic_packets_within_beyond_window_and_after_reboot(
        tmp_path: Path) -> None:
    """Packets recorded off the air from the real sensor, replayed into the host."""
    async def body() -> None:
        bridge = BleBridge()
        await bridge.start()
        workdir = tmp_path / "board"
        runner = start_board(bridge, workdir, speed=50.0)
        central = BumbleCentral.on_link(bridge.link)
        session = Session(KEY)
        engine = MonitorEngine(device="cot", heartbeat_s=30, verifier=session)
        engine.ingest.seq.window = 8  # a small window, so "beyond" is reachable fast
        link = AuthLink(BleLink(config.DEVICE_NAME, backend=central, session=session), session)
        try:
            await link.open()
            await link.send_control(control.encode_ping(1))  # a signed command: data flows
            recorded = await _collect(link, session, 20)
            t = time.time()
            for p in recorded:
                engine.feed_packet(p, received_at=t)
            accepted = engine.ingest.stats.accepted
            assert accepted == 20
            boot1 = session.boot
            # Within the window: duplicates, dropped.
            for p in recorded[-3:]:
                assert engine.feed_packet(p, received_at=t) == [] or True
            assert engine.ingest.stats.duplicates == 3
            # Beyond the window (older than 8 packets back): replays, dropped, counted.
            for p in recorded[:3]:
                engine.feed_packet(p, received_at=t)
            assert engine.ingest.stats.errors["replay"] == 3
            assert engine.ingest.stats.accepted == accepted
            await link.close()
            # The sensor reboots (its radio too): a new boot counter; the old packets
            # never verify again.
            runner.stop()
            await central.close()
            await bridge.close()
            bridge = BleBridge()
            await bridge.start()
            central = BumbleCentral.on_link(bridge.link)
            runner = start_board(bridge, workdir, speed=50.0)
            link = AuthLink(BleLink(config.DEVICE_NAME, backend=central, session=session),
                            session)
            await link.open()
            assert session.boot is not None and boot1 is not None and session.boot > boot1
            await link.send_control(control.encode_ping(2))
            fresh = await _collect(link, session, 3)
            for p in fresh:
                engine.feed_packet(p, received_at=t + 1)
            restarts = engine.ingest.stats.restarts
            for p in recorded:
                engine.feed_packet(p, received_at=t + 2)
            assert engine.ingest.stats.errors["auth"] == len(recorded)
            assert engine.ingest.stats.restarts == restarts  # not taken for a reboot
        finally:
            await link.close()
            await central.close()
            runner.stop()
            await bridge.close()

    run(body, 120)


def test_replayed_inject_start_and_set_param_after_reboot_are_refused(tmp_path: Path) -> None:
    """Signed commands captured off the air work once; never again, not after a reboot."""
    async def body() -> None:
        bridge = BleBridge()
        await bridge.start()
        workdir = tmp_path / "board"
        runner = start_board(bridge, workdir)
        central = BumbleCentral.on_link(bridge.link)
        session = Session(KEY)
        captured: list[bytes] = []

        class Tap(AuthLink):
            async def send_control(self, payload: bytes) -> None:
                signed = self.session.sign(payload)
                captured.append(signed)
                await self.inner.send_control(signed)

        async def reply_to(link: AuthLink, op: int) -> int:
            while True:
                data = await asyncio.wait_for(link.recv(), 10)
                if wire.peek_kind(data) == wire.KIND_REPLY:
                    _, rec = wire.decode(data, session)
                    if rec[2] == op:
                        return int(rec[3])

        link: AuthLink = Tap(BleLink(config.DEVICE_NAME, backend=central, session=session),
                             session)
        try:
            await link.open()
            await link.send_control(control.encode_set_param(1, 120))
            assert await reply_to(link, control.SET_PARAM) == control.RESULT_OK
            await link.send_control(control.encode_inject_start(7))
            assert await reply_to(link, control.INJECT_START) == control.RESULT_OK
            await link.send_control(control.encode_inject_stop())
            assert await reply_to(link, control.INJECT_STOP) == control.RESULT_OK
            set_param = next(c for c in captured if c[0] == control.SET_PARAM)
            inject_start = next(c for c in captured if c[0] == control.INJECT_START)
            # Replayed in the same boot: the counter is not newer.
            for cmd, op in ((inject_start, control.INJECT_START), (set_param, control.SET_PARAM)):
                await link.inner.send_control(cmd)
                assert await reply_to(link, op) == control.RESULT_AUTH
            await link.close()
            runner.stop()  # reboot (radio too): counters in RAM start over
            await central.close()
            await bridge.close()
            bridge = BleBridge()
            await bridge.start()
            central = BumbleCentral.on_link(bridge.link)
            runner = start_board(bridge, workdir)
            link = AuthLink(BleLink(config.DEVICE_NAME, backend=central, session=session),
                            session)
            await link.open()
            for cmd, op in ((inject_start, control.INJECT_START), (set_param, control.SET_PARAM)):
                await link.inner.send_control(cmd)
                assert await reply_to(link, op) == control.RESULT_AUTH
        finally:
            await link.close()
            await central.close()
            runner.stop()
            await bridge.close()

    run(body, 120)


def test_unpaired_central_gets_no_data_and_its_commands_are_refused(tmp_path: Path) -> None:
    async def body() -> None:
        bridge = BleBridge()
        await bridge.start()
        runner = start_board(bridge, tmp_path / "board", speed=20.0)
        central = BumbleCentral.on_link(bridge.link)
        got: list[bytes] = []
        try:
            dev = await BleakScanner.find_device_by_name(
                config.DEVICE_NAME, timeout=10, backend=BumbleScanner, bumble=central)
            assert dev is not None
            async with BleakClient(dev, backend=BumbleClient, bumble=central) as client:
                for uuid in (gatt.EVENT_UUID, gatt.STATUS_UUID):
                    await client.start_notify(uuid, lambda _c, d: got.append(bytes(d)))
                for cmd in (control.encode_ping(5), control.encode_get_snippet(),
                            control.encode_resend(0, 50), control.encode_set_param(1, 90),
                            control.encode_inject_start(1), control.encode_set_time(1)):
                    await client.write_gatt_char(gatt.CONTROL_UUID, cmd, response=True)
                await asyncio.sleep(3.0)  # 60 s of device time: 6 status periods
                # A status read returns the latest status; it is signed, not secret
                # (docs/security.md: contents are readable over the air).
        finally:
            await central.close()
            runner.stop()
            await bridge.close()
        kinds = [wire.peek_kind(p) for p in got]
        assert kinds and set(kinds) == {wire.KIND_REPLY}  # no event, summary or status
        results = [wire.decode(p, lambda b, t: True)[1] for p in got]
        assert {r[2] for r in results} == {control.PING, control.GET_SNIPPET, control.RESEND,
                                           control.SET_PARAM, control.INJECT_START,
                                           control.SET_TIME}
        assert {r[3] for r in results} == {control.RESULT_AUTH}

    run(body)


def test_unpaired_host_refuses_to_monitor_in_one_line(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from spasmwatch.host.cli.main import main

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("SPASMWATCH_CONFIG", raising=False)
    assert main(["run", "--ble", "--db", str(tmp_path / "x.db")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "spasmwatch pair" in err[0] and "--insecure" in err[0]


def test_spoofed_link_fails_open_with_a_clear_reason() -> None:
    """A device that takes the challenge but answers with another key is not accepted."""
    async def body() -> None:
        bridge = BleBridge()
        await bridge.start()
        rogue = await Rogue(bridge).start()
        central = BumbleCentral.on_link(bridge.link)
        session = Session(KEY)
        link = BleLink(config.DEVICE_NAME, backend=central, session=session, scan_timeout=2)

        async def answer() -> None:
            from spasmwatch.firmware import auth

            while True:  # answer every HELLO, with a wrong key
                for data in rogue.writes():
                    if data[0] == control.HELLO:
                        token = int.from_bytes(data[1:5], "little")
                        rec = (wire.KIND_REPLY, 0, control.HELLO, control.RESULT_OK, 1)
                        pkt = wire.encode(0, rec, lambda b, t=token: auth.hello_tag(
                            b"\x02" * 16, 1, t, b))
                        await rogue.spray([pkt])
                await asyncio.sleep(0.05)

        task = asyncio.create_task(answer())
        try:
            with pytest.raises(LinkError, match="did not prove the pairing key"):
                await link.open()
            assert [a for a, _ in link.rejected] == [ROGUE_ADDRESS]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await link.close()
            await central.close()
            await bridge.close()

    run(body)
