"""Evaluation scoring: ground-truth clusters, matching alarms, false alarms, latency."""

from __future__ import annotations

from spasmwatch.host.evaluate import TraceScore, summarise, truth_clusters
from spasmwatch.simulator.traceio import Label


def _spasms(*starts: float) -> list[Label]:
    return [Label(s, s + 1.0, "spasm") for s in starts]


def test_truth_clusters_follow_the_alarm_rule() -> None:
    labels = _spasms(10, 20, 30, 200, 210, 400) + [Label(15, 15.2, "jerk")]
    groups = truth_clusters(labels, gap_s=60, min_spasms=1)
    assert [len(g.spasms) for g in groups] == [3, 2, 1]
    big = truth_clusters(labels, gap_s=60, min_spasms=3)
    assert len(big) == 1 and big[0].start == 10 and big[0].end == 31
    # A tighter gap splits the first group.
    assert [len(g.spasms) for g in truth_clusters(labels, gap_s=8.5, min_spasms=1)] == [
        1, 1, 1, 1, 1, 1
    ]


def test_summary_rates_and_medians() -> None:
    scores = [
        TraceScore("a", hours=2.0, clusters=2, detected=2, false_alarms=0,
                   latencies_s=[1.0, 3.0], spasms_elapsed=[3, 4], spasms=10, spasms_found=8,
                   replay_s=1.0),
        TraceScore("b", hours=3.0, clusters=1, detected=0, false_alarms=1, spasms=5,
                   spasms_found=1, replay_s=1.0),
    ]
    s = summarise(scores)
    assert s.cluster_sensitivity == round(2 / 3, 3)
    assert s.false_alarms_per_10h == 2.0
    assert s.median_latency_s == 2.0 and s.median_spasms_elapsed == 3.5
    assert s.event_recall == 0.6
    assert s.replay_speed_x == 9000.0
    assert s.missed == ["b"] and s.false_alarm_traces == ["b"]


def test_replay_output_does_not_depend_on_chunking() -> None:
    # Streaming replay (constant memory) gives the same outputs however the trace is cut.
    import json

    import numpy as np

    from spasmwatch.host.monitor.engine import Engine
    from spasmwatch.simulator import scenarios
    from spasmwatch.simulator.replay import CHUNK_ROWS, iter_replay, iter_replay_chunks

    trace, _ = scenarios.generate("mixed-night", 2, dropout_fraction=0.01)
    assert len(trace.t) > 2 * CHUNK_ROWS  # more than one chunk after the head
    whole = [json.dumps(o.to_json()) for _, o in iter_replay(trace, Engine(t0=float(trace.t[0])))]
    rng = np.random.default_rng(1)
    cuts = np.sort(rng.choice(np.arange(1, len(trace.t)), 40, replace=False))
    bounds = [0, *cuts.tolist(), len(trace.t)]
    chunks = ((trace.t[a:b], trace.acc[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True))
    cut = [json.dumps(o.to_json())
           for _, o in iter_replay_chunks(chunks, Engine(t0=float(trace.t[0])))]
    assert cut == whole
    assert any('"type": "event"' in o for o in whole)


def test_packet_cache_gives_the_same_scores(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    from spasmwatch.host.evaluate import evaluate_folder
    from spasmwatch.host.monitor.alerts import AlertConfig
    from spasmwatch.simulator.scenarios import simulate_to_dir

    data = Path(tmp_path) / "d"
    simulate_to_dir("spasm-cluster", data, seed=3, rate_hz=50.0, duration_s=300)
    simulate_to_dir("hiccups", data, seed=3, rate_hz=50.0, duration_s=300)
    cache = Path(tmp_path) / "cache"
    first, _ = evaluate_folder(data, cache_dir=cache)
    assert len(list(cache.glob("*.pkl"))) == 2
    again, scores = evaluate_folder(data, cache_dir=cache)
    plain, _ = evaluate_folder(data)
    for s in (again, plain):
        assert (s.detected, s.false_alarms, s.event_recall, s.host_event_recall) == (
            first.detected, first.false_alarms, first.event_recall, first.host_event_recall)
    assert first.benign_hours == round(300 / 3600, 3)
    # With the sensor's classes the host only adds (re-classing); its event score may also
    # set a spasm-like event aside, so there host recall can be lower.
    fw, _ = evaluate_folder(data, AlertConfig(event_class="firmware"), cache_dir=cache)
    assert fw.host_event_recall >= fw.event_recall
    assert [s.benign for s in scores] == [True, False]  # hiccups, spasm-cluster (by name)
    counted, _ = evaluate_folder(data, AlertConfig(evidence="count"), cache_dir=cache)
    assert counted.host_event_recall == counted.event_recall  # no re-classing by count
