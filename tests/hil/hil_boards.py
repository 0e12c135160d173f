"""Boards for the hardware-in-the-loop suite: a real one on a serial port, or a virtual one.

Both are driven the same way, so every HIL test runs in CI against the virtual board
(the unmodified firmware under the real MicroPython interpreter, on a pty, with a
virtual MPU-6050: simulator/board_runner.py) and on the bench against real hardware:

    board.flash() -> FlashResult   # spasmwatch's flash code; real: mpremote over the port,
                                   # virtual: files copied into its folder, hashes checked
                                   # by MicroPython's hashlib in that folder
    board.boot() / board.reboot()  # start the firmware / restart it (power-cycle-like)
    board.connect() -> SerialClient
    board.set_knobs(...)           # virtual only (battery, charging, sensor faults)
    board.close()

``SerialClient`` speaks the firmware's framing (COBS, firmware/framing.py) and wire
format (firmware/wire.py) over pyserial, and waits for conditions with a deadline (no
fixed sleeps).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import serial

from spasmwatch.firmware import control, framing, wire
from spasmwatch.host.flash import (
    FlashResult,
    FolderTransport,
    MpremoteTransport,
    build_plan,
    flash,
)
from spasmwatch.simulator.board_runner import BoardRunner

HIL_KEY = b"hil-test-key-0001"
Packet = tuple[int, tuple[Any, ...]]  # (seq, record)


class SerialClient:
    """Frames out, packets in; everything received is kept in ``packets``."""

    def __init__(self, port: str) -> None:
        self.ser = serial.Serial(port, 115200, timeout=0.02, write_timeout=10)
        self.ser.reset_input_buffer()
        self.deframer = framing.Deframer()
        self.packets: list[Packet] = []
        self.bad = 0

    def send(self, payload: bytes) -> None:
        self.ser.write(framing.encode(payload))

    def pump(self) -> list[Packet]:
        """Read what has arrived (waits at most the port timeout); return new packets."""
        data = self.ser.read(max(1, self.ser.in_waiting))
        new: list[Packet] = []
        for frame in self.deframer.feed(data):
            try:
                new.append(wire.decode(frame, None))
            except wire.WireError:
                self.bad += 1
        self.packets += new
        return new

    def wait_for(self, pred: Callable[[Packet], bool], timeout: float = 30.0) -> Packet:
        """The first packet from now on satisfying ``pred``; fails after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pkt in self.pump():
                if pred(pkt):
                    return pkt
        raise AssertionError(f"no matching packet within {timeout:g} s "
                             f"({len(self.packets)} packets received)")

    def command(self, payload: bytes, timeout: float = 30.0) -> tuple[Any, ...]:
        """Send a control payload; return the device's reply record for its opcode."""
        opcode = payload[0]
        self.send(payload)
        _, rec = self.wait_for(
            lambda p: p[1][0] == wire.KIND_REPLY and p[1][2] == opcode, timeout
        )
        return rec

    def close(self) -> None:
        self.ser.close()


def is_kind(kind: int) -> Callable[[Packet], bool]:
    return lambda p: p[1][0] == kind


def status_dict(rec: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(wire.STATUS_FIELDS, rec, strict=True))


_nonce = [int(time.time())]


def next_nonce() -> int:
    """Injection nonces must grow (the board refuses a reused one)."""
    _nonce[0] += 1
    return _nonce[0] & 0xFFFFFFFF


def inject_start(client: SerialClient, key: bytes = HIL_KEY) -> int:
    return int(client.command(control.encode_inject_start(key, next_nonce()))[3])


class VirtualBoard:
    """The firmware under MicroPython on a pty, booting from the folder it was flashed to."""

    kind = "virtual"
    can_set_knobs = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runner: BoardRunner | None = None
        self.knobs: dict[str, int] = {}
        self.port = ""

    def flash(self) -> FlashResult:
        # The virtual charger's STAT line is wired to GPIO2 through the per-device
        # config, so a flashed setting is seen by the running firmware.
        plan = build_plan({"DEVICE_NAME": "hil-board", "PIN_CHARGING": 2}, key=HIL_KEY)
        try:
            return flash(plan, FolderTransport(self.root))
        finally:
            plan.cleanup()

    def boot(self) -> None:
        self.runner = BoardRunner(
            speed=0.0, knobs=self.knobs, workdir=self.root, firmware_root=self.root
        )
        self.port = self.runner.start()

    def reboot(self) -> None:
        assert self.runner is not None
        self.runner.stop()
        self.boot()

    def set_knobs(self, **knobs: int) -> None:
        self.knobs.update(knobs)
        if self.runner is not None:
            self.runner.set_knobs(**knobs)

    def connect(self) -> SerialClient:
        return SerialClient(self.port)

    def log(self) -> str:
        return self.runner.log() if self.runner is not None else ""

    def close(self) -> None:
        if self.runner is not None:
            self.runner.stop()
            self.runner = None


class RealBoard:
    """An ESP32-S3 with MicroPython on ``port`` (``--hil-port``)."""

    kind = "real"
    can_set_knobs = False

    def __init__(self, port: str) -> None:
        self.port = port

    def flash(self) -> FlashResult:
        plan = build_plan({"DEVICE_NAME": "hil-board"}, key=HIL_KEY)
        try:
            # flash() ends with a hard reset: the board boots the new firmware.
            return flash(plan, MpremoteTransport(self.port))
        finally:
            plan.cleanup()

    def boot(self) -> None:
        # Booted by the reset at the end of flash(); nothing else to start.
        return None

    def reboot(self) -> None:
        # The running firmware ignores Ctrl-C, so no REPL: pulse RTS (EN) like esptool's
        # hard reset. The port may re-enumerate; wait until it can be opened again.
        with serial.Serial(self.port) as s:
            s.dtr = False
            s.rts = True
            time.sleep(0.1)  # the reset pulse itself, not a wait for a condition
            s.rts = False
        deadline = time.monotonic() + 15
        while True:
            try:
                serial.Serial(self.port).close()
                return
            except serial.SerialException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def set_knobs(self, **knobs: int) -> None:
        raise NotImplementedError("a real board has no knobs")

    def connect(self) -> SerialClient:
        return SerialClient(self.port)

    def log(self) -> str:
        return ""

    def close(self) -> None:
        return None
