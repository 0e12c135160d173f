"""End to end over serial: scenario -> firmware detector -> pty -> daemon -> alerts.

``spasmwatch run --simulate`` (a subprocess, as a user runs it) must raise the same
alerts (levels, kinds, count) as ``spasmwatch replay`` on the same trace.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from spasmwatch.host.engine import Engine
from spasmwatch.simulator import scenarios
from spasmwatch.simulator.replay import iter_replay


def replay_alerts(name: str, seed: int) -> Counter[tuple[str, str]]:
    trace, _ = scenarios.generate(name, seed=seed)
    engine = Engine(t0=float(trace.t[0]))
    return Counter((o["level"], o["kind"]) for _, o in iter_replay(trace, engine)
                   if o["type"] == "alert")


def run_simulation(name: str, seed: int, db: Path) -> list[dict]:
    code = "import sys; from spasmwatch.host.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", "--simulate", name, "--seed", str(seed),
         "--speed", "0", "--json", "--db", str(db)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_simulated_serial_chain_alerts_like_replay(tmp_path: Path) -> None:
    outs = run_simulation("spasm-cluster", 1, tmp_path / "sim.db")
    got = Counter((o["level"], o["kind"]) for o in outs if o["type"] == "alert")
    want = replay_alerts("spasm-cluster", 1)
    assert want[("alarm", "spasm_cluster")] == 1
    assert got == want
    links = [o["state"] for o in outs if o["type"] == "link"]
    assert links[0] == "connected" and links[-1] == "ended"
    # Records carry wall-clock time and keep the device clock.
    ev = next(o for o in outs if o["type"] == "event")
    assert ev["t"] > 1e9 and ev["received_at"] > 1e9 and isinstance(ev["t_ms"], int)


def test_benign_scenario_raises_no_alarm(tmp_path: Path) -> None:
    outs = run_simulation("hypnic-jerks", 2, tmp_path / "sim.db")
    got = Counter((o["level"], o["kind"]) for o in outs if o["type"] == "alert")
    assert got == replay_alerts("hypnic-jerks", 2)
    assert not any(level in ("alarm", "fault") for level, _ in got)
