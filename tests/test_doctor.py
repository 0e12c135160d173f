"""``spasmwatch doctor`` against the virtual board: the firmware under MicroPython, its
INFO replies, and what the checks make of a healthy board and of injected faults."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest

from spasmwatch.host.cli.doctor import diagnose, local_firmware_hash
from spasmwatch.host.links.serial_link import SerialLink
from spasmwatch.simulator.board_runner import BOARD_DIR, BoardRunner


def test_doctor_firmware_hash_matches_the_board_computation(run_micropython: Any) -> None:
    proc = run_micropython("from firmware import app\nprint(app.firmware_hash())",
                           extra_path=[BOARD_DIR])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert int(proc.stdout.strip()) == local_firmware_hash()


def _by_name(checks: list[Any]) -> dict[str, Any]:
    return {c.name: c for c in checks}


def test_doctor_clone_with_a_fast_sensor_clock() -> None:
    knobs = {"mpu_ppm": 10_000, "whoami": 0x70, "battery_mv": 3300}
    with BoardRunner(None, speed=1, knobs=knobs) as runner:
        checks = _by_name(asyncio.run(diagnose(SerialLink(runner.port), seconds=10)))
    assert checks["link"].status == "PASS"
    assert checks["firmware"].status == "PASS", checks["firmware"].detail
    assert checks["sensor"].status == "PASS" and "512-byte FIFO" in checks["sensor"].detail
    rate = checks["sample rate"].value
    assert abs(rate["sensor_ppm"] - 10_000) <= 3_000, checks["sample rate"].detail
    assert checks["battery"].status == "FAIL" and "low" in checks["battery"].detail
    assert checks["FIFO"].status == "PASS" and checks["I2C"].status == "PASS"


def test_doctor_missing_sensor_fails() -> None:
    with BoardRunner(None, speed=1, knobs={"absent": 1}) as runner:
        checks = _by_name(asyncio.run(diagnose(SerialLink(runner.port), seconds=5)))
    assert checks["sensor"].status == "FAIL" and "never answered" in checks["sensor"].detail
    assert checks["I2C"].status == "WARN"


@pytest.mark.slow
def test_doctor_cli_on_a_virtual_board() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from spasmwatch.host.cli.main import main; "
         "sys.exit(main(sys.argv[1:]))", "doctor", "--simulate", "--seconds", "5", "--json"],
        capture_output=True, text=True, timeout=120, check=False)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    names = [r["check"] for r in rows]
    assert names == ["link", "firmware", "sensor", "sample rate", "FIFO", "I2C", "board",
                     "battery", "link quality"], proc.stdout + proc.stderr
    by = {r["check"]: r for r in rows}
    for name in ("link", "firmware", "sensor", "FIFO", "I2C", "board", "battery"):
        assert by[name]["status"] == "PASS", by[name]
    assert by["sample rate"]["value"]["sensor_ppm"] == 0  # the virtual chip's default
