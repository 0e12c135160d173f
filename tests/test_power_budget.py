"""Tests for hardware/power_budget.py arithmetic and CLI.

``hardware/`` is not a package, so the module is loaded from its file path.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "hardware" / "power_budget.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("power_budget", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["power_budget"] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


pb = _load()


def test_nights_scale_linearly_with_capacity() -> None:
    ref = pb.REFERENCE
    n_500 = pb.evaluate(replace(ref, battery_mah=500.0)).nights
    n_1000 = pb.evaluate(replace(ref, battery_mah=1000.0)).nights
    n_250 = pb.evaluate(replace(ref, battery_mah=250.0)).nights
    assert n_1000 == pytest.approx(2.0 * n_500)
    assert n_250 == pytest.approx(0.5 * n_500)


def test_nights_formula() -> None:
    # 100 mAh * 0.8 usable / 1 mA = 80 h = 80/12 nights
    assert pb.nights_per_charge(100.0, 1.0, 0.8, 12.0) == pytest.approx(80.0 / 12.0)
    assert pb.runtime_hours(100.0, 1.0, 0.8) == pytest.approx(80.0)
    with pytest.raises(ValueError):
        pb.runtime_hours(100.0, 0.0, 0.8)


def test_gyro_on_reduces_nights() -> None:
    ref = pb.evaluate(pb.REFERENCE)
    gyro = pb.evaluate(replace(pb.REFERENCE, gyro_on=True))
    assert gyro.avg_current_ma > ref.avg_current_ma
    assert gyro.nights < ref.nights
    # The IMU term alone rises by the datasheet difference (3.8 mA - 0.5 mA).
    assert pb.imu_current_ua(replace(pb.REFERENCE, gyro_on=True)) - pb.imu_current_ua(
        pb.REFERENCE
    ) == pytest.approx(3300.0)


def test_total_matches_hand_computation() -> None:
    # Simple case: BLE off, LED removed, no per-sample cost, no wake overhead.
    cfg = replace(
        pb.REFERENCE,
        ble_mode="off",
        per_sample_cost_ms=0.0,
        wake_overhead_ms=0.0,
        mcu_sleep="light_sleep_32k",
        battery_v=4.0,
        divider_total_ohms=400_000.0,
    )
    # FIFO batch: 50 Hz * 0.5 s = 25 samples * 6 B + 8 B framing = 158 B
    i2c_ms = 158 * 9 / 400_000 * 1000  # 3.555 ms
    duty = i2c_ms / 500.0
    mcu = duty * 40_000.0 + (1 - duty) * 240.0
    divider = 4.0 / 400_000.0 * 1e6  # 10 uA
    pullups = 2 * (3.3 / 4700.0 * 1e6) * 0.5 * duty
    expected_ua = mcu + 500.0 + divider + pullups + 10.0 + 1.0
    assert pb.i2c_read_ms(cfg) == pytest.approx(i2c_ms)
    assert pb.average_current_ma(cfg) == pytest.approx(expected_ua / 1000.0)
    assert pb.ble_current_ua(cfg) == 0.0


def test_ble_connection_interval_and_advertising() -> None:
    fast = pb.evaluate(replace(pb.REFERENCE, ble_conn_interval_ms=30.0))
    slow = pb.evaluate(replace(pb.REFERENCE, ble_conn_interval_ms=500.0))
    assert fast.nights < slow.nights
    adv_fast = replace(pb.REFERENCE, ble_mode="advertising", ble_adv_interval_ms=100.0)
    adv_slow = replace(pb.REFERENCE, ble_mode="advertising", ble_adv_interval_ms=1000.0)
    # Per-event charge is constant, so 10x the event rate gives 10x the radio current.
    assert pb.ble_current_ua(adv_fast) == pytest.approx(10.0 * pb.ble_current_ua(adv_slow))


def test_processing_cost_and_no_sleep_penalties() -> None:
    ref = pb.evaluate(pb.REFERENCE)
    slow_py = pb.evaluate(replace(pb.REFERENCE, per_sample_cost_ms=1.0))
    no_sleep = pb.evaluate(replace(pb.REFERENCE, mcu_sleep="no_sleep"))
    assert slow_py.nights < ref.nights
    assert no_sleep.nights < ref.nights
    assert 0.0 < ref.cpu_duty < 0.1


def test_every_current_has_kind_and_source() -> None:
    for spec in pb.CURRENTS.values():
        assert spec.kind in {"datasheet", "vendor-measurement", "assumption"}
        assert spec.source.strip()
        assert spec.current_ua > 0


def test_headline_is_the_firmware_as_it_runs_today() -> None:
    # Stock MicroPython cannot light-sleep with BLE up: the headline must not assume it.
    today = pb.evaluate(pb.TODAY)
    assert pb.TODAY.mcu_sleep == "no_sleep"
    assert pb.scenarios()[0].name == pb.TODAY.name
    assert today.nights < 2.0
    # The route to two nights reaches it; the light-sleep route is the ~10-night one.
    assert max(pb.evaluate(c).nights for c in pb.TWO_NIGHTS) >= 2.0
    assert all(pb.evaluate(c).nights < 3.0 for c in pb.TWO_NIGHTS)
    assert pb.evaluate(pb.TEN_NIGHTS).nights > 8.0
    assert "untested" in pb.TEN_NIGHTS.name


def test_cli_text_prints_todays_nights() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--no-sources"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    today = pb.evaluate(pb.TODAY)
    assert out.splitlines()[4].startswith(pb.TODAY.name)
    assert f"NIGHTS PER CHARGE   : {today.nights:.1f}" in out
    assert f"AVERAGE CURRENT     : {today.avg_current_ma:.2f} mA" in out


def test_cli_json() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", "--per-sample-ms", "0.5"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data = json.loads(out)
    expected = pb.evaluate(replace(pb.TODAY, per_sample_cost_ms=0.5))
    assert data["headline"]["nights"] == pytest.approx(expected.nights)
    assert data["headline"]["config"]["per_sample_cost_ms"] == 0.5
    assert len(data["alternatives"]) >= 10
    assert "mpu6050_accel_only" in data["currents"]
