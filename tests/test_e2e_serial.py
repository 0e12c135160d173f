"""End to end over serial: scenario trace -> firmware under MicroPython -> pty -> daemon.

``spasmwatch run --simulate`` (a subprocess, as a user runs it) boots the unmodified
firmware on the virtual board (``simulator/board_runner.py``) and reads it with the
ordinary ``SerialLink``; it must raise the same alerts (levels, kinds, count) as
``spasmwatch replay`` on the same trace, end by itself and stop MicroPython. A host
that opens the port late recovers what the board sent before from its ring buffer.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import serial

from spasmwatch.firmware import config as fwconfig
from spasmwatch.firmware import framing, wire
from spasmwatch.host.compose import SimulationEnd
from spasmwatch.host.daemon import Daemon, DaemonConfig, MonitorEngine
from spasmwatch.host.links.sim_link import SimulatedBoard
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.outputs import Alert, Output
from spasmwatch.host.monitor.store import Store
from spasmwatch.simulator import scenarios
from spasmwatch.simulator.replay import detector_packets, iter_replay, to_sensor_stream


def replay_alerts(name: str, seed: int) -> Counter[tuple[str, str]]:
    trace, _ = scenarios.generate(name, seed=seed)
    engine = Engine(t0=float(trace.t[0]))
    return Counter((o.level, o.kind) for _, o in iter_replay(trace, engine)
                   if isinstance(o, Alert))


def micropython_pids(token: str) -> set[str]:
    """MicroPython processes started by this test (they inherit its token in the env)."""
    out = subprocess.run(["pgrep", "-x", "micropython"], capture_output=True, text=True,
                         check=False).stdout
    mine = set()
    for pid in out.split():
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue  # already gone
        if f"SPASMWATCH_TEST_TOKEN={token}".encode() in env:
            mine.add(pid)
    return mine


def run_simulation(name: str, seed: int, db: Path) -> list[dict]:
    code = "import sys; from spasmwatch.host.cli.main import main; sys.exit(main(sys.argv[1:]))"
    token = uuid.uuid4().hex
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", "--simulate", name, "--seed", str(seed),
         "--speed", "0", "--json", "--db", str(db)],
        capture_output=True, text=True, timeout=60, check=False,
        env=dict(os.environ, SPASMWATCH_TEST_TOKEN=token),
    )
    assert proc.returncode == 0, proc.stderr
    assert not micropython_pids(token)  # the board's MicroPython process was stopped
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_simulated_serial_chain_alerts_like_replay(tmp_path: Path) -> None:
    outs = run_simulation("spasm-cluster", 1, tmp_path / "sim.db")
    # What the sensor's data raised; the alerting's own faults (no sound server here:
    # "nobody will hear", a failed delivery) are tested in test_e2e_audible.py.
    got = Counter((o["level"], o["kind"]) for o in outs
                  if o["type"] == "alert" and o.get("source") != "host")
    want = replay_alerts("spasm-cluster", 1)
    assert want[("alarm", "spasm_cluster")] == 1
    assert got == want
    links = [o for o in outs if o["type"] == "link" and o["state"] != "start"]
    assert links[0]["state"] == "connected" and links[0]["link"] == "serial"
    assert [o["state"] for o in links[-2:]] == ["ended", "summary"]
    assert "0 missing, 0 duplicates" in links[-1]["message"]
    # Records carry wall-clock time and keep the device clock.
    ev = next(o for o in outs if o["type"] == "event")
    assert ev["t"] > 1e9 and ev["received_at"] > 1e9 and isinstance(ev["t_ms"], int)
    # Status packets come from the firmware under MicroPython: its virtual battery
    # (ADC and divider), its free heap, every 10 s of device time from boot.
    st = [o for o in outs if o["type"] == "status"]
    assert len(st) >= 600 // fwconfig.STATUS_S
    assert {o["t_ms"] % (fwconfig.STATUS_S * 1000) for o in st} == {0}
    assert st[0]["battery_mv"] == 3900 and 0 < st[0]["heap_kb"] < 256


def test_benign_scenario_raises_no_alarm(tmp_path: Path) -> None:
    outs = run_simulation("hypnic-jerks", 2, tmp_path / "sim.db")
    # What the sensor's data raised; the alerting's own faults (no sound server here:
    # "nobody will hear", a failed delivery) are tested in test_e2e_audible.py.
    got = Counter((o["level"], o["kind"]) for o in outs
                  if o["type"] == "alert" and o.get("source") != "host")
    assert got == replay_alerts("hypnic-jerks", 2)
    assert not any(level in ("alarm", "fault") for level, _ in got)


def test_host_opening_the_port_late_gets_the_board_ring() -> None:
    """Frames the board wrote before the host opened the port are flushed by pyserial's
    open; the daemon's first contact asks for the ring and loses nothing."""
    trace, _ = scenarios.generate("spasm-cluster", seed=3)
    cfg = fwconfig.DetectorConfig()
    want = sum(wire.peek_kind(p) == wire.KIND_EVENT
               for _, ps in detector_packets(to_sensor_stream(trace, cfg), cfg) for p in ps)
    with SimulatedBoard("spasm-cluster", trace=trace, speed=150.0) as board:
        # Someone else reads the port first until the board has sent a few dozen
        # packets, then lets go: those bytes never reach the daemon.
        early = serial.Serial(board.port, timeout=0.2)
        deframer = framing.Deframer()
        seen: list[int] = []
        deadline = time.monotonic() + 30
        while len(seen) < 30 and time.monotonic() < deadline:
            # (an eavesdropper on the port: reads tagged packets without checking them)
            seen += [wire.decode(p, lambda b, t: True)[0]
                     for p in deframer.feed(early.read(256))]
        early.close()
        assert len(seen) >= 30

        async def body() -> tuple[MonitorEngine, Daemon, list[dict[str, Any]]]:
            outs: list[dict[str, Any]] = []
            with Store(":memory:") as store:
                eng = MonitorEngine(store=store, device="sim", verifier=board.session())
                daemon = Daemon(board.connect, eng, lambda o: None,
                                DaemonConfig(tick_s=0.1, resend_retry_s=2.0))

                ender = SimulationEnd(board)

                def emit(o: Output) -> None:
                    outs.append(o.to_json())
                    ender.observe(daemon, o)

                daemon.emit = emit
                await asyncio.wait_for(daemon.run(), 60)
                assert store.count("events") == want
                seqs = sorted(r.seq for r in [*store.events(), *store.summaries(),
                                                *store.statuses(), *store.details()])
                assert seqs == list(range(len(seqs)))  # from seq 0, no gap, no repeat
            return eng, daemon, outs

        eng, daemon, outs = asyncio.run(body())
    assert daemon.finished and daemon.connects == 1
    assert daemon.backfill.sent >= 1  # the first-contact RESEND
