"""``AlertHub``: the alarm state machine plus the channels it delivers to.

How the daemon uses it (all on one asyncio loop)::

    hub = AlertHub(load_settings(path), store)
    await hub.start()                   # channels (MQTT connection), web UI, delivery worker
    for out in engine.feed_packet(p):   # every Engine output dict, in order
        hub.handle(out)
    hub.tick()                          # about once a second (heartbeat, repeats, escalation)
    ...
    await hub.stop()

``handle``/``tick``/``ack``/``mute`` are synchronous and quick: they update the state and
queue notices; a background worker delivers them. Fan-out is layered: every channel of
the notice's groups is tried concurrently with its own timeout, so one failing or slow
channel never silences the others. Each outcome is written to ``alarm_deliveries``; a
failure of a confirming channel raises a ``delivery_failed_<channel>`` fault, delivered on
the channels that still work, and cleared by that channel's next success.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spasmwatch.host.alerts.alarm_state import AlarmStateMachine, Notice, TransitionLog
from spasmwatch.host.alerts.channels.base import Channel, DeliveryError, DeliveryResult
from spasmwatch.host.monitor.store import Store
from spasmwatch.host.settings import Settings

log = logging.getLogger(__name__)

HOST_BATTERY_EVERY_S = 60.0


class DeliveryLog:
    """Every delivery attempt: channel, notice, outcome."""

    def __init__(self, conn: sqlite3.Connection | None) -> None:
        self.conn = conn
        self.memory: list[dict[str, Any]] = []
        if conn is not None:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS alarm_deliveries (id INTEGER PRIMARY KEY,"
                " t REAL NOT NULL, channel TEXT NOT NULL, level TEXT NOT NULL,"
                " kind TEXT NOT NULL, repeat INTEGER NOT NULL, ok INTEGER,"
                " detail TEXT NOT NULL)")
            conn.commit()

    def add(self, t: float, n: Notice, r: DeliveryResult) -> None:
        self.memory.append({"t": t, "channel": r.channel, "level": n.level, "kind": n.kind,
                            "repeat": n.repeat, "ok": r.ok, "detail": r.detail})
        if self.conn is not None:
            self.conn.execute(
                "INSERT INTO alarm_deliveries (t, channel, level, kind, repeat, ok, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (t, r.channel, n.level, n.kind, n.repeat,
                 None if r.ok is None else int(r.ok), r.detail))
            self.conn.commit()


def read_host_battery(power_supply_dir: str | Path) -> tuple[int, bool] | None:
    """``(percent, discharging)`` of the host's battery from sysfs, or None (mains only)."""
    root = Path(power_supply_dir)
    if not root.is_dir():
        return None
    for dev in sorted(root.iterdir()):
        try:
            if (dev / "type").read_text().strip() != "Battery":
                continue
            pct = int((dev / "capacity").read_text().strip())
            status = (dev / "status").read_text().strip() if (dev / "status").exists() else ""
        except (OSError, ValueError):
            continue
        return pct, status == "Discharging"
    return None


def build_channels(
    settings: Settings, hub: AlertHub | None = None
) -> dict[str, Channel]:
    """The configured channels, by name (imports only what is used)."""
    chans: dict[str, Channel] = {}
    if settings.audio.enabled:
        from spasmwatch.host.alerts.channels.audio import AudioChannel

        chans["audio"] = AudioChannel(settings.audio)
    if settings.desktop.enabled:
        from spasmwatch.host.alerts.channels.desktop import DesktopChannel

        chans["desktop"] = DesktopChannel()
    for name in ("push", "call"):
        urls = getattr(settings, name).urls
        if urls:
            from spasmwatch.host.alerts.channels.apprise_channel import AppriseChannel

            chans[name] = AppriseChannel(name, urls)
    if settings.mqtt.enabled:
        from spasmwatch.host.alerts.channels.mqtt_ha import MqttHomeAssistant

        chans["mqtt"] = MqttHomeAssistant(
            settings.mqtt,
            on_command=hub.command if hub is not None else None,
            snapshot=hub.snapshot if hub is not None else None,
            on_reconnect=hub.link_restored if hub is not None else None,
        )
    return chans


class AlertHub:
    """Alarm state + delivery. See the module docstring for how a daemon drives it."""

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        channels: dict[str, Channel] | None = None,
        clock: Callable[[], float] = time.time,
        web: bool | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        conn = store.connection if store is not None else None
        self.transitions = TransitionLog(conn)
        self.deliveries = DeliveryLog(conn)
        self.sm = AlarmStateMachine(settings.monitor, settings.alarm, self.transitions,
                                    now=clock())
        self.channels = channels if channels is not None else build_channels(settings, self)
        self.web_enabled = settings.webui.enabled if web is None else web
        self.web: Any = None  # webui.WebUI once started
        self.results: list[tuple[Notice, list[DeliveryResult]]] = []  # recent, bounded
        self._pending: list[Notice] = []
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._published: str | None = None
        self._next_battery_check = 0.0

    # -- synchronous inputs (call from the loop's thread) -----------------------------------

    def handle(self, out: dict[str, Any], now: float | None = None) -> list[Notice]:
        """Feed one Engine output dict; returns (and queues) the notices it causes."""
        return self._queue(self.sm.on_output(out, self._now(now)))

    def tick(self, now: float | None = None) -> list[Notice]:
        """Time-based checks; call about once a second."""
        t = self._now(now)
        notices = self._host_battery(t)
        notices += self.sm.tick(t)
        return self._queue(notices)

    def ack(self, source: str = "api", now: float | None = None) -> bool:
        acted = self.sm.ack(self._now(now), source)
        for ch in self.channels.values():
            ch.silence()
        self._queue([])
        return acted

    def mute(self, minutes: float, source: str = "api", now: float | None = None) -> float | None:
        until = self.sm.mute(minutes, self._now(now), source)
        for ch in self.channels.values():
            ch.silence()
        self._queue([])
        return until

    def command(self, action: str, minutes: float | None, source: str) -> str:
        """A parent's command from MQTT or the web page; ValueError if not acceptable."""
        if action == "ack":
            return "acknowledged" if self.ack(source) else "nothing to acknowledge"
        if action == "mute":
            until = self.mute(minutes if minutes is not None else 30.0, source)
            return f"muted until {time.strftime('%H:%M', time.localtime(until or 0))}"
        if action == "unmute":
            self.mute(0, source)
            return "unmuted"
        raise ValueError(f"unknown action {action!r}")

    def link_restored(self, channel: str) -> None:
        """A channel's connection is back (it publishes the current state next): end its
        delivery fault now rather than at the next alert."""
        self._queue(self.sm.set_condition(
            f"delivery_failed_{channel}", False, self.clock(),
            f"Alerts are delivered via {channel} again."))

    def snapshot(self) -> dict[str, Any]:
        snap = self.sm.snapshot()
        snap["channels"] = sorted(self.channels)
        return snap

    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else now

    def _host_battery(self, now: float) -> list[Notice]:
        m = self.settings.monitor
        if m.host_battery_low_pct <= 0 or now < self._next_battery_check:
            return []
        self._next_battery_check = now + HOST_BATTERY_EVERY_S
        bat = read_host_battery(m.power_supply_dir)
        low = bat is not None and bat[1] and bat[0] < m.host_battery_low_pct
        pct = bat[0] if bat is not None else None
        return self.sm.set_condition(
            "host_battery_low", low, now,
            f"This computer is on battery at {pct}%: plug it in, or monitoring will stop."
            if low else "This computer's battery is no longer low.",
            {"percent": pct})

    def _queue(self, notices: list[Notice]) -> list[Notice]:
        self._pending.extend(notices)
        if self._wake is not None:
            self._wake.set()
        return notices

    # -- asynchronous side -----------------------------------------------------------------

    async def start(self) -> None:
        """Start the channels, the delivery worker and (if enabled) the web UI."""
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        for name, ch in self.channels.items():
            try:
                await ch.start()
            except Exception as exc:  # one channel must not keep the others down
                log.error("channel %s did not start: %s", name, exc)
        self._worker = asyncio.create_task(self._run(), name="alert-delivery")
        if self.web_enabled:
            from spasmwatch.host.alerts.webui import WebUI

            self.web = WebUI(self, self.settings.webui.host, self.settings.webui.port)
            await self.web.start()
        self._wake.set()

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``drain_timeout``), then stop everything."""
        if self._worker is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drain(), drain_timeout)
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self.web is not None:
            await self.web.stop()
            self.web = None
        for ch in self.channels.values():
            with contextlib.suppress(Exception):
                await ch.stop()

    async def drain(self) -> None:
        """Wait until every queued notice has been delivered (or has failed)."""
        if self._wake is None or self._idle is None:
            raise RuntimeError("AlertHub.start() first")
        while True:
            self._idle.clear()
            self._wake.set()
            await self._idle.wait()
            if not self._pending:
                return

    async def _run(self) -> None:
        assert self._wake is not None and self._idle is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                notice = self._pending.pop(0)
                try:
                    await self.deliver(notice)
                except Exception:  # never let one bad notice stop all delivery
                    log.exception("delivering %s failed", notice.kind)
            await self._publish_state()
            if not self._pending:
                self._idle.set()

    async def _publish_state(self) -> None:
        snap = self.snapshot()
        key = json.dumps({k: v for k, v in snap.items()
                          if k not in ("now", "last_data_age_s")}, default=str, sort_keys=True)
        if key == self._published:
            return
        self._published = key
        for ch in self.channels.values():
            with contextlib.suppress(Exception):
                await ch.publish_state(snap)

    def targets(self, notice: Notice) -> list[str]:
        """Channel names a notice goes to: its groups, minus exclusions and, unless
        audible, the audio channel."""
        if notice.test:
            names = list(self.channels)
        else:
            groups = self.settings.alarm.groups
            names = [n for g in groups[: notice.group + 1] for n in g if n in self.channels]
        return [n for n in names if n not in notice.exclude
                and (n != "audio" or notice.audible)]

    async def deliver(self, notice: Notice) -> list[DeliveryResult]:
        """Send one notice to its channels concurrently; record and react to failures."""
        names = self.targets(notice)
        timeout = self.settings.alarm.delivery_timeout_s
        results = await asyncio.gather(
            *(self._send_one(self.channels[n], notice, timeout) for n in names))
        now = self.clock()
        follow: list[Notice] = []
        for r in results:
            self.deliveries.add(now, notice, r)
            if notice.test or not self.channels[r.channel].confirms:
                continue
            key = f"delivery_failed_{r.channel}"
            if r.ok is False:
                follow += self.sm.set_condition(
                    key, True, now,
                    f"Alerts could not be delivered via {r.channel}: {r.detail}. The other "
                    "channels still work; fix this one (spasmwatch alert test).",
                    {"channel": r.channel, "error": r.detail},
                    exclude=frozenset({r.channel}))
            else:
                follow += self.sm.set_condition(
                    key, False, now, f"Alerts are delivered via {r.channel} again.")
        self.results = (self.results + [(notice, list(results))])[-100:]
        self._queue(follow)
        return list(results)

    @staticmethod
    async def _send_one(ch: Channel, notice: Notice, timeout: float) -> DeliveryResult:
        try:
            detail = await asyncio.wait_for(ch.send(notice), timeout)
        except DeliveryError as exc:
            return DeliveryResult(ch.name, False, str(exc))
        except TimeoutError:
            return DeliveryResult(ch.name, False, f"no answer within {timeout:g} s")
        except Exception as exc:  # a channel bug is still a failed delivery, not a crash
            return DeliveryResult(ch.name, False, f"{type(exc).__name__}: {exc}")
        return DeliveryResult(ch.name, True if ch.confirms else None, detail)

    async def test_all(self, wait_connect_s: float = 5.0) -> list[DeliveryResult]:
        """Fire a test alert on every configured channel; return each outcome."""
        for ch in self.channels.values():
            waiter = getattr(ch, "wait_connected", None)
            if waiter is not None:
                await waiter(wait_connect_s)
        notice = Notice(
            self.clock(), "info", "test", "spasmwatch test alert",
            "This is a test of spasmwatch's alert delivery. If you can read or hear this, "
            "this channel works. No action needed.", audible=True, test=True)
        return await self.deliver(notice)
