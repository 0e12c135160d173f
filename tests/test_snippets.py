"""The raw snippet of an alarm: asked for over the link, collected, stored, reported.

End to end on the real firmware under MicroPython (virtual board, serial pty): the
alarm is emitted and stored first, then the daemon sends GET_SNIPPET, gathers the
KIND_SNIPPET packets, stores the snippet, emits ``{"type": "snippet"}`` (attached to
the latched alarm by the ``AlertHub``) and the report draws it. Loss on the link (some
snippet packets and the last one dropped) gives a partial snippet after the silence
timeout, and never holds up the alarm.
"""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Any

from spasmwatch.firmware import control, wire
from spasmwatch.host.alerts.delivery import AlertHub
from spasmwatch.host.cli.run import end_when_over
from spasmwatch.host.links.auth_link import AuthLink
from spasmwatch.host.links.serial_link import SerialLink
from spasmwatch.host.links.sim_link import SimulatedBoard
from spasmwatch.host.monitor.daemon import Daemon, DaemonConfig, MonitorEngine
from spasmwatch.host.monitor.store import Store
from spasmwatch.host.records.nights import find_nights
from spasmwatch.host.records.report import render_report
from spasmwatch.host.records.snippets import SnippetCollector, snippets_in
from spasmwatch.host.settings import Settings


class ProbedLink(SerialLink):
    """The ordinary serial link, noting control payloads and dropping chosen snippet
    packets (what a lossy radio would do)."""

    def __init__(self, port: str, drop: Any = None) -> None:
        super().__init__(port)
        self.controls: list[int] = []
        self.drop = drop  # (index, flags) -> True to lose that snippet packet
        self.dropped = 0

    async def send_control(self, payload: bytes) -> None:
        self.controls.append(payload[0])
        await super().send_control(payload)

    async def recv(self) -> bytes:
        while True:
            data = await super().recv()
            if self.drop is None or wire.peek_kind(data) != wire.KIND_SNIPPET:
                return data
            seq, rec = wire.decode(data, lambda b, t: True)  # a lossy radio reads, no key
            if not self.drop(seq, rec[5]):
                return data
            self.dropped += 1


def run_board(db: Path, drop: Any = None, cfg: DaemonConfig | None = None
              ) -> tuple[list[dict[str, Any]], list[ProbedLink], AlertHub]:
    """``spasm-cluster`` seed 1 on the virtual board, as fast as possible, to the end."""
    links: list[ProbedLink] = []
    outs: list[dict[str, Any]] = []
    with SimulatedBoard("spasm-cluster", seed=1, speed=0) as board:

        def connect() -> AuthLink:
            links.append(ProbedLink(board.port, drop))
            return AuthLink(links[-1], board.session())  # the board pairs itself

        async def body() -> AlertHub:
            with Store(db) as store:
                hub = AlertHub(Settings(), store, channels={}, web=False)
                eng = MonitorEngine(store=store, device="sim", verifier=board.session())
                daemon = Daemon(connect, eng, lambda o: None,
                                cfg or DaemonConfig(tick_s=0.1), hub=hub)

                def emit(o: dict[str, Any]) -> None:
                    outs.append(o)
                    end_when_over(daemon, board, o)

                daemon.emit = emit
                await asyncio.wait_for(daemon.run(), 60)
            return hub

        hub = asyncio.run(body())
    return outs, links, hub


def test_alarm_snippet_from_the_board_is_stored_attached_and_reported(tmp_path: Path) -> None:
    db = tmp_path / "night.db"
    outs, links, hub = run_board(db)
    kinds = [o["type"] for o in outs]
    alarms = [o for o in outs if o["type"] == "alert" and o["level"] == "alarm"]
    snips = [o for o in outs if o["type"] == "snippet"]
    assert len(alarms) == 1 and len(snips) == 1
    alarm, snip = alarms[0], snips[0]
    # Alerting first: the alarm was out (and stored: it has a row id) before the request.
    assert kinds.index("snippet") > outs.index(alarm)
    assert sum(ln.controls.count(control.GET_SNIPPET) for ln in links) == 1
    assert snip["alert_id"] == alarm["id"] and snip["alert_t"] == alarm["t"]
    assert snip["complete"] is True and snip["rate_hz"] == 50 and snip["range_g"] == 4
    # 30 s held by the board; it may skip a few of its oldest samples while sending.
    assert snip["expected"] == 1500 and 1400 <= snip["received"] == len(snip["samples"])
    assert abs((snip["t_end"] - snip["t"]) - (len(snip["samples"]) - 1) / 50) < 0.05
    # Samples are in g: about 1 g at rest, well above it in the alarm's last movement.
    mags = [(x * x + y * y + z * z) ** 0.5 for x, y, z in snip["samples"]]
    assert 0.95 < statistics.median(mags) < 1.05
    events = {o["seq"]: o for o in outs if o["type"] == "event"}
    last = events[alarm["event_seqs"][-1]]
    assert snip["t"] <= last["t"] <= snip["t_end"]
    i0 = round((last["t"] - snip["t"]) * 50)
    during = mags[i0: i0 + round(last["duration_s"] * 50) + 1]
    assert max(abs(m - 1.0) for m in during) > 0.3
    # The latched alarm carries it (page, MQTT, repeats).
    assert hub.sm.alarm is not None and hub.sm.alarm.why["snippet"]["alert_id"] == alarm["id"]
    # Stored, and drawn in the report with the alarm's events marked.
    with Store(db) as store:
        stored = snippets_in(store, 0, 2e10)
        assert len(stored) == 1 and stored[0].samples == snip["samples"]
        nights = find_nights(store)
    page = render_report(nights, [])
    assert page.count('<svg class="snippet"') == 1
    assert f'data-samples="{len(snip["samples"])}"' in page
    assert 'class="snippet-event alarm-event" ' in page
    assert "partial" not in page.split('<svg class="snippet"')[1].split("</svg>")[0]


def test_lost_snippet_packets_give_a_partial_snippet_after_the_alarm(tmp_path: Path) -> None:
    def lose(index: int, flags: int) -> bool:
        return index % 97 == 5 or bool(flags & wire.SNIP_LAST)

    outs, links, _ = run_board(tmp_path / "lossy.db", lose,
                               DaemonConfig(tick_s=0.1, snippet_silence_s=0.5))
    assert sum(ln.dropped for ln in links) >= 10
    alarms = [o for o in outs if o["type"] == "alert" and o["level"] == "alarm"]
    snips = [o for o in outs if o["type"] == "snippet"]
    assert len(alarms) == 1 and len(snips) == 1
    snip = snips[0]
    assert outs.index(snip) > outs.index(alarms[0])
    assert snip["complete"] is False
    assert snip["received"] == len(snip["samples"]) < snip["expected"] - 10
    assert [o["state"] for o in outs if o["type"] == "link"][-1] == "ended"
    with Store(tmp_path / "lossy.db") as store:
        (stored,) = snippets_in(store, 0, 2e10)
        assert stored.complete is False
        page = render_report(find_nights(store), [])
    assert "partial" in page.split('<svg class="snippet"')[1].split("</svg>")[0]


def _sample(i: int, flags: int = 0) -> tuple[Any, ...]:
    return (wire.KIND_SNIPPET, 1000 + 20 * i, 0, 0, 8192, flags)


def test_collector_queues_alarms_and_handles_refusal_and_silence() -> None:
    col = SnippetCollector(lambda ms: ms / 1000.0, "dev", silence_s=2.0)
    assert col.take_request(0.0) is None  # no alarm, no request
    col.note({"type": "status", "rate_hz": 25, "range_g": 8})
    col.note({"type": "alert", "level": "warning", "t": 1.0})
    col.note({"type": "alert", "level": "alarm", "t": 5.0, "id": 7})
    col.note({"type": "alert", "level": "alarm", "t": 9.0, "id": 8})
    assert col.take_request(10.0) == control.encode_get_snippet()
    assert col.take_request(10.0) is None  # one at a time
    # The board holds nothing yet (just booted): no snippet, the next alarm's turn.
    reply = (wire.KIND_REPLY, 0, control.GET_SNIPPET, control.RESULT_OK, 0)
    assert col.on_packet(reply, 0, 10.1) == [] and col.active is None and col.empty == 1
    assert col.take_request(11.0) is not None
    assert col.on_packet((wire.KIND_REPLY, 0, control.GET_SNIPPET, 0, 3), 0, 11.1) == []
    assert col.on_packet(_sample(0, wire.SNIP_FIRST), 0, 11.2) == []
    assert col.tick(12.0) == []  # not silent long enough
    (out,) = col.tick(13.3)  # the rest never came
    assert out["alert_id"] == 8 and out["complete"] is False and out["expected"] == 3
    assert out["rate_hz"] == 25 and out["range_g"] == 8
    assert out["samples"] == [[0.0, 0.0, 2.0]]  # 8192 counts at ±8 g = 2 g
    assert out["t"] == out["t_end"] == 1.0


def test_collector_completes_on_last_and_skips_nothing_in_between() -> None:
    col = SnippetCollector(lambda ms: ms / 1000.0)
    col.note({"type": "alert", "level": "alarm", "t": 5.0})
    col.take_request(5.0)
    # The board skipped its two oldest samples while sending: still complete.
    col.on_packet((wire.KIND_REPLY, 0, control.GET_SNIPPET, 0, 5), 0, 5.1)
    assert col.on_packet(_sample(2, wire.SNIP_FIRST), 2, 5.2) == []
    assert col.on_packet(_sample(3), 3, 5.2) == []
    (out,) = col.on_packet(_sample(4, wire.SNIP_LAST), 4, 5.3)
    assert out["complete"] is True and out["received"] == 3 and out["expected"] == 5
    assert out["t"] == 1.04 and out["t_end"] == 1.08
    # A gap in the middle is not complete.
    col.note({"type": "alert", "level": "alarm", "t": 6.0})
    col.take_request(6.0)
    col.on_packet(_sample(0, wire.SNIP_FIRST), 0, 6.1)
    (out,) = col.on_packet(_sample(2, wire.SNIP_LAST), 2, 6.2)
    assert out["complete"] is False and out["received"] == 2
    # Packets nobody asked for are ignored.
    assert col.on_packet(_sample(0, wire.SNIP_FIRST), 0, 7.0) == []
