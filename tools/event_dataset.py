"""Data recipe of the learned event scorer: one row per detector event, with its truth.

For every trace of the given suites the firmware detector's packets (cached, see
``host/evaluate.py``) go through the host engine; each event gets the features of
``host/monitor/event_evidence.py`` (computed by the same ``EventContext`` the monitor
uses) and its truth: ``1`` when it overlaps a labelled spasm (+-0.5 s), else ``0``.
``--real`` adds every event of the real adult recordings (``simulator/real_data.py``,
each after 20 s held still, as tools/eval_real.py does) as negatives, in groups
``real:<source>``: the model must learn that adult movements are not spasms.

    python tools/event_dataset.py out/r3_tune37 out/r4_tune53 out/classic7 --real \
        --cache out/cache --out out/events.tsv
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from spasmwatch.host.evaluate import cached_packets, find_traces, trace_packets
from spasmwatch.host.monitor.alerts import AlertConfig
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.event_evidence import FEATURES, EventContext
from spasmwatch.host.monitor.outputs import EventOutput
from spasmwatch.host.monitor.records import Detail, Event
from spasmwatch.simulator.traceio import load_labels_for, read_trace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster_dataset import label_of  # noqa: E402
from eval_real import with_still_warmup  # noqa: E402


def events_of(packets: list[bytes], t0: float) -> Iterator[tuple[Event, Detail | None]]:
    """Every event of a packet stream with its detail record, as the monitor sees them."""
    eng = Engine(AlertConfig(event_class="firmware"), t0=t0)  # events and details only
    for p in packets:
        for o in eng.feed_packet(p):
            if isinstance(o, EventOutput):
                yield o.event, eng.spasms.detail_of(o.event)


def rows_of(events: Iterator[tuple[Event, Detail | None]], truth, group: str, name: str
            ) -> Iterator[str]:  # type: ignore[no-untyped-def]
    ctx = EventContext()
    for ev, d in events:
        f = ctx.features(ev, d)
        ctx.push(ev, d)
        label = truth(ev)
        yield "\t".join([group, name, f"{ev.t:.2f}", label, str(int(label == "spasm")),
                         *(f"{v:.6g}" for v in f)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suites", nargs="*", type=Path)
    ap.add_argument("--real", action="store_true", help="add the real recordings' events")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    lines = ["\t".join(["group", "trace", "t", "label", "spasm", *FEATURES])]
    for suite in a.suites:
        for path in find_traces(suite):
            trace = read_trace(path)
            labels = sorted(load_labels_for(path) or [], key=lambda lb: lb.start)
            packets = cached_packets(path, trace, None, a.cache)
            lines += rows_of(events_of(packets, float(trace.t[0])),
                             lambda ev, lb=labels: label_of(ev.t, ev.end, lb),
                             suite.name, path.name)
    if a.real:
        from spasmwatch.simulator import real_data as rd

        root = rd.shared_data_root()
        sources = [rd.wheel_recordings()]
        if root is not None:
            sources += [rd.sisfall_recordings(root), rd.emlearn_recordings(root),
                        rd.hmp_recordings(root)]
        for recs in sources:
            for rec in recs:
                trace = with_still_warmup(rec.trace)
                lines += rows_of(events_of(trace_packets(trace), 0.0), lambda ev: "real",
                                 f"real:{rec.source}", rec.name)
    a.out.write_text("\n".join(lines) + "\n")
    n = len(lines) - 1
    print(f"{n} events -> {a.out}")


if __name__ == "__main__":
    main()
