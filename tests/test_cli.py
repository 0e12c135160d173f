"""The spasmwatch command: replay, simulate, evaluate, demo, and its error contract."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spasmwatch.host.cli.main import main
from spasmwatch.simulator import scenarios
from spasmwatch.simulator.traceio import labels_path_for


def _run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = main(argv, out=out)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def cluster_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("trace")
    return scenarios.simulate_to_dir("spasm-cluster", folder, seed=3)


def test_replay_json_is_json_lines_only(cluster_trace: Path) -> None:
    code, text = _run(["replay", str(cluster_trace), "--json"])
    assert code == 0
    records = [json.loads(line) for line in text.splitlines()]
    types = {r["type"] for r in records}
    assert {"event", "alert", "cluster"} <= types
    for r in records:
        if r["type"] == "event":
            assert isinstance(r["t"], float) and r["cls"] in {"jerk", "spasm_like", "movement"}
        if r["type"] == "alert":
            assert r["level"] in {"info", "warning", "alarm", "fault"} and "t" in r
        if r["type"] == "cluster":
            assert r["start"] <= r["end"] and r["n_events"] >= 1
    alarms = [r for r in records if r["type"] == "alert" and r["level"] == "alarm"]
    assert alarms, "a simulated spasm cluster should raise an alarm"
    # The alarm fires while the cluster is going on, not when it closes.
    spasm_ends = sorted(lb.end for lb in _labels(cluster_trace) if lb.label == "spasm")
    assert alarms[0]["t"] < spasm_ends[-1]


def _labels(trace: Path):
    from spasmwatch.simulator.traceio import read_labels

    return read_labels(labels_path_for(trace))


def test_replay_accepts_a_trace_written_by_someone_else(tmp_path: Path) -> None:
    # Another tool's export: gzip, other column order, extra columns, metadata and
    # comments, 30 Hz nominal with jitter and a dropped stretch.
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(0.030, 0.037, 4000))
    t = np.delete(t, np.s_[1500:1530])
    lines = ["# device: other-logger", "# rate_hz: 30", "# free comment here",
             "temp,az,ay,ax,t,note"]
    for i, ti in enumerate(t):
        z = 1.0 + (0.6 if 2000 <= i < 2003 else 0.0)
        lines.append(f"21.5,{z + rng.normal(0, 0.003):.4f},{rng.normal(0, 0.003):.4f},"
                     f"{rng.normal(0, 0.003):.4f},{ti:.4f},ok")
    path = tmp_path / "outside.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    code, text = _run(["replay", str(path), "--json"])
    assert code == 0
    records = [json.loads(line) for line in text.splitlines()]
    events = [r for r in records if r["type"] == "event"]
    assert len(events) == 1 and abs(events[0]["t"] - t[2000]) < 0.2
    assert any(r["type"] == "gap" for r in records)  # the dropped stretch is reported


def test_malformed_trace_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("t,ax,ay,az\n0,0,0,1\n0.01,0,0,1\n0.02,0,zero,1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "spasmwatch", "replay", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"{path}:4:" in lines[0] and "ay" in lines[0]
    assert proc.stdout == ""


def test_missing_file_and_unknown_scenario_exit_2(tmp_path: Path) -> None:
    assert _run(["replay", str(tmp_path / "nope.csv")])[0] == 2
    assert _run(["simulate", "no-such-scenario", "-o", str(tmp_path)])[0] == 2
    assert _run(["evaluate", str(tmp_path / "missing")])[0] == 2


def test_simulate_writes_trace_and_labels(tmp_path: Path) -> None:
    code, text = _run(["simulate", "hypnic-jerks", "-o", str(tmp_path), "--rate", "200",
                       "--range", "8", "--gz"])
    assert code == 0
    trace = tmp_path / "hypnic-jerks.csv.gz"
    assert trace.exists() and labels_path_for(trace).exists()
    assert str(trace) in text


def test_evaluate_scores_a_folder(tmp_path: Path) -> None:
    scenarios.simulate_to_dir("spasm-cluster", tmp_path, seed=3)
    scenarios.simulate_to_dir("hypnic-jerks", tmp_path, seed=4)
    code, text = _run(["evaluate", str(tmp_path), "--json"])
    assert code == 0
    summary = json.loads(text)
    assert summary["traces"] == 2 and summary["clusters"] == 1
    assert summary["cluster_sensitivity"] == 1.0
    assert summary["false_alarms"] == 0
    assert summary["replay_speed_x"] > 1


def test_demo_runs_the_whole_system(tmp_path: Path) -> None:
    code, text = _run(["demo", "--scenario", "spasm-cluster", "--seed", "3", "--speed", "0"])
    assert code == 0
    assert "not a medical device" in text
    assert "ALARM" in text and "Summary" in text
    assert "simulated spasms" in text
    # The chain really ran: the firmware's status packet from MicroPython, over serial.
    assert "board: connected over serial" in text
    assert "firmware running under MicroPython: free heap" in text
    assert ", 0 missing, 0 duplicates" in text


def test_demo_in_process_gives_the_same_summary() -> None:
    argv = ["demo", "--scenario", "spasm-cluster", "--seed", "3", "--speed", "0"]
    code, chain = _run(argv)
    code2, local = _run([*argv, "--in-process"])
    assert code == code2 == 0
    assert "MicroPython" not in local.split("\n\n", 1)[1]
    # The chain also runs alert delivery (no sound server here: a delivery problem is
    # reported on its own line); what the sensor data gave must be the same.
    chain_summary = [ln for ln in chain.split("Summary")[1].splitlines()
                     if not ln.startswith("  alert delivery")]
    assert chain_summary == local.split("Summary")[1].splitlines()


@pytest.mark.parametrize("command", [["replay"], ["demo", "--in-process", "--trace"]])
def test_a_folder_instead_of_a_trace_is_one_line_and_exit_2(tmp_path: Path,
                                                            command: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "spasmwatch", *command, str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "is a folder, not a trace file" in lines[0]
    assert "Traceback" not in proc.stderr


def test_replay_of_a_gzip_bomb_is_one_line_and_small(tmp_path: Path) -> None:
    # 200 MB of one endless line in a ~200 kB .gz (the kind of file that used 554 MB):
    # the streamed reader stops at the line-length cap.
    path = tmp_path / "bomb.csv.gz"
    with gzip.open(path, "wb") as f:
        block = b"0" * (1 << 20)
        for _ in range(200):
            f.write(block)
    # VmHWM: this process's peak since exec (ru_maxrss would count the forking parent).
    code = ("import sys; from spasmwatch.host.cli.main import main; rc = main(); "
            "print([ln.split()[1] for ln in open('/proc/self/status') "
            "if ln.startswith('VmHWM:')][0], file=sys.stderr); sys.exit(rc)")
    proc = subprocess.run(
        [sys.executable, "-c", code, "replay", str(path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    err, rss_kb = proc.stderr.strip().splitlines()
    assert f"{path}:1: line longer than" in err
    assert int(rss_kb) < 200 * 1024  # the interpreter and imports, not the 200 MB


def test_the_default_demo_raises_exactly_one_alarm_inside_its_cluster() -> None:
    # The demo as a newcomer runs it (in-process here, for speed: the chain gives the same
    # summary, test_demo_in_process_gives_the_same_summary).
    code, text = _run(["demo", "--speed", "0", "--in-process"])
    assert code == 0
    summary = text.split("Summary")[1]
    assert ", 1 alarm," in summary
    line = next(ln for ln in summary.splitlines() if "the alarm came" in ln)
    assert float(line.split("came")[1].split("s after")[0]) >= 0
    assert "outside the simulated cluster" not in summary
