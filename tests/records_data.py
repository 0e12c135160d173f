"""Build real monitor databases for the records tests: simulated nights replayed through
the firmware detector, the wire format and the host engine into a SQLite store, each
piece anchored to a wall-clock time (the engine's ``t0`` is epoch seconds, as live)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.outputs import Output
from spasmwatch.host.monitor.store import Store
from spasmwatch.simulator import scenarios
from spasmwatch.simulator.replay import iter_replay

UTC = dt.UTC

# (local start, scenario, seed): the pieces of three nights, the second one interrupted
# by a 20-minute data gap (sensor out of range), a day without a record, then a fourth.
NIGHT_PLAN: tuple[tuple[str, str, int], ...] = (
    ("2026-03-01T19:30:00", "spasm-night", 1),
    ("2026-03-02T20:00:00", "small-cluster", 2),
    ("2026-03-02T20:40:00", "benign-night", 3),
    ("2026-03-03T19:45:00", "quiet", 4),
    ("2026-03-05T21:10:00", "onset-cluster", 5),
)


def epoch(local: str, tz: dt.tzinfo = UTC) -> float:
    return dt.datetime.fromisoformat(local).replace(tzinfo=tz).timestamp()


def replay_into(store: Store, name: str, seed: int, t0: float) -> list[Output]:
    """Replay one scenario into ``store`` with the engine clock starting at ``t0``."""
    trace, _ = scenarios.generate(name, seed=seed, rate_hz=50.0)
    engine = Engine(store=store, t0=t0)
    return [o for _, o in iter_replay(trace, engine)]


def build_store(
    path: str | Path, plan: Sequence[tuple[str, str, int]] = NIGHT_PLAN,
    tz: dt.tzinfo = UTC,
) -> dict[str, list[Output]]:
    """Write every piece of ``plan`` into a store at ``path``; returns outputs per start."""
    outs = {}
    with Store(path) as store:
        for local, name, seed in plan:
            outs[local] = replay_into(store, name, seed, epoch(local, tz))
    return outs
