"""Round 4: the detail record (direction of the tonic tilt, fails) from detector to evidence."""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np
import pytest

from spasmwatch.firmware import wire
from spasmwatch.firmware.config import DetectorConfig
from spasmwatch.firmware.detector import Detector
from spasmwatch.host.monitor.alerts import Alert, AlertConfig
from spasmwatch.host.monitor.cluster_evidence import (
    NO_AXIS,
    EvidenceConfig,
    chain_axis,
    chain_features,
    direction_consistency,
    matches_template,
    unit,
)
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.records import Detail, Event


def event_rec(t_s: float, cls: int = wire.CLS_SPASM_LIKE, peak: int = 600) -> tuple:
    return (wire.KIND_EVENT, round(t_s * 1000), cls, wire.STATE_SETTLING, 1, 1000, peak, 150,
            40, 240, 5)


def detail_rec(t_s: float, direction: tuple[int, int, int], fails: int = 0) -> tuple:
    return (wire.KIND_DETAIL, round(t_s * 1000), *direction, 15, 20, fails)


def packets(items: list[tuple[float, tuple[int, int, int] | None, int]]) -> list[bytes]:
    """(onset, direction or None for no detail, event class) -> the sensor's packets."""
    out: list[bytes] = []
    seq = 0
    for t, direction, cls in items:
        if direction is not None:
            out.append(wire.encode(seq, detail_rec(t, direction)))
        seq += 1  # a missing detail still used its sequence number (lost on the link)
        out.append(wire.encode(seq, event_rec(t, cls)))
        seq += 1
    return out


def alerts(pkts: list[bytes], cfg: AlertConfig | None = None) -> tuple[Engine, list[Any]]:
    eng = Engine(cfg or AlertConfig())
    out = [o for p in pkts for o in eng.feed_packet(p)] + eng.finish()
    return eng, [o.to_json() for o in out
                 if isinstance(o, Alert) and o.level in ("alarm", "warning")]


def spasm_burst(counts: array, start: int, sign: int, axis: int, rate: int) -> None:
    """A 1 s pitch-like tilt of the gravity vector (lift to ~35 deg and back) with a sharp
    onset, written into interleaved int16 counts (4 g range: 8192 counts per g)."""
    n = rate
    for i in range(n):
        s = np.sin(np.pi * min(1.0, i / (0.25 * n))) if i < 0.25 * n else np.sin(
            np.pi * (0.5 + 0.5 * (i - 0.25 * n) / (0.75 * n)))
        a = 0.55 * max(s, 0.0) * sign
        k = 3 * (start + i)
        counts[k + axis] = int(counts[k + axis] + 8192 * a)
        counts[k + 2] = int(8192 * np.cos(a))


def test_detector_sends_a_detail_before_each_event_with_its_direction() -> None:
    rate = 50
    n = rate * 60
    counts = array("h", [0, 0, 8192] * n)
    spasm_burst(counts, 30 * rate, +1, 0, rate)  # tilt toward +x
    spasm_burst(counts, 45 * rate, -1, 1, rate)  # tilt toward -y
    det = Detector(DetectorConfig())
    det.process(counts, n)
    recs = det.pop()
    kinds = [r[0] for r in recs if r[0] != wire.KIND_SUMMARY]
    assert kinds == [wire.KIND_DETAIL, wire.KIND_EVENT] * 2
    pairs = [(recs[i], recs[i + 1]) for i in range(len(recs) - 1)
             if recs[i][0] == wire.KIND_DETAIL]
    (d1, e1), (d2, e2) = pairs
    assert d1[1] == e1[1] and d2[1] == e2[1]  # the detail carries its event's onset
    assert d1[2] == 127 and abs(d1[3]) < 40  # mostly +x
    assert d2[3] == -127 and abs(d2[2]) < 40  # mostly -y
    for d, e in pairs:
        assert (d[7] == 0) == (e[2] == wire.CLS_SPASM_LIKE)  # no fails <=> spasm-like
    # Switched off, the detector sends the events alone (as rounds 1-3).
    det = Detector(DetectorConfig(send_detail=False))
    det.process(counts, n)
    assert wire.KIND_DETAIL not in [r[0] for r in det.pop()]


def test_direction_consistency_separates_a_stereotyped_chain_from_a_scatter() -> None:
    same_axis = [unit(v) for v in [(127, 10, 5), (120, -8, 0), (-127, 3, 9), (127, 0, -12)]]
    scatter = [unit(v) for v in [(127, 10, 5), (0, 127, 0), (5, -3, 127), (-90, 90, 0)]]
    ax_same, signed_same = direction_consistency(same_axis)  # type: ignore[arg-type]
    ax_scatter, _ = direction_consistency(scatter)  # type: ignore[arg-type]
    assert ax_same > 0.95 > 0.5 > ax_scatter
    assert signed_same > 0.9  # three of four the same way: the typical pair agrees in sign
    axis = chain_axis(same_axis)  # type: ignore[arg-type]
    assert axis is not None and abs(axis[0]) > 0.99
    assert direction_consistency(same_axis[:1]) == (NO_AXIS, -2.0)  # type: ignore[arg-type]


def _event(t: float, cls: str = "spasm_like", seq: int = 0) -> Event:
    return Event(seq=seq, t=t, cls=cls, state="settling", peaks=1, duration_s=1.0,
                 peak_mg=600, energy_mgs=150, tilt_mg=40, excursion_mg=240, still_s=5,
                 t_ms=round(t * 1000))


def test_features_use_details_and_ignore_members_without_one() -> None:
    members = [_event(100 + 8 * i, seq=2 * i + 1) for i in range(4)]
    dirs = {1: (127, 0, 0), 3: (-127, 5, 0), 5: None, 7: (120, 0, 9)}

    def detail_of(e: Event) -> Detail | None:
        d = dirs[e.seq]
        return None if d is None else Detail(e.seq - 1, e.t, d, 0.1, 0.4, (), e.t_ms)

    f = chain_features(members, 4, 0, detail_of)
    assert f.dir_axis > 0.95 and f.median_rise_s == pytest.approx(0.1)
    assert f.median_hold_frac == pytest.approx(0.4)
    assert chain_features(members, 4, 0).dir_axis == NO_AXIS  # no details at all


def test_a_candidate_off_the_chain_axis_is_not_reclassed() -> None:
    members = [_event(100 + 8 * i, seq=2 * i + 1) for i in range(2)]
    cand = _event(116, "movement", seq=5)
    dirs = {1: (127, 0, 0), 3: (127, 10, 0), 5: (0, 0, 127)}

    def detail_of(e: Event) -> Detail | None:
        return Detail(e.seq - 1, e.t, dirs[e.seq], 0.1, 0.4, (), e.t_ms)

    assert matches_template(cand, members, EvidenceConfig(), detail_of)  # no axis check
    assert not matches_template(cand, members, EvidenceConfig(match_min_axis_cos=0.7),
                                detail_of)
    dirs[5] = (-120, 4, 0)  # on the axis (the other way: an extensor among flexors)
    assert matches_template(cand, members, EvidenceConfig(match_min_axis_cos=0.7), detail_of)


def test_a_lost_detail_packet_leaves_its_event_intact() -> None:
    """The detail of the second spasm is lost: the event still counts, the chain alarms,
    and the link reports the loss; a detail never attaches to the wrong event."""
    items = [(100.0, (127, 0, 0), wire.CLS_SPASM_LIKE), (108.0, None, wire.CLS_SPASM_LIKE),
             (116.0, (126, 3, 0), wire.CLS_SPASM_LIKE), (124.0, (127, 0, 4), wire.CLS_SPASM_LIKE)]
    pkts = packets(items)
    eng, found = alerts(pkts, AlertConfig(evidence="count"))
    assert [a["level"] for a in found] == ["warning", "alarm"]
    assert eng.ingest.stats.lost == 1 and eng.decode_errors == 0
    spasms = eng.spasms
    with_detail = sorted(k[0] for k in spasms.details)
    assert with_detail == [1, 5, 7]  # the event whose detail was lost has none
    # A detail followed by an event of another onset (its own event lost) is dropped.
    eng2, _ = alerts([wire.encode(0, detail_rec(100.0, (127, 0, 0))),
                      wire.encode(2, event_rec(130.0))])
    assert eng2.spasms.details == {}


def test_an_old_sensor_without_details_still_alarms_on_evidence() -> None:
    pkts = [wire.encode(i, event_rec(100.0 + 8 * i)) for i in range(4)]  # no gaps, no details
    eng, found = alerts(pkts)
    assert "alarm" in [a["level"] for a in found]
    assert eng.spasms.details == {} and eng.ingest.stats.lost == 0
