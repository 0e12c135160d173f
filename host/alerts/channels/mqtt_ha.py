"""Home Assistant through MQTT: device-based discovery, state, alert events, commands.

Topics (``B`` = ``<base_topic>/<device_id>``):

* ``<discovery_prefix>/device/<device_id>/config`` (retained): one device-based discovery
  message with the components: an ``event`` entity for alerts, binary sensors "alarm
  active" and "sensor link", sensors for state, sensor battery (mV) and events in the
  last hour, and buttons "acknowledge" and "mute 30 min";
* ``B/availability`` (retained): ``online`` while connected, ``offline`` on a clean stop
  and, through the broker's Last Will, when the host dies or loses the network;
* ``B/state`` (retained): the alarm state machine's snapshot as JSON, kept small. The
  current alarm, faults, warning and mute live here, so a Home Assistant that subscribes
  late (or misses an event) still shows them; the "State" sensor carries them as its
  attributes;
* ``B/alert``: one JSON message per notice, ``event_type`` = alarm|warning|fault|info|test.
  Home Assistant stores everything but ``event_type`` as the event entity's attributes
  and its recorder refuses attributes over 16 kB, so the payload is held under
  ``MAX_EVENT_BYTES`` whatever the alert (long lists are shortened, with counts);
* ``B/alarm/snippet`` (retained): the latest alarm's raw sensor snippet, which is too big
  for attributes; the alert and state name this topic instead of carrying the samples;
* ``B/command``: ``ack``, ``mute`` (30 min), ``mute:N``, ``unmute``, or JSON
  ``{"action": "mute", "minutes": N}``; answers go to ``B/command/result``.

Two kinds of client: the daemon (``role="daemon"``) keeps the stable client id
``spasmwatch-<device_id>``, owns availability (with the Last Will), discovery and state,
and takes commands. ``spasmwatch alert test`` (``role="tester"``) connects beside it with
its own id and publishes only its test event: no Will, no state, no availability, so it
never contradicts (or knocks off) a running daemon. ``probe()`` connects briefly with a
third id for the start-up self-check.

The daemon's connection is kept by a background task that reconnects with back-off. A
notice sent while disconnected is a failed delivery, and it is remembered. On every
(re)connection the daemon publishes availability and discovery, calls ``on_reconnect``
(the hub ends its ``delivery_failed_mqtt`` fault there, at once), then publishes the
*current* state (latched alarm and fault set as they are now) and one summary event of
what was missed (sent once more if Home Assistant announces itself within
``SUMMARY_RESEND_S``: after a broker restart it usually reconnects after us). A publish
gives up as soon as the link is known lost.
Discovery and state are also published again whenever Home Assistant announces itself
with ``online`` on ``<discovery_prefix>/status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from spasmwatch import __version__
from spasmwatch.host.alerts.alarm_state import ALARM, FAULT, STATES, Notice
from spasmwatch.host.alerts.channels.base import Channel, DeliveryError
from spasmwatch.host.backoff import Backoff
from spasmwatch.host.optional import MissingLibrary, require
from spasmwatch.host.settings import MqttSettings

log = logging.getLogger(__name__)

EVENT_TYPES = ["alarm", "warning", "fault", "info", "test"]
DEFAULT_MUTE_MIN = 30.0
DAEMON, TESTER = "daemon", "tester"
MISSING_AIOMQTT = "missing optional library aiomqtt (pip install aiomqtt)"

#: Home Assistant's recorder drops attributes over 16384 bytes; an alert event stays under
#: half of that, leaving room for the attributes Home Assistant adds itself.
MAX_EVENT_BYTES = 8192
MAX_STATE_BYTES = 8192
_EVENTS_SHOWN = 16  # movements listed in an alert event (the count says how many in all)
_TEXT_CHARS = 1500  # message/body kept in an event before shortening
_MISSED_KEPT = 50  # missed notices remembered while disconnected (the count is exact)
SUMMARY_RESEND_S = 600.0  # a summary is sent again if Home Assistant reconnects this soon

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


# -- keeping payloads small ------------------------------------------------------------------

def _size(obj: Any) -> int:
    return len(json.dumps(obj, default=str).encode())


def _shorten(text: Any, limit: int) -> str:
    s = str(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def snippet_ref(snippet: Any, topic: str) -> dict[str, Any]:
    """What an alert or state says about a raw snippet: where it is, not the samples."""
    ref: dict[str, Any] = {"topic": topic}
    if isinstance(snippet, dict):
        samples = snippet.get("samples")
        if isinstance(samples, list):
            ref["samples"] = len(samples)
        for k in ("snippet_id", "complete", "t", "t_end"):
            if k in snippet:
                ref[k] = snippet[k]
    return ref


def compact_why(why: dict[str, Any], snippet_topic: str,
                events_shown: int = _EVENTS_SHOWN) -> dict[str, Any]:
    """An alarm's "why" without the raw snippet and with at most ``events_shown`` movements."""
    out: dict[str, Any] = {}
    for k, v in why.items():
        if k == "snippet":
            out["snippet"] = snippet_ref(v, snippet_topic)
        elif k == "events" and isinstance(v, list):
            out["events"] = v[:events_shown]
            out["events_total"] = len(v)
        elif k == "event_seqs" and isinstance(v, list):
            out["event_seqs"] = v[:64]
        elif k == "details" and isinstance(v, dict):
            d = {dk: (snippet_ref(dv, snippet_topic) if dk == "snippet" else dv)
                 for dk, dv in v.items()}
            out["details"] = d if _size(d) <= 2048 else {"omitted": f"{_size(d)} bytes"}
        else:
            out[k] = v
    return out


def fit_event(payload: dict[str, Any], limit: int = MAX_EVENT_BYTES) -> dict[str, Any]:
    """``payload`` shortened step by step until its JSON is at most ``limit`` bytes."""
    p = dict(payload)
    for key in ("message", "body", "title"):
        if key in p:
            p[key] = _shorten(p[key], _TEXT_CHARS)

    def drop_why(key: str) -> None:
        if isinstance(p.get("why"), dict):  # a copy: the caller's dict stays as it was
            p["why"] = {k: v for k, v in p["why"].items() if k != key}

    def keep_only_the_essentials() -> None:
        for k in [k for k in p if k not in
                  ("event_type", "t", "level", "kind", "title", "message", "test")]:
            del p[k]

    steps: list[Callable[[], None]] = [
        lambda: p.__setitem__("body", _shorten(p["body"], 300)) if "body" in p else None,
        lambda: drop_why("events"),
        lambda: drop_why("details"),
        lambda: p.__setitem__("why", {"omitted": "too large; see the state topic"}),
        lambda: p.__setitem__("message", _shorten(p.get("message", ""), 300)),
        keep_only_the_essentials,
        lambda: p.update({k: _shorten(v, 200) for k, v in p.items() if isinstance(v, str)}),
    ]
    for step in steps:
        if _size(p) <= limit:
            break
        step()
    return p


# -- the channel --------------------------------------------------------------------------------

class MqttHomeAssistant(Channel):
    name = "mqtt"

    def __init__(
        self,
        s: MqttSettings,
        on_command: CommandHandler | None = None,
        snapshot: Callable[[], dict[str, Any]] | None = None,
        on_reconnect: Callable[[str], None] | None = None,
        role: str = DAEMON,
    ) -> None:
        if role not in (DAEMON, TESTER):
            raise ValueError(f"role must be {DAEMON!r} or {TESTER!r}, not {role!r}")
        self.s = s
        self.on_command = on_command
        self.snapshot = snapshot
        self.on_reconnect = on_reconnect
        self.role = role  # may be changed before start()
        b = f"{s.base_topic}/{s.device_id}"
        self.t_availability = f"{b}/availability"
        self.t_state = f"{b}/state"
        self.t_alert = f"{b}/alert"
        self.t_snippet = f"{b}/alarm/snippet"
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
        self.connections = 0  # successful connections so far (reconnections = this - 1)
        self.daemon_online: bool | None = None  # tester: what the daemon's availability says
        self._last_snapshot: dict[str, Any] | None = None
        self._state_key: str | None = None  # last state published (without its clock)
        self._snippet_key: str | None = None
        self._missed: deque[dict[str, Any]] = deque(maxlen=_MISSED_KEPT)
        self._missed_total = 0
        self._down_since: float | None = None
        self._lost = asyncio.Event()  # set when the current connection is gone
        self._summary: tuple[float, dict[str, Any]] | None = None  # last summary sent

    @property
    def client_id(self) -> str:
        """The daemon's id is stable (a reconnect replaces its own old session); any other
        client adds its role and process id so it never knocks the daemon off the broker."""
        base = f"spasmwatch-{self.s.device_id}"
        return base if self.role == DAEMON else f"{base}-{self.role}-{os.getpid()}"

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
                # The state's attributes: the latched alarm, the faults, the warning and
                # the mute, all retained, so no alarm lives only in an event.
                "state": cmp("sensor", "state", "State", state_topic=st, device_class="enum",
                             options=list(STATES), value_template="{{ value_json.state }}",
                             json_attributes_topic=st,
                             json_attributes_template=(
                                 "{{ {'alarm': value_json.alarm, 'faults': value_json.faults,"
                                 " 'warning': value_json.warning,"
                                 " 'muted_until': value_json.muted_until} | tojson }}")),
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

    # -- payloads --------------------------------------------------------------------------

    def event_payload(self, notice: Notice) -> dict[str, Any]:
        """The JSON of an alert event, under ``MAX_EVENT_BYTES`` whatever the notice."""
        d = notice.to_dict()
        d["why"] = compact_why(notice.why, self.t_snippet)
        return fit_event({"event_type": "test" if notice.test else notice.level, **d})

    def state_payload(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        """The snapshot without the raw snippet and long lists (under ``MAX_STATE_BYTES``)."""
        snap = dict(snapshot)
        alarm = snap.get("alarm")
        why = alarm.get("why") if isinstance(alarm, dict) else None
        for shown in (_EVENTS_SHOWN, 4, 0):
            if isinstance(alarm, dict) and isinstance(why, dict):
                snap["alarm"] = {**alarm, "why": compact_why(why, self.t_snippet, shown)}
            if _size(snap) <= MAX_STATE_BYTES:
                return snap
        # Still too big (hostile text somewhere): the essentials, texts shortened.
        def short(d: Any, keys: tuple[str, ...]) -> Any:
            if not isinstance(d, dict):
                return None
            return {k: _shorten(d[k], 300) if isinstance(d[k], str) else d[k]
                    for k in keys if k in d}

        faults = [short(f, ("kind", "message", "since", "acknowledged"))
                  for f in (snap.get("faults") or [])[-10:]]
        small = {k: snap[k] for k in ("state", "since", "alarm_active", "muted", "muted_until",
                                      "sensor_link", "last_data_age_s", "battery_mv",
                                      "events_last_hour", "now") if k in snap}
        small.update(alarm=short(alarm, ("kind", "message", "t", "since", "acknowledged",
                                         "repeats", "group")),
                     warning=short(snap.get("warning"), ("kind", "message")),
                     faults=faults, faults_total=len(snap.get("faults") or []))
        if _size(small) > MAX_STATE_BYTES:  # faults with hostile kinds: names only
            small["faults"] = [_shorten(f.get("kind"), 40) for f in faults if f]
        return small

    # -- connection ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        self._stopping = False
        try:
            import aiomqtt  # noqa: F401  (optional: only needed when [mqtt] is enabled)
        except ImportError:
            self.last_error = MISSING_AIOMQTT
            log.error("MQTT: %s", MISSING_AIOMQTT)
            return
        self._task = asyncio.create_task(self._run(), name=f"mqtt-ha-{self.role}")

    async def wait_connected(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self.connected

    async def stop(self) -> None:
        self._stopping = True
        client = self._client
        if client is not None and self.role == DAEMON:
            # A clean disconnect does not fire the Last Will: say offline ourselves.
            with contextlib.suppress(Exception):
                await client.publish(self.t_availability, "offline", qos=1, retain=True,
                                     timeout=2)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def check(self) -> tuple[bool, str]:
        """The start-up self-check: is the broker reachable (nothing is published)."""
        return await self.probe()

    async def probe(self, timeout: float = 5.0) -> tuple[bool, str]:
        """Connect briefly with a client id of its own: is the broker reachable? One line.

        Also says when the device's availability already reads ``online`` (another
        monitor running with the same device_id would fight this one for its client id).
        """
        where = f"MQTT broker {self.s.host}:{self.s.port}"
        try:
            import aiomqtt
        except ImportError:
            return False, f"{where}: {MISSING_AIOMQTT}"
        who = f" as {self.s.username}" if self.s.username else ""
        try:
            async with asyncio.timeout(timeout + 1):
                async with aiomqtt.Client(
                    self.s.host, self.s.port, username=self.s.username or None,
                    password=self.s.password or None,
                    identifier=f"spasmwatch-{self.s.device_id}-probe-{os.getpid()}",
                    timeout=timeout,
                ) as client:
                    online = await _retained(client, self.t_availability, timeout) == "online"
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            return False, f"{where} not reachable{who}: {exc or 'no answer'}"
        note = (f"; {self.t_availability} already says online (is another monitor running "
                f"with device_id {self.s.device_id!r}?)" if online and not self.connected
                else "")
        return True, f"{where} reachable{who}{note}"

    async def _run(self) -> None:
        try:
            aiomqtt = require("aiomqtt")
        except MissingLibrary as exc:  # no retrying: it will not appear by itself
            self.missing = self.last_error = str(exc)
            log.error("MQTT: %s", exc)
            return

        daemon = self.role == DAEMON
        backoff = Backoff(1.0, 30.0)
        while not self._stopping:
            delay = 1.0  # a session that ended by itself: reconnect soon
            try:
                async with aiomqtt.Client(
                    self.s.host, self.s.port,
                    username=self.s.username or None, password=self.s.password or None,
                    identifier=self.client_id, keepalive=self.s.keepalive_s, timeout=10,
                    will=aiomqtt.Will(self.t_availability, "offline", qos=1, retain=True)
                    if daemon else None,
                ) as client:
                    self._client = client
                    self._lost = asyncio.Event()
                    if daemon:
                        await self._daemon_session(client)
                    else:
                        avail = await _retained(client, self.t_availability, 5.0)
                        self.daemon_online = avail == "online"
                        self._connected.set()
                        self.last_error = ""
                        await self._listen(client)
            except aiomqtt.MqttError as exc:
                if self.connected:
                    backoff.reset()  # a working session was lost: the first retry is soon
                delay = backoff.next_delay()
                self.last_error = str(exc)
                log.warning("MQTT %s:%s: %s (retrying in %.0f s)", self.s.host, self.s.port,
                            exc, delay)
            except Exception as exc:  # a bug must not end the link for the rest of the night
                delay = backoff.next_delay()
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("MQTT session failed (retrying in %.0f s)", delay)
            finally:
                self._lost.set()
                if self._client is not None and self._down_since is None:
                    self._down_since = time.time()
                self._client = None
                self._connected.clear()
            if self._stopping:
                break
            await asyncio.sleep(delay)  # back-off between reconnects, not a test wait

    async def _daemon_session(self, client: Any) -> None:
        """Set up (``_on_connect``) while already listening: the listener is what notices
        a lost link (a publish would wait for its PUBACK until the timeout)."""
        listen = asyncio.create_task(self._listen(client))
        setup = asyncio.create_task(self._on_connect(client))
        try:
            await asyncio.wait({listen, setup}, return_when=asyncio.FIRST_EXCEPTION)
            if setup.done() and not setup.cancelled() and setup.exception() is not None:
                raise setup.exception()  # type: ignore[misc]
            await listen  # until the link is lost (MqttError) or the task is cancelled
        finally:
            for t in (setup, listen):
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    async def _listen(self, client: Any) -> None:
        try:
            async for msg in client.messages:
                await self._on_message(str(msg.topic), msg.payload)
        finally:
            self._lost.set()

    async def _publish(self, client: Any, topic: str, payload: str, retain: bool = False
                       ) -> None:
        """``client.publish`` (QoS 1) that gives up as soon as the link is known lost,
        rather than waiting for a PUBACK until the timeout."""
        import aiomqtt

        lost = self._lost
        pub = asyncio.ensure_future(client.publish(topic, payload, qos=1, retain=retain,
                                                   timeout=10))
        gone = asyncio.ensure_future(lost.wait())
        try:
            await asyncio.wait({pub, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not pub.done():
                pub.cancel()
        if pub.cancelled() or not pub.done():
            raise aiomqtt.MqttError("the connection to the broker was lost")
        pub.result()

    async def _on_connect(self, client: Any) -> None:
        """Everything Home Assistant needs after a (re)connection, current state first."""
        await client.subscribe(self.t_command, qos=1)
        await client.subscribe(self.t_ha_status, qos=1)
        await self._publish(client, self.t_availability, "online", retain=True)
        await self._publish_discovery(with_state=False)
        # The hub ends its delivery_failed_mqtt fault here, synchronously, so the state
        # published next is already the current one; "connected" is set in the same
        # step, so the notice that fault-clearing queues is not sent while still "down".
        if self.on_reconnect is not None:
            try:
                self.on_reconnect(self.name)
            except Exception:  # a bug there must not cut the link
                log.exception("MQTT: on_reconnect failed")
        self._connected.set()
        self.last_error = ""
        snap = self.snapshot() if self.snapshot is not None else self._last_snapshot
        if snap is not None:
            await self.publish_state(snap, force=True)
        await self._publish_missed(client)
        self.connections += 1

    async def _publish_discovery(self, with_state: bool = True) -> None:
        client = self._client
        if client is None:
            return
        await self._publish(client, self.t_discovery, json.dumps(self.discovery_payload()),
                            retain=True)
        self.discovery_published += 1
        snap = self.snapshot() if self.snapshot is not None else self._last_snapshot
        if with_state and snap is not None:
            await self.publish_state(snap, force=True)

    async def _publish_missed(self, client: Any) -> None:
        """One event summarising the notices that could not be sent while disconnected."""
        if not self._missed_total:
            self._down_since = None
            return
        missed, total = list(self._missed), self._missed_total
        snap = self.snapshot() if self.snapshot is not None else self._last_snapshot or {}
        current_faults = {f.get("kind") for f in snap.get("faults") or []}
        levels = [m["level"] for m in missed]
        if snap.get("alarm_active") and ALARM in levels:
            event_type = ALARM  # an alarm Home Assistant never heard of is still latched
        elif any(m["level"] == FAULT and m["kind"] in current_faults for m in missed):
            event_type = FAULT
        else:
            event_type = "info"
        counts = ", ".join(f"{levels.count(lv)} {lv}" for lv in EVENT_TYPES if lv in levels)
        since = self._down_since or (missed[0]["t"] if missed else time.time())
        message = (
            f"The link to Home Assistant (MQTT broker {self.s.host}:{self.s.port}) was down "
            f"from {time.strftime('%H:%M:%S', time.localtime(since))}; {total} notice(s) "
            f"could not be sent then ({counts}"
            + (f"; the last {len(missed)} are listed" if total > len(missed) else "")
            + f"). The monitor's current state is {snap.get('state', 'unknown')!r}.")
        payload = fit_event({
            "event_type": event_type, "t": time.time(), "level": event_type,
            "kind": "missed_while_disconnected", "title": "spasmwatch: missed notices",
            "message": message, "missed_total": total, "missed": missed,
            "state": snap.get("state"), "test": False,
        })
        try:
            await self._publish(client, self.t_alert, json.dumps(payload, default=str))
        except Exception as exc:  # kept for the next connection
            log.warning("MQTT: the summary of missed notices was not sent: %s", exc)
            return
        self._missed.clear()
        self._missed_total = 0
        self._down_since = None
        self._summary = (time.monotonic(), payload)

    async def _resend_summary(self) -> None:
        """Home Assistant has just (re)connected: after a broker restart it usually comes
        back later than we do and missed the summary (events are not retained). Send a
        recent summary once more, marked ``resent``."""
        if self._summary is None or self._client is None:
            return
        sent_at, payload = self._summary
        self._summary = None
        if time.monotonic() - sent_at > SUMMARY_RESEND_S:
            return
        with contextlib.suppress(Exception):
            await self._publish(self._client, self.t_alert,
                                json.dumps({**payload, "resent": True}, default=str))

    async def _on_message(self, topic: str, raw: Any) -> None:
        payload = raw.decode(errors="replace") if isinstance(raw, bytes | bytearray) else str(
            raw if raw is not None else "")
        if topic == self.t_ha_status:
            if payload.strip() == "online":  # Home Assistant (re)started or reconnected
                await self._publish_discovery()
                await self._resend_summary()
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
        except Exception as exc:  # the handler's bug: say so, keep listening
            log.exception("MQTT command %r failed", payload)
            answer = f"error: {type(exc).__name__}: {exc}"
        await self._publish(self._client, self.t_command_result, answer)

    # -- delivery ---------------------------------------------------------------------------

    def _remember_missed(self, notice: Notice) -> None:
        if notice.test:
            return
        if self._down_since is None:
            self._down_since = notice.t
        self._missed_total += 1
        self._missed.append({"t": notice.t, "level": notice.level, "kind": notice.kind,
                             "message": _shorten(notice.message, 200),
                             "repeat": notice.repeat})

    async def send(self, notice: Notice) -> str:
        client = self._client
        if self.missing:
            raise DeliveryError(self.missing)
        if client is None or not self.connected:
            self._remember_missed(notice)
            reason = f" ({self.last_error})" if self.last_error else ""
            if self.last_error == MISSING_AIOMQTT:
                raise DeliveryError(MISSING_AIOMQTT)
            raise DeliveryError(
                f"not connected to the MQTT broker {self.s.host}:{self.s.port}{reason}")
        if self.role == DAEMON and notice.level in (ALARM, FAULT) and self.snapshot is not None:
            # The retained state first: an alarm must never live only in an event.
            await self.publish_state(self.snapshot())
        payload = self.event_payload(notice)
        try:
            await self._publish(client, self.t_alert, json.dumps(payload, default=str))
        except Exception as exc:
            self._remember_missed(notice)
            raise DeliveryError(f"MQTT publish failed: {exc}") from None
        if self.role == TESTER and self.daemon_online is False:
            return (f"published to {self.t_alert}; the monitor itself is not running, so "
                    "Home Assistant shows it unavailable")
        return f"published to {self.t_alert}"

    async def publish_state(self, snapshot: dict[str, Any], force: bool = False) -> None:
        """Publish the retained state (and the alarm's snippet on its own topic).

        Only the daemon publishes state. Unchanged state is not sent again unless
        ``force``; a failed publish is retried on the next call or connection."""
        if self.role != DAEMON:
            return
        self._last_snapshot = snapshot
        client = self._client
        if client is None:
            self._state_key = None  # whatever was last sent is stale now
            return
        payload = self.state_payload(snapshot)
        key = json.dumps({k: v for k, v in payload.items()
                          if k not in ("now", "last_data_age_s")}, default=str, sort_keys=True)
        try:
            await self._publish_snippet(client, snapshot)
            if force or key != self._state_key:
                await self._publish(client, self.t_state, json.dumps(payload, default=str),
                                    retain=True)
                self._state_key = key
        except Exception as exc:
            self._state_key = None
            log.warning("MQTT: state not published (sent again on the next change or "
                        "reconnection): %s", exc)

    async def _publish_snippet(self, client: Any, snapshot: dict[str, Any]) -> None:
        alarm = snapshot.get("alarm")
        why = alarm.get("why") if isinstance(alarm, dict) else None
        snippet = why.get("snippet") if isinstance(why, dict) else None
        if snippet is None:
            return
        text = json.dumps(snippet, default=str)
        if text == self._snippet_key:
            return
        await self._publish(client, self.t_snippet, text, retain=True)
        self._snippet_key = text


async def _retained(client: Any, topic: str, timeout: float) -> str | None:
    """The retained payload on ``topic`` (None if there is none), without guessing a wait:
    after subscribing we publish a marker to a private topic; the broker delivers in
    order, so a retained message, if any, arrives before the marker."""
    # The marker lives beside ``topic`` so a broker ACL that lets us use one allows both.
    marker = f"{topic}/probe-{os.getpid()}-{time.monotonic_ns()}"
    await client.subscribe(topic, qos=1)
    await client.subscribe(marker, qos=1)
    await client.publish(marker, "x", qos=1)
    found: str | None = None
    with contextlib.suppress(TimeoutError):  # no marker back (ACL?): say what we saw
        async with asyncio.timeout(timeout):
            async for msg in client.messages:
                if str(msg.topic) == marker:
                    break
                if str(msg.topic) == topic:
                    raw = msg.payload
                    found = raw.decode(errors="replace") if isinstance(
                        raw, bytes | bytearray) else str(raw)
    await client.unsubscribe(topic)
    await client.unsubscribe(marker)
    return found
