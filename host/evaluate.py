"""Score replay against ground-truth labels: the figures the detector is judged by.

Per folder of labelled traces: cluster sensitivity (labelled spasm clusters that raised
an alarm), false alarms per 10 h, alarm latency (seconds after the end of the spasm that
completed the pattern, and after the cluster's first spasm), event recall (labelled spasms
covered by a spasm-like event; "host recall" also counts events the host re-classed from
their cluster), warnings per 10 h on benign traces (no spasm label) and replay speed.

The detector's packets for a trace depend only on the trace and the detector config, so
``evaluate_folder(..., cache_dir=...)`` keeps them on disk and later runs (host-side
changes, other alert settings) replay only the host engine.
"""

from __future__ import annotations

import hashlib
import pickle
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spasmwatch.firmware.config import DetectorConfig
from spasmwatch.host.monitor.alerts import AlertConfig
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.outputs import Alert, EventOutput
from spasmwatch.simulator.replay import detector_packets, to_sensor_stream
from spasmwatch.simulator.traceio import Label, Trace, load_labels_for, read_trace

#: Slack after a cluster's last spasm within which an alarm still belongs to it.
ALARM_SLACK_S = 10.0
#: Slack around a labelled spasm when matching detected events to it.
MATCH_SLACK_S = 0.5


@dataclass
class TruthCluster:
    """A run of labelled spasms whose gaps are at most the alarm rule's gap."""

    spasms: list[Label]

    @property
    def start(self) -> float:
        return self.spasms[0].start

    @property
    def end(self) -> float:
        return self.spasms[-1].end


@dataclass
class TraceScore:
    name: str
    hours: float
    clusters: int
    detected: int
    false_alarms: int
    latencies_s: list[float] = field(default_factory=list)
    spasms_elapsed: list[int] = field(default_factory=list)
    spasms: int = 0
    spasms_found: int = 0
    replay_s: float = 0.0
    alarms: int = 0
    warnings: int = 0
    benign: bool = False  # no spasm label at all
    onset_latencies_s: list[float] = field(default_factory=list)
    spasms_found_host: int = 0
    false_alarm_times: list[float] = field(default_factory=list)


def truth_clusters(labels: Iterable[Label], gap_s: float, min_spasms: int) -> list[TruthCluster]:
    """Group ``spasm`` labels by the alarm rule; keep groups big enough to alarm on."""
    spasms = sorted((lb for lb in labels if lb.label == "spasm"), key=lambda lb: lb.start)
    groups: list[list[Label]] = []
    for lb in spasms:
        if groups and lb.start - groups[-1][-1].end <= gap_s:
            groups[-1].append(lb)
        else:
            groups.append([lb])
    return [TruthCluster(g) for g in groups if len(g) >= min_spasms]


def trace_packets(trace: Trace, det_cfg: DetectorConfig | None = None) -> list[bytes]:
    """The packets the firmware detector sends for a whole trace, in order."""
    cfg = det_cfg or DetectorConfig()
    stream = to_sensor_stream(trace, cfg)
    return [p for _, packets in detector_packets(stream, cfg) for p in packets]


def score_trace(
    trace: Trace,
    labels: Sequence[Label],
    alert_cfg: AlertConfig | None = None,
    det_cfg: DetectorConfig | None = None,
    packets: list[bytes] | None = None,
) -> TraceScore:
    """Replay one trace and compare its alarms and events with its labels.

    ``packets`` (from :func:`trace_packets` with the same ``det_cfg``) skips the detector.
    """
    alert_cfg = alert_cfg or AlertConfig()
    engine = Engine(alert_cfg, t0=float(trace.t[0]))
    t_start = time.perf_counter()
    if packets is None:
        packets = trace_packets(trace, det_cfg)
    outputs = [out for p in packets for out in engine.feed_packet(p)]
    outputs += engine.finish()
    replay_s = time.perf_counter() - t_start
    alarms = sorted(o.t for o in outputs if isinstance(o, Alert) and o.level == "alarm")
    warnings = sum(1 for o in outputs if isinstance(o, Alert) and o.level == "warning")
    spasm_events = [
        (o.event.t, o.event.end)
        for o in outputs
        if isinstance(o, EventOutput) and o.event.cls == "spasm_like"
    ]
    # What the host counted: its own class (the detector's, or the event score's) plus
    # the events it re-classed from their chain.
    host_events = list(engine.spasms.counted) + list(engine.spasms.reconsidered)
    all_groups = truth_clusters(labels, alert_cfg.spasm_gap_s, 1)
    clusters = [g for g in all_groups if len(g.spasms) >= alert_cfg.alarm_min_spasms]
    score = TraceScore(
        name=trace.source, hours=trace.duration / 3600.0, clusters=len(clusters),
        detected=0, false_alarms=0, replay_s=replay_s, alarms=len(alarms),
        warnings=warnings, benign=not any(lb.label == "spasm" for lb in labels),
    )
    for cl in clusters:
        hits = [t for t in alarms if cl.start <= t <= cl.end + ALARM_SLACK_S]
        if hits:
            score.detected += 1
            first = hits[0]
            completing = cl.spasms[alert_cfg.alarm_min_spasms - 1]
            score.latencies_s.append(first - completing.end)
            score.onset_latencies_s.append(first - cl.start)
            score.spasms_elapsed.append(sum(1 for s in cl.spasms if s.start <= first))
    # An alarm on a labelled group too small for the rule is neither credit nor blame.
    for t in alarms:
        if not any(g.start <= t <= g.end + ALARM_SLACK_S for g in all_groups):
            score.false_alarms += 1
            score.false_alarm_times.append(round(t, 1))
    for lb in labels:
        if lb.label != "spasm":
            continue
        score.spasms += 1

        def covered(events: list[tuple[float, float]], lb: Label = lb) -> bool:
            return any(
                s < lb.end + MATCH_SLACK_S and e > lb.start - MATCH_SLACK_S for s, e in events
            )

        if covered(spasm_events):
            score.spasms_found += 1
        if covered(host_events):
            score.spasms_found_host += 1
    return score


@dataclass
class Summary:
    traces: int
    hours: float
    clusters: int
    detected: int
    cluster_sensitivity: float | None
    false_alarms: int
    false_alarms_per_10h: float
    median_latency_s: float | None
    median_spasms_elapsed: float | None
    event_recall: float | None
    replay_speed_x: float
    missed: list[str]
    false_alarm_traces: list[str]
    median_onset_latency_s: float | None = None
    host_event_recall: float | None = None
    benign_hours: float = 0.0
    benign_warnings: int = 0
    benign_warnings_per_10h: float | None = None
    warnings: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise(scores: Sequence[TraceScore]) -> Summary:
    hours = sum(s.hours for s in scores)
    clusters = sum(s.clusters for s in scores)
    detected = sum(s.detected for s in scores)
    fa = sum(s.false_alarms for s in scores)
    lat = [x for s in scores for x in s.latencies_s]
    el = [x for s in scores for x in s.spasms_elapsed]
    spasms = sum(s.spasms for s in scores)
    found = sum(s.spasms_found for s in scores)
    wall = sum(s.replay_s for s in scores)
    onset = [x for s in scores for x in s.onset_latencies_s]
    found_host = sum(s.spasms_found_host for s in scores)
    b_hours = sum(s.hours for s in scores if s.benign)
    b_warn = sum(s.warnings for s in scores if s.benign)
    return Summary(
        traces=len(scores),
        hours=round(hours, 3),
        clusters=clusters,
        detected=detected,
        cluster_sensitivity=round(detected / clusters, 3) if clusters else None,
        false_alarms=fa,
        false_alarms_per_10h=round(fa / hours * 10.0, 3) if hours else 0.0,
        median_latency_s=round(statistics.median(lat), 2) if lat else None,
        median_spasms_elapsed=statistics.median(el) if el else None,
        event_recall=round(found / spasms, 3) if spasms else None,
        replay_speed_x=round(hours * 3600.0 / wall, 1) if wall else 0.0,
        missed=[s.name for s in scores if s.detected < s.clusters],
        false_alarm_traces=[s.name for s in scores if s.false_alarms],
        median_onset_latency_s=round(statistics.median(onset), 2) if onset else None,
        host_event_recall=round(found_host / spasms, 3) if spasms else None,
        benign_hours=round(b_hours, 3),
        benign_warnings=b_warn,
        benign_warnings_per_10h=round(b_warn / b_hours * 10.0, 3) if b_hours else None,
        warnings=sum(s.warnings for s in scores),
    )


def find_traces(folder: Path) -> list[Path]:
    """Trace files in a folder (not the label sidecars), sorted by name."""
    out = [
        p for p in folder.iterdir()
        if (p.name.endswith(".csv") or p.name.endswith(".csv.gz"))
        and not p.name.endswith(".labels.csv")
    ]
    return sorted(out)


#: The modules whose code decides the detector's packets for a trace: a cache entry made
#: by other code (an older detector, a new packet kind) must never be reused.
_PACKET_CODE = ("firmware/detector.py", "firmware/config.py", "firmware/wire.py",
                "simulator/replay.py", "simulator/resample.py", "simulator/sensor_model.py")


def _code_fingerprint() -> str:
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for rel in _PACKET_CODE:
        h.update((root / rel).read_bytes())
    return h.hexdigest()[:16]


#: Taken once, at import: the code this process runs (a file edited meanwhile is not it).
_CODE_FINGERPRINT = _code_fingerprint()


def _cache_key(path: Path, det_cfg: DetectorConfig | None) -> str:
    cfg = det_cfg or DetectorConfig()
    st = path.stat()
    text = (f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{sorted(vars(cfg).items())}"
            f"|{_CODE_FINGERPRINT}")
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cached_packets(
    path: Path, trace: Trace, det_cfg: DetectorConfig | None, cache_dir: Path | None
) -> list[bytes]:
    """:func:`trace_packets`, kept in ``cache_dir`` (keyed by file, size, mtime, config)."""
    if cache_dir is None:
        return trace_packets(trace, det_cfg)
    cache_dir.mkdir(parents=True, exist_ok=True)
    f = cache_dir / f"{_cache_key(path, det_cfg)}.pkl"
    if f.exists():
        try:
            with f.open("rb") as fh:
                packets = pickle.load(fh)
            if isinstance(packets, list):
                return packets
        except (OSError, pickle.UnpicklingError, EOFError):
            pass  # a damaged cache entry is recomputed
    packets = trace_packets(trace, det_cfg)
    tmp = f.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        pickle.dump(packets, fh)
    tmp.replace(f)
    return packets


def evaluate_folder(
    folder: Path,
    alert_cfg: AlertConfig | None = None,
    det_cfg: DetectorConfig | None = None,
    cache_dir: Path | None = None,
) -> tuple[Summary, list[TraceScore]]:
    scores = []
    for path in find_traces(folder):
        trace = read_trace(path)
        labels = load_labels_for(path) or []
        t0 = time.perf_counter()
        packets = cached_packets(path, trace, det_cfg, cache_dir)
        t_det = time.perf_counter() - t0
        score = score_trace(trace, labels, alert_cfg, det_cfg, packets)
        score.replay_s += t_det  # a cache hit makes the detector part ~0
        score.name = path.name
        scores.append(score)
    return summarise(scores), scores
