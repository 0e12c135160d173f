"""Home Assistant over MQTT against a real broker (Debian ``mosquitto``).

The fixture starts mosquitto on a free loopback port with a generated config and stops it
at the end. Every assertion is on what an independent MQTT client received from the
broker: discovery, retained state, alert events, command answers, the Last Will.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt
import pytest
from tooling import require_tool

from spasmwatch.firmware import wire
from spasmwatch.host.alerts.channels.base import DeliveryError
from spasmwatch.host.alerts.channels.mqtt_ha import MqttHomeAssistant, parse_command
from spasmwatch.host.alerts.delivery import AlertHub
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.settings import MqttSettings, settings_from_dict

T0 = 1_700_000_000.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    exe = require_tool("mosquitto", "apt-get install mosquitto (see .ci/run)",
                       "/usr/sbin/mosquitto")
    port = _free_port()
    conf = tmp_path_factory.mktemp("mosquitto") / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "log_dest stderr\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:  # readiness: poll until the port accepts connections
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"mosquitto did not start: {err}")
            time.sleep(0.02)
    yield port
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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


def alarm_outputs() -> list[dict[str, Any]]:
    eng = Engine(t0=T0)
    outs: list[dict[str, Any]] = []
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
            from spasmwatch.host.alerts.alarm_state import Notice

            with pytest.raises(DeliveryError, match="not connected to the MQTT broker"):
                await ch.send(Notice(T0, "alarm", "k", "t", "m"))
        finally:
            await ch.stop()

    asyncio.run(run())
