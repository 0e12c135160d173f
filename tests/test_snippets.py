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

from bus import js

from spasmwatch.firmware import control, wire
from spasmwatch.host.alerts.delivery import AlertHub
from spasmwatch.host.compose import SimulationEnd
from spasmwatch.host.daemon import Daemon, DaemonConfig, MonitorEngine
from spasmwatch.host.links.auth_link import AuthLink
from spasmwatch.host.links.serial_link import SerialLink
from spasmwatch.host.links.sim_link import SimulatedBoard
from spasmwatch.host.monitor.outputs import (
    Alert,
    EventOutput,
    Output,
    StatusOutput,
    SummaryOutput,
)
from spasmwatch.host.monitor.records import Event, Status, Summary
from spasmwatch.host.monitor.store import Store
from spasmwatch.host.records.nights import find_nights
from spasmwatch.host.records.report import render_report
from spasmwatch.host.records.snippets import SnippetCollector, snippets_in
from spasmwatch.host.settings import Settings
from spasmwatch.simulator import scenarios
from spasmwatch.simulator.traceio import Trace


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


def cluster_window(start_s: float = 60.0, end_s: float = 250.0) -> Trace:
    """``spasm-cluster`` seed 1 from ``start_s`` to ``end_s``: settling, the whole
    cluster (125-166 s) and the minute after it, on a clock starting at 0."""
    trace, _ = scenarios.generate("spasm-cluster", seed=1)
    keep = (trace.t >= start_s) & (trace.t < end_s)
    return Trace(t=trace.t[keep] - trace.t[keep][0], acc=trace.acc[keep])


def run_board(db: Path, drop: Any = None, cfg: DaemonConfig | None = None,
              speed: float = 0, trace: Trace | None = None,
              ) -> tuple[list[dict[str, Any]], list[ProbedLink], AlertHub]:
    """``spasm-cluster`` seed 1 (or ``trace``) on the virtual board, to the end.

    At ``speed`` 0 the board runs as fast as it can (~300x here), ahead of the host: a
    host that falls behind by 10 s of data (30 ms of wall time at that pace) asks for
    the next part after the board has dropped the samples in between.
    """
    links: list[ProbedLink] = []
    outs: list[dict[str, Any]] = []
    with SimulatedBoard("spasm-cluster", seed=1, speed=speed, trace=trace) as board:

        def connect() -> AuthLink:
            links.append(ProbedLink(board.port, drop))
            return AuthLink(links[-1], board.session())  # the board pairs itself

        async def body() -> AlertHub:
            with Store(db) as store:
                hub = AlertHub(Settings(), store, channels={}, web=False)
                eng = MonitorEngine(store=store, device="sim", verifier=board.session())
                daemon = Daemon(connect, eng, lambda o: None,
                                cfg or DaemonConfig(tick_s=0.1), hub=hub)

                ender = SimulationEnd(board)

                def emit(o: Output) -> None:
                    outs.append(o.to_json())
                    ender.observe(daemon, o)

                daemon.emit = emit
                await asyncio.wait_for(daemon.run(), 60)
            return hub

        hub = asyncio.run(body())
    return outs, links, hub


def test_alarm_snippet_from_the_board_is_stored_attached_and_reported(tmp_path: Path) -> None:
    db = tmp_path / "night.db"
    # Paced at 10x, as a board is paced by its sensor: the host keeps the snippet
    # complete as long as it is less than 1 s of wall time behind (a loaded machine).
    outs, links, hub = run_board(db, speed=10, trace=cluster_window())
    kinds = [o["type"] for o in outs]
    alarms = [o for o in outs if o["type"] == "alert" and o["level"] == "alarm"]
    snips = [o for o in outs if o["type"] == "snippet"]
    assert len(alarms) == 1 and len(snips) == 1
    alarm, snip = alarms[0], snips[0]
    # Alerting first: the alarm was out (and stored: it has a row id) before the request.
    assert kinds.index("snippet") > outs.index(alarm)
    # One request per part: the 30 s before the alarm, then more while the cluster went on.
    assert sum(ln.controls.count(control.GET_SNIPPET) for ln in links) == snip["parts"] >= 2
    assert snip["alert_id"] == alarm["id"] and snip["alert_t"] == alarm["t"]
    holes = [i for i, v in enumerate(snip["samples"]) if v is None]
    assert snip["complete"] is True, (snip["parts"], snip["received"], snip["expected"],
                                      holes[:3], holes[-3:])
    assert snip["rate_hz"] == 50 and snip["range_g"] == 4
    assert snip["expected"] == snip["received"] == len(snip["samples"])
    assert abs((snip["t_end"] - snip["t"]) - (len(snip["samples"]) - 1) / 50) < 0.05
    # It covers the cluster: up to 30 s before the alarm (what the board holds when the
    # request reaches it: the board runs a little ahead of the host, and it may skip a
    # few of its oldest samples while sending) up to 10 s after the cluster's last
    # movement.
    [closed] = [o for o in outs if o["type"] == "alert" and o["kind"] == "cluster_closed"
                and o["cluster_id"] == alarm["cluster_id"]]
    cluster_end = closed["details"]["end"]
    assert alarm["t"] - 30.5 <= snip["t"] <= alarm["t"] - 20
    assert cluster_end + 9 <= snip["t_end"] <= cluster_end + 10.5
    assert cluster_end - alarm["t"] > 30  # the cluster went on well past the board's 30 s
    # Samples are x, y, z in g: about 1 g at rest, clearly off it in every spasm-like
    # movement of the cluster, after the alarm as well as before it.
    assert all(len(v) == 3 for v in snip["samples"])
    mags = [(x * x + y * y + z * z) ** 0.5 for x, y, z in snip["samples"]]
    assert 0.95 < statistics.median(mags) < 1.05
    spasms = [o for o in outs if o["type"] == "event" and o["cls"] == "spasm_like"
              and o["cluster_id"] == alarm["cluster_id"]]
    assert any(e["t"] > alarm["t"] for e in spasms)
    for e in spasms:
        assert snip["t"] <= e["t"] <= snip["t_end"]
        i0 = round((e["t"] - snip["t"]) * 50)
        during = mags[i0: i0 + round(e["duration_s"] * 50) + 1]
        assert max(abs(m - 1.0) for m in during) > 0.15, e  # rest: within ~0.02 g
    # every axis moves during the cluster (the sensor is not reduced to |a|)
    for k in range(3):
        axis = [v[k] for v in snip["samples"]]
        assert max(axis) - min(axis) > 0.2, k
    # The latched alarm carries it (page, MQTT, repeats).
    assert hub.sm.alarm is not None and hub.sm.alarm.why["snippet"]["alert_id"] == alarm["id"]
    # Stored, and drawn in the report with the alarm's events marked.
    with Store(db) as store:
        stored = snippets_in(store, 0, 2e10)
        assert len(stored) == 1 and stored[0].samples == snip["samples"]
        nights = find_nights(store)
    page = render_report(nights, [])
    assert page.count('<svg class="snippet"') == 1
    assert page.count(f'data-samples="{len(snip["samples"])}"') >= 3
    for axis in "xyz":
        assert f'data-axis="{axis}"' in page
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
    assert snip["expected"] == len(snip["samples"]) and snip["received"] <= snip["expected"]
    assert [o["state"] for o in outs if o["type"] == "link"][-1] == "ended"
    with Store(tmp_path / "lossy.db") as store:
        (stored,) = snippets_in(store, 0, 2e10)
        assert stored.complete is False
        page = render_report(find_nights(store), [])
    assert "partial" in page.split('<svg class="snippet"')[1].split("</svg>")[0]


def status_out(t: float = 0.0, rate_hz: int = 50, range_g: int = 4) -> StatusOutput:
    return StatusOutput(Status(seq=0, t=t, battery_mv=3900, flags=("sensor_ok",), flags_raw=1,
                               buffer_pct=10, heap_kb=80, rate_hz=rate_hz, range_g=range_g),
                        "dev")


def summary_out(t: float) -> SummaryOutput:
    return SummaryOutput(Summary(seq=0, t=t, period_s=60, active_s=5, events=1, spasm_like=1,
                                 peak_mg=600, mean_mg=12, state="settling"), "dev")


def event_out(t: float, cluster_id: int) -> EventOutput:
    return EventOutput(Event(seq=0, t=t, cls="spasm_like", state="settling", peaks=1,
                             duration_s=1.0, peak_mg=600, energy_mgs=150, tilt_mg=40,
                             excursion_mg=150, still_s=7), "dev", cluster_id)


def _sample(i: int, flags: int = 0) -> tuple[Any, ...]:
    return (wire.KIND_SNIPPET, 1000 + 20 * i, 0, 0, 8192, flags)


def test_collector_queues_alarms_and_handles_refusal_and_silence() -> None:
    col = SnippetCollector(lambda ms: ms / 1000.0, "dev", silence_s=2.0)
    assert col.take_request(0.0) is None  # no alarm, no request
    col.note(status_out(rate_hz=25, range_g=8))
    col.note(Alert(1.0, "warning", "spasm_pair", ""))
    col.note(Alert(5.0, "alarm", "spasm_cluster", "", id=7))
    col.note(Alert(9.0, "alarm", "spasm_cluster", "", id=8))
    assert col.take_request(10.0) == control.encode_get_snippet()
    assert col.take_request(10.0) is None  # one at a time
    # The board holds nothing yet (just booted): no snippet, the next alarm's turn.
    reply = (wire.KIND_REPLY, 0, control.GET_SNIPPET, control.RESULT_OK, 0)
    assert js(col.on_packet(reply, 0, 10.1)) == [] and col.active is None and col.empty == 1
    assert col.take_request(11.0) is not None
    assert js(col.on_packet((wire.KIND_REPLY, 0, control.GET_SNIPPET, 0, 3), 0, 11.1)) == []
    assert js(col.on_packet(_sample(0, wire.SNIP_FIRST), 0, 11.2)) == []
    assert js(col.tick(12.0)) == []  # not silent long enough
    (out,) = js(col.tick(13.3))  # the rest never came
    assert out["alert_id"] == 8 and out["complete"] is False and out["parts"] == 1
    assert out["rate_hz"] == 25 and out["range_g"] == 8
    assert out["samples"] == [[0.0, 0.0, 2.0]]  # 8192 counts at ±8 g = 2 g
    assert out["t"] == out["t_end"] == 1.0


def test_collector_completes_on_last_and_skips_nothing_in_between() -> None:
    col = SnippetCollector(lambda ms: ms / 1000.0)
    col.note(Alert(5.0, "alarm", "spasm_cluster", ""))
    col.take_request(5.0)
    # The board skipped its two oldest samples while sending: still complete.
    js(col.on_packet((wire.KIND_REPLY, 0, control.GET_SNIPPET, 0, 5), 0, 5.1))
    assert js(col.on_packet(_sample(2, wire.SNIP_FIRST), 2, 5.2)) == []
    assert js(col.on_packet(_sample(3), 3, 5.2)) == []
    (out,) = js(col.on_packet(_sample(4, wire.SNIP_LAST), 4, 5.3))
    assert out["complete"] is True and out["received"] == out["expected"] == 3
    assert out["t"] == 1.04 and out["t_end"] == 1.08
    # A gap in the middle is not complete.
    col.note(Alert(6.0, "alarm", "spasm_cluster", ""))
    col.take_request(6.0)
    js(col.on_packet(_sample(0, wire.SNIP_FIRST), 0, 6.1))
    (out,) = js(col.on_packet(_sample(2, wire.SNIP_LAST), 2, 6.2))
    assert out["complete"] is False and out["received"] == 2 and out["expected"] == 3
    assert out["samples"][1] is None  # the lost sample keeps its place on the time line
    # Packets nobody asked for are ignored.
    assert js(col.on_packet(_sample(0, wire.SNIP_FIRST), 0, 7.0)) == []


def _part(col: SnippetCollector, first: int, n: int, now: float,
          lose: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    """The board answers a GET_SNIPPET with samples ``first .. first + n - 1`` of its
    clock (20 ms apart), losing the ones at ``lose`` (indices within the part)."""
    js(col.on_packet((wire.KIND_REPLY, 0, control.GET_SNIPPET, 0, n), 0, now))
    outs: list[dict[str, Any]] = []
    for i in range(n):
        flags = (wire.SNIP_FIRST if i == 0 else 0) | (wire.SNIP_LAST if i == n - 1 else 0)
        if i not in lose:
            outs += js(col.on_packet(_sample(first + i, flags), i, now))
    return outs


def test_collector_follows_the_cluster_in_parts_and_joins_them() -> None:
    """Parts on the data's clock every ``follow_s`` while the cluster is open; joined on
    the sample grid (overlaps once, holes as None), trimmed after the cluster's end."""
    col = SnippetCollector(lambda ms: ms / 1000.0, follow_s=2.0, tail_s=0.5, silence_s=1.0)
    col.note(Alert(3.0, "alarm", "spasm_cluster", "", cluster_id=4, id=1))
    assert col.take_request(100.0) is not None  # the first part: what the board holds
    assert _part(col, 0, 150, 100.1) == []  # samples at 1.00 .. 3.98 s; the cluster goes on
    assert col.capture is not None and col.take_request(100.2) is None  # not due yet
    col.note(event_out(4.0, 4))
    assert col.take_request(100.3) is None
    col.note(summary_out(5.1))  # 2 s of data since the first request
    assert col.take_request(100.4) is not None
    # the second part overlaps the first (3.00 .. 5.98 s) and loses one packet
    assert _part(col, 100, 150, 100.5, lose=(60,)) == []
    # an alarm of the same cluster asks for nothing more
    col.note(Alert(5.5, "alarm", "spasm_cluster", "", cluster_id=4, id=2))
    assert col.queue == []
    col.note(status_out(t=7.2))
    assert col.take_request(100.6) is not None
    assert _part(col, 250, 100, 100.7) == []  # 6.00 .. 7.98 s
    # Closed: its last movement ended at 7.0 s; the parts reach 7.98 s, past the
    # 0.5 s tail: no last part, the snippet is out.
    col.note(Alert(9.0, "info", "cluster_closed", "", cluster_id=4, details={"end": 7.0}))
    assert col.take_request(100.8) is None
    (out,) = js(col.tick(100.9))
    assert out["alert_id"] == 1 and out["parts"] == 3
    assert out["t"] == 1.0 and out["t_end"] == 7.5  # trimmed to end + tail_s
    assert out["expected"] == len(out["samples"]) == 326
    # the packet lost in part 2 (sample 160, at 4.2 s) was not in part 1 either
    assert [i for i, v in enumerate(out["samples"]) if v is None] == [160]
    assert out["received"] == 325 and out["complete"] is False
    assert out["samples"][0] == [0.0, 0.0, 1.0]  # x, y, z in g (8192 counts at ±4 g)


def test_collector_asks_once_more_when_the_cluster_outlasts_the_parts() -> None:
    col = SnippetCollector(lambda ms: ms / 1000.0, follow_s=2.0, tail_s=0.5)
    col.note(Alert(3.0, "alarm", "spasm_cluster", "", cluster_id=4, id=1))
    col.take_request(10.0)
    _part(col, 0, 150, 10.1)
    # closed at once, but it ended at 4.5 s: the first part (asked at 3.0) misses its end
    col.note(Alert(5.0, "info", "cluster_closed", "", cluster_id=4, details={"end": 4.5}))
    assert col.take_request(10.2) is not None
    (out,) = _part(col, 100, 150, 10.3)
    assert out["parts"] == 2 and out["complete"] is True and out["t_end"] == 5.0


def test_another_clusters_alarm_ends_the_following_and_the_link_drop_keeps_what_came() -> None:
    col = SnippetCollector(lambda ms: ms / 1000.0, follow_s=2.0)
    col.note(Alert(3.0, "alarm", "spasm_cluster", "", cluster_id=4, id=1))
    col.take_request(10.0)
    _part(col, 0, 150, 10.1)
    col.note(Alert(30.0, "alarm", "spasm_cluster", "", cluster_id=5, id=2))
    (first,) = js(col.tick(10.2))
    assert first["alert_id"] == 1 and first["parts"] == 1
    assert col.take_request(10.3) is not None  # the new alarm's first part
    js(col.on_packet((wire.KIND_REPLY, 0, control.GET_SNIPPET, 0, 10), 0, 10.4))
    js(col.on_packet(_sample(1400, wire.SNIP_FIRST), 0, 10.4))
    (second,) = js(col.link_lost(10.5))
    assert second["alert_id"] == 2 and second["complete"] is False
    assert col.capture is None and col.active is None


def test_a_simulation_does_not_end_between_two_parts_of_a_snippet() -> None:
    """``SimulationEnd`` waits while ``backfilling``: a snippet that is following its
    cluster (one part in, the next not yet due) is still to come, or the end of a fast
    simulation cut it short (a partial snippet of 3 parts instead of 5)."""
    with Store(":memory:") as store:
        daemon = Daemon(lambda: None, MonitorEngine(store=store, device="sim"),
                        lambda o: None, DaemonConfig())
        daemon._first_contact = False  # connected, first contact answered
        col = daemon.snippets
        assert not daemon.backfilling
        col.note(Alert(3.0, "alarm", "spasm_cluster", "", cluster_id=4, id=1))
        assert daemon.backfilling  # queued
        assert col.take_request(10.0) is not None
        assert daemon.backfilling  # a part under way
        _part(col, 0, 150, 10.1)
        assert col.active is None and col.capture is not None  # between two parts
        assert daemon.backfilling
        col.note(Alert(5.0, "info", "cluster_closed", "", cluster_id=4,
                       details={"end": 3.5}))
        assert daemon.backfilling  # the last part, after the cluster's end, is due
        assert col.take_request(10.2) is not None
        (out,) = _part(col, 150, 150, 10.3)
        assert out["parts"] == 2
        assert col.capture is None and not daemon.backfilling  # the snippet is out
