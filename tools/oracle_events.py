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
from eval_suites import line, scored  # noqa: E402

from spasmwatch.host import evaluate  # noqa: E402
from spasmwatch.host.monitor import patterns  # noqa: E402
from spasmwatch.host.monitor.alerts import AlertConfig  # noqa: E402
from spasmwatch.host.monitor.records import Event  # noqa: E402
from spasmwatch.simulator.traceio import Label  # noqa: E402


def score_with_truth(folder: Path, cfg: AlertConfig, cache: Path | None) -> evaluate.Summary:
    """``evaluate_folder`` with the event score replaced by each event's truth."""
    labels: list[Label] = []
    current: list[Event] = []
    load, add, score = (evaluate.load_labels_for, patterns.SpasmChainDetector.add,
                        patterns.event_score)

    def load_noting(path: Path) -> list[Label] | None:  # the labels of the trace replayed
        labels[:] = load(path) or []
        return labels

    def add_noting(self, ev, known_at, cluster_id):  # type: ignore[no-untyped-def]
        current[:] = [ev]  # the event whose features are scored next
        return add(self, ev, known_at, cluster_id)

    def truth(_features: object) -> float:
        ev = current[0]
        return 1.0 if label_of(ev.t, ev.end, labels) == "spasm" else 0.0

    evaluate.load_labels_for = load_noting  # type: ignore[assignment]
    patterns.SpasmChainDetector.add = add_noting  # type: ignore[method-assign]
    patterns.event_score = truth  # type: ignore[assignment]
    try:
        return evaluate.evaluate_folder(folder, cfg, cache_dir=cache)[0]
    finally:
        evaluate.load_labels_for = load  # type: ignore[assignment]
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
    cfg = scored(a.set)
    for suite in a.suites:
        s = score_with_truth(suite, cfg, a.cache)
        print(line(suite.name, "truth", s), flush=True)
        if a.verbose:
            print("   missed:", s.missed)
            print("   false alarms:", s.false_alarm_traces)


if __name__ == "__main__":
    main()
