"""``--simulate`` without MicroPython: the firmware's detector in this process.

Where PyPI has no MicroPython interpreter (a Raspberry Pi, Linux aarch64) the virtual
board cannot boot the firmware. ``InProcessBoard`` keeps ``run --simulate`` useful
there: the firmware's own modules (``firmware/detector.py``, ``wire.py``, ``ring.py``,
``snippet.py``, ``control.py``), run by CPython, turn the scenario into wire packets,
and ``InProcessLink`` hands them to the daemon as a sensor would, on the device's
clock at ``speed`` x real time. Everything after the link -- ingest, store, alerting,
delivery, records -- is the same code as for a real sensor.

What it does not cover, and the virtual board does: the firmware's main loop
(``firmware/app.py``) and drivers, the MicroPython interpreter, the serial framing and
a real pty. It answers the commands the daemon sends (PING, SET_TIME, RESEND from its
ring, GET_SNIPPET from its raw-sample ring) as ``firmware/app.py`` does; the rest get
``RESULT_STATE``. After the trace it holds the last sample (a still baby) and keeps
its pace, like the virtual board with ``after_end="keep"``.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import deque
from collections.abc import Iterator
from typing import Any

from spasmwatch.firmware import config as fwconfig
from spasmwatch.firmware import control, wire
from spasmwatch.firmware.detector import Detector
from spasmwatch.firmware.ring import Ring
from spasmwatch.firmware.snippet import Snippet
from spasmwatch.host.links.base import LinkError, LinkLost

__all__ = ["BOOT_MS", "InProcessBoard", "InProcessLink"]

# Device ms of the first sample: the firmware waits this long after boot (main.py's
# Ctrl-C window) before it starts sampling.
BOOT_MS = 2000
BATTERY_MV = 3900  # what the virtual board's ADC reports by default
END_MARGIN_MS = 3000  # as sim_link.END_MARGIN_MS: the last event is closed and sent


class InProcessBoard:
    """A scenario or trace played through the firmware's detector, in this process."""

    device_name = "sim"
    link = "in-process"
    port = ""  # no serial port: reach it with ``connect()``
    ble_backend = ""

    def __init__(self, scenario: str, seed: int = 1, speed: float = 1.0, trace: Any = None,
                 labels: Any = None) -> None:
        from spasmwatch.simulator import scenarios

        if trace is None:
            trace, labels = scenarios.generate(scenario, seed=seed)
        self.scenario = scenario
        self.trace = trace
        self.labels = labels
        self.speed = speed
        self.cfg = fwconfig.DetectorConfig()
        self.end_ms = 0
        self.firmware_log = ""
        self.over_since: tuple[int, float] | None = None
        self._started: float | None = None
        self._records: Iterator[tuple[int, tuple]] | None = None
        self._next: tuple[int, tuple] | None = None
        self._virtual_ms = 0  # device time at speed 0: that of the last record sent
        self.ring = Ring()
        self.snippet = Snippet(rate_hz=self.cfg.rate_hz)
        self.seq = 0  # next stream sequence number
        self.det = Detector(self.cfg)

    # -- life cycle (as SimulatedBoard) ------------------------------------------------
    def start(self) -> str:
        from spasmwatch.simulator.replay import to_sensor_stream

        stream = to_sensor_stream(self.trace, self.cfg)
        counts = stream.counts.astype("int16")
        self.end_ms = BOOT_MS + len(counts) * 1000 // self.cfg.rate_hz + END_MARGIN_MS
        self._records = self._play(counts)
        self._next = next(self._records)
        self._started = time.monotonic()
        return ""

    def stop(self) -> None:
        self._started = None

    def running(self) -> bool:
        return self._started is not None

    def __enter__(self) -> InProcessBoard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def duration_s(self) -> float:
        return float(self.trace.duration)

    def is_over(self, t_ms: int) -> bool:
        """True when a stream record with device time ``t_ms`` lies past the scenario."""
        return self._started is not None and t_ms >= self.end_ms

    def connect(self) -> InProcessLink:
        """A new link to the board (the daemon makes one per connection attempt)."""
        return InProcessLink(self)

    # -- the device --------------------------------------------------------------------
    def now_ms(self) -> int:
        """Device ms since boot."""
        if self._started is None:
            return 0
        if self.speed <= 0:
            return self._virtual_ms
        return int((time.monotonic() - self._started) * 1000 * self.speed)

    def _play(self, counts: Any) -> Iterator[tuple[int, tuple]]:
        """(device ms when sent, record) in time order, forever: FIFO batches through the
        detector, a status every ``STATUS_S``; after the trace the last sample holds."""
        rate = self.cfg.rate_hz
        block = fwconfig.FIFO_BATCH
        n = len(counts)
        last = counts[-1].tobytes() if n else bytes(6)
        held = array("h", last * block)  # the last sample, a whole block of it
        buf = array("h", bytes(6 * block))
        next_status = BOOT_MS
        start = 0
        while True:
            m = block
            chunk = counts[start:start + block] if start < n else None
            if chunk is not None and len(chunk):
                m = len(chunk)
                buf[:3 * m] = array("h", chunk.tobytes())
            else:
                buf[:] = held
            start += m
            sent_ms = BOOT_MS + start * 1000 // rate  # the FIFO read after the block
            while next_status <= sent_ms:
                yield next_status, (wire.KIND_STATUS, next_status)
                next_status += fwconfig.STATUS_S * 1000
            det = self.det
            det.process(memoryview(buf)[:3 * m], m)
            self.snippet.add(buf, m, BOOT_MS + det.t_ms(det.n - 1))
            for rec in det.pop():
                yield sent_ms, (rec[0], (rec[1] + BOOT_MS) & 0xFFFFFFFF) + tuple(rec[2:])

    def due_in_s(self) -> float:
        """Real seconds until the next stream packet is due (0: now)."""
        assert self._next is not None
        if self.speed <= 0:
            return 0.0
        return max(0.0, (self._next[0] - self.now_ms()) / 1000.0 / self.speed)

    def take(self) -> bytes:
        """The next stream packet (numbered, kept in the ring for RESEND)."""
        assert self._next is not None and self._records is not None
        t_ms, rec = self._next
        self._next = next(self._records)
        self._virtual_ms = max(self._virtual_ms, t_ms)
        if rec[0] == wire.KIND_STATUS:
            rec = (wire.KIND_STATUS, t_ms, BATTERY_MV, wire.ST_SENSOR_OK,
                   self.ring.fill_pct(), 0, self.cfg.rate_hz, self.cfg.range_g)
        pkt = wire.encode(self.seq, rec)
        self.ring.put(self.seq, pkt)
        self.seq = (self.seq + 1) & 0xFFFF
        return pkt

    def handle(self, payload: bytes) -> list[bytes]:
        """Answer one control payload as ``firmware/app.py`` does: the packets to send."""
        try:
            op, args = control.decode(payload)
        except control.ControlError:
            return [self._reply(payload[0] if payload else 0, control.RESULT_BAD)]
        if op == control.PING:
            return [self._reply(op, control.RESULT_OK, args[0])]
        if op == control.SET_TIME:
            return [self._reply(op, control.RESULT_OK, self.now_ms())]
        if op == control.RESEND:
            first, last = args[0], args[1]
            count = ((last - first) & 0xFFFF) + 1
            out: list[bytes] = []
            for i in range(min(count, self.ring.size)):
                pkt = self.ring.get((first + i) & 0xFFFF)
                if pkt is not None:
                    out.append(bytes(pkt))
            result = control.RESULT_OK if len(out) == count else control.RESULT_GONE
            return out + [self._reply(op, result, len(out))]
        if op == control.GET_SNIPPET:
            out = [self._reply(op, control.RESULT_OK, self.snippet.start())]
            while (item := self.snippet.next_record()) is not None:
                out.append(wire.encode(item[0], item[1]))
            return out
        return [self._reply(op, control.RESULT_STATE)]

    def _reply(self, opcode: int, result: int, value: int = 0) -> bytes:
        rec = (wire.KIND_REPLY, self.now_ms(), opcode, result, value & 0xFFFFFFFF)
        return wire.encode((self.seq - 1) & 0xFFFF, rec)


class InProcessLink:
    """The daemon's side of an ``InProcessBoard``: the ``Link`` interface, in memory."""

    name = "in-process"

    def __init__(self, board: InProcessBoard) -> None:
        self.board = board
        self.pending: deque[bytes] = deque()  # replies and resent packets, sent first
        self.wake = asyncio.Event()
        self.closed = False

    async def open(self) -> None:
        if not self.board.running():
            raise LinkError("the in-process board is not running")

    async def recv(self) -> bytes:
        while True:
            if self.closed or not self.board.running():
                raise LinkLost("the in-process board stopped")
            if self.pending:
                return self.pending.popleft()
            delay = self.board.due_in_s()
            if delay <= 0:
                if self.board.speed <= 0:
                    await asyncio.sleep(0)  # as fast as possible, but let others run
                return self.board.take()
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), delay)
            except TimeoutError:
                pass

    async def send_control(self, payload: bytes) -> None:
        if self.closed:
            raise LinkLost("the in-process link is closed")
        self.pending.extend(self.board.handle(bytes(payload)))
        self.wake.set()

    async def close(self) -> None:
        self.closed = True
        self.wake.set()
