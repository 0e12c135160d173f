"""``AlertHub``: the alarm state machine plus the channels it delivers to.

How the daemon uses it (all on one asyncio loop)::

    hub = AlertHub(load_settings(path), store)
    await hub.start()                   # channels (MQTT connection), web UI, delivery worker
    for out in engine.feed_packet(p):   # every output record, in order
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
from spasmwatch.host.monitor.alerts import Alert
from spasmwatch.host.monitor.faults import FaultTracker
from spasmwatch.host.monitor.outputs import ChannelCheck, Delivery, Output
from spasmwatch.host.monitor.schema import ensure as ensure_schema
from spasmwatch.host.monitor.store import Store
from spasmwatch.host.settings import WAKING_CHANNELS, Settings

log = logging.getLogger(__name__)

HOST_BATTERY_EVERY_S = 60.0
RECHECK_EVERY_S = 60.0  # while nobody can hear an alarm, look again this often

#: What a failure on each channel means, in a parent's words (the tool's own error text
#: stays in the fault's details and the delivery log).
PLAIN_FAILURE = {
    "audio": "the alarm sound could not be played on this computer",
    "push": "the phone notification could not be sent",
    "call": "the phone call / SMS could not be placed",
    "mqtt": "Home Assistant could not be reached",
    "desktop": "the desktop notification could not be shown",
}


class DeliveryLog:
    """Every delivery attempt: channel, notice, outcome."""

    def __init__(self, conn: sqlite3.Connection | None) -> None:
        self.conn = conn
        self.memory: list[dict[str, Any]] = []
        if conn is not None:
            ensure_schema(conn)

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
        on_output: Callable[[Output], None] | None = None,
        device: str = "sensor",
        faults: FaultTracker | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        # Where the hub's own outputs go (host-side faults, delivery outcomes, the
        # start-up check): the terminal / --json in a running monitor.
        self.on_output = on_output
        self.store = store
        self.device = device
        self.checks: dict[str, tuple[bool, str]] = {}  # channel -> (works, one line)
        self._next_check: float | None = None
        self._checking: asyncio.Task[None] | None = None
        conn = store.connection if store is not None else None
        self.transitions = TransitionLog(conn)
        self.deliveries = DeliveryLog(conn)
        # ``faults``: the engine's tracker, so one owner knows every active fault.
        self.sm = AlarmStateMachine(settings.monitor, settings.alarm, self.transitions,
                                    now=clock(), faults=faults)
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

    def handle(self, out: Output, now: float | None = None) -> list[Notice]:
        """Feed one output record; returns (and queues) the notices it causes."""
        return self._queue(self.sm.on_output(out, self._now(now)))

    def tick(self, now: float | None = None) -> list[Notice]:
        """Time-based checks; call about once a second."""
        t = self._now(now)
        notices = self._host_battery(t)
        notices += self.sm.tick(t)
        if (self._next_check is not None and t >= self._next_check
                and (self._checking is None or self._checking.done())):
            self._next_check = None
            self._checking = asyncio.get_running_loop().create_task(self.self_check())
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
        for n in notices:
            if n.source == "host" and n.level in ("fault", "info"):
                self._record_host_fault(n)
        self._pending.extend(notices)
        if self._wake is not None:
            self._wake.set()
        return notices

    def _say(self, o: Output) -> None:
        if self.on_output is not None:
            try:
                self.on_output(o)
            except Exception:  # the terminal going away must not stop the alarms
                log.exception("showing %s failed", type(o).__name__)

    def _record_host_fault(self, n: Notice) -> None:
        """A fault found here (not by the engine): shown and kept in the night's record."""
        kind = n.kind
        details = dict(n.why.get("details") or {})
        if n.kind == "fault_cleared":
            details.setdefault("fault", n.why.get("fault"))
        # source "host": found by the alerting, not by the sensor's data
        alert = Alert(n.t, n.level, kind, n.message, details=details, source="host")
        if self.store is not None:
            try:
                alert.id = self.store.add_alert(alert, self.device)
                self.store.commit()
            except Exception as exc:  # a full disk: the engine raises the storage fault
                log.error("recording the %s fault failed: %s", kind, exc)
        self._say(alert)

    # -- the start-up self-check -------------------------------------------------------

    async def self_check(self) -> dict[str, tuple[bool, str]]:
        """Check every configured channel; say one plain line each; raise a fault when no
        channel that can wake someone works (and look again every ``RECHECK_EVERY_S``)."""
        from spasmwatch.host.settings import WAKING_CHANNELS

        results: dict[str, tuple[bool, str]] = {}
        for name, ch in self.channels.items():
            try:
                ok, line = await asyncio.wait_for(ch.check(),
                                                  self.settings.alarm.delivery_timeout_s)
            except TimeoutError:
                ok, line = False, "did not answer in time"
            except Exception as exc:  # a broken check is a failed channel, not a crash
                ok, line = False, f"check failed: {type(exc).__name__}: {exc}"
            results[name] = (ok, line)
            self._say(ChannelCheck(self.clock(), name, ok, line))
        self.checks = results
        waking = [n for n in WAKING_CHANNELS if results.get(n, (False, ""))[0]]
        now = self.clock()
        if waking:
            notices = self.sm.set_condition(
                "nobody_will_hear", False, now,
                "An alarm can be heard again via " + ", ".join(waking) + ".", source="host")
        else:
            why = "; ".join(f"{n}: {line}" for n, (ok, line) in results.items() if not ok)
            why = why or "no alert channel is configured"
            notices = self.sm.set_condition(
                "nobody_will_hear", True, now,
                f"Nobody will hear an alarm: {why}. Movements are still being monitored "
                "and recorded; fix the sound (spasmwatch alert test) or add a phone "
                "channel (docs/alerts.md).",
                {"channels": {n: line for n, (_, line) in results.items()}}, source="host")
            self._next_check = now + RECHECK_EVERY_S
        self._queue(notices)
        return results

    # -- asynchronous side -----------------------------------------------------------------

    async def start(self, check: bool = False) -> None:
        """Start the channels, the delivery worker and (if enabled) the web UI; with
        ``check``, run the start-up self-check (``self_check``)."""
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

            web = WebUI(self, self.settings.webui.host, self.settings.webui.port)
            try:
                await web.start()
                self.web = web
                self._say(ChannelCheck(self.clock(), "web page", True,
                                       f"status page at {web.url}"))
            except OSError as exc:  # a busy port: the alarms matter more than the page
                self._say(ChannelCheck(
                    self.clock(), "web page", False, f"could not start on "
                    f"{self.settings.webui.host}:{self.settings.webui.port}: "
                    f"{exc.strerror or exc}"))
        self._wake.set()
        if check:  # in the background: monitoring starts at once
            self._checking = asyncio.get_running_loop().create_task(self.self_check())

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``drain_timeout``), then stop everything."""
        if self._worker is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drain(), drain_timeout)
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._checking is not None:
            self._checking.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._checking
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
        failed_now = {r.channel for r in results if r.ok is False}
        for r in results:
            try:
                self.deliveries.add(now, notice, r)
            except Exception as exc:  # a full disk must not stop the delivery itself
                log.error("recording the delivery failed: %s", exc)
            if not notice.test and (notice.level in ("alarm", "fault") or r.ok is False):
                self._say(Delivery(now, r.channel, r.ok, notice.level, notice.kind,
                                   notice.repeat, r.detail))
            if notice.test or not self.channels[r.channel].confirms:
                continue
            key = f"delivery_failed_{r.channel}"
            plain = PLAIN_FAILURE.get(r.channel, f"{r.channel} failed")
            if r.ok is False:
                # Name what is left to wake someone, or say that nothing is.
                others = [n for n in self.channels if n in WAKING_CHANNELS
                          and n != r.channel and n not in failed_now]
                rest = (f"Alerts still go to: {', '.join(others)}" if others else
                        "No other channel is set up to wake anyone (add a phone channel: "
                        "docs/alerts.md)")
                follow += self.sm.set_condition(
                    key, True, now,
                    f"An alert could not be delivered: {plain}. {rest}; check this one "
                    "with `spasmwatch alert test`.",
                    {"channel": r.channel, "error": r.detail},
                    exclude=frozenset({r.channel}), source="host")
            else:
                follow += self.sm.set_condition(
                    key, False, now, f"Alerts are delivered via {r.channel} again.",
                    source="host")
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


def send_test_alerts(settings: Settings, skip: tuple[str, ...] = ()) -> list[DeliveryResult]:
    """Fire a test alert on every configured channel but ``skip``, with a hub of its own
    that can run beside a monitor (MQTT as a tester: its own client id, no Will, no
    state). Returns each channel's outcome; [] when none is configured."""
    from spasmwatch.host.alerts.channels.mqtt_ha import TESTER, MqttHomeAssistant

    hub = AlertHub(settings, store=None, web=False)
    for name in skip:
        hub.channels.pop(name, None)
    mqtt = hub.channels.get("mqtt")
    if isinstance(mqtt, MqttHomeAssistant):
        mqtt.role = TESTER
    if not hub.channels:
        return []

    async def run() -> list[DeliveryResult]:
        await hub.start()
        try:
            return await hub.test_all()
        finally:
            await hub.stop()

    return asyncio.run(run())
