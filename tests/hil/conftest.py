"""The ``board`` and ``ble_board`` fixtures: the virtual board always, a real one with
``--hil-port`` (and, for ``ble_board``, ``--hil-ble``).

Each HIL test runs once per board. The real variant carries the ``hil`` marker, so
tests/conftest.py skips it (with the reason) unless ``--hil-port`` is given; the
virtual variant runs by default, so this suite is exercised in CI. ``ble_board`` is a
board reached over BLE as well as serial: the virtual one boots with its radio on the
Bumble bridge (simulator/ble_bridge.py); a real one needs its advertised name or
address (``--hil-ble``) and the system's Bluetooth adapter (bleak, BlueZ on Linux).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hil_ble import BleBoard, LoopThread, VirtualRadio
from hil_boards import HIL_NAME, RealBoard, VirtualBoard

# The virtual BLE board runs at 20x real time, not as fast as possible: notifications
# are flow-controlled (10 in flight), and an unbounded clock would flood the radio with
# status packets (~260/s measured) until the ring overwrote what a test must backfill.
VIRTUAL_BLE_SPEED = 20.0


@pytest.fixture(
    params=[
        pytest.param("virtual", id="virtual"),
        pytest.param("real", id="real", marks=pytest.mark.hil),
    ]
)
def board(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[VirtualBoard | RealBoard]:
    """A freshly flashed, booted board."""
    b: VirtualBoard | RealBoard
    if request.param == "real":
        b = RealBoard(request.getfixturevalue("hil_port"))
    else:
        request.getfixturevalue("micropython_exe")  # skips (fails in CI) when missing
        b = VirtualBoard(tmp_path / "board-fs")
    try:
        b.flash()
        b.boot()
        yield b
    finally:
        b.close()


@pytest.fixture(
    params=[
        pytest.param("virtual", id="virtual"),
        pytest.param("real", id="real", marks=pytest.mark.hil),
    ]
)
def ble_board(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BleBoard]:
    """A freshly flashed, booted board with its BLE link up (and its serial port)."""
    if request.param == "real":
        port = request.getfixturevalue("hil_port")
        name = request.config.getoption("--hil-ble")
        if not name:
            pytest.skip(f"BLE hardware-in-the-loop test: pass --hil-ble=NAME_OR_ADDRESS "
                        f"(the flashed board advertises as {HIL_NAME!r})")
    else:
        request.getfixturevalue("micropython_exe")  # skips (fails in CI) when missing
    loop = LoopThread()
    radio: VirtualRadio | None = None
    b: VirtualBoard | RealBoard
    try:
        if request.param == "real":
            b = RealBoard(port)
        else:
            radio = VirtualRadio(loop)
            b = VirtualBoard(tmp_path / "board-fs", ble_bridge=radio.start(),
                             speed=VIRTUAL_BLE_SPEED)
            name = HIL_NAME
        bb = BleBoard(b, str(name), loop, radio)
    except BaseException:
        if radio is not None:
            radio.close()
        loop.close()
        raise
    try:
        b.flash()
        b.boot()
        yield bb
    finally:
        bb.close()
