"""USB serial link to the sensor: pyserial on a port, COBS frames (``firmware/framing.py``).

Each frame from the device is one wire packet; each frame to it is one control payload.
Reading is event-driven: the port's file descriptor is registered with the asyncio loop
(``add_reader``), so an idle link costs no wake-ups and no thread. Bytes that are not
frames (MicroPython REPL text, a traceback after a crash) are skipped by the
``Deframer`` and counted in ``stats``; they never end the link.

A board that has just been reset has Ctrl-C armed until its main.py disarms it, and on
the ESP32-S3's USB CDC a 0x03 then drops it to the REPL; a SET_TIME frame holds 0x03. So
after opening, the link sends one PING whose frame holds neither 0x00 nor 0x03
(``PROBE_TOKEN``) and ``open`` returns once the device has sent something (it is then
running the monitor: a running board answers the PING within a loop iteration) or
``QUIET_WAIT_S`` has passed, so the caller's first command (SET_TIME) cannot reach a
board in its boot window, and its send time stays a true send time. The reply to that
PING is passed on to ``recv`` like any reply: it carries the newest sequence number the
device sent, which the daemon's first-contact backfill needs.

A port that goes away (USB cable pulled: the read fails or returns nothing although the
port reported data) raises ``LinkLost`` from ``recv``; opening a port that does not
exist raises ``LinkError("PORT: no such port")``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from dataclasses import dataclass

import serial

from spasmwatch.firmware import control, framing, wire
from spasmwatch.host.links.base import LinkError, LinkLost

__all__ = ["SerialLink", "SerialStats", "crc_ok"]

log = logging.getLogger("spasmwatch.link.serial")

BAUDRATE = 115200  # the board's UART rate; USB CDC ignores it
MAX_QUEUED_FRAMES = 4096  # frames waiting for recv(): bounded, oldest dropped (counted)
PROBE_TOKEN = 0x5753_5057  # PING token: no 0x00/0x03 byte, so harmless to a booting board
QUIET_WAIT_S = 4.0  # firmware/main.py's 2 s break-in window plus start-up, with margin


@dataclass
class SerialStats:
    """Counts for one link instance (what crossed the wire, what was thrown away)."""

    bytes_in: int = 0
    frames_in: int = 0
    frames_out: int = 0
    garbage_bytes: int = 0  # bytes the deframer skipped (REPL text, tracebacks, noise)
    bad_frames: int = 0  # zero-delimited runs that were not a CRC-correct packet
    overflow_frames: int = 0  # frames dropped because nobody called recv() for too long


class SerialLink:
    """The ``Link`` protocol over a serial port (``/dev/ttyACM0``, a pty, ``COM3``)."""

    name = "serial"

    def __init__(self, port: str, baudrate: int = BAUDRATE) -> None:
        self.port = port
        self.baudrate = baudrate
        self.stats = SerialStats()
        self._ser: serial.Serial | None = None
        # CRC-checking frames lets the deframer recover a packet glued to REPL text.
        self._deframer = framing.Deframer(validate=crc_ok)
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lost: BaseException | None = None
        self._heard: asyncio.Event | None = None  # the device has sent a byte since open

    # -- Link protocol -------------------------------------------------------------------

    async def open(self) -> None:
        if self._ser is not None:
            return
        try:
            # timeout=0: reads return what is there, never block the event loop.
            ser = serial.Serial(self.port, self.baudrate, timeout=0, write_timeout=1.0)
        except serial.SerialException as exc:
            raise LinkError(_open_error(self.port, exc)) from exc
        except OSError as exc:
            raise LinkError(_open_error(self.port, exc)) from exc
        self._ser = ser
        self._lost = None
        self._loop = asyncio.get_running_loop()
        # No reset_input_buffer(): packets queued before we opened are real data, and
        # the deframer skips any half frame or REPL text in front of them.
        self._heard = asyncio.Event()
        self._loop.add_reader(ser.fileno(), self._on_readable)
        log.info("%s: open", self.port)
        try:
            ser.write(framing.encode(control.encode_ping(PROBE_TOKEN)))
        except (serial.SerialException, OSError) as exc:
            self._fail(exc)
            return
        try:
            # A board in its boot window must not see 0x03 before main.py disarms it.
            await asyncio.wait_for(self._heard.wait(), QUIET_WAIT_S)
        except TimeoutError:
            pass  # a silent device: the daemon's own timeouts deal with it

    async def recv(self) -> bytes:
        if self._ser is None and self._queue.empty():
            raise LinkLost(f"{self.port}: not open")
        item = await self._queue.get()
        if isinstance(item, BaseException):
            self._queue.put_nowait(item)  # every later recv() fails the same way
            raise item
        return item

    async def send_control(self, payload: bytes) -> None:
        ser = self._ser
        if ser is None or self._lost is not None:
            raise LinkLost(f"{self.port}: not connected")
        frame = framing.encode(payload)
        try:
            ser.write(frame)  # a control frame is ≤ 26 bytes: fits the OS buffer at once
        except (serial.SerialException, OSError) as exc:
            self._fail(exc)
            raise LinkLost(f"{self.port}: write failed: {exc}") from exc
        self.stats.frames_out += 1

    async def close(self) -> None:
        ser = self._ser
        if ser is None:
            return
        self._ser = None
        self._detach(ser)
        try:
            ser.close()
        except (serial.SerialException, OSError):
            pass
        log.info("%s: closed", self.port)

    # -- internals -----------------------------------------------------------------------

    def _on_readable(self) -> None:
        ser = self._ser
        if ser is None:
            return
        try:
            data = ser.read(max(ser.in_waiting, 1))
        except (serial.SerialException, OSError) as exc:
            # pyserial reports a vanished USB device or a hung-up pty this way.
            self._fail(exc)
            return
        if not data:
            return
        if self._heard is not None and not self._heard.is_set():
            self._heard.set()
        self.stats.bytes_in += len(data)
        d = self._deframer
        frames = d.feed(data)
        self.stats.garbage_bytes = d.garbage_bytes
        self.stats.bad_frames = d.bad_frames
        for f in frames:
            if self._queue.qsize() >= MAX_QUEUED_FRAMES:
                self._queue.get_nowait()
                self.stats.overflow_frames += 1
            self.stats.frames_in += 1
            self._queue.put_nowait(bytes(f))

    def _fail(self, exc: BaseException) -> None:
        if self._lost is not None:
            return
        log.warning("%s: link lost: %s", self.port, exc)
        self._lost = LinkLost(f"{self.port}: {exc}")
        ser = self._ser
        if ser is not None:
            self._detach(ser)
        self._queue.put_nowait(self._lost)

    def _detach(self, ser: serial.Serial) -> None:
        if self._loop is None:
            return
        try:
            fd = ser.fileno()
        except (serial.SerialException, OSError, ValueError):
            return
        self._loop.remove_reader(fd)


def crc_ok(payload: bytes) -> bool:
    """True if ``payload`` ends in the wire format's CRC-16 of the bytes before it."""
    n = len(payload)
    if n < wire.HEADER_LEN + wire.CRC_LEN:
        return False
    return wire.crc16(payload, n - 2) == payload[n - 2] | payload[n - 1] << 8


def _open_error(port: str, exc: BaseException) -> str:
    """One line a person can act on for a port that would not open."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code == errno.ENOENT or "No such file" in text or "could not find" in text.lower():
        return f"{port}: no such port"
    if code == errno.EACCES or "Permission denied" in text:
        return f"{port}: permission denied (on Linux, add yourself to the 'dialout' group)"
    if code == errno.EBUSY or "busy" in text.lower():
        return f"{port}: port busy (is another program using it?)"
    return f"{port}: cannot open: {text}"
