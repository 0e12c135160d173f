"""Home Assistant through MQTT: device-based discovery, state, alert events, commands.

Topics (``B`` = ``<base_topic>/<device_id>``):

* ``<discovery_prefix>/device/<device_id>/config`` (retained): one device-based discovery
  message with the components: an ``event`` entity for alerts, binary sensors "alarm
  active" and "sensor link", sensors for state, sensor battery (mV) and events in the
  last hour, and buttons "acknowledge" and "mute 30 min";
* ``B/availability`` (retained): ``online`` while connected, ``offline`` on a clean stop
  and, through the broker's Last Will, when the host dies or loses the network;
* ``B/state`` (retained): the alarm state machine's snapshot as JSON;
* ``B/alert``: one JSON message per notice, ``event_type`` = alarm|warning|fault|info|test;
* ``B/command``: ``ack``, ``mute`` (30 min), ``mute:N``, ``unmute``, or JSON
  ``{"action": "mute", "minutes": N}``; answers go to ``B/command/result``.

Discovery and state are published again whenever Home Assistant announces itself with
``online`` on ``<discovery_prefix>/status`` (it forgets non-retained entities on restart).
The connection is kept by a background task that reconnects with back-off; a notice sent
while disconnected is a failed delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from spasmwatch import __version__
from spasmwatch.host.alerts.alarm_state import STATES, Notice
from spasmwatch.host.alerts.channels.base import Channel, DeliveryError
from spasmwatch.host.optional import MissingLibrary, require
from spasmwatch.host.settings import MqttSettings

log = logging.getLogger(__name__)

EVENT_TYPES = ["alarm", "warning", "fault", "info", "test"]
DEFAULT_MUTE_MIN = 30.0

#: ``on_command(action, minutes, source)`` -> a one-line answer (raises ValueError if bad)
CommandHandler = Callable[[str, float | None, str], str]


def parse_command(payload: str) -> tuple[str, float | None]:
    """``(action, minutes)`` from a command payload; ValueError with a reason if bad."""
    text = payload.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"bad JSON command: {exc}") from None
        if not isinstance(obj, dict):
            raise ValueError("a JSON command must be an object")
        action, minutes = str(obj.get("action", "")).lower(), obj.get("minutes")
    else:
        action, _, arg = text.lower().partition(":")
        minutes = arg.strip() or None
    if action not in ("ack", "mute", "unmute"):
        raise ValueError(f"unknown command {action!r} (ack, mute[:minutes], unmute)")
    if action == "mute":
        try:
            return action, DEFAULT_MUTE_MIN if minutes is None else float(minutes)
        except (TypeError, ValueError):
            raise ValueError(f"mute minutes must be a number, not {minutes!r}") from None
    return action, None


class MqttHomeAssistant(Channel):
    name = "mqtt"

    def __init__(
        self,
        s: MqttSettings,
        on_command: CommandHandler | None = None,
        snapshot: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.s = s
        self.on_command = on_command
        self.snapshot = snapshot
        b = f"{s.base_topic}/{s.device_id}"
        self.t_availability = f"{b}/availability"
        self.t_state = f"{b}/state"
        self.t_alert = f"{b}/alert"
        self.t_command = f"{b}/command"
        self.t_command_result = f"{b}/command/result"
        self.t_discovery = f"{s.discovery_prefix}/device/{s.device_id}/config"
        self.t_ha_status = f"{s.discovery_prefix}/status"
        self._client: Any = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.last_error = ""
        self.missing = ""  # set when aiomqtt is not installed: said instead of "not connected"
        self.discovery_published = 0  # times, for status and tests

    # -- discovery -------------------------------------------------------------------------

    def discovery_payload(self) -> dict[str, Any]:
        did = self.s.device_id
        st = self.t_state

        def cmp(platform: str, key: str, name: str, **extra: Any) -> dict[str, Any]:
            return {"p": platform, "name": name, "unique_id": f"{did}_{key}", **extra}

        return {
            "dev": {"ids": [did], "name": "spasmwatch", "mf": "spasmwatch (open source)",
                    "mdl": "Sleep-sack movement monitor (monitoring aid, not a medical device)",
                    "sw": __version__},
            "o": {"name": "spasmwatch", "sw": __version__},
            "availability_topic": self.t_availability,
            "payload_available": "online",
            "payload_not_available": "offline",
            "qos": 1,
            "cmps": {
                "alert": cmp("event", "alert", "Alert", state_topic=self.t_alert,
                             event_types=EVENT_TYPES, icon="mdi:bell-alert"),
                "alarm_active": cmp(
                    "binary_sensor", "alarm_active", "Alarm active", state_topic=st,
                    device_class="problem",
                    value_template="{{ 'ON' if value_json.alarm_active else 'OFF' }}"),
                "sensor_link": cmp(
                    "binary_sensor", "sensor_link", "Sensor link", state_topic=st,
                    device_class="connectivity",
                    value_template="{{ 'ON' if value_json.sensor_link else 'OFF' }}"),
                "state": cmp("sensor", "state", "State", state_topic=st, device_class="enum",
                             options=list(STATES), value_template="{{ value_json.state }}"),
                "battery": cmp("sensor", "battery", "Sensor battery", state_topic=st,
                               device_class="voltage", unit_of_measurement="mV",
                               state_class="measurement",
                               value_template="{{ value_json.battery_mv }}"),
                "events_last_hour": cmp(
                    "sensor", "events_last_hour", "Movements in the last hour",
                    state_topic=st, state_class="measurement", unit_of_measurement="events",
                    value_template="{{ value_json.events_last_hour }}"),
                "acknowledge": cmp("button", "acknowledge", "Acknowledge",
                                   command_topic=self.t_command, payload_press="ack",
                                   icon="mdi:check"),
                "mute": cmp("button", "mute", f"Mute {DEFAULT_MUTE_MIN:.0f} min",
                            command_topic=self.t_command,
                            payload_press=f"mute:{DEFAULT_MUTE_MIN:.0f}",
                            icon="mdi:volume-off"),
            },
        }

    # -- connection ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="mqtt-ha")

    async def wait_connected(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self.connected

    async def stop(self) -> None:
        self._stopping = True
        client = self._client
        if client is not None:
            # A clean disconnect does not fire the Last Will: say offline ourselves.
            with contextlib.suppress(Exception):
                await client.publish(self.t_availability, "offline", qos=1, retain=True,
                                     timeout=2)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        try:
            aiomqtt = require("aiomqtt")
        except MissingLibrary as exc:  # no retrying: it will not appear by itself
            self.missing = self.last_error = str(exc)
            log.error("MQTT: %s", exc)
            return

        delay = 1.0
        while not self._stopping:
            try:
                async with aiomqtt.Client(
                    self.s.host, self.s.port,
                    username=self.s.username or None, password=self.s.password or None,
                    identifier=f"spasmwatch-{self.s.device_id}",
                    keepalive=self.s.keepalive_s, timeout=10,
                    will=aiomqtt.Will(self.t_availability, "offline", qos=1, retain=True),
                ) as client:
                    self._client = client
                    await client.subscribe(self.t_command, qos=1)
                    await client.subscribe(self.t_ha_status, qos=1)
                    await client.publish(self.t_availability, "online", qos=1, retain=True)
                    await self._publish_discovery()
                    self._connected.set()
                    self.last_error = ""
                    delay = 1.0
                    async for msg in client.messages:
                        await self._on_message(str(msg.topic), msg.payload)
            except aiomqtt.MqttError as exc:
                self.last_error = str(exc)
                log.warning("MQTT %s:%s: %s (retrying in %.0f s)", self.s.host, self.s.port,
                            exc, delay)
            finally:
                self._client = None
                self._connected.clear()
            if self._stopping:
                break
            await asyncio.sleep(delay)  # back-off between reconnects, not a test wait
            delay = min(delay * 2, 30.0)

    async def _publish_discovery(self) -> None:
        client = self._client
        if client is None:
            return
        await client.publish(self.t_discovery, json.dumps(self.discovery_payload()), qos=1,
                             retain=True)
        self.discovery_published += 1
        if self.snapshot is not None:
            await self.publish_state(self.snapshot())

    async def _on_message(self, topic: str, raw: Any) -> None:
        payload = raw.decode(errors="replace") if isinstance(raw, bytes | bytearray) else str(
            raw if raw is not None else "")
        if topic == self.t_ha_status:
            if payload.strip() == "online":  # Home Assistant (re)started
                await self._publish_discovery()
            return
        if topic != self.t_command or self._client is None:
            return
        try:
            action, minutes = parse_command(payload)
            if self.on_command is None:
                raise ValueError("commands are not handled here")
            answer = "ok: " + self.on_command(action, minutes, "mqtt")
        except ValueError as exc:
            answer = f"error: {exc}"
        await self._client.publish(self.t_command_result, answer, qos=1)

    # -- delivery ---------------------------------------------------------------------------

    async def send(self, notice: Notice) -> str:
        client = self._client
        if self.missing:
            raise DeliveryError(self.missing)
        if client is None or not self.connected:
            reason = f" ({self.last_error})" if self.last_error else ""
            raise DeliveryError(
                f"not connected to the MQTT broker {self.s.host}:{self.s.port}{reason}")
        payload = {"event_type": "test" if notice.test else notice.level, **notice.to_dict()}
        try:
            await client.publish(self.t_alert, json.dumps(payload, default=str), qos=1,
                                 timeout=10)
        except Exception as exc:
            raise DeliveryError(f"MQTT publish failed: {exc}") from None
        return f"published to {self.t_alert}"

    async def publish_state(self, snapshot: dict[str, Any]) -> None:
        client = self._client
        if client is None:
            return
        with contextlib.suppress(Exception):  # state is refreshed on the next change
            await client.publish(self.t_state, json.dumps(snapshot, default=str), qos=1,
                                 retain=True, timeout=10)
