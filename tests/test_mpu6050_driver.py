"""The MPU-6050 driver (firmware/mpu6050.py) against the virtual chip, under MicroPython.

Each test runs a small script in the real MicroPython interpreter with simulator/board
first on MICROPYPATH (virtual I2C bus + MPU-6050, simulated clock as fast as possible)
and a counts file whose sample i is (i, -i, 1000 + i % 100), so every value read can be
checked against the sample it must be.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from spasmwatch.simulator.board_runner import BOARD_DIR, COUNTS_MAGIC

N_SAMPLES = 3000

PRELUDE = """
import json, time
import machine
from firmware import mpu6050

i2c = machine.I2C(0)
mpu = mpu6050.MPU6050(i2c)
from array import array
buf = array("h", [0] * (3 * mpu.max_read))
out = {}

def expect(i):
    return [i if i < 32768 else i - 65536, -i, 1000 + i % 100]

def drain():
    got = []
    while True:
        n = mpu.read(buf)
        for k in range(n):
            got.append([buf[3 * k], buf[3 * k + 1], buf[3 * k + 2]])
        if n == 0:
            return got
"""


@pytest.fixture
def counts_file(tmp_path: Path) -> Path:
    path = tmp_path / "ramp.counts"
    with open(path, "wb") as f:
        f.write(COUNTS_MAGIC + struct.pack("<HBB", 50, 4, 0))
        for i in range(N_SAMPLES):
            f.write(struct.pack("<hhh", i, -i, 1000 + i % 100))
    return path


@pytest.fixture
def run_driver(run_micropython, counts_file, monkeypatch):  # type: ignore[no-untyped-def]
    def run(body: str, **knobs: int) -> dict:
        monkeypatch.setenv("SPASMWATCH_SIM_SPEED", "0")
        monkeypatch.setenv("SPASMWATCH_SIM_COUNTS", str(counts_file))
        monkeypatch.setenv("SPASMWATCH_SIM_AFTER_END", "keep")
        monkeypatch.delenv("SPASMWATCH_SIM_KNOBS", raising=False)
        for name, value in knobs.items():
            monkeypatch.setenv("SPASMWATCH_SIM_" + name.upper(), str(value))
        proc = run_micropython(PRELUDE + body + "\nprint('OUT', json.dumps(out))\n",
                               extra_path=[BOARD_DIR], timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        line = [x for x in proc.stdout.splitlines() if x.startswith("OUT ")][-1]
        return json.loads(line[4:])

    return run


def test_init_sequence_configures_fifo_accel_only(run_driver) -> None:  # type: ignore[no-untyped-def]
    out = run_driver("""
out["ok"] = mpu.init()
regs = machine.MPU.regs
for name, reg in (("pwr1", 0x6B), ("pwr2", 0x6C), ("div", 0x19), ("cfg", 0x1A),
                  ("accel", 0x1C), ("fifo_en", 0x23), ("user", 0x6A), ("int_en", 0x38)):
    out[name] = regs[reg]
out["whoami"] = mpu.whoami
out["t_ms"] = time.ticks_ms()
""")
    assert out["ok"] is True and out["whoami"] == 0x68
    assert out["pwr1"] == 0x00  # awake (reset leaves SLEEP set), internal clock: no gyro
    assert out["pwr2"] == 0x07  # gyros in standby
    assert out["div"] == 19  # 1 kHz / (1 + 19) = 50 Hz
    assert out["cfg"] == 4  # DLPF 21 Hz for a 50 Hz rate
    assert out["accel"] == 0x08  # +-4 g
    assert out["fifo_en"] == 0x08  # accel only
    assert out["user"] == 0x40  # FIFO enabled (reset bit self-clears)
    assert out["int_en"] == 0x10  # FIFO overflow interrupt
    assert out["t_ms"] >= 100  # waited for the reset


def test_fifo_reads_whole_samples_in_order(run_driver) -> None:  # type: ignore[no-untyped-def]
    out = run_driver("""
mpu.init()
got = []
for step_ms in (130, 20, 1000, 70, 2000, 10):
    time.sleep_ms(step_ms)
    got += drain()
out["got"] = got
out["want"] = [expect(i) for i in range(len(got))]
out["fifo_left"] = machine.MPU.count
""")
    # 3.23 s at 50 Hz: 161 samples, read in bursts that never split a sample.
    assert len(out["got"]) == 161
    assert out["got"] == out["want"]
    assert out["fifo_left"] < 6


def test_overflow_detected_reset_and_reported(run_driver) -> None:  # type: ignore[no-untyped-def]
    out = run_driver("""
mpu.init()
time.sleep_ms(1000)
first = drain()
time.sleep_ms(5000)  # 250 samples = 1500 bytes > 1024: the FIFO overflows
out["during"] = mpu.read(buf)
out["overflows"] = mpu.overflows
out["flags"] = list(mpu.take_flags())
out["flags_after"] = list(mpu.take_flags())
time.sleep_ms(1000)
after = drain()
base = machine.MPU.samples - len(after)
out["aligned"] = after == [expect(base + i) for i in range(len(after))]
out["n_after"] = len(after)
out["first_ok"] = first == [expect(i) for i in range(len(first))]
""")
    assert out["during"] == 0
    assert out["overflows"] == 1
    assert out["flags"] == [True, False] and out["flags_after"] == [False, False]
    assert out["first_ok"] and out["aligned"] and out["n_after"] == 50


def test_who_am_i_mismatch_reported(run_driver) -> None:  # type: ignore[no-untyped-def]
    out = run_driver("""
out["ok"] = mpu.init()
out["whoami"] = mpu.whoami
out["err"] = mpu.last_error
out["read"] = mpu.read(buf)
""", whoami=0x12)
    assert out["ok"] is False and out["whoami"] == 0x12
    assert "WHO_AM_I 0x12" in out["err"]
    assert out["read"] == 0


def test_sensor_absent_reported_not_fatal(run_driver) -> None:  # type: ignore[no-untyped-def]
    out = run_driver("""
out["ok"] = mpu.init()
out["err"] = mpu.last_error
out["errors"] = mpu.i2c_errors
out["flags"] = list(mpu.take_flags())
time.sleep_ms(5000)
out["read"] = mpu.read(buf)  # retries init, still nothing there
out["errors_after"] = mpu.i2c_errors
""", absent=1)
    assert out["ok"] is False
    assert "no answer at 0x68" in out["err"]
    assert out["errors"] == 1 and out["flags"] == [False, True]
    assert out["read"] == 0 and out["errors_after"] == 2


@pytest.mark.parametrize("errno", [110, 5])
def test_i2c_errors_reported_then_recovered(run_driver, errno: int) -> None:  # type: ignore[no-untyped-def]
    # Init takes 13 transactions; fail 3 during streaming, then the bus heals.
    out = run_driver("""
mpu.init()
time.sleep_ms(500)
before = drain()
out["tx"] = machine._Bus.transactions
for _ in range(6):
    time.sleep_ms(100)
    mpu.read(buf)
out["ok_during"] = mpu.ok
out["errors"] = mpu.i2c_errors
out["err"] = mpu.last_error
out["flags"] = list(mpu.take_flags())
# Each re-init attempt (every MPU_REINIT_MS) uses up a failing transaction.
out["attempts"] = 0
after = []
while not mpu.ok and out["attempts"] < 5:
    time.sleep_ms(2500)
    out["attempts"] += 1
    drain()
time.sleep_ms(1000)
after = drain()
out["ok_after"] = mpu.ok
out["errors_total"] = mpu.i2c_errors
base = machine.MPU.samples - len(after)
out["n_after"] = len(after)
out["aligned"] = after == [expect(base + i) for i in range(len(after))]
out["before_ok"] = before == [expect(i) for i in range(len(before))]
""", i2c_fail_at=20, i2c_fail_count=3, i2c_errno=errno)
    assert out["ok_during"] is False
    assert 1 <= out["errors"] <= 3
    assert str(errno) in out["err"]
    assert out["flags"] == [False, True]
    assert out["ok_after"] is True and out["n_after"] == 50
    assert out["errors_total"] == 3 and out["attempts"] == 3
    assert out["aligned"] and out["before_ok"]
