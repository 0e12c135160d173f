"""Real recordings (adults, no spasms) must never raise a spasm-cluster alarm.

Sources: recordings shipped in PyPI wheels (gaitpy, sit2standpy, aeon; see .ci/run) and
the datasets under ``../shared/data`` (SisFall, emlearn HAR, HMP ADL). Each source is
skipped when absent. Warnings (``spasm_pair``) are allowed and documented in
docs/detector.md: adult trunk flexion-and-return looks like a spasm to one event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from spasmwatch.host.alerts import AlertConfig
from spasmwatch.host.engine import Engine
from spasmwatch.simulator import real_data as rd
from spasmwatch.simulator.replay import iter_replay


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
        engine = Engine(AlertConfig(), t0=float(rec.trace.t[0]))
        for _, out in iter_replay(rec.trace, engine):
            if out["type"] == "alert" and out["level"] == "alarm":
                alarmed.append(rec.name)
                break
    assert alarmed == [], f"{len(alarmed)} of {len(recs)} {source} recordings alarmed"
