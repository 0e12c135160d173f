"""Data recipe of the learned chain model: chain snapshots from labelled suites.

For every trace of a folder the firmware detector's packets (cached, see
``host/evaluate.py``) go through the host engine with rule-based evidence; each time a
spasm chain grows to ``min_members`` or more, a snapshot of its features
(``cluster_evidence.FEATURES``) is written with its truth: ``1`` when at least two of its
members overlap a labelled spasm, else ``0``. Also used to look at what chains are made
of (``--show``: the labels under each member of false chains).

    python tools/cluster_dataset.py out/r3_tune37 out/classic7 --out out/chains.tsv \
        --cache out/cache
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from spasmwatch.firmware.config import DetectorConfig
from spasmwatch.host.evaluate import cached_packets, find_traces
from spasmwatch.host.monitor.alerts import AlertConfig
from spasmwatch.host.monitor.cluster_evidence import FEATURES, chain_features
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.patterns import SpasmChain
from spasmwatch.simulator.traceio import Label, load_labels_for, read_trace

_STATES = {"wake", "cluster"}


def label_of(t0: float, t1: float, labels: list[Label]) -> str:
    """What an event at [t0, t1] was: ``spasm`` if it overlaps one (+-0.5 s), else the
    movement label it overlaps most, else the state (``wake``) or ``none``."""
    best, best_ov = "none", 0.0
    for lb in labels:
        ov = min(t1, lb.end + 0.5) - max(t0, lb.start - 0.5)
        if ov <= 0:
            continue
        if lb.label == "spasm":
            return "spasm"
        if lb.label in _STATES:
            ov *= 1e-3  # a state label only when nothing else matches
        if ov > best_ov:
            best, best_ov = lb.label, ov
    return best


def chain_rows(path: Path, cache: Path | None, min_members: int, show: bool,
               det_cfg: DetectorConfig | None = None) -> list[str]:
    trace = read_trace(path)
    labels = sorted(load_labels_for(path) or [], key=lambda lb: lb.start)
    cfg = AlertConfig(evidence="rules", event_class="firmware")  # the round-4 recipe
    engine = Engine(cfg, t0=float(trace.t[0]))
    det = engine.spasms
    rows: list[str] = []
    seen: set[tuple[int, int]] = set()
    orig = det._judge

    def judge(ch: SpasmChain, known_at: float, cid: int | None):  # type: ignore[no-untyped-def]
        if ch.count >= min_members and (id(ch), ch.count) not in seen:
            seen.add((id(ch), ch.count))
            kinds = [label_of(e.t, e.end, labels) for e in ch.events]
            truth = int(sum(k == "spasm" for k in kinds) >= 2)
            f = chain_features(ch.events, ch.n_spasm_like, ch.others, det.detail_of)
            rows.append("\t".join([path.name, f"{ch.start:.1f}", str(truth)]
                                  + [f"{x:.4g}" for x in f.vector()]))
            if show and not truth and ch.count == min_members:
                print(path.name, f"{ch.start:.0f}", dict(Counter(kinds)),
                      [f"{e.cls[:2]}{e.duration_s:.1f}/{e.peak_mg}/{e.excursion_mg}"
                       f"/{e.tilt_mg}/{e.peaks}" for e in ch.events],
                      f"axis {f.dir_axis:.2f} same {f.dir_same:.2f}")
        return orig(ch, known_at, cid)

    det._judge = judge  # type: ignore[method-assign]
    for p in cached_packets(path, trace, det_cfg, cache):
        engine.feed_packet(p)
    engine.finish()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache")
    ap.add_argument("--min-members", type=int, default=2)
    ap.add_argument("--show", action="store_true")
    ap.add_argument("--det", nargs="*", default=[], metavar="FIELD=INT",
                    help="DetectorConfig fields (integers) instead of the defaults")
    a = ap.parse_args()
    det_cfg = DetectorConfig(**{k: int(v) for k, v in (x.split("=", 1) for x in a.det)})
    cache = Path(a.cache) if a.cache else None
    rows = ["\t".join(["file", "start", "truth", *FEATURES])]
    for folder in a.folders:
        for path in find_traces(Path(folder)):
            rows += chain_rows(path, cache, a.min_members, a.show, det_cfg)
    Path(a.out).write_text("\n".join(rows) + "\n")
    print(f"{len(rows) - 1} chain snapshots -> {a.out}")


if __name__ == "__main__":
    main()
