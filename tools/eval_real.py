"""Real recordings (adults, no spasms) through the detector and every host evidence mode.

Each recording is preceded by 20 s (``--still``) of its first sample held still (the
worst case, see tests/test_detector_real.py); the detector runs once per recording and
its packets go to one host engine per mode. Prints alarms and warnings per source and
mode. ``--still 90`` lets the sensor learn the arousal state first, as in a night.

    python tools/eval_real.py            # wheels (PyPI) + ../shared/data when present
    python tools/eval_real.py --det spasm_min_prominence_x10=80   # a detector variant
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from spasmwatch.firmware.config import DetectorConfig
from spasmwatch.host.evaluate import trace_packets
from spasmwatch.host.monitor.alerts import Alert, AlertConfig
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.simulator import real_data as rd
from spasmwatch.simulator.traceio import Trace

MODES = ("count", "rules", "learned", "rules+scored", "learned+scored")


def config(mode: str) -> AlertConfig:
    """``rules``/``learned`` with the firmware's classes, ``+scored`` with the host's."""
    evidence, _, scored = mode.partition("+")
    return AlertConfig(evidence=evidence,  # type: ignore[arg-type]
                       event_class="scored" if scored else "firmware")


def with_still_warmup(trace: Trace, seconds: float = 20.0) -> Trace:
    dt = float(np.median(np.diff(trace.t)))
    k = int(seconds / dt)
    t = np.concatenate([trace.t[0] - dt * np.arange(k, 0, -1), trace.t])
    acc = np.concatenate([np.repeat(trace.acc[:1], k, axis=0), trace.acc])
    return Trace(t=t - t[0], acc=acc, meta=dict(trace.meta), source=trace.source)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--det", nargs="*", default=[], metavar="FIELD=INT",
                    help="DetectorConfig fields (integers) instead of the defaults")
    ap.add_argument("--still", type=float, default=20.0,
                    help="seconds held still before each recording (default 20; 90 gives "
                         "the sensor time to know the arousal state, as in a night)")
    a = ap.parse_args()
    det_cfg = DetectorConfig(**{k: int(v) for k, v in (x.split("=", 1) for x in a.det)})
    root = rd.shared_data_root()
    sources = {"wheels": lambda: rd.wheel_recordings()}
    if root is not None:
        sources.update(
            sisfall=lambda: rd.sisfall_recordings(root),
            emlearn=lambda: rd.emlearn_recordings(root),
            hmp=lambda: rd.hmp_recordings(root),
        )
    total: Counter[str] = Counter()
    for name, fn in sources.items():
        c: Counter[str] = Counter()
        n = 0
        hours = 0.0
        for rec in fn():
            trace = with_still_warmup(rec.trace, a.still)
            packets = trace_packets(trace, det_cfg)
            n += 1
            hours += trace.duration / 3600.0
            for mode in MODES:
                eng = Engine(config(mode), t0=0.0)
                outs = [o for p in packets for o in eng.feed_packet(p)] + eng.finish()
                for o in outs:
                    if isinstance(o, Alert) and o.level in ("alarm", "warning"):
                        c[f"{mode} {o.level}"] += 1
        print(f"{name}: {n} recordings, {hours:.2f} h: "
              + ", ".join(f"{m} {c[m + ' alarm']} alarms / {c[m + ' warning']} warnings"
                          for m in MODES), flush=True)
        total.update(c)
        total["n"] += n
    print(f"all: {total['n']} recordings: "
          + ", ".join(f"{m} {total[m + ' alarm']} alarms / {total[m + ' warning']} warnings"
                      for m in MODES))


if __name__ == "__main__":
    main()
