"""The all-night host daemon: keep a link to the sensor up and feed the engine.

``Daemon.run()`` connects through any ``Link`` (serial, BLE, simulation), reconnects
with capped exponential backoff and jitter when it drops, asks the device to resend
packets the sequence numbers show are missing (``control.encode_resend``), time-stamps
records on the wall clock, and raises a ``heartbeat_timeout`` fault when no packet has
arrived for ``heartbeat_s`` (cleared by the next good packet). ``stop()`` ends it
cleanly from a signal handler: the link is closed and the store committed.

Persistence comes first: the ``Engine`` stores every record before it computes any
alert from it, and alerts are stored before they are emitted.

Time: the device stamps packets with milliseconds since boot. The first packet of a
fresh database fixes ``t0`` (the wall-clock time of device zero) from its receive time,
so every record's ``t`` is wall-clock seconds and ``t_ms`` keeps the device clock.
A restarted daemon recovers ``t0`` and the sequence state from the store
(``resume_from_store``), so resent packets land on the same rows and gaps left while it
was down are requested again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spasmwatch.firmware import config as fwconfig
from spasmwatch.firmware import control, wire
from spasmwatch.host.alerts.watchdog import Watchdog
from spasmwatch.host.backoff import Backoff
from spasmwatch.host.links.base import Link, LinkError, LinkLost
from spasmwatch.host.monitor.alerts import fmt_span
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.ingest import Packet
from spasmwatch.host.monitor.outputs import LinkNote, Output, Snippet
from spasmwatch.host.monitor.store import Store
from spasmwatch.host.records.snippets import SnippetCollector, add_snippet

__all__ = [
    "Backoff", "Backfill", "Daemon", "DaemonConfig", "MonitorEngine", "resume_from_store",
]

log = logging.getLogger("spasmwatch.daemon")

wire_seq_mod = 1 << 16  # stream sequence numbers are u16 and wrap

Emit = Callable[[Output], None]


@dataclass
class DaemonConfig:
    """Timing of the daemon; defaults suit a night on a real sensor."""

    tick_s: float = 1.0  # how often time-based checks run (heartbeat, cluster close, resend)
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    resend_retry_s: float = 5.0  # ask again for a range still missing after this long
    resend_attempts: int = 3  # then give up on it (the device's ring buffer moved on)
    max_ranges_per_request: int = 8
    set_time: bool = True  # send SET_TIME on connect (the device may log wall time)
    snippets: bool = True  # ask for the raw snippet of every alarm (GET_SNIPPET)
    snippet_silence_s: float = 3.0  # a snippet whose packets stop this long is partial

    def validate(self) -> None:
        if not self.tick_s > 0:
            raise ValueError("tick_s must be positive")
        if not 0 < self.backoff_initial_s <= self.backoff_max_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")
        if self.resend_retry_s <= 0 or self.resend_attempts < 1:
            raise ValueError("resend_retry_s must be positive, resend_attempts >= 1")


def link_problem(exc: BaseException) -> str:
    """One plain line for why a link could not be opened."""
    if isinstance(exc, LinkError):
        return str(exc)
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (FileNotFoundError, ConnectionRefusedError)) or "dbus" in text.lower():
        return ("Bluetooth is not available on this computer (is the bluetooth service "
                f"running? {text})")
    return text


class MonitorEngine(Engine):
    """The engine plus the daemon's heartbeat fault.

    The heartbeat is measured on *receive* time (``last_rx``), not on record time: a
    backfilled or long event carries an old onset time although the link is alive.
    """

    def __init__(self, *args: Any, heartbeat_s: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heartbeat_s = heartbeat_s
        self.last_rx: float | None = None  # receive time of the newest decodable packet
        self.watch_since: float | None = None  # when the daemon started expecting data
        self.anchored = False  # t0 (wall time of device zero) is fixed

    def expect_data(self, now: float) -> None:
        """Start the heartbeat clock (daemon start) if nothing has arrived yet."""
        if self.watch_since is None:
            self.watch_since = now

    def feed_decoded(self, pkt: Packet, received_at: float | None = None) -> list[Output]:
        if not self.anchored and received_at is not None and not pkt.out_of_band:
            self._anchor(pkt, received_at)
        errors_before = self.decode_errors
        out = super().feed_decoded(pkt, received_at)
        if received_at is not None and self.decode_errors == errors_before:
            self.last_rx = received_at
            out += self.set_fault("heartbeat_timeout", False, received_at,
                                  "Data from the sensor is arriving again.")
        return out

    def tick(self, now: float) -> list[Output]:
        out = super().tick(now)
        since = self.last_rx if self.last_rx is not None else self.watch_since
        if since is not None and now - since > self.heartbeat_s:
            out += self.set_fault(
                "heartbeat_timeout", True, now,
                f"No data from the sensor for {fmt_span(now - since)}: movements are NOT "
                "being monitored. Check that the sensor is on, charged and in range.",
                {"silent_s": round(now - since, 3), "limit_s": self.heartbeat_s},
            )
        return out

    def resume(self, recs: list[Any]) -> int:
        """Continue from stored stream records (a restarted monitor): their sequence
        numbers are replayed in arrival order, which rebuilds the set of missing ones too,
        and t0 is the one the rows were written with. Returns how many were used."""
        if not recs:
            return 0
        recs = sorted(recs, key=lambda r: (r.received_at if r.received_at is not None
                                           else r.t, r.t))[-self.ingest.seq.window:]
        for r in recs:
            self.ingest.seq.observe(r.seq, r.t_ms)
        last = recs[-1]
        # Same rounding as _anchor: recovers the t0 the rows were written with.
        self.ingest.clock.t0 = round(last.t - last.t_ms / 1000.0, 3)
        self.ingest.clock.to_host(last.t_ms)
        self.anchored = True
        self.now = max(self.now, last.t)
        return len(recs)

    def anchor_at(self, wall: float, device_ms: int) -> None:
        """Fix t0 so that device time ``device_ms`` is wall-clock time ``wall``."""
        self.set_t0(round(wall - device_ms / 1000.0, 3))
        self.anchored = True

    def _anchor(self, pkt: Packet, received_at: float) -> None:
        """Fix t0 from the first decodable packet: t0 = receive time - device send time.

        An event is sent when it ends, so its send time is onset + duration. Rounded to
        whole milliseconds so a restarted daemon can recover exactly the same t0.
        """
        rec = pkt.rec
        if rec[0] == wire.KIND_DETAIL:
            return  # a detail carries its event's onset, not its send time: anchor later
        send_ms = rec[1]
        if rec[0] == wire.KIND_EVENT:
            send_ms += rec[5]
        self.anchor_at(received_at, send_ms)


def resume_from_store(engine: MonitorEngine, store: Store, now: float,
                      lookback_s: float = 2 * 86400.0) -> int:
    """Restore t0 and the sequence state of ``engine.device`` from its recent records.

    Records are replayed into the sequence tracker in arrival order, which rebuilds the
    set of missing sequence numbers too, so a restarted daemon asks for the packets it
    never got. Returns how many records were used (0: nothing to resume).
    """
    since = now - lookback_s
    dev = engine.device
    recs: list[Any] = [
        *store.events(since=since, device=dev),
        *store.summaries(since=since, device=dev),
        *store.statuses(since=since, device=dev),
        *store.details(since=since, device=dev),
    ]
    return engine.resume(recs)


@dataclass
class _Request:
    first: int
    last: int
    sent_at: float
    attempts: int


@dataclass
class Backfill:
    """Decide which missing sequence ranges to ask the device for, and when.

    A range is requested once, asked again after ``retry_s`` if still (partly) missing,
    and given up after ``attempts`` tries. A range that shrinks while the resend streams
    in is covered by the request that contains it, so partial progress causes no storm of
    new requests.
    """

    retry_s: float = 5.0
    attempts: int = 3
    max_ranges: int = 8
    requests: list[_Request] = field(default_factory=list)
    requests_given_up: list[_Request] = field(default_factory=list)
    sent: int = 0
    given_up: int = 0

    def due(self, missing: list[tuple[int, int]], now: float,
            keep_others: bool = False) -> list[tuple[int, int]]:
        """The ranges to request now (each marked as sent).

        ``missing`` is normally every range still missing (requests outside it are then
        forgotten); with ``keep_others`` it is one extra range and the others stay.
        """
        out: list[tuple[int, int]] = []
        live: list[_Request] = [r for r in self.requests] if keep_others else []
        for first, last in missing:
            req = next((r for r in self.requests if r.first <= first and last <= r.last), None)
            if req is not None and (now - req.sent_at < self.retry_s
                                    or req.attempts >= self.attempts):
                if req not in live:
                    live.append(req)
                continue
            if len(out) >= self.max_ranges:
                continue
            attempts = req.attempts + 1 if req is not None else 1
            live.append(_Request(first, last, now, attempts))
            out.append((first, last))
        # Requests that no longer cover anything missing are forgotten; a range that was
        # asked for ``attempts`` times and is still missing is given up (still counted as
        # missing by the engine).
        self.given_up += sum(
            1 for r in live if r.attempts >= self.attempts and now - r.sent_at >= self.retry_s
            and r not in self.requests_given_up
        )
        self.requests_given_up = [
            r for r in live if r.attempts >= self.attempts and now - r.sent_at >= self.retry_s
        ]
        self.requests = live
        self.sent += len(out)
        return out

    def reconnected(self) -> None:
        """Requests sent on a link that dropped may never have arrived: start over."""
        self.requests.clear()


class Daemon:
    """Run one monitor: link -> engine -> outputs, all night."""

    def __init__(
        self,
        connect: Callable[[], Link],
        engine: MonitorEngine,
        emit: Emit,
        config: DaemonConfig | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        hub: Any = None,  # alert delivery: delivery.AlertHub (docs/alerts.md), optional
    ) -> None:
        self.config = config or DaemonConfig()
        self.config.validate()
        self.connect = connect
        self.engine = engine
        self.emit = emit
        self.clock = clock
        self.backoff = Backoff(self.config.backoff_initial_s, self.config.backoff_max_s, rng)
        self.backfill = Backfill(
            self.config.resend_retry_s, self.config.resend_attempts,
            self.config.max_ranges_per_request,
        )
        self.link: Link | None = None  # the connected link, if any
        self.connects = 0
        self.finished = False  # the data source ended for good (a simulation)
        self.replies = 0  # out-of-band packets (command replies, snippets) received
        self._set_time_sent_at: float | None = None
        self._first_contact = False  # the next reply asks for the device's whole ring
        # RESEND requests on this connection the device has not finished answering (it
        # replies to each when done); with ``_first_contact``: ``backfilling``.
        self.resends_outstanding = 0
        self._resend_sent_at = 0.0
        engine.defer_lost = True  # a gap is a fault only once a resend failed to fill it
        self._lost_seen_at: float | None = None
        self._main: asyncio.Task[None] | None = None
        self._stop_requested = False
        self.hub = hub
        self.watchdog = Watchdog()  # systemd Type=notify + WatchdogSec (no-op elsewhere)
        # Raw snippets of alarms (host/snippets.py): asked for after the alarm is out.
        self.snippets = SnippetCollector(
            engine.to_host_time, engine.device, self.config.snippet_silence_s)
        self.observers: list[Callable[[list[Output]], None]] = []  # e.g. the clipper
        self.tick_failures = 0

    # -- control -------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask ``run`` to end (signal-handler safe: only schedules a cancellation)."""
        self._stop_requested = True
        if self._main is not None:
            self._main.cancel()

    def end_of_data(self) -> None:
        """The data source has ended for good (a simulation): finish like a replay.

        The open cluster is closed (``engine.finish()``) instead of left to time out.
        """
        if not self.finished:
            self.finished = True
            self._link_note("ended", "the data source has ended")
        self.stop()

    async def run(self) -> int:
        """Monitor until ``stop()`` or the end of the data; returns an exit code (0)."""
        self.engine.expect_data(self.clock())
        if self.hub is not None:
            await self.hub.start(check=True)
        self.watchdog.ready()
        self._main = asyncio.create_task(self._connect_loop())
        ticker = asyncio.create_task(self._ticker())
        try:
            if not self._stop_requested:
                await self._main
        except asyncio.CancelledError:
            if not self._stop_requested:
                raise
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            self._shutdown()
            self.watchdog.stopping()
            if self.hub is not None:
                await self.hub.stop()
        return 0

    @property
    def backfilling(self) -> bool:
        """Packets may still be on their way: first contact or a RESEND not yet done.

        A missing *tail* is not counted by the sequence tracker until a later packet
        shows it, so "nothing missing" alone does not mean "everything arrived".
        """
        if self._first_contact:
            return True
        snippets = self.snippets
        if self.config.snippets and (snippets.active is not None or snippets.queue
                                     or snippets.capture is not None):
            # An alarm's snippet is still to come, also between two of its parts while
            # the cluster goes on (it ends by itself: cluster closed, silence, max span).
            return True
        # A reply can be lost (over BLE a busy notification is dropped; replies are not
        # kept in the device's ring), so a request counts only as long as the backfill
        # would keep asking for its range.
        patience = self.config.resend_retry_s * self.config.resend_attempts
        return (self.resends_outstanding > 0
                and self.clock() - self._resend_sent_at < patience)

    # -- internals -----------------------------------------------------------------------

    def _out(self, outs: list[Output]) -> None:
        """Hand outputs on: the alarm state first (what wakes someone), then the
        terminal, snippets and observers; a failure in one never skips the others."""
        for o in outs:
            if self.hub is not None:
                try:
                    self.hub.handle(o)
                except Exception:  # noqa: BLE001 - logged; the engine's alert still shows
                    log.exception("the alarm state could not take %s", type(o).__name__)
            try:
                self.emit(o)
            except Exception:  # noqa: BLE001 - a broken terminal must not stop alarms
                log.exception("showing %s failed", type(o).__name__)
            if self.config.snippets:
                self.snippets.note(o)
        for observe in self.observers:
            try:
                observe(outs)
            except Exception:  # noqa: BLE001
                log.exception("an observer failed")

    def _snippet_out(self, snips: list[Snippet]) -> None:
        """A finished snippet: stored first, then emitted (and attached to the alarm)."""
        store = self.engine.store
        outs: list[Output] = []
        for o in snips:
            if store is not None:
                try:
                    o = o.stored(add_snippet(store, o))
                except Exception as exc:  # noqa: BLE001 - never lose the output itself
                    log.error("storing the snippet failed: %s", exc)
            outs.append(o)
        self._out(outs)

    async def _ask_snippet(self, link: Link, now: float) -> None:
        """Send GET_SNIPPET when an alarm waits for one (after it was emitted)."""
        if not self.config.snippets:
            return
        payload = self.snippets.take_request(now)
        if payload is not None:
            log.info("asking for the raw snippet of the alarm")
            await link.send_control(payload)

    def _link_note(self, state: str, message: str, retry_s: float | None = None,
                   link: str | None = None) -> None:
        self.emit(LinkNote(self.clock(), state, message, retry_s=retry_s, link=link))

    async def _connect_loop(self) -> None:
        while True:
            try:
                link = self.connect()
                await link.open()
            except Exception as exc:  # noqa: BLE001 - no radio, no D-Bus: retry, never crash
                delay = self.backoff.next_delay()
                self._link_note("retry", f"cannot connect: {link_problem(exc)}; retrying in "
                                f"{delay:.1f} s", retry_s=round(delay, 3))
                await asyncio.sleep(delay)
                continue
            try:
                await self._session(link)
            except (LinkLost, LinkError, OSError) as exc:
                self._snippet_out(self.snippets.link_lost(self.clock()))
                delay = self.backoff.next_delay()
                self._link_note("lost", f"link lost: {exc}; reconnecting in {delay:.1f} s",
                                retry_s=round(delay, 3))
                await self._close(link)
                await asyncio.sleep(delay)
                continue
            except EOFError:
                self.finished = True
                self._link_note("ended", "the data source has ended")
                return
            finally:
                await self._close(link)

    async def _close(self, link: Link) -> None:
        self.link = None
        try:
            await link.close()
        except Exception as exc:  # noqa: BLE001 - closing a broken link must not kill us
            log.warning("closing %s: %s", link.name, exc)

    async def _session(self, link: Link) -> None:
        self.link = link
        self.connects += 1
        self._link_note("connected", f"connected over {link.name}", link=link.name)
        self.backfill.reconnected()
        self.resends_outstanding = 0  # replies to requests on the old link never come
        if self.connects == 1:
            # The daemon's first connection (a fresh start, or a restart after a crash or
            # a kill): ask for the device's whole ring. What is already stored comes
            # again as duplicates and is dropped; what a killed predecessor never got
            # (it may have died before its own first-contact backfill) is recovered.
            self._first_contact = True
        now = self.clock()
        if self.config.set_time:
            self._set_time_sent_at = now
            await link.send_control(control.encode_set_time(int(now)))
        # A ping makes the device answer at once, so a gap left by the drop is seen now
        # rather than at its next status packet.
        await link.send_control(control.encode_ping())
        await self._request_missing(link, now)
        good_before = self.engine.accepted
        while True:
            data = await link.recv()
            now = self.clock()
            pkt = self.engine.decode(data, received_at=now)  # the packet's one decode
            if pkt is None:  # counted with the other undecodable packets
                self._out(self.engine.rejected())
            elif pkt.out_of_band:
                await self._out_of_band(link, pkt, now)
                continue
            else:
                self._out(self.engine.feed_decoded(pkt, received_at=now))
            await self._ask_snippet(link, now)
            if self.engine.accepted != good_before:
                self.backoff.reset()  # the link works: the next drop starts from scratch
            if self.engine.missing:
                await self._request_missing(link, now)

    async def _out_of_band(self, link: Link, pkt: Packet, now: float) -> None:
        """Replies and snippets answer a command; they are not part of the stream."""
        eng = self.engine
        seq, rec = pkt.seq, pkt.rec
        self.replies += 1
        eng.last_rx = now  # proof of life, though not a record
        self._snippet_out(self.snippets.on_packet(rec, seq, now))
        if rec[0] != wire.KIND_REPLY:
            await self._ask_snippet(link, now)  # the next alarm's, if one waits
            return
        _, _, opcode, result, value = rec
        if opcode == control.SET_TIME and result == control.RESULT_OK and not eng.anchored:
            sent = self._set_time_sent_at if self._set_time_sent_at is not None else now
            # The device read its clock between our send and its reply: take the middle.
            eng.anchor_at((sent + now) / 2.0, value)
        if opcode == control.RESEND:
            # The device serves one RESEND at a time: a newer request replaces the one
            # under way, and only the one it finishes is answered.
            self.resends_outstanding = 0
        if opcode == control.RESEND and result == control.RESULT_GONE:
            # What is still missing of what we asked for will never come: a recorded gap.
            asked = [(a.first, a.last) for a in self.backfill.requests]
            gone = [(f, la) for f, la in eng.missing_ranges()
                    if any(a <= f and la <= b for a, b in asked)]
            self._link_note("backfill", "some packets asked for again had already left the "
                            "device's buffer: that stretch is recorded as a gap")
            self._out(eng.write_off(gone, "the sensor's buffer had already dropped them",
                                    now))
        # A reply carries the newest stream seq the device sent: a missing tail (the
        # last packets before a drop) shows up here before any new packet arrives.
        top = eng.seq_top
        if top is not None and not self._first_contact:
            ahead = (seq - top) % wire_seq_mod
            if 0 < ahead < wire_seq_mod // 2:
                await self._request_range(link, (top + 1) % wire_seq_mod, seq, now)
        if self._first_contact:
            self._first_contact = False
            if seq != wire_seq_mod - 1:
                # First contact with nothing stored: what the device sent before we
                # opened the port is gone from the wire (pyserial flushes its input on
                # open; a pty or USB CDC port drops unread bytes), so ask for all of its
                # ring; packets that did arrive come again as duplicates and are
                # dropped. (A reply with seq 0xFFFF: a fresh device has sent nothing.)
                first = max(0, seq - (fwconfig.RING_PACKETS - 1))
                await self._request_range(link, first, seq, now)

    async def _request_range(self, link: Link, first: int, last: int, now: float) -> None:
        for a, b in self.backfill.due([(first, last)], now, keep_others=True):
            log.info("asking for the missing tail %d..%d", a, b)
            await self._send_resend(link, a, b)

    async def _request_missing(self, link: Link, now: float) -> None:
        ranges = self.engine.missing_ranges() if self.engine.missing else []
        for first, last in self.backfill.due(ranges, now):
            log.info("asking for packets %d..%d again", first, last)
            await self._send_resend(link, first, last)
        given_up = [(r.first, r.last) for r in self.backfill.requests_given_up]
        if given_up:
            self._out(self.engine.write_off(
                given_up, f"asked for {self.backfill.attempts} times without an answer",
                now))

    async def _send_resend(self, link: Link, first: int, last: int) -> None:
        self.resends_outstanding += 1
        self._resend_sent_at = self.clock()
        await link.send_control(control.encode_resend(first, last))

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_s)
            now = self.clock()
            try:
                await self._tick_once(now)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad tick must not end the timers
                self.tick_failures += 1
                log.exception("a timer tick failed")
                self._tick_fault(now, exc)
            else:
                self._tick_fault(now, None)
            self.watchdog.ping()  # from the loop that does the work: a hang stops pings

    async def _tick_once(self, now: float) -> None:
        self._out(self.engine.tick(now))
        self._snippet_out(self.snippets.tick(now))
        if self.hub is not None:
            self.hub.tick(now)
        link = self.link
        try:
            if link is not None:
                await self._ask_snippet(link, now)
            if link is not None and self.engine.missing:
                await self._request_missing(link, now)
            self._confirm_lost(now)
        except LinkLost:
            pass  # the session notices and reconnects

    def _confirm_lost(self, now: float) -> None:
        """A gap becomes the ``packets_lost`` fault once it has outlived one resend
        (``resend_retry_s`` on the daemon's clock, also when the link is down)."""
        if not self.engine.lost_pending:
            self._lost_seen_at = None
        elif self._lost_seen_at is None:
            self._lost_seen_at = now
        elif now - self._lost_seen_at >= self.config.resend_retry_s:
            self._lost_seen_at = None
            self._out(self.engine.confirm_lost())

    def _tick_fault(self, now: float, exc: Exception | None) -> None:
        """A failing timer tick is a fault (heartbeat, repeats and escalation may be late)
        until a tick runs cleanly again; the timer loop itself never stops."""
        msg = ("The monitor's timer hit an internal error "
               f"({type(exc).__name__}: {exc}); it keeps running and retries every "
               "second, but reminders and the no-data check may be late."
               if exc is not None else "The monitor's timer runs normally again.")
        outs = self.engine.set_fault("timer_failed", exc is not None, now, msg,
                                     {"failures": self.tick_failures})
        if not outs:
            return
        try:
            self._out(outs)
        except Exception:  # noqa: BLE001
            log.exception("reporting the timer fault failed")

    def _shutdown(self) -> None:
        eng = self.engine
        self._snippet_out(self.snippets.link_lost(self.clock()))  # keep what arrived
        if self.finished:
            self._out(eng.finish())  # end of data: close the open cluster
        else:
            self._out(eng.tick(self.clock()))
        if eng.store is not None:
            eng.store.commit()
