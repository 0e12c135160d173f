"""Real recordings (adults, no spasms) must never raise a spasm-cluster alarm.

Sources: recordings shipped in PyPI wheels (gaitpy, sit2standpy, aeon; see .ci/run) and
the datasets under ``../shared/data`` (SisFall, emlearn HAR, HMP ADL). Each source is
skipped when absent. Warnings (``spasm_pair``) are allowed and documented in
docs/detector.md: adult trunk flexion-and-return looks like a spasm to one event. Every
host evidence mode is checked (count, rules, learned, each chain judge with the host's
event score): the detector runs once per recording and its packets go to one engine per
mode. The event score's model was trained with these recordings as negatives, so for it
this is a regression guard; the fair check leaves each source out of training
(tools/cross_check_events.py --real, docs/evaluation.md).

Many recordings (SisFall) last 12-15 s, shorter than the detector's warm-up, so each one
is preceded by 20 s of its own first sample held still: the movement then meets a
settled detector and a near-zero background, the worst case for the prominence test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pytest

from spasmwatch.host.evaluate import trace_packets
from spasmwatch.host.monitor.alerts import Alert, AlertConfig
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.simulator import real_data as rd
from spasmwatch.simulator.traceio import Trace

WARMUP_S = 20.0
#: Every host evidence mode, and the host's event score (round 5) with both chain judges.
MODES = {
    "count": AlertConfig(evidence="count"),
    "rules": AlertConfig(evidence="rules", event_class="firmware"),
    "learned": AlertConfig(evidence="learned", event_class="firmware"),
    "rules+scored": AlertConfig(evidence="rules", event_class="scored"),
    "learned+scored": AlertConfig(evidence="learned", event_class="scored"),
}


def with_still_warmup(trace: Trace) -> Trace:
    """``trace`` preceded by WARMUP_S of its first sample, at its own sample rate."""
    dt = float(np.median(np.diff(trace.t)))
    k = int(WARMUP_S / dt)
    t = np.concatenate([trace.t[0] - dt * np.arange(k, 0, -1), trace.t])
    acc = np.concatenate([np.repeat(trace.acc[:1], k, axis=0), trace.acc])
    return Trace(t=t - t[0], acc=acc, meta=dict(trace.meta), source=trace.source)


def _sources() -> dict[str, Callable[[], Iterable[rd.Recording]]]:
    root = rd.shared_data_root()

    def shared(fn: Callable) -> Callable[[], Iterable[rd.Recording]]:
        return lambda: fn(root) if root is not None else ()

    return {
        "wheels": rd.wheel_recordings,
        "sisfall": shared(rd.sisfall_recordings),
        "emlearn": shared(rd.emlearn_recordings),
        "hmp": shared(rd.hmp_recordings),
    }


@pytest.mark.parametrize("source", ["wheels", "sisfall", "emlearn", "hmp"])
def test_real_recordings_raise_no_alarm(source: str) -> None:
    recs = list(_sources()[source]())
    if not recs:
        pytest.skip(f"no {source} recordings available here")
    alarmed = []
    for rec in recs:
        packets = trace_packets(with_still_warmup(rec.trace))
        for mode, cfg in MODES.items():
            engine = Engine(cfg, t0=0.0)
            outs = [o for p in packets for o in engine.feed_packet(p)] + engine.finish()
            if any(isinstance(o, Alert) and o.level == "alarm" for o in outs):
                alarmed.append(f"{rec.name} ({mode})")
    assert alarmed == [], f"{len(alarmed)} of {len(recs)} {source} recordings alarmed: {alarmed}"
