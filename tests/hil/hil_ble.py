"""BLE side of the hardware-in-the-loop suite: the board's radio and a BLE client.

The HIL tests are synchronous (pyserial); the host's BLE link is asyncio. One event
loop in a background thread (``LoopThread``) runs both the virtual board's radio and
the host's link, and the tests call into it with deadlines:

    LoopThread()                 .run(coro, timeout) / .close()
    VirtualRadio(loop)           # simulator.ble_bridge.BleBridge: Bumble peripheral the
                                 # firmware's BLE calls drive (SPASMWATCH_BLE_BRIDGE)
        .start() -> "127.0.0.1:PORT"   # what the firmware connects to
        .backend                 # "bumble:tcp-client:127.0.0.1:PORT": a fresh virtual
                                 # controller per central, as a laptop's adapter
        .drop_link() -> int      # radio lost: both sides see a connection timeout
        .close()
    BleClient(loop, name, backend)   # host.links.ble_link.BleLink, driven like SerialClient
        .open() / .reconnect() / .disconnect() / .close()
        .send(payload) / .pump() / .wait_for(pred, timeout) / .command(payload, timeout)
        .packets, .lost
    BleBoard(board, name, loop, radio)   # what the ``ble_board`` fixture yields
        .board (VirtualBoard | RealBoard: serial, flash, ...) / .connect_ble() -> BleClient
        .drop_link(client)       # virtual: radio lost; real: the host disconnects

On a real board the same ``BleClient`` uses bleak's system backend (BlueZ) with the
``--hil-ble`` name or address; there is no radio to drop, so a link drop is the host
disconnecting (the board sees the same disconnection and keeps measuring).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from hil_boards import PacketClient, RealBoard, VirtualBoard

from spasmwatch.firmware import control
from spasmwatch.host.links.base import LinkLost
from spasmwatch.host.links.ble_link import BleLink
from spasmwatch.simulator.ble_bridge import BleBridge

T = TypeVar("T")


class LoopThread:
    """An asyncio event loop running in a daemon thread until ``close()``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="hil-ble-loop",
                                       daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop; its result, or TimeoutError after ``timeout`` s."""
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise

    def call(self, fn: Any, *args: Any, timeout: float = 10.0) -> Any:
        """Call a plain function on the loop's thread (Bumble objects live there)."""

        async def wrapper() -> Any:
            return fn(*args)

        return self.run(wrapper(), timeout)

    def close(self) -> None:
        if self.loop.is_closed():
            return

        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(cancel_rest(), 10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class VirtualRadio:
    """The virtual board's radio: a ``BleBridge`` on the loop thread (loopback ports)."""

    def __init__(self, loop: LoopThread) -> None:
        self.loop = loop
        self.bridge: BleBridge | None = None

    def start(self) -> str:
        async def start() -> BleBridge:
            bridge = BleBridge()  # made on the loop: Bumble binds to the running loop
            await bridge.start()
            return bridge

        self.bridge = self.loop.run(start(), 20)
        return f"127.0.0.1:{self.bridge.firmware_port}"

    @property
    def backend(self) -> str:
        assert self.bridge is not None
        return f"bumble:{self.bridge.transport_spec}"

    def drop_link(self) -> int:
        assert self.bridge is not None
        return int(self.loop.call(self.bridge.drop_link))

    def close(self) -> None:
        bridge, self.bridge = self.bridge, None
        if bridge is not None:
            self.loop.run(bridge.close(), 20)


class BleClient(PacketClient):
    """The host's ``BleLink`` to the board: control writes out, notifications in."""

    def __init__(self, loop: LoopThread, name: str, backend: str | None,
                 scan_timeout: float = 20.0) -> None:
        super().__init__()
        self.loop = loop
        self.name = name
        self.backend = backend
        self.scan_timeout = scan_timeout
        self.link: BleLink | None = None
        self.lost = False  # the link dropped (LinkLost seen) since the last open
        self._inbox: queue.Queue[bytes | None] = queue.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.sign_all = True  # the paired board obeys only signed commands over BLE

    def open(self) -> None:
        """Scan, connect, subscribe (``BleLink.open``), then start receiving."""

        async def open_link() -> None:
            link = BleLink(self.name, backend=self.backend, scan_timeout=self.scan_timeout,
                           session=self.session)
            await link.open()  # the board proved the key (HELLO): its boot is known
            # A signed command: the board streams to this central from now on.
            await link.send_control(self.signed(control.encode_ping(0)))
            self.link = link
            self.lost = False
            self._reader = asyncio.get_running_loop().create_task(self._receive(link))

        self.loop.run(open_link(), self.scan_timeout + 30)

    async def _receive(self, link: BleLink) -> None:
        while True:
            try:
                data = await link.recv()
            except LinkLost:
                self._inbox.put(None)  # marks the drop, after every packet before it
                return
            self._inbox.put(data)

    def pump(self) -> list[tuple[int, tuple[Any, ...]]]:
        """Packets received since the last call (waits at most 20 ms for the first)."""
        frames: list[bytes] = []
        try:
            item = self._inbox.get(timeout=0.02)
            while True:
                if item is None:
                    self.lost = True
                else:
                    frames.append(item)
                item = self._inbox.get_nowait()
        except queue.Empty:
            pass
        return self.take(frames)

    def send(self, payload: bytes) -> None:
        """One control write (with response) to the control point."""
        link = self.link
        assert link is not None, "BLE link not open"
        self.loop.run(link.send_control(payload), 15)

    def disconnect(self) -> None:
        """Close the host's side of the link (what a host restart does)."""
        link, self.link = self.link, None
        reader, self._reader = self._reader, None

        async def close_link() -> None:
            if reader is not None:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            if link is not None:
                await link.close()

        self.loop.run(close_link(), 15)

    def reconnect(self) -> None:
        self.disconnect()
        self.open()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.disconnect()


class BleBoard:
    """A flashed, booted board with its serial port and its BLE name (``ble_board``)."""

    def __init__(self, board: VirtualBoard | RealBoard, name: str, loop: LoopThread,
                 radio: VirtualRadio | None) -> None:
        self.board = board
        self.name = name
        self.loop = loop
        self.radio = radio

    def connect_ble(self) -> BleClient:
        """An open BLE link: the virtual radio's central, or the system's adapter."""
        backend = self.radio.backend if self.radio is not None else "system"
        client = BleClient(self.loop, self.name, backend)
        try:
            client.open()
        except BaseException:
            client.close()
            raise
        return client

    def drop_link(self, client: BleClient, timeout: float = 30.0) -> None:
        """Lose the BLE link; returns once the host has seen it go.

        Virtual board: the radio link is lost (both sides see a connection timeout, the
        firmware advertises again). Real board: no radio to switch off, so the host
        disconnects; the board sees the same disconnection.
        """
        if self.radio is None:
            client.disconnect()
            return
        assert self.radio.drop_link() == 1, "no BLE link to drop"
        deadline = time.monotonic() + timeout
        while not client.lost:
            assert time.monotonic() < deadline, "the host never saw the link drop"
            client.pump()

    def close(self) -> None:
        try:
            self.board.close()
        finally:
            try:
                if self.radio is not None:
                    self.radio.close()
            finally:
                self.loop.close()
