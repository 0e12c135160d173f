"""The ceiling of the chain rules: every event classed by its truth, not by a model.

Each event the detector sends is counted as spasm-like exactly when it overlaps a
labelled spasm (+-0.5 s, as tools/event_dataset.py labels them), through the host's own
chain rules (``event_class = "scored"`` with the score replaced by the truth). What the
suites still miss then is beyond any event score: the detector did not send enough
separate events, or the chain rules turned the chain down. A false alarm left comes
from the chain rules' own re-classing of movements that match counted members.

    python tools/oracle_events.py out/r3_tune37 out/r4_tune53 out/classic7 \
        --cache out/cache --set firmware_min=0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster_dataset import label_of  # noqa: E402
from eval_suites import line, settings  # noqa: E402

from spasmwatch.host import evaluate  # noqa: E402
from spasmwatch.host.monitor import patterns  # noqa: E402
from spasmwatch.host.monitor.alerts import AlertConfig  # noqa: E402
from spasmwatch.simulator.traceio import Label, read_trace  # noqa: E402


def score_with_truth(folder: Path, cfg: AlertConfig, cache: Path | None) -> evaluate.Summary:
    labels: list[Label] = []
    current: list[object] = [None]
    add = patterns.SpasmChainDetector.add
    score = patterns.event_score

    def add_noting(self, ev, known_at, cluster_id):  # type: ignore[no-untyped-def]
        current[0] = ev
        return add(self, ev, known_at, cluster_id)

    def truth(_features: object) -> float:
        ev = current[0]
        return 1.0 if label_of(ev.t, ev.end, labels) == "spasm" else 0.0  # type: ignore[attr-defined]

    patterns.SpasmChainDetector.add = add_noting  # type: ignore[method-assign]
    patterns.event_score = truth  # type: ignore[assignment]
    try:
        scores = []
        for path in evaluate.find_traces(folder):
            trace = read_trace(path)
            labels[:] = evaluate.load_labels_for(path) or []
            packets = evaluate.cached_packets(path, trace, None, cache)
            s = evaluate.score_trace(trace, labels, cfg, None, packets)
            s.name = path.name
            scores.append(s)
        return evaluate.summarise(scores)
    finally:
        patterns.SpasmChainDetector.add = add  # type: ignore[method-assign]
        patterns.event_score = score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suites", nargs="+", type=Path)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--set", default="", metavar="K=V,K=V",
                    help="AlertConfig settings (event_class=scored is implied)")
    ap.add_argument("--verbose", action="store_true", help="list missed / false-alarm traces")
    a = ap.parse_args()
    cfg = AlertConfig(**{"event_class": "scored", **settings(a.set)})  # type: ignore[arg-type]
    for suite in a.suites:
        s = score_with_truth(suite, cfg, a.cache)
        print(line(suite.name, "truth", s), flush=True)
        if a.verbose:
            print("   missed:", s.missed)
            print("   false alarms:", s.false_alarm_traces)


if __name__ == "__main__":
    main()
