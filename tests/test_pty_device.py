"""The wire stand-ins themselves (tests/pty_device.py): no hang when the host stops reading.

A failed or killed host stops reading its end of the pty; the tty buffer fills (about
16 KiB on Linux) and a blocking write would wait for ever. ``UsbCable`` and
``PtyDevice`` must still relay everything in order while the host reads, and leave
their ``with`` block promptly when it never reads again, or one failing test hangs CI.
"""

from __future__ import annotations

import os
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

from pty_device import Item, PtyDevice, UsbCable, status

from spasmwatch.firmware import control, framing

MORE_THAN_A_TTY_BUFFER = 256 * 1024


def returns_within(fn: Callable[[], object], seconds: float) -> bool:
    """Run ``fn`` in a thread; False if it is still running after ``seconds``."""
    errors: list[BaseException] = []

    def call() -> None:
        try:
            fn()
        except BaseException as exc:  # reported by the caller's assertion
            errors.append(exc)

    th = threading.Thread(target=call, daemon=True)
    th.start()
    th.join(seconds)
    assert not errors, errors
    return not th.is_alive()


class FakeBoard:
    """A pty whose slave is the board's port; the test writes the board's bytes."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.port = os.ttyname(self.slave)

    def pour(self, data: bytes, seconds: float) -> int:
        """Write as much of ``data`` as the cable takes within ``seconds``."""
        view = memoryview(data)
        deadline = time.monotonic() + seconds
        while view and time.monotonic() < deadline:
            try:
                view = view[os.write(self.master, view):]
            except BlockingIOError:
                time.sleep(0.01)
        return len(data) - len(view)

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


def read_all(fd: int, n: int, seconds: float) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + seconds
    while len(out) < n and time.monotonic() < deadline:
        try:
            out += os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.01)
    return bytes(out)


def test_usb_cable_keeps_every_byte_in_order_for_a_host_that_reads_late(
    tmp_path: Path,
) -> None:
    board = FakeBoard()
    data = os.urandom(MORE_THAN_A_TTY_BUFFER)
    got = b""
    try:
        with UsbCable(board.port, tmp_path / "ttyACM0") as cable:
            host = os.open(cable.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            tty.setraw(host)
            writer = threading.Thread(target=board.pour, args=(data, 30.0), daemon=True)
            writer.start()
            time.sleep(0.5)  # the host is busy: the buffers fill, nothing is lost
            got = read_all(host, len(data), 30.0)
            writer.join(5)
            os.close(host)
    finally:
        board.close()
    assert got == data
    assert cable.dropped_bytes == 0


def test_usb_cable_leaves_promptly_when_the_host_stopped_reading(tmp_path: Path) -> None:
    board = FakeBoard()
    cable = UsbCable(board.port, tmp_path / "ttyACM0")
    try:
        cable.__enter__()
        # Nobody reads the host side: far more than its tty buffer is offered.
        poured = board.pour(os.urandom(MORE_THAN_A_TTY_BUFFER), 2.0)
        assert poured > 16 * 1024  # the host's buffer is full; the relay holds the rest
        assert returns_within(cable.unplug, 5.0), "unplug() hung on a full host buffer"
        assert cable.dropped_bytes > 0  # what the host never took went with the cable
        assert returns_within(lambda: cable.__exit__(None, None, None), 10.0), (
            "UsbCable exit hung on a host that stopped reading")
    finally:
        board.close()


def test_pty_device_stops_promptly_when_the_host_stopped_reading(tmp_path: Path) -> None:
    port = tmp_path / "ttyACM0"
    items = [status(0.01 * i) for i in range(20_000)]

    dev = PtyDevice([Item(0.0, rec) for rec in items], port).start()
    host = os.open(port, os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(host)
        os.write(host, framing.encode(control.encode_ping(1)))  # the device starts sending
        assert dev.host_seen.wait(5)
        deadline = time.monotonic() + 10
        while dev.frames_written < 500 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        assert not dev.done.is_set()  # blocked on the host's full tty buffer
        assert returns_within(dev.stop, 10.0), "PtyDevice.stop() hung on a full host buffer"
    finally:
        os.close(host)
