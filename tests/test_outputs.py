"""The typed output bus: every output is a record of its own type; JSON only at the edge,
with the same keys (and order) the ``--json`` lines, MQTT and the web page always had."""

from __future__ import annotations

import json
import typing

from spasmwatch.firmware import wire
from spasmwatch.host.daemon import MonitorEngine
from spasmwatch.host.monitor import outputs
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.outputs import (
    Alert,
    ChannelCheck,
    ClipSaved,
    Cluster,
    Delivery,
    EventOutput,
    Gap,
    LinkNote,
    Snippet,
    StatusOutput,
    SummaryOutput,
)
from spasmwatch.host.monitor.store import Store
from spasmwatch.simulator import scenarios
from spasmwatch.simulator.replay import iter_replay

T0 = 1_700_000_000.0
TYPE_OF = {EventOutput: "event", SummaryOutput: "summary", StatusOutput: "status",
           Cluster: "cluster", Alert: "alert", Gap: "gap", LinkNote: "link",
           ChannelCheck: "check", Delivery: "delivery", Snippet: "snippet",
           ClipSaved: "clip"}


def spasm(t_s: float) -> tuple:
    return (wire.KIND_EVENT, round(t_s * 1000), wire.CLS_SPASM_LIKE, wire.STATE_SETTLING, 1,
            1000, 400, 100, 40, 150, 7)


def test_the_bus_union_names_every_record_once() -> None:
    assert set(typing.get_args(outputs.Output)) == set(TYPE_OF)


def test_a_replayed_night_is_typed_records_with_their_json_type() -> None:
    trace, _ = scenarios.generate("mixed-night", 2, dropout_fraction=0.01)
    seen: set[str] = set()
    for _, o in iter_replay(trace, Engine(t0=float(trace.t[0]))):
        assert type(o) in TYPE_OF, o
        d = o.to_json()
        assert d["type"] == TYPE_OF[type(o)]
        assert json.loads(json.dumps(d)) == d  # JSON-ready
        seen.add(d["type"])
    assert {"event", "summary", "cluster", "alert", "gap"} <= seen  # no status in replay


def test_engine_records_keep_their_json_keys_in_order() -> None:
    eng = MonitorEngine(store=Store(":memory:"), t0=T0, heartbeat_s=30.0)
    eng.anchored = True
    outs = []
    for i, t in enumerate((100, 108, 116)):
        outs += eng.feed_packet(wire.encode(i, spasm(t)), received_at=T0 + t + 1)
    st = (wire.KIND_STATUS, 130_000, 3900, wire.ST_SENSOR_OK, 10, 80, 50, 4)
    su = (wire.KIND_SUMMARY, 140_000, 60, 5, 3, 3, 600, 12, 1)
    outs += eng.feed_packet(wire.encode(5, st), received_at=T0 + 131)  # 3, 4 missing
    outs += eng.feed_packet(wire.encode(6, su), received_at=T0 + 141)
    outs += eng.write_off([(3, 4)], "gone", T0 + 142)
    outs += eng.finish()
    first = {}
    for o in outs:
        first.setdefault((type(o), getattr(o, "level", None)), o.to_json())
    ev = first[(EventOutput, None)]
    assert list(ev) == ["seq", "t", "end", "cls", "state", "peaks", "duration_s", "peak_mg",
                        "energy_mgs", "tilt_mg", "excursion_mg", "still_s", "t_ms",
                        "received_at", "type", "device", "cluster_id"]
    assert list(first[(StatusOutput, None)]) == [
        "seq", "t", "battery_mv", "flags", "flags_raw", "buffer_pct", "heap_kb", "rate_hz",
        "range_g", "t_ms", "received_at", "type", "device"]
    assert list(first[(SummaryOutput, None)]) == [
        "seq", "t", "period_s", "active_s", "events", "spasm_like", "peak_mg", "mean_mg",
        "state", "t_ms", "received_at", "type", "device"]
    alarm = first[(Alert, "alarm")]
    assert list(alarm) == ["type", "t", "level", "kind", "message", "cluster_id",
                           "event_seqs", "details", "id"]  # stored: its row id last
    assert list(first[(Cluster, None)])[:4] == ["type", "id", "start", "end"]
    gap = first[(Gap, None)]
    assert list(gap) == ["type", "t", "start", "end", "lost", "device", "message"]
    assert gap["lost"] == 2


def test_the_other_records_json() -> None:
    host = Alert(1.0, "fault", "nobody_will_hear", "m", source="host", id=4).to_json()
    assert list(host)[-2:] == ["source", "id"] and host["source"] == "host"
    assert "source" not in Alert(1.0, "info", "x", "m").to_json()
    assert LinkNote(1.0, "lost", "gone", retry_s=0.5).to_json() == {
        "type": "link", "t": 1.0, "state": "lost", "message": "gone", "retry_s": 0.5}
    assert LinkNote(1.0, "connected", "hi", link="serial").to_json()["link"] == "serial"
    assert ChannelCheck(1.0, "audio", True, "ok").to_json() == {
        "type": "check", "t": 1.0, "channel": "audio", "ok": True, "message": "ok"}
    assert list(Delivery(1.0, "mqtt", False, "alarm", "k", 0, "x").to_json()) == [
        "type", "t", "channel", "ok", "level", "kind", "repeat", "detail"]
    snip = Snippet(1.0, 2.0, 3, 0.5, "d", 50, 4, 2, 2, 1, True, [[0.0, 0.0, 1.0], None])
    assert "snippet_id" not in snip.to_json()
    assert list(snip.stored(9).to_json())[-1] == "snippet_id"
    assert list(ClipSaved(1.0, 0.5, 0.0, 2.0, "a.mp4", 3).to_json()) == [
        "type", "t", "alert_t", "start", "end", "path", "clip_id"]
    trace_gap = Engine().trace_gap(5.0, 7.5).to_json()
    assert trace_gap == {"type": "gap", "t": 5.0, "start": 5.0, "end": 7.5,
                         "message": "trace has no samples for 2.5 s (held still)"}
