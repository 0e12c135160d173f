"""The virtual board speaks MicroPython's ``bluetooth`` and ``time`` contracts exactly.

tests/fixtures/micropython_bluetooth_v1.27.0.json is copied from MicroPython's sources
at a pinned tag (paths and commit inside it): IRQ event codes, characteristic flags, the
default attribute length, each IRQ's argument shape, the failed-connection event and the
ticks period. The simulated ``bluetooth`` (simulator/board/bluetooth.py, run under the
real MicroPython interpreter), the bridge that feeds it events and the firmware's own
constants (firmware/ble_link.py) must all equal it. The shims are also type-checked
against the same ESP32 stubs as the firmware.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from spasmwatch.firmware import ble_link
from spasmwatch.simulator import ble_bridge

REPO = Path(__file__).resolve().parent.parent
BOARD = REPO / "simulator" / "board"
FIXTURE = json.loads((Path(__file__).parent / "fixtures" /
                      "micropython_bluetooth_v1.27.0.json").read_text())


def test_fixture_names_its_source() -> None:
    assert FIXTURE["tag"] == "v1.27.0" and len(FIXTURE["commit"]) == 40
    assert "extmod/modbluetooth.h" in FIXTURE["copied_from"]["irq_codes"]


def test_firmware_irq_codes_and_flags_equal_micropython() -> None:
    codes = FIXTURE["irq_codes"]
    for name in ("_IRQ_CENTRAL_CONNECT", "_IRQ_CENTRAL_DISCONNECT", "_IRQ_GATTS_WRITE",
                 "_IRQ_MTU_EXCHANGED"):
        assert getattr(ble_link, name) == codes[name], name
    for name in ("_FLAG_READ", "_FLAG_WRITE_NO_RESPONSE", "_FLAG_WRITE", "_FLAG_NOTIFY"):
        assert getattr(ble_link, name) == FIXTURE["flags"][name[1:]], name
    assert ble_bridge.IRQ_CENTRAL_CONNECT == codes["_IRQ_CENTRAL_CONNECT"]
    assert ble_bridge.IRQ_CENTRAL_DISCONNECT == codes["_IRQ_CENTRAL_DISCONNECT"]
    assert ble_bridge.IRQ_GATTS_WRITE == codes["_IRQ_GATTS_WRITE"]
    assert ble_bridge.IRQ_MTU_EXCHANGED == codes["_IRQ_MTU_EXCHANGED"]


def _bridge_messages() -> list[dict[str, Any]]:
    """The event messages the bridge really sends for each IRQ (its own code path)."""
    sent: list[dict[str, Any]] = []
    bridge = ble_bridge.BleBridge.__new__(ble_bridge.BleBridge)
    bridge._send = sent.append  # type: ignore[method-assign]
    bridge._on_peripheral_event(ble_bridge.IRQ_CENTRAL_CONNECT, (64, 1, "c0ffee000001"), None)
    bridge._on_peripheral_event(ble_bridge.IRQ_GATTS_WRITE, (64, 9), b"\x01" * 30)
    bridge._on_peripheral_event(ble_bridge.IRQ_MTU_EXCHANGED, (64, 247), None)
    bridge._on_peripheral_event(ble_bridge.IRQ_CENTRAL_DISCONNECT, (64, 1, "c0ffee000001"),
                                None)
    # fail_connection()'s message (sent from a coroutine; same shape)
    sent.append({"ev": ble_bridge.IRQ_CENTRAL_DISCONNECT, "a": [0xFFFF, 0xFF, "000000000000"]})
    return sent


SHIM_SCRIPT = """
import json, sys, bluetooth
seen = []
def shape(x):
    if isinstance(x, memoryview):
        return "memoryview%d" % len(x)
    return type(x).__name__
def handler(ev, data):
    seen.append([ev, [shape(x) for x in data], [x if isinstance(x, int) else None
                                                for x in data]])
bluetooth._state["irq"] = handler
bluetooth._state["values"][9] = b""
for line in sys.stdin:
    bluetooth._dispatch(json.loads(line))
consts = {}
for name in dir(bluetooth):
    if name.startswith("FLAG_") or name.startswith("_IRQ_") or name == "_DEFAULT_ATTR_LEN":
        consts[name] = getattr(bluetooth, name)
print(json.dumps({"seen": seen, "consts": consts,
                  "written": len(bluetooth._state["values"][9])}))
"""


def test_shim_irq_shapes_and_constants_equal_micropython(run_micropython: Any) -> None:
    msgs = _bridge_messages()
    proc = run_micropython(SHIM_SCRIPT, extra_path=[BOARD],
                           stdin="".join(json.dumps(m) + "\n" for m in msgs))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    names = {v: k for k, v in FIXTURE["irq_codes"].items()}
    for ev, shape, _values in got["seen"]:
        assert shape == FIXTURE["irq_args"][names[ev]], (names[ev], shape)
    assert [e for e, _, _ in got["seen"]] == [1, 3, 21, 2, 2]
    failed = got["seen"][-1][2]
    assert failed[1] == FIXTURE["failed_connection"]["addr_type"]
    consts = got["consts"]
    for name, value in FIXTURE["flags"].items():
        assert consts[name] == value, name
    for name in ("_IRQ_CENTRAL_CONNECT", "_IRQ_CENTRAL_DISCONNECT", "_IRQ_GATTS_WRITE",
                 "_IRQ_GATTS_INDICATE_DONE"):
        assert consts[name] == FIXTURE["irq_codes"][name], name
    # A 30-byte client write to a characteristic without gatts_set_buffer: 20 kept.
    assert consts["_DEFAULT_ATTR_LEN"] == FIXTURE["default_attr_len"]
    assert got["written"] == FIXTURE["default_attr_len"]


def test_shim_ticks_period_equals_the_esp32(run_micropython: Any) -> None:
    code = ("import time\n"
            "print(time.ticks_add(0, -1) + 1, time.ticks_diff(0, time.ticks_add(0, -1)))\n")
    proc = run_micropython(code, extra_path=[BOARD])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == [str(FIXTURE["ticks_period"]), "1"]


def test_shims_type_check_against_the_esp32_stubs() -> None:
    tool = REPO / "tools" / "typecheck_firmware.py"
    sys.path.insert(0, str(tool.parent))
    try:
        import typecheck_firmware as tc  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    if not tc.typings_ready():
        from tooling import missing

        missing("MicroPython typings not set up: python tools/setup_typings.py")
    shims = [str(p.relative_to(REPO)) for p in sorted(BOARD.glob("*.py"))]
    # The shims import each other as top-level modules (they are MICROPYPATH's first
    # folder): MYPYPATH and explicit package bases give them those names.
    cmd = tc.mypy_command(["--explicit-package-bases", *shims])
    env = dict(os.environ, MYPYPATH=str(BOARD))
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ["machine", "time", "bluetooth"])
def test_shims_keep_the_board_api(run_micropython: Any, name: str) -> None:
    # Every name the firmware uses from the module exists on the simulated one.
    needed = {
        "machine": ["I2C", "SoftI2C", "Pin", "ADC", "WDT", "reset", "unique_id", "freq"],
        "time": ["ticks_ms", "ticks_us", "ticks_diff", "ticks_add", "sleep_ms", "sleep_us"],
        "bluetooth": ["BLE", "UUID", "FLAG_READ", "FLAG_WRITE", "FLAG_NOTIFY"],
    }[name]
    code = f"import {name}\nprint([n for n in {needed!r} if not hasattr({name}, n)])\n"
    proc = run_micropython(code, extra_path=[BOARD])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "[]"
