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
format (firmware/wire.py) over pyserial; ``hil_ble.BleClient`` is the same
``PacketClient`` over the host's BLE link. Both wait for conditions with a deadline (no
fixed sleeps). ``VirtualBoard(root, ble_bridge="127.0.0.1:PORT")`` also brings up the
firmware's BLE link on that virtual radio (hil_ble.VirtualRadio).

Shared steps: ``trace_counts()`` / ``expected_records(counts)`` (a known trace and what
``simulator.replay.detector_packets`` makes of it), ``inject_trace(serial, counts)``
(injection mode with the key; returns the sequence numbers bracketing its packets),
``backfill(client, got, first, last)`` (RESEND of the missing runs, as the host does),
``assert_matches_simulator(detected, expected)``.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import serial

from spasmwatch.firmware import config as fwconfig
from spasmwatch.firmware import control, framing, wire
from spasmwatch.host.flash import (
    FlashResult,
    FolderTransport,
    MpremoteTransport,
    build_plan,
    flash,
)
from spasmwatch.host.pairing import Session
from spasmwatch.simulator.board_runner import BoardRunner
from spasmwatch.simulator.replay import SensorStream, detector_packets, to_sensor_stream
from spasmwatch.simulator.scenarios import generate

HIL_KEY = b"hil-test-key-0001"
HIL_NAME = "hil-board"  # the flashed DEVICE_NAME: also what the board advertises over BLE
BLE_BRIDGE_ENV = "SPASMWATCH_BLE_BRIDGE"  # simulator/board/bluetooth.py's radio address
Packet = tuple[int, tuple[Any, ...]]  # (seq, record)
# sequence-numbered kinds
IN_BAND = (wire.KIND_EVENT, wire.KIND_SUMMARY, wire.KIND_STATUS, wire.KIND_DETAIL)


class PacketClient:
    """Packets in (kept in ``packets``), control payloads out; waits on conditions.

    Subclasses provide ``send(payload)`` and ``pump() -> new packets`` (which waits at
    most a short poll interval); ``take(frames)`` decodes what a pump read.
    """

    def __init__(self) -> None:
        self.packets: list[Packet] = []
        self.bad = 0
        # The board is paired with HIL_KEY (docs/security.md): its packets are tagged
        # over its boot counter (learned from HELLO), commands are signed.
        self.session = Session(HIL_KEY)
        self.sign_all = False  # BLE: a paired board obeys only signed commands

    def send(self, payload: bytes) -> None:
        raise NotImplementedError

    def pump(self) -> list[Packet]:
        raise NotImplementedError

    def take(self, frames: list[bytes]) -> list[Packet]:
        new: list[Packet] = []
        for frame in frames:
            if wire.peek_kind(frame) == wire.KIND_REPLY and len(frame) > 7 \
                    and frame[7] == control.HELLO:
                if self.session.accept_hello(frame):
                    new.append(wire.decode(frame, lambda b, t: True))
                continue
            try:
                new.append(wire.decode(frame, self._verifier(frame)))
            except wire.WireError:
                self.bad += 1
        self.packets += new
        return new

    def _verifier(self, frame: bytes) -> Any:
        if not frame or not frame[0] & wire.FLAG_AUTH:
            return None
        if self.session.boot is None:
            return lambda b, t: True  # before the challenge is answered: read unchecked
        return self.session

    def hello(self) -> None:
        """The challenge: learns the board's boot counter and command counter."""
        self.exchange(self.session.hello())

    def signed(self, payload: bytes, key: bytes = HIL_KEY) -> bytes:
        """``payload`` signed with ``key`` for the board's current boot."""
        if self.session.boot is None or not self.sign_all:
            # Serial: ask again each time, another client (BLE) may have used counters.
            self.hello()
        self.session.cnt += 1
        return control.sign(payload, key, self.session.boot or 0, self.session.cnt)

    def wait_for(self, pred: Callable[[Packet], bool], timeout: float = 30.0) -> Packet:
        """The first packet from now on satisfying ``pred``; fails after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pkt in self.pump():
                if pred(pkt):
                    return pkt
        raise AssertionError(f"no matching packet within {timeout:g} s "
                             f"({len(self.packets)} packets received)")

    def exchange(self, payload: bytes, timeout: float = 30.0,
                 sign: bool | None = None) -> Packet:
        """Send a control payload; return the device's reply packet for its opcode.

        The reply's sequence number is the last stream packet sent before it. Over BLE
        (``sign_all``) an unsigned payload is signed first unless ``sign`` is False.
        """
        if (self.sign_all if sign is None else sign) and payload[0] not in control.UNSIGNED \
                and control.split(payload)[3] == -1:
            payload = self.signed(payload)
        opcode = payload[0]
        self.send(payload)
        return self.wait_for(
            lambda p: p[1][0] == wire.KIND_REPLY and p[1][2] == opcode, timeout
        )

    def command(self, payload: bytes, timeout: float = 30.0) -> tuple[Any, ...]:
        """Send a control payload; return the device's reply record for its opcode."""
        return self.exchange(payload, timeout)[1]


class SerialClient(PacketClient):
    """Frames out, packets in over the board's USB serial port (pyserial)."""

    def __init__(self, port: str) -> None:
        super().__init__()
        self.ser = serial.Serial(port, 115200, timeout=0.02, write_timeout=10)
        self.ser.reset_input_buffer()
        self.deframer = framing.Deframer()

    def send(self, payload: bytes) -> None:
        self.ser.write(framing.encode(payload))

    def pump(self) -> list[Packet]:
        """Read what has arrived (waits at most the port timeout); return new packets."""
        data = self.ser.read(max(1, self.ser.in_waiting))
        return self.take(self.deframer.feed(data))

    def drain(self) -> list[Packet]:
        """Read what has arrived without waiting; return new packets."""
        waiting = self.ser.in_waiting
        return self.take(self.deframer.feed(self.ser.read(waiting))) if waiting else []

    def close(self) -> None:
        self.ser.close()


def is_kind(kind: int) -> Callable[[Packet], bool]:
    return lambda p: p[1][0] == kind


def in_band(p: Packet) -> bool:
    """A stream packet (sequence-numbered, kept in the ring), not a reply or snippet."""
    return p[1][0] in IN_BAND


def detections(got: dict[int, tuple[Any, ...]], first: int, last: int) -> list[tuple[Any, ...]]:
    """The detector's records (events, their details, summaries) among seqs first..last,
    in order."""
    return [got[s] for s in range(first, last + 1)
            if s in got and got[s][0] in (wire.KIND_EVENT, wire.KIND_SUMMARY, wire.KIND_DETAIL)]


@functools.lru_cache(maxsize=2)
def trace_counts(scenario: str = "spasm-cluster", seed: int = 1) -> np.ndarray:
    """A known trace as the MPU-6050 would report it: (n, 3) int16 counts."""
    cfg = fwconfig.DetectorConfig()
    trace, _labels = generate(scenario, seed=seed)
    return to_sensor_stream(trace, cfg).counts.astype(np.int16)


def expected_records(counts: np.ndarray) -> list[tuple[Any, ...]]:
    """What the simulator's detector path sends for the same counts (decoded)."""
    cfg = fwconfig.DetectorConfig()
    stream = SensorStream(0.0, cfg.rate_hz, counts)
    return [
        wire.decode(p)[1]
        for _, packets in detector_packets(stream, cfg, block=fwconfig.FIFO_BATCH)
        for p in packets
    ]


def assert_matches_simulator(
    detected: list[tuple[Any, ...]], expected: list[tuple[Any, ...]]
) -> None:
    """Same records in the same order; device times offset by one constant."""
    assert len(detected) == len(expected), (detected, expected)
    # Device times are offset by when injection started; everything else is identical.
    offset = detected[0][1] - expected[0][1]
    for d, e in zip(detected, expected, strict=True):
        assert d[0] == e[0] and d[2:] == e[2:], (d, e)
        assert d[1] - e[1] == offset, (d, e, offset)


def spasm_like(records: list[tuple[Any, ...]]) -> int:
    return sum(1 for r in records if r[0] == wire.KIND_EVENT and r[2] == wire.CLS_SPASM_LIKE)


def inject_trace(client: SerialClient, counts: np.ndarray) -> tuple[int, int]:
    """Replay ``counts`` through the board's detector over serial (injection mode).

    Returns the sequence numbers of the INJECT_START and INJECT_STOP replies: the
    packets the injected trace produced are exactly those numbered in between.
    """
    seq_start, rec = client.exchange(client.signed(control.encode_inject_start(next_nonce())))
    assert rec[3] == control.RESULT_OK, rec
    block = fwconfig.FIFO_BATCH  # the simulator's block size
    flat = counts.reshape(-1, 3)
    for i in range(0, len(flat), block):
        client.send(control.encode_samples(flat[i : i + block].ravel().tolist()))
        client.drain()  # keep reading (without waiting), so the pty never fills up
    seq_stop, rec = client.exchange(control.encode_inject_stop(), timeout=120)
    assert rec[3] == control.RESULT_OK, rec
    return seq_start, seq_stop


def backfill(client: PacketClient, got: dict[int, tuple[Any, ...]], first: int, last: int,
             timeout: float = 60.0) -> int:
    """RESEND the stream packets first..last missing from ``got``, as the host does.

    Each contiguous run of missing numbers is one RESEND (nothing already received is
    asked for again); every resent packet is added to ``got``. Returns how many were
    missing; fails unless the board answers OK with exactly that many and a resent
    packet never differs from a copy already received.
    """
    missing = [s for s in range(first, last + 1) if s not in got]
    runs: list[list[int]] = []
    for s in missing:
        if runs and runs[-1][-1] == s - 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    for run in runs:
        mark = len(client.packets)
        rec = client.command(control.encode_resend(run[0], run[-1]), timeout)
        assert rec[3] == control.RESULT_OK and rec[4] == len(run), (rec, run)
        for seq, r in client.packets[mark:]:
            # (live packets that arrive meanwhile are outside first..last: not resends)
            if r[0] in IN_BAND and first <= seq <= last:
                assert got.setdefault(seq, r) == r, (seq, got[seq], r)
    still = [s for s in range(first, last + 1) if s not in got]
    assert not still, f"not backfilled: {still}"
    return len(missing)


def status_dict(rec: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(wire.STATUS_FIELDS, rec, strict=True))


_nonce = [int(time.time())]


def next_nonce() -> int:
    """Injection nonces must grow (the board refuses a reused one)."""
    _nonce[0] += 1
    return _nonce[0] & 0xFFFFFFFF


def inject_start(client: SerialClient, key: bytes = HIL_KEY) -> int:
    return int(client.command(client.signed(control.encode_inject_start(next_nonce()), key))[3])


class VirtualBoard:
    """The firmware under MicroPython on a pty, booting from the folder it was flashed to."""

    kind = "virtual"
    can_set_knobs = True

    def __init__(self, root: Path, ble_bridge: str | None = None, speed: float = 0.0) -> None:
        self.root = root
        # "127.0.0.1:PORT" of a simulator.ble_bridge: the firmware's BLE link comes up
        # on that virtual radio; None: no Bluetooth (serial only).
        self.ble_bridge = ble_bridge
        self.speed = speed
        self.runner: BoardRunner | None = None
        self.knobs: dict[str, int] = {}
        self.port = ""

    def flash(self) -> FlashResult:
        # The virtual charger's STAT line is wired to GPIO2 through the per-device
        # config, so a flashed setting is seen by the running firmware.
        plan = build_plan({"DEVICE_NAME": HIL_NAME, "PIN_CHARGING": 2}, key=HIL_KEY)
        try:
            return flash(plan, FolderTransport(self.root))
        finally:
            plan.cleanup()

    def boot(self) -> None:
        self.runner = BoardRunner(
            speed=self.speed, knobs=self.knobs, workdir=self.root, firmware_root=self.root
        )
        # The firmware process takes a copy of the environment when it starts: BLE only
        # when this board has a radio, whatever the caller's environment says.
        saved = os.environ.pop(BLE_BRIDGE_ENV, None)
        try:
            if self.ble_bridge is not None:
                os.environ[BLE_BRIDGE_ENV] = self.ble_bridge
            self.port = self.runner.start()
        finally:
            os.environ.pop(BLE_BRIDGE_ENV, None)
            if saved is not None:
                os.environ[BLE_BRIDGE_ENV] = saved

    def reboot(self) -> None:
        assert self.runner is not None
        self.runner.stop()
        self.boot()

    def set_knobs(self, **knobs: int) -> None:
        self.knobs.update(knobs)
        if self.runner is not None:
            self.runner.set_knobs(**knobs)

    def connect(self) -> SerialClient:
        client = SerialClient(self.port)
        client.hello()
        return client

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
        plan = build_plan({"DEVICE_NAME": HIL_NAME}, key=HIL_KEY)
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
        client = SerialClient(self.port)
        client.hello()
        return client

    def log(self) -> str:
        return ""

    def close(self) -> None:
        return None
