"""Test stand-ins for the *wire*, for what the real virtual board cannot do.

``PtyDevice`` puts arbitrary bytes on a real pty (REPL text, noise, packets on a
schedule) behind a stable symlink that can be unplugged and plugged again; the serial
link tests use it where the firmware itself would never produce such bytes. It answers
PING, SET_TIME and RESEND from a resend ring like the firmware (firmware/app.py).

``UsbCable`` is the cable between the real virtual board (``BoardRunner``: the firmware
under MicroPython) and the host: a relay from the board's pty to a new pty behind a
symlink. ``unplug()`` removes the host side (the host's reads fail, the path is gone)
and throws away what the board sends meanwhile, as a pulled USB cable does;
``plug()`` makes a new host side behind the same path.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from spasmwatch.firmware import config as fwconfig
from spasmwatch.firmware import control, framing, wire

STATUS_OK = wire.ST_SENSOR_OK


@dataclass(frozen=True)
class Item:
    """One record the device will send when its clock reaches ``send_s``."""

    send_s: float  # device seconds since boot
    rec: tuple


def scenario_schedule(
    name: str, seed: int = 1, tail_s: float = 75.0, status_s: float = fwconfig.STATUS_S
) -> tuple[list[Item], object]:
    """The firmware's packets for a scenario, with statuses; returns (items, trace)."""
    from spasmwatch.simulator import scenarios
    from spasmwatch.simulator.replay import detector_packets, to_sensor_stream

    trace, _ = scenarios.generate(name, seed=seed)
    cfg = fwconfig.DetectorConfig()
    stream = to_sensor_stream(trace, cfg)
    items: list[Item] = []
    end = 0.0
    for t_block, packets in detector_packets(stream, cfg):
        end = t_block - stream.t0
        for p in packets:
            _, rec = wire.decode(p)
            items.append(Item(end, rec))
    items += status_items(status_s, end + tail_s, status_s)
    items.sort(key=lambda it: it.send_s)
    return items, trace


def status_items(first_s: float, until_s: float, every_s: float) -> list[Item]:
    out = []
    t = first_s
    while t <= until_s:
        out.append(Item(t, status(t)))
        t += every_s
    return out


def status(t_s: float, flags: int = STATUS_OK) -> tuple:
    return (wire.KIND_STATUS, round(t_s * 1000), 3900, flags, 5, 90, 50, 4)


class PtyDevice:
    """Play ``items`` onto a pty behind ``path`` at ``speed`` x real time (0: at once)."""

    def __init__(self, items: list[Item], path: Path, speed: float = 0.0,
                 ring: int = fwconfig.RING_PACKETS) -> None:
        self.items = items
        self.path = Path(path)
        self.speed = speed
        self.ring: deque[tuple[int, bytes]] = deque(maxlen=ring)
        self.seq = 0
        self.sent: list[tuple[int, bytes, float]] = []  # (seq, packet, wall time) written
        self.frames_written = 0
        self.last_write = 0.0  # monotonic time of the last frame written
        self.controls: list[tuple[int, tuple]] = []  # decoded control payloads received
        self.paused = threading.Event()  # firmware stopped: nothing is produced
        self.done = threading.Event()  # every item produced
        self.host_seen = threading.Event()  # a control payload arrived
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards _master/_slave; never held while waiting
        self._write_lock = threading.Lock()  # one writer at a time (whole frames)
        self._master: int | None = None
        self._slave: int | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._deframer = framing.Deframer()
        self._threads: list[threading.Thread] = []
        self.t_start = 0.0

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> PtyDevice:
        self.plug()
        self.t_start = time.monotonic()
        for fn in (self._produce, self._read_controls):
            th = threading.Thread(target=fn, daemon=True)
            th.start()
            self._threads.append(th)
        return self

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        os.write(self._wake_w, b"x")
        for th in self._threads:
            th.join(timeout=5)
        self.unplug()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self) -> PtyDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults the tests inject -----------------------------------------------------------

    def plug(self) -> None:
        with self._lock:
            if self._master is not None:
                return
            master, slave = os.openpty()
            tty.setraw(slave)
            os.set_blocking(master, False)  # see _write
            self._master, self._slave = master, slave
            tmp = self.path.with_suffix(".new")
            if tmp.exists() or tmp.is_symlink():
                tmp.unlink()
            tmp.symlink_to(os.ttyname(slave))
            tmp.replace(self.path)
            self._deframer = framing.Deframer()
            self.frames_written = 0  # frames on this pty (a new link starts counting)
        os.write(self._wake_w, b"p")

    def unplug(self) -> None:
        with self._lock:
            if self._master is None:
                return
            if self.path.is_symlink():
                self.path.unlink()
            os.close(self._master)
            assert self._slave is not None
            os.close(self._slave)
            self._master = self._slave = None
        os.write(self._wake_w, b"u")

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def write_raw(self, data: bytes) -> None:
        """Put bytes on the wire as they are (REPL text, noise)."""
        self._write(data)

    # -- device behaviour ----------------------------------------------------------------

    def device_time(self) -> float:
        if self.speed <= 0:
            return float("inf")
        return (time.monotonic() - self.t_start) * self.speed

    def _emit(self, rec: tuple) -> None:
        pkt = wire.encode(self.seq, rec)
        self.ring.append((self.seq, pkt))
        self._send(self.seq, pkt)
        self.seq = (self.seq + 1) & 0xFFFF

    def _send(self, seq: int, pkt: bytes) -> None:
        # not connected (or stopped): the ring keeps it for a RESEND
        if self._write(framing.encode(pkt)):
            self.sent.append((seq, pkt, time.monotonic()))
            self.frames_written += 1
            self.last_write = time.monotonic()

    def _write(self, data: bytes) -> bool:
        """Write all of ``data`` to the host, waiting while its tty is full.

        Never holds ``_lock`` while waiting, so ``unplug()``/``stop()`` cannot hang on
        a host that stopped reading; ``_write_lock`` keeps frames from two threads
        whole. Returns False when unplugged or stopped before all was written.
        """
        view = memoryview(data)
        with self._write_lock:
            while view:
                with self._lock:
                    master = self._master
                    if master is None or self._stop.is_set():
                        return False
                    try:
                        view = view[os.write(master, view):]
                        continue
                    except BlockingIOError:
                        pass
                    except OSError:
                        return False
                try:
                    select.select([], [master], [], 0.05)
                except (OSError, ValueError):
                    pass  # unplugged meanwhile: the next round sees it
        return True

    def _reply(self, opcode: int, result: int, value: int) -> None:
        last = (self.seq - 1) & 0xFFFF
        rec = (wire.KIND_REPLY, self._now_ms(), opcode, result, value)
        self._send(-1, wire.encode(last, rec))

    def _now_ms(self) -> int:
        t = self.device_time()
        if t == float("inf"):
            t = self.items[-1].send_s if self.items else 0.0
        return round(t * 1000)

    def _produce(self) -> None:
        # The device's clock starts when a host first talks to it (SET_TIME/PING on
        # connect), so a fast simulation does not run ahead of a host still starting.
        while not self.host_seen.wait(0.05):
            if self._stop.is_set():
                return
        self.t_start = time.monotonic()
        for it in self.items:
            while not self._stop.is_set():
                if self.paused.is_set():
                    self._stop.wait(0.01)
                    continue
                wait = 0.0 if self.speed <= 0 else (
                    self.t_start + it.send_s / self.speed - time.monotonic())
                if wait <= 0:
                    break
                self._stop.wait(min(wait, 0.05))
            if self._stop.is_set():
                return
            self._emit(it.rec)
        self.done.set()

    def _read_controls(self) -> None:
        while not self._stop.is_set():
            master = self._master
            fds = [self._wake_r] + ([master] if master is not None else [])
            try:
                ready, _, _ = select.select(fds, [], [])
            except (OSError, ValueError):
                continue  # the master was closed between reading it and select()
            if self._wake_r in ready:
                os.read(self._wake_r, 64)
            if master is None or master not in ready:
                continue
            try:
                data = os.read(master, 512)
            except OSError:
                continue  # unplugged under us
            for payload in self._deframer.feed(data):
                try:
                    op, args = control.decode(payload)
                except control.ControlError:
                    continue
                self.controls.append((op, args))
                self.host_seen.set()
                self._handle(op, args)

    def _handle(self, op: int, args: tuple) -> None:
        if self.paused.is_set():
            return  # firmware stopped: nothing answers
        if op == control.PING:
            self._reply(op, control.RESULT_OK, args[0])
        elif op == control.SET_TIME:
            self._reply(op, control.RESULT_OK, self._now_ms())
        elif op == control.RESEND:
            first, last = args
            n_want = (last - first) % 65536 + 1
            found = [(s, p) for s, p in list(self.ring) if (s - first) % 65536 < n_want]
            for s, p in found:
                self._send(s, p)
            result = control.RESULT_OK if len(found) == n_want else control.RESULT_GONE
            self._reply(op, result, len(found))


class UsbCable:
    """A pluggable relay: board pty <-> a host pty behind ``path``.

    The relay never blocks on a write: when the host stops reading (a failed or killed
    host), bytes wait in ``_up`` and the relay stops taking more from the board (back
    pressure, as a USB host that does not poll), so ``unplug()`` and the exit of the
    ``with`` block never wait on a full tty buffer. It never holds ``_lock`` across a
    system call that can block.
    """

    def __init__(self, board_port: str, path: Path) -> None:
        self.board_port = board_port
        self.path = Path(path)
        self.board_fd = -1
        self.master: int | None = None
        self.slave: int | None = None
        self.dropped_bytes = 0  # sent by the board while unplugged
        # A probe on the wire (both directions), plugged or not:
        self.device_ms = -1  # newest device time in a stream packet from the board
        self.controls: list[int] = []  # opcodes of the control payloads the host sent
        self._up = bytearray()  # board -> host, not yet taken by the host's tty
        self._down = bytearray()  # host -> board, not yet taken by the board's tty
        self._board_gone = False  # the board's pty hung up (board stopped)
        self._up_deframer = framing.Deframer()
        self._down_deframer = framing.Deframer()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._relay, daemon=True)

    def __enter__(self) -> UsbCable:
        self.board_fd = os.open(self.board_port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.board_fd)
        self.plug()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._wake()
        self._thread.join(5)
        if self._thread.is_alive():  # a bug in the relay; say so rather than hang
            raise RuntimeError("UsbCable relay thread did not stop within 5 s")
        self.unplug()
        os.close(self.board_fd)
        os.close(self._wake_r)
        os.close(self._wake_w)

    def plug(self) -> None:
        with self._lock:
            if self.master is not None:
                return
            master, slave = os.openpty()
            tty.setraw(slave)
            os.set_blocking(master, False)
            self.master, self.slave = master, slave
            tmp = self.path.with_suffix(".new")
            if tmp.exists() or tmp.is_symlink():
                tmp.unlink()
            tmp.symlink_to(os.ttyname(slave))
            tmp.replace(self.path)
        self._wake()

    def unplug(self) -> None:
        with self._lock:
            if self.master is None:
                return
            if self.path.is_symlink():
                self.path.unlink()
            os.close(self.master)
            assert self.slave is not None
            os.close(self.slave)
            self.master = self.slave = None
            # What the host had not taken yet goes with the cable.
            self.dropped_bytes += len(self._up)
            self._up.clear()
        self._wake()

    def inject(self, data: bytes) -> None:
        """Noise on the wire towards the host (REPL text, a glitch), after what waits."""
        with self._lock:
            if self.master is not None:
                self._up += data
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"w")
        except (BlockingIOError, OSError):
            pass  # the pipe is full of wake-ups already (or closed at exit)

    def _relay(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                master = self.master
                board = -1 if self._board_gone else self.board_fd
                rfds = [self._wake_r]
                wfds = []
                if board >= 0 and not self._up:
                    rfds.append(board)  # take from the board only when the host kept up
                if master is not None and not self._down:
                    rfds.append(master)
                if master is not None and self._up:
                    wfds.append(master)
                if board >= 0 and self._down:
                    wfds.append(board)
            try:
                readable, writable, _ = select.select(rfds, wfds, [], 1.0)
            except (OSError, ValueError):
                continue  # unplugged between reading ``master`` and select()
            if self._wake_r in readable:
                os.read(self._wake_r, 4096)
            with self._lock:
                if self.master != master:
                    continue  # plugged or unplugged meanwhile: look again
                if board in readable:
                    self._from_board(board, master)
                if master is not None and master in readable:
                    try:
                        data = os.read(master, 512)
                    except OSError:
                        data = b""
                    self.controls += [p[0] for p in self._down_deframer.feed(data) if p]
                    self._down += data
                if master is not None and master in writable and self._up:
                    self._up = self._up[_write_some(master, self._up):]
                if board in writable and self._down:
                    self._down = self._down[_write_some(board, self._down):]

    def _from_board(self, board: int, master: int | None) -> None:
        try:
            data = os.read(board, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._board_gone = True  # the board stopped: nothing more will come
            return
        self._probe_up(data)
        if master is None:
            self.dropped_bytes += len(data)
        else:
            self._up += data

    def _probe_up(self, data: bytes) -> None:
        for p in self._up_deframer.feed(data):
            try:
                # A probe on the wire reads tagged packets too (contents are not secret).
                _, rec = wire.decode(p, (lambda b, t: True) if p[0] & wire.FLAG_AUTH else None)
            except wire.WireError:
                continue
            if rec[0] not in wire.OUT_OF_BAND:
                self.device_ms = max(self.device_ms, rec[1])


def _write_some(fd: int, data: bytes | bytearray) -> int:
    """Write what ``fd`` takes now (non-blocking); returns the count (0 when full/gone)."""
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0
    except OSError:
        return len(data)  # the other side is gone: the bytes are lost, as on a wire
