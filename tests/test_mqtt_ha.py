"""Home Assistant over MQTT against a real broker (Debian ``mosquitto``).

The fixture starts mosquitto on a free loopback port with a generated config and stops it
at the end. Every assertion is on what an independent MQTT client received from the
broker: discovery, retained state, alert events, command answers, the Last Will.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tooling import require_tool

from spasmwatch.firmware import wire
from spasmwatch.host.alerts.alarm_state import Notice
from spasmwatch.host.alerts.channels.base import DeliveryError
from spasmwatch.host.alerts.channels.mqtt_ha import (
    MAX_EVENT_BYTES,
    MAX_STATE_BYTES,
    MqttHomeAssistant,
    parse_command,
)
from spasmwatch.host.alerts.delivery import AlertHub
from spasmwatch.host.daemon import MonitorEngine
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.outputs import Output, StatusOutput
from spasmwatch.host.settings import MqttSettings, settings_from_dict

T0 = 1_700_000_000.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mosquitto(conf_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """mosquitto on ``127.0.0.1:port`` (no persistence: a restart forgets retained
    messages), started and polled until it accepts connections."""
    exe = require_tool("mosquitto", "apt-get install mosquitto (see .ci/run)",
                       "/usr/sbin/mosquitto")
    conf = conf_dir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "log_dest stderr\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:  # readiness: poll until the port accepts connections
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"mosquitto did not start: {err}")
            time.sleep(0.02)


def stop_mosquitto(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = _free_port()
    proc = start_mosquitto(tmp_path_factory.mktemp("mosquitto"), port)
    yield port
    stop_mosquitto(proc)


class Observer:
    """An independent MQTT client recording everything under some topics."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.msgs: list[tuple[str, str, bool]] = []  # topic, payload, retained
        self._new = asyncio.Event()

    async def pump(self) -> None:
        async for m in self.client.messages:
            raw = m.payload
            text = raw.decode() if isinstance(raw, bytes | bytearray) else str(raw)
            self.msgs.append((str(m.topic), text, bool(m.retain)))
            self._new.set()

    async def wait_for(self, pred: Callable[[str, str, bool], bool],
                       timeout: float = 5.0) -> tuple[str, str, bool]:
        async def scan() -> tuple[str, str, bool]:
            seen = 0
            while True:
                for m in self.msgs[seen:]:
                    if pred(*m):
                        return m
                seen = len(self.msgs)
                self._new.clear()
                await self._new.wait()

        return await asyncio.wait_for(scan(), timeout)


@asynccontextmanager
async def observer(port: int, *topics: str) -> AsyncIterator[Observer]:
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"obs-{time.monotonic_ns()}") as c:
        for t in topics:
            await c.subscribe(t, qos=1)
        obs = Observer(c)
        task = asyncio.create_task(obs.pump())
        try:
            yield obs
        finally:
            task.cancel()


def hub_for(port: int, device_id: str) -> AlertHub:
    s = settings_from_dict({
        "audio": {"enabled": False}, "webui": {"enabled": False},
        "monitor": {"host_battery_low_pct": 0},
        "mqtt": {"enabled": True, "host": "127.0.0.1", "port": port,
                 "device_id": device_id, "keepalive_s": 5},
    }, "test")
    return AlertHub(s, None, clock=lambda: T0 + 200)


def alarm_outputs() -> list[Output]:
    eng = Engine(t0=T0)
    outs: list[Output] = []
    for i in range(3):
        rec = (wire.KIND_EVENT, (100 + 8 * i) * 1000, wire.CLS_SPASM_LIKE,
               wire.STATE_SETTLING, 2, 1000, 400, 120, 40, 150, 7)
        outs += eng.feed_packet(wire.encode(i, rec), received_at=T0 + 101 + 8 * i)
    status = (wire.KIND_STATUS, 130_000, 3870, wire.ST_SENSOR_OK, 10, 80, 50, 4)
    outs += eng.feed_packet(wire.encode(3, status), received_at=T0 + 130)
    return outs


def test_parse_command() -> None:
    assert parse_command("ack") == ("ack", None)
    assert parse_command("mute") == ("mute", 30.0)
    assert parse_command(" MUTE:15 ") == ("mute", 15.0)
    assert parse_command('{"action": "mute", "minutes": 5}') == ("mute", 5.0)
    assert parse_command("unmute") == ("unmute", None)
    for bad in ("reboot", "mute:x", "{", "[1]"):
        with pytest.raises(ValueError):
            parse_command(bad)


def test_discovery_state_alert_and_commands(broker: int) -> None:
    dev = "nursery1"

    async def run() -> None:
        hub = hub_for(broker, dev)
        await hub.start()
        ch = hub.channels["mqtt"]
        assert isinstance(ch, MqttHomeAssistant)
        assert await ch.wait_connected(10)
        await hub.drain()
        async with observer(broker, "homeassistant/#", f"spasmwatch/{dev}/#") as obs:
            # Retained discovery, availability and state reach a client that joins later.
            _, disc, retained = await obs.wait_for(
                lambda t, p, r: t == f"homeassistant/device/{dev}/config")
            assert retained
            d = json.loads(disc)
            assert d["dev"]["ids"] == [dev] and "not a medical device" in d["dev"]["mdl"]
            assert d["availability_topic"] == f"spasmwatch/{dev}/availability"
            cmps = d["cmps"]
            assert cmps["alert"]["p"] == "event"
            assert set(cmps["alert"]["event_types"]) >= {"alarm", "warning", "fault"}
            assert (cmps["alarm_active"]["p"], cmps["alarm_active"]["device_class"]) == (
                "binary_sensor", "problem")
            assert cmps["sensor_link"]["device_class"] == "connectivity"
            assert cmps["battery"]["unit_of_measurement"] == "mV"
            assert cmps["events_last_hour"]["p"] == "sensor"
            assert cmps["acknowledge"]["command_topic"] == f"spasmwatch/{dev}/command"
            assert len({c["unique_id"] for c in cmps.values()}) == len(cmps)
            await obs.wait_for(lambda t, p, r: t.endswith("/availability") and p == "online"
                               and r)
            await obs.wait_for(lambda t, p, r: t.endswith("/state") and r
                               and json.loads(p)["state"] == "ok")

            # An alarm: an event message with the why, and retained state alarm_active.
            for o in alarm_outputs():
                hub.handle(o)
            await hub.drain()
            _, ev, _ = await obs.wait_for(
                lambda t, p, r: t.endswith("/alert") and json.loads(p)["event_type"] == "alarm")
            e = json.loads(ev)
            assert "3 spasm-like movements" in e["message"]
            assert [x["seq"] for x in e["why"]["events"]] == [0, 1, 2]
            _, st, _ = await obs.wait_for(
                lambda t, p, r: t.endswith("/state") and json.loads(p)["alarm_active"])
            assert json.loads(st)["battery_mv"] == 3870
            assert json.loads(st)["events_last_hour"] == 3

            # Acknowledge from the command topic (as Home Assistant's button does).
            await obs.client.publish(f"spasmwatch/{dev}/command", "ack", qos=1)
            await obs.wait_for(lambda t, p, r: t.endswith("/command/result")
                               and p == "ok: acknowledged")
            # (Live messages reach existing subscribers without the retain flag.)
            await obs.wait_for(lambda t, p, r: t.endswith("/state")
                               and json.loads(p)["state"] == "ok" and json.loads(p)["alarm"])
            assert hub.sm.state == "ok"
            assert hub.transitions.memory[-1]["source"] == "mqtt"
            await obs.client.publish(f"spasmwatch/{dev}/command", "mute:15", qos=1)
            await obs.wait_for(lambda t, p, r: t.endswith("/state")
                               and json.loads(p)["state"] == "muted")
            async with observer(broker, f"spasmwatch/{dev}/state") as late:
                _, st, retained = await late.wait_for(lambda t, p, r: True)
                assert retained and json.loads(st)["state"] == "muted"
            await obs.client.publish(f"spasmwatch/{dev}/command", "reboot", qos=1)
            await obs.wait_for(lambda t, p, r: t.endswith("/command/result")
                               and p.startswith("error: unknown command 'reboot'"))

            # Home Assistant restarts: discovery is published again.
            before = ch.discovery_published
            await obs.client.publish("homeassistant/status", "online", qos=1)
            await obs.wait_for(lambda t, p, r: t == f"homeassistant/device/{dev}/config"
                               and not r)
            assert ch.discovery_published == before + 1

            # A clean stop says offline (a clean disconnect does not fire the Will).
            await hub.stop()
            await obs.wait_for(lambda t, p, r: t.endswith("/availability") and p == "offline")

    asyncio.run(run())


_CHILD = """
import asyncio, sys
from spasmwatch.host.alerts.channels.mqtt_ha import MqttHomeAssistant
from spasmwatch.host.settings import MqttSettings
async def main():
    ch = MqttHomeAssistant(MqttSettings(enabled=True, host="127.0.0.1", port=int(sys.argv[1]),
                                        device_id=sys.argv[2], keepalive_s=5))
    await ch.start()
    assert await ch.wait_connected(10)
    print("connected", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def test_last_will_marks_offline_when_the_host_dies(broker: int) -> None:
    dev = "nursery2"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(broker), dev],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "connected"

        async def run() -> None:
            async with observer(broker, f"spasmwatch/{dev}/availability") as obs:
                await obs.wait_for(lambda t, p, r: p == "online" and r)
                proc.kill()  # abrupt: no DISCONNECT packet, the broker sends the Will
                _, _, retained = await obs.wait_for(lambda t, p, r: p == "offline")
            # ... and it is retained for Home Assistant instances that connect later.
            async with observer(broker, f"spasmwatch/{dev}/availability") as late:
                await late.wait_for(lambda t, p, r: p == "offline" and r)

        asyncio.run(run())
    finally:
        proc.kill()
        proc.wait()


def test_send_while_broker_unreachable_is_a_failed_delivery() -> None:
    async def run() -> None:
        ch = MqttHomeAssistant(MqttSettings(enabled=True, host="127.0.0.1",
                                            port=_free_port(), device_id="x"))
        await ch.start()
        try:
            assert not await ch.wait_connected(0.5)
            with pytest.raises(DeliveryError, match="not connected to the MQTT broker"):
                await ch.send(Notice(T0, "alarm", "k", "t", "m"))
        finally:
            await ch.stop()

    asyncio.run(run())


# -- issue 15: what a real Home Assistant showed ------------------------------------------------

async def wait_until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition of this process's own objects (no message to wait on)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def status_output(eng: Engine, seq: int, t_s: float, received_at: float) -> StatusOutput:
    rec = (wire.KIND_STATUS, int(t_s * 1000), 3900, wire.ST_SENSOR_OK, 10, 80, 50, 4)
    outs = eng.feed_packet(wire.encode(seq, rec), received_at=received_at)
    return next(o for o in outs if isinstance(o, StatusOutput))


def write_config(path: Path, port: int, device_id: str) -> Path:
    path.write_text("[audio]\nenabled = false\n[webui]\nenabled = false\n"
                    f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
                    f'device_id = "{device_id}"\nkeepalive_s = 5\n')
    return path


async def alert_test_cli(config: Path, home: Path) -> tuple[int, str]:
    """``spasmwatch alert test`` in a process of its own, as a parent runs it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "spasmwatch", "alert", "test", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "HOME": str(home)})
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return int(proc.returncode or 0), out.decode()


def test_alert_test_beside_the_daemon_fires_no_will(broker: int, tmp_path: Path) -> None:
    """Issue 15 item 1: the daemon and ``alert test`` at once, each with its own client
    id; the test publishes only its event: no Will, no state, no ``offline``."""
    dev = "nursery3"
    config = write_config(tmp_path / "config.toml", broker, dev)

    async def run() -> None:
        hub = hub_for(broker, dev)
        await hub.start()
        ch = hub.channels["mqtt"]
        assert isinstance(ch, MqttHomeAssistant) and ch.client_id == f"spasmwatch-{dev}"
        try:
            assert await ch.wait_connected(10)
            async with observer(broker, f"spasmwatch/{dev}/#") as obs:
                await obs.wait_for(lambda t, p, r: t.endswith("/availability")
                                   and p == "online" and r)
                await obs.wait_for(lambda t, p, r: t.endswith("/state") and r)
                seen = len(obs.msgs)
                code, out = await alert_test_cli(config, tmp_path)
                assert code == 0, out
                assert re.search(r"^mqtt\s+delivered\s+published to spasmwatch/nursery3/alert$",
                                 out, re.M), out
                _, ev, _ = await obs.wait_for(lambda t, p, r: t.endswith("/alert"))
                assert json.loads(ev)["event_type"] == "test"
                # A self-check probe at the same time: its own id too, and it notices
                # that this device is already online.
                ok, line = await MqttHomeAssistant(ch.s).probe()
                assert ok and "reachable" in line and "already says online" in line, line
                # Let anything the broker would send on a dropped session arrive: a
                # marker published now comes after it.
                await obs.client.publish(f"spasmwatch/{dev}/marker", "end", qos=1)
                await obs.wait_for(lambda t, p, r: t.endswith("/marker"))
                during = obs.msgs[seen:]
                assert not [m for m in during if m[0].endswith("/availability")], during
                assert not [m for m in during if m[0].endswith("/state")], during
            assert ch.connected and ch.connections == 1  # never knocked off, never back
            async with observer(broker, f"spasmwatch/{dev}/availability") as late:
                await late.wait_for(lambda t, p, r: p == "online" and r)
        finally:
            await hub.stop()

    asyncio.run(run())


def test_alert_test_says_when_the_monitor_is_not_running(broker: int, tmp_path: Path) -> None:
    dev = "nursery4"
    config = write_config(tmp_path / "config.toml", broker, dev)

    async def run() -> None:
        async with aiomqtt.Client("127.0.0.1", broker, identifier="old-daemon-will") as c:
            await c.publish(f"spasmwatch/{dev}/availability", "offline", qos=1, retain=True)
        code, out = await alert_test_cli(config, tmp_path)
        assert code == 0, out
        assert "the monitor itself is not running" in out, out
        async with observer(broker, f"spasmwatch/{dev}/#") as late:
            _, p, r = await late.wait_for(lambda t, p, r: t.endswith("/availability"))
            assert p == "offline" and r  # the test did not claim the monitor is online
            await late.client.publish(f"spasmwatch/{dev}/marker", "end", qos=1)
            await late.wait_for(lambda t, p, r: t.endswith("/marker"))
            assert not [m for m in late.msgs if m[0].endswith("/state")]

    asyncio.run(run())


class CuttableLink:
    """A TCP relay between the daemon and the broker whose link can be cut: a network
    outage for the daemon alone, while the broker and the observers carry on."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = 0
        self.down = False
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        if self.down:
            w.close()
            return
        ur, uw = await asyncio.open_connection("127.0.0.1", self.target)
        self._writers += [w, uw]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(r, uw), pipe(ur, w))

    def cut(self) -> None:
        self.down = True
        for w in self._writers:
            w.close()  # the broker sees the socket close without DISCONNECT: Last Will
        self._writers.clear()

    def restore(self) -> None:
        self.down = False

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def test_outage_fault_raised_and_cleared_then_current_state_on_reconnect(broker: int) -> None:
    """Issue 15 item 2: while the daemon's link is down a fault is raised and cleared;
    on reconnection Home Assistant gets the current state (not the one before the outage),
    a summary of what it missed, and no stale ``delivery_failed_mqtt``."""
    dev = "nursery5"

    async def run() -> None:
        link = CuttableLink(broker)
        await link.start()
        hub = hub_for(link.port, dev)
        ch = hub.channels["mqtt"]
        assert isinstance(ch, MqttHomeAssistant)
        # The heartbeat is the engine's (one owner); the hub shows and delivers it.
        eng = MonitorEngine(t0=T0, heartbeat_s=30.0)
        eng.anchored = True
        await hub.start()
        try:
            assert await ch.wait_connected(10)
            hub.handle(status_output(eng, 0, 200, T0 + 201), now=T0 + 201)
            await hub.drain()
            async with observer(broker, f"spasmwatch/{dev}/#") as obs:
                await obs.wait_for(lambda t, p, r: t.endswith("/state")
                                   and json.loads(p)["sensor_link"])
                link.cut()
                await obs.wait_for(lambda t, p, r: t.endswith("/availability")
                                   and p == "offline")  # the broker fired the Will
                await wait_until(lambda: not ch.connected)

                # During the outage: the sensor goes silent (a fault) and comes back.
                for o in eng.tick(T0 + 260):
                    hub.handle(o, now=T0 + 260)
                hub.tick(now=T0 + 260)
                await hub.drain()
                assert {"heartbeat_timeout", "delivery_failed_mqtt"} <= set(hub.sm.faults)
                rec = (wire.KIND_STATUS, 270_000, 3900, wire.ST_SENSOR_OK, 10, 80, 50, 4)
                for o in eng.feed_packet(wire.encode(1, rec), received_at=T0 + 271):
                    hub.handle(o, now=T0 + 271)
                await hub.drain()
                assert set(hub.sm.faults) == {"delivery_failed_mqtt"}
                failed = [d for d in hub.deliveries.memory if d["channel"] == "mqtt"]
                assert failed and all(d["ok"] is False for d in failed)

                seen = len(obs.msgs)
                link.restore()
                _, ev, _ = await obs.wait_for(lambda t, p, r: t.endswith("/alert") and
                                              json.loads(p)["kind"] ==
                                              "missed_while_disconnected", timeout=15)
                # Published in order: online, then the current state, then the summary.
                back = obs.msgs[seen:]
                assert [p for t, p, _ in back if t.endswith("/availability")][0] == "online"
                first = next(json.loads(p) for t, p, _ in back if t.endswith("/state"))
                assert first["state"] == "ok" and first["faults"] == [], first
                assert first["sensor_link"] is True
                summary = json.loads(ev)
                assert summary["event_type"] == "info"  # nothing is wrong any more
                kinds = [m["kind"] for m in summary["missed"]]
                assert "heartbeat_timeout" in kinds and "fault_cleared" in kinds
                assert summary["missed_total"] == len(summary["missed"])
                assert "current state is 'ok'" in summary["message"]
                # Home Assistant comes back after us (a broker restart): it announces
                # itself and gets the summary once more; a later announcement does not.
                await obs.client.publish("homeassistant/status", "online", qos=1)
                _, again, _ = await obs.wait_for(lambda t, p, r: t.endswith("/alert") and
                                                 json.loads(p).get("resent") is True)
                assert {**summary, "resent": True} == json.loads(again)
                # The hub's delivery fault ended with the reconnection, and the notice
                # saying so went out on MQTT too.
                await hub.drain()
                assert hub.sm.faults == {}
                await obs.wait_for(lambda t, p, r: t.endswith("/alert") and
                                   "delivered via mqtt again" in json.loads(p)["message"])
                assert hub.deliveries.memory[-1]["ok"] is True
                # The daemon handles messages in order: the answer to a command sent after
                # the announcement comes after anything the announcement caused.
                await obs.client.publish("homeassistant/status", "online", qos=1)
                await obs.client.publish(f"spasmwatch/{dev}/command", "noop", qos=1)
                await obs.wait_for(lambda t, p, r: t.endswith("/command/result"))
                resent = [p for t, p, _ in obs.msgs if t.endswith("/alert")
                          and json.loads(p).get("resent")]
                assert len(resent) == 1
            async with observer(broker, f"spasmwatch/{dev}/state") as late:
                _, st, retained = await late.wait_for(lambda t, p, r: True)
                assert retained and json.loads(st)["faults"] == []
        finally:
            await hub.stop()
            await link.stop()

    asyncio.run(run())


def test_alarm_latched_during_outage_is_republished_and_summarised(broker: int) -> None:
    """An alarm raised while the link is down reaches Home Assistant on reconnection:
    as retained state (alarm_active) and as an ``alarm`` event summarising it."""
    dev = "nursery6"

    async def run() -> None:
        link = CuttableLink(broker)
        await link.start()
        hub = hub_for(link.port, dev)
        ch = hub.channels["mqtt"]
        assert isinstance(ch, MqttHomeAssistant)
        await hub.start()
        try:
            assert await ch.wait_connected(10)
            link.cut()
            await wait_until(lambda: not ch.connected)
            for o in alarm_outputs():
                hub.handle(o)
            await hub.drain()
            assert hub.sm.state == "alarm"
            async with observer(broker, f"spasmwatch/{dev}/#") as obs:
                link.restore()
                _, ev, _ = await obs.wait_for(lambda t, p, r: t.endswith("/alert") and
                                              json.loads(p)["kind"] ==
                                              "missed_while_disconnected", timeout=15)
                assert json.loads(ev)["event_type"] == "alarm"
            async with observer(broker, f"spasmwatch/{dev}/state") as late:
                _, st, retained = await late.wait_for(lambda t, p, r: True)
                s = json.loads(st)
                assert retained and s["alarm_active"] and s["state"] == "alarm"
                assert "3 spasm-like movements" in s["alarm"]["message"]
        finally:
            await hub.stop()
            await link.stop()

    asyncio.run(run())


def test_broker_restart_forgets_retained_and_the_daemon_republishes(tmp_path: Path) -> None:
    """A broker without persistence restarts: availability, discovery and the current
    state come back as retained messages, for a Home Assistant that connects later."""
    dev = "nursery7"
    port = _free_port()
    proc = start_mosquitto(tmp_path, port)

    async def run() -> None:
        nonlocal proc
        hub = hub_for(port, dev)
        ch = hub.channels["mqtt"]
        assert isinstance(ch, MqttHomeAssistant)
        await hub.start()
        try:
            assert await ch.wait_connected(10)
            hub.sm.set_condition("wrong_rate", True, T0 + 200, "test fault")
            await hub.drain()
            stop_mosquitto(proc)
            await wait_until(lambda: not ch.connected)
            proc = start_mosquitto(tmp_path, port)
            await wait_until(lambda: ch.connections == 2, timeout=20)
            async with observer(port, f"spasmwatch/{dev}/#", "homeassistant/#") as late:
                await late.wait_for(lambda t, p, r: t.endswith("/availability")
                                    and p == "online" and r)
                await late.wait_for(lambda t, p, r: t.endswith(f"device/{dev}/config") and r)
                _, st, _ = await late.wait_for(lambda t, p, r: t.endswith("/state") and r)
                assert [f["kind"] for f in json.loads(st)["faults"]] == ["wrong_rate"]
        finally:
            await hub.stop()

    try:
        asyncio.run(run())
    finally:
        stop_mosquitto(proc)


def _big_alarm_notice(n_events: int, n_samples: int, text: str) -> Notice:
    events = [{"seq": i, "t": T0 + i, "cls": "spasm_like", "state": "settling",
               "duration_s": 1.0, "peak_mg": 400, "tilt_mg": 120, "energy_mgs": 40,
               "excursion_mg": 150, "peaks": 7} for i in range(n_events)]
    snippet = {"t": T0, "t_end": T0 + 30, "alert_t": T0 + 5, "complete": True,
               "snippet_id": 1, "samples": [[i % 500, -i % 300, 1000] for i in
                                            range(n_samples)]}
    why = {"alert_t": T0, "cluster_id": 1, "event_seqs": list(range(n_events)),
           "events": events, "details": {"intervals_s": [8.0] * n_events, "note": text},
           "snippet": snippet}
    return Notice(T0, "alarm", "spasm_cluster", "spasmwatch ALARM: spasm-like movements",
                  text or "3 spasm-like movements", why, audible=True)


@settings(max_examples=40, deadline=None)
@given(n_events=st.integers(0, 300), n_samples=st.integers(0, 6000),
       text=st.text(max_size=30000))
def test_event_payload_stays_under_the_recorder_limit(n_events: int, n_samples: int,
                                                      text: str) -> None:
    """Issue 15 item 3, whatever the alert: the event's attributes (everything but
    ``event_type``) stay far below Home Assistant's 16384 bytes; no raw samples in them."""
    ch = MqttHomeAssistant(MqttSettings(enabled=True, device_id="x"))
    n = _big_alarm_notice(n_events, n_samples, text)
    payload = ch.event_payload(n)
    attrs = {k: v for k, v in payload.items() if k != "event_type"}
    assert len(json.dumps(payload).encode()) <= MAX_EVENT_BYTES < 16384
    assert len(json.dumps(attrs).encode()) < 16384
    assert "samples" not in json.dumps(attrs) or isinstance(
        attrs.get("why", {}).get("snippet", {}).get("samples"), int)
    assert payload["event_type"] == "alarm" and payload["kind"] == "spasm_cluster"
    faults = [{"kind": f"fault{i}", "message": text, "since": T0} for i in range(n_events // 30)]
    state = ch.state_payload({"state": "alarm", "alarm_active": True, "faults": faults,
                              "alarm": {"message": text, "why": n.why},
                              "warning": {"kind": "w", "message": text}})
    assert len(json.dumps(state).encode()) <= MAX_STATE_BYTES
    assert state["state"] == "alarm" and state["alarm_active"] is True
    assert state["alarm"]["message"][:100] == text[:100]
    assert [f["kind"] if isinstance(f, dict) else f for f in state["faults"]][-1:] == (
        [f"fault{len(faults) - 1}"] if faults else [])


def test_big_alarm_over_the_broker_snippet_on_its_own_topic(broker: int) -> None:
    """A 64-event alarm with a 3000-sample snippet (over 40 kB): the event stays small and
    points at ``alarm/snippet``, where the whole snippet is retained."""
    dev = "nursery8"

    async def run() -> None:
        hub = hub_for(broker, dev)
        ch = hub.channels["mqtt"]
        assert isinstance(ch, MqttHomeAssistant)
        await hub.start()
        try:
            assert await ch.wait_connected(10)
            notice = _big_alarm_notice(64, 3000, "")
            assert len(json.dumps(notice.to_dict()).encode()) > 44_000
            async with observer(broker, f"spasmwatch/{dev}/#") as obs:
                ch.snapshot = lambda: {"state": "alarm", "alarm_active": True, "faults": [],
                                       "alarm": {"message": "m", "why": notice.why}}
                assert (await ch.send(notice)).startswith("published")
                _, ev, _ = await obs.wait_for(lambda t, p, r: t.endswith("/alert"))
                assert len(ev.encode()) <= MAX_EVENT_BYTES
                e = json.loads(ev)
                assert e["why"]["snippet"] == {
                    "topic": f"spasmwatch/{dev}/alarm/snippet", "samples": 3000,
                    "snippet_id": 1, "complete": True, "t": T0, "t_end": T0 + 30}
                assert e["why"]["events_total"] == 64
                # The retained state came first and is small too.
                i_state = next(i for i, m in enumerate(obs.msgs) if m[0].endswith("/state")
                               and json.loads(m[1])["alarm_active"])
                i_alert = next(i for i, m in enumerate(obs.msgs) if m[0].endswith("/alert"))
                assert i_state < i_alert
                assert len(obs.msgs[i_state][1].encode()) <= MAX_STATE_BYTES
            async with observer(broker, f"spasmwatch/{dev}/alarm/snippet") as late:
                _, sn, retained = await late.wait_for(lambda t, p, r: True)
                assert retained and len(json.loads(sn)["samples"]) == 3000
        finally:
            await hub.stop()

    asyncio.run(run())


def test_probe_reachable_unreachable_and_missing_library(
        broker: int, monkeypatch: pytest.MonkeyPatch) -> None:
    async def run() -> None:
        ok, line = await MqttHomeAssistant(
            MqttSettings(enabled=True, host="127.0.0.1", port=broker, device_id="p1")).probe()
        assert ok and line == f"MQTT broker 127.0.0.1:{broker} reachable", line
        dead = _free_port()
        ok, line = await MqttHomeAssistant(
            MqttSettings(enabled=True, host="127.0.0.1", port=dead, device_id="p1")).probe(2)
        assert not ok and line.startswith(f"MQTT broker 127.0.0.1:{dead} not reachable: "), line
        assert "\n" not in line

        monkeypatch.setitem(sys.modules, "aiomqtt", None)  # import aiomqtt -> ImportError
        ch = MqttHomeAssistant(
            MqttSettings(enabled=True, host="127.0.0.1", port=broker, device_id="p1"))
        ok, line = await ch.probe()
        assert not ok and "missing optional library aiomqtt" in line
        await ch.start()
        with pytest.raises(DeliveryError, match="^missing optional library aiomqtt"):
            await ch.send(Notice(T0, "alarm", "k", "t", "m"))
        await ch.stop()

    asyncio.run(run())
