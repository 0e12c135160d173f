"""Cluster-level evidence: features, re-classing a matching movement, evidence-gated alarms."""

from __future__ import annotations

from typing import Any

import pytest
from bus import js

from spasmwatch.firmware import wire
from spasmwatch.host.monitor import cluster_model
from spasmwatch.host.monitor.alerts import AlertConfig
from spasmwatch.host.monitor.cluster_evidence import (
    FEATURES,
    EvidenceConfig,
    chain_features,
    learned_score,
    matches_template,
    rule_score,
)
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.records import Event

SPASM = wire.CLS_SPASM_LIKE
MOVE = wire.CLS_MOVEMENT
JERK = wire.CLS_JERK


def rec(t_s: float, cls: int = SPASM, *, dur_ms: int = 1000, peaks: int = 1, peak: int = 600,
        energy: int = 150, tilt: int = 40, exc: int = 240, state: int = wire.STATE_SETTLING
        ) -> tuple:
    return (wire.KIND_EVENT, round(t_s * 1000), cls, state, peaks, dur_ms, peak, energy,
            tilt, exc, 5)


def ev(t_s: float, cls: str = "spasm_like", **kw: Any) -> Event:
    d = dict(seq=int(t_s), t=t_s, cls=cls, state="settling", peaks=1, duration_s=1.0,
             peak_mg=600, energy_mgs=150, tilt_mg=40, excursion_mg=240, still_s=5)
    d.update(kw)
    return Event(**d)


def run(cfg: AlertConfig, records: list[tuple]) -> list[dict[str, Any]]:
    eng = Engine(cfg)
    out = []
    for i, r in enumerate(records):
        out += js(eng.feed_packet(wire.encode(i, r)))
    return [o for o in out + js(eng.finish()) if o["type"] == "alert"]


def levels(alerts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(a["level"], a["kind"]) for a in alerts if a["kind"] != "cluster_closed"]


def test_features_of_a_stereotyped_regular_chain() -> None:
    members = [ev(100 + 8 * i) for i in range(4)]
    f = chain_features(members, n_spasm_like=4, others=0)
    assert f.n_members == 4 and f.peak_spread == 0 and f.dur_spread == 0
    assert f.interval_cv == 0 and f.median_interval_s == 8 and f.median_peaks == 1
    assert f.median_tilt_frac == pytest.approx(40 / 240)
    assert len(f.vector()) == len(FEATURES)
    assert rule_score(f) == 1.0


def test_irregular_many_peaked_awake_chain_has_no_evidence() -> None:
    # Fidgeting: 3 peaks each, energy spread through the event, awake, 5-40 s apart.
    members = [ev(t, peaks=3, energy_mgs=300, state="awake") for t in (100, 105, 145)]
    f = chain_features(members, n_spasm_like=3, others=6)
    assert rule_score(f) == 0.0


def test_a_movement_that_matches_its_neighbours_is_reclassed() -> None:
    cfg = EvidenceConfig()
    spasms = [ev(100), ev(108)]
    assert matches_template(ev(116, "movement", duration_s=1.2, peak_mg=500), spasms, cfg)
    # Too long, too strong, or a posture change (tilt kept): not a match.
    assert not matches_template(ev(116, "movement", duration_s=5.0), spasms, cfg)
    assert not matches_template(ev(116, "movement", peak_mg=2000), spasms, cfg)
    assert not matches_template(ev(116, "movement", tilt_mg=230), spasms, cfg)
    # One spasm-like event is no template.
    assert not matches_template(ev(116, "movement"), spasms[:1], cfg)


def test_reclassed_movement_completes_the_alarm_rule_count_does_not() -> None:
    # spasm, spasm-shaped movement (the detector merged or cut it), spasm, 8 s apart.
    records = [rec(100), rec(108, MOVE, dur_ms=1300, peaks=2), rec(116)]
    assert ("alarm", "spasm_cluster") not in levels(run(AlertConfig(evidence="count"),
                                                        records))
    alarms = [a for a in run(AlertConfig(evidence="rules"), records) if a["level"] == "alarm"]
    assert len(alarms) == 1
    d = alarms[0]["details"]
    assert d["n"] == 3 and d["n_spasm_like"] == 2 and len(d["reclassed_seqs"]) == 1
    assert "match the others" in alarms[0]["message"]
    assert alarms[0]["t"] == pytest.approx(117.0, abs=0.05)  # when the 3rd spasm ends


def test_fidget_like_chain_alarms_by_count_but_not_on_evidence() -> None:
    awake = wire.STATE_AWAKE
    records = [rec(t, peaks=3, energy=300, state=awake) for t in (100, 104, 140, 150)]
    assert ("alarm", "spasm_cluster") in levels(run(AlertConfig(evidence="count"), records))
    got = levels(run(AlertConfig(evidence="rules"), records))
    assert ("alarm", "spasm_cluster") not in got and ("warning", "spasm_pair") not in got


def test_jerk_burst_is_info_by_default_and_a_warning_on_request() -> None:
    jerks = [rec(50 + 2.2 * i, JERK, dur_ms=120) for i in range(10)]
    assert levels(run(AlertConfig(), jerks)) == [("info", "jerk_burst")]
    assert levels(run(AlertConfig(burst_level="warning"), jerks)) == [
        ("warning", "jerk_burst")]


def test_learned_model_is_plain_code_over_the_same_features() -> None:
    assert cluster_model.FEATURES == FEATURES
    stereo = chain_features([ev(100 + 7 * i) for i in range(4)], 4, 0)
    fidget = chain_features(
        [ev(t, peaks=3, energy_mgs=300, state="awake", tilt_mg=150) for t in (100, 104, 140)],
        3, 8)
    for f in (stereo, fidget):
        assert 0.0 <= learned_score(f) <= 1.0
    assert learned_score(stereo) > 0.5 > learned_score(fidget)


def test_config_rejects_unknown_modes() -> None:
    with pytest.raises(ValueError):
        AlertConfig(evidence="magic").validate()
    with pytest.raises(ValueError):
        AlertConfig(burst_level="alarm").validate()
