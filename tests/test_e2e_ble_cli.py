"""End to end over Bluetooth LE, as a user runs it: ``spasmwatch run --simulate
spasm-cluster --link ble --speed 0 --json`` (a subprocess) boots the unmodified firmware
on the virtual board with BLE enabled, starts the sensor's virtual radio
(``simulator/ble_bridge.py``, a real Bumble stack) and connects the daemon with
``BleLink`` over bleak's Bumble backend. It must raise the same alerts (levels, kinds,
counts) as ``spasmwatch replay`` on the same trace, end by itself with no packet
missing, and leave neither MicroPython nor the bridge running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.outputs import Alert, EventOutput
from spasmwatch.simulator import scenarios
from spasmwatch.simulator.replay import iter_replay

# skips without MicroPython, fails under CI (tests/tooling.py)
pytestmark = pytest.mark.usefixtures("micropython_exe")


def _own_pids(token: str) -> set[str]:
    """Processes started by this test (they inherit its token in the environment): the
    board's MicroPython and the bridge's Python. Other tests may run boards meanwhile."""
    mine = set()
    for pid in (p.name for p in Path("/proc").iterdir() if p.name.isdigit()):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue  # gone, or not ours to read
        if f"SPASMWATCH_TEST_TOKEN={token}".encode() in env:
            mine.add(pid)
    return mine


def test_run_simulate_over_ble_alerts_like_replay() -> None:
    trace, _ = scenarios.generate("spasm-cluster", seed=1)
    want = Counter((o.level, o.kind)
                   for _, o in iter_replay(trace, Engine(t0=float(trace.t[0])))
                   if isinstance(o, Alert))
    assert want[("alarm", "spasm_cluster")] == 1
    token = uuid.uuid4().hex
    code = "import sys; from spasmwatch.host.cli.main import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", "--simulate", "spasm-cluster", "--seed", "1",
         "--link", "ble", "--speed", "0", "--json"],
        # ~20 s here; the simulation's own end is bounded (SimulationEnd gives up a device
        # minute after the scenario, real time over BLE), the rest is a loaded machine.
        capture_output=True, text=True, timeout=240, check=False,
        env=dict(os.environ, SPASMWATCH_TEST_TOKEN=token),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    outs = [json.loads(line) for line in proc.stdout.splitlines()]
    # What the sensor's data raised; the alerting's own faults (no sound server here:
    # "nobody will hear", a failed delivery) are tested in test_e2e_audible.py.
    got = Counter((o["level"], o["kind"]) for o in outs
                  if o["type"] == "alert" and o.get("source") != "host")
    assert got == want
    links = [o for o in outs if o["type"] == "link" and o["state"] != "start"]
    assert links[0]["state"] == "connected" and links[0]["link"] == "ble"
    assert [o["state"] for o in links[-2:]] == ["ended", "summary"]
    assert "0 missing, 0 duplicates" in links[-1]["message"]
    # Every event of the trace came over the air (first contact backfilled the ring).
    ref_events = sum(1 for _, o in iter_replay(trace, Engine(t0=float(trace.t[0])))
                     if isinstance(o, EventOutput))
    assert sum(1 for o in outs if o["type"] == "event") == ref_events
    # Both the board and its radio were stopped.
    assert not _own_pids(token)


def test_link_option_needs_simulate() -> None:
    from spasmwatch.host.cli.main import main

    assert main(["run", "--serial", "/dev/null", "--link", "ble"]) == 2
