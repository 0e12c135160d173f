"""The whole virtual board over a real pseudo-terminal: the unmodified firmware
(firmware/main.py) under real MicroPython, talking COBS-framed wire packets to pyserial.

A scenario trace played through simulator/board_runner.py must give the same event and
summary packets as the simulator's in-process ``detector_packets`` on that trace; RESEND
returns exactly the missing packets; status packets come every STATUS_S of simulated
time; trace injection is refused without the key and replays a trace with it; a
stopped board sends nothing more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import serial

from spasmwatch.firmware import config, control, framing, wire
from spasmwatch.host.pairing import Session
from spasmwatch.simulator.board_runner import BoardRunner
from spasmwatch.simulator.replay import SensorStream, detector_packets, to_sensor_stream
from spasmwatch.simulator.scenarios import generate

KEY = b"board-test-key"
STREAM_KINDS = (wire.KIND_EVENT, wire.KIND_SUMMARY, wire.KIND_STATUS, wire.KIND_DETAIL)


class BoardClient:
    """pyserial on the board's pty, with a reader thread that sorts what arrives."""

    def __init__(self, port: str, key: bytes = KEY) -> None:
        self.ser = serial.Serial(port, timeout=0.05)
        # The board is paired with ``key``: its packets are tagged over its boot counter
        # (a fresh board: 1; the session follows it), its signed commands counted.
        self.session = Session(key)
        self.session.boot = 0
        self.deframer = framing.Deframer()
        self.stream: dict[int, bytes] = {}  # seq -> packet, stream kinds
        self.arrivals: list[int] = []  # stream seqs in arrival order (with repeats)
        self.replies: list[tuple] = []
        self.snippets: list[tuple[int, tuple]] = []
        self.bad = 0
        self.lost = False
        self.cond = threading.Condition()
        self._stop = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self.ser.read(4096)
            except (serial.SerialException, OSError):
                with self.cond:
                    self.lost = True
                    self.cond.notify_all()
                return
            for p in self.deframer.feed(data):
                try:
                    seq, rec = self.decode(p)
                except wire.WireError:
                    self.bad += 1
                    continue
                with self.cond:
                    if rec[0] == wire.KIND_REPLY:
                        self.replies.append(rec)
                    elif rec[0] == wire.KIND_SNIPPET:
                        self.snippets.append((seq, rec))
                    else:
                        self.stream[seq] = p
                        self.arrivals.append(seq)
                    self.cond.notify_all()

    def wait(self, pred: Callable[[], bool], timeout: float = 30.0) -> bool:
        with self.cond:
            return self.cond.wait_for(pred, timeout)

    def send(self, payload: bytes) -> None:
        # As the host's serial link does: nothing before the board has spoken. Until
        # main.py's first line a 0x03 in a frame would stop it (Ctrl-C still armed).
        assert self.wait(lambda: bool(self.stream or self.replies), 20), "board silent"
        self.ser.write(framing.encode(payload))

    def request(self, payload: bytes, timeout: float = 20.0) -> tuple:
        """Send a command and return its reply record."""
        op = payload[0]
        with self.cond:
            start = len(self.replies)
        self.send(payload)
        assert self.wait(
            lambda: any(r[2] == op for r in self.replies[start:]), timeout
        ), f"no reply to {control.NAMES.get(op, op)}"
        with self.cond:
            return next(r for r in self.replies[start:] if r[2] == op)

    def records(self, kinds: tuple[int, ...] = STREAM_KINDS) -> list[tuple[int, tuple]]:
        with self.cond:
            items = sorted(self.stream.items())
        out = [(s, self.decode(p)[1]) for s, p in items]
        return [(s, r) for s, r in out if r[0] in kinds]

    def backfill(self) -> int:
        """RESEND whatever is missing below the highest seq seen; return how many."""
        with self.cond:
            top = max(self.stream)
            missing = [s for s in range(top) if s not in self.stream]
        for s in missing:
            reply = self.request(control.encode_resend(s, s))
            assert reply[3] == control.RESULT_OK
        return len(missing)

    def decode(self, p: bytes) -> tuple[int, tuple]:
        """A packet from the board: verified when tagged (an unpaired board: plain)."""
        return wire.decode(p, self.session if p and p[0] & wire.FLAG_AUTH else None)

    def signed(self, payload: bytes, key: bytes = KEY) -> bytes:
        """``payload`` signed for the board's current boot (next command counter)."""
        self.session.cnt += 1
        return control.sign(payload, key, self.session.boot or 0, self.session.cnt)

    def close(self) -> None:
        self._stop = True
        self.thread.join(5)
        self.ser.close()


def _stream_of(trace_name: str, seed: int) -> tuple[object, SensorStream]:
    trace, _ = generate(trace_name, seed)
    return trace, to_sensor_stream(trace, config.DetectorConfig())


def _expected(stream: SensorStream) -> list[bytes]:
    cfg = config.DetectorConfig()
    return [p for _, ps in detector_packets(stream, cfg) for p in ps]


@pytest.fixture(scope="module")
def cluster_run() -> Iterator[tuple[BoardRunner, BoardClient, list[bytes], float]]:
    trace, stream = _stream_of("spasm-cluster", 3)
    expected = _expected(stream)
    runner = BoardRunner(trace, speed=0, key=KEY, heapsize="320k")
    port = runner.start()
    client = BoardClient(port)
    t0 = time.monotonic()
    try:
        client.wait(
            lambda: sum(wire.peek_kind(p) != wire.KIND_STATUS for p in client.stream.values())
            >= len(expected),
            60,
        )
        elapsed = time.monotonic() - t0
        yield runner, client, expected, elapsed
    finally:
        client.close()
        runner.stop()


def test_board_gives_the_same_packets_as_the_simulator(cluster_run) -> None:  # type: ignore[no-untyped-def]
    runner, client, expected, elapsed = cluster_run
    assert runner.running(), runner.log()
    client.backfill()
    events = [(s, r) for s, r in client.records() if r[0] != wire.KIND_STATUS]
    assert sum(wire.decode(p)[1][0] == wire.KIND_EVENT for p in expected) >= 5
    assert len(events) >= len(expected)
    base = events[0][1][1] - wire.decode(expected[0])[1][1]
    # One time base for the whole run: the device time of the detector's first sample.
    assert 0 <= base < 1000
    for (_bseq, brec), want in zip(events, expected, strict=False):
        wseq, wrec = wire.decode(want)
        shifted = (brec[0], brec[1] - base) + brec[2:]
        assert shifted == wrec
        # Byte-identical once the board's seq (which also counts status packets) and
        # time base are mapped onto the simulator's.
        assert wire.encode(wseq, shifted) == want
    assert client.bad == 0
    print(f"\nboard: {len(expected)} event/summary packets, 600 s trace in {elapsed:.1f} s")


def test_status_every_status_s_of_simulated_time(cluster_run) -> None:  # type: ignore[no-untyped-def]
    _, client, _, _ = cluster_run
    status = [r for _, r in client.records((wire.KIND_STATUS,))]
    times = [r[1] for r in status if r[1] <= 600_000]
    assert len(times) >= 55
    assert all(b - a == config.STATUS_S * 1000 for a, b in zip(times, times[1:], strict=False))
    last = status[-1]
    assert last[3] & wire.ST_SENSOR_OK and not last[3] & wire.ST_INJECTION
    assert last[2] == 3900  # the virtual battery's default, through ADC and divider
    assert last[6] == config.RATE_HZ and last[7] == config.RANGE_G
    assert 0 < last[5] < 255  # free heap kB (256 kB heap)


def test_resend_returns_exactly_the_missing_packets(cluster_run) -> None:  # type: ignore[no-untyped-def]
    _, client, _, _ = cluster_run
    with client.cond:
        top = max(client.stream)
        # Simulate a link drop: forget ten packets the host had received.
        lo = top - 30
        dropped = {s: client.stream.pop(s) for s in range(lo, lo + 10)}
        n_before = len(client.arrivals)
    reply = client.request(control.encode_resend(lo, lo + 9))
    assert reply[3] == control.RESULT_OK and reply[4] == 10
    with client.cond:
        again = client.arrivals[n_before:]
        assert sorted(set(again) & set(dropped)) == sorted(dropped)
        assert all(client.stream[s] == dropped[s] for s in dropped)
    # Beyond what the ring holds: says so, resends what it still has.
    reply = client.request(control.encode_resend((top - 400) & 0xFFFF, top))
    assert reply[3] == control.RESULT_GONE and 0 < reply[4] <= config.RING_PACKETS


def test_ping_and_set_time(cluster_run) -> None:  # type: ignore[no-untyped-def]
    _, client, _, _ = cluster_run
    assert client.request(control.encode_ping(0xC0FFEE))[3:] == (control.RESULT_OK, 0xC0FFEE)
    reply = client.request(control.encode_set_time(1_780_000_000))
    assert reply[3] == control.RESULT_OK and reply[4] >= 600_000  # device ms at reception
    assert client.request(b"\x7f")[3] == control.RESULT_BAD


def test_set_param_needs_the_key(cluster_run) -> None:  # type: ignore[no-untyped-def]
    _, client, _, _ = cluster_run
    assert client.request(control.encode_set_param(1, 120))[3] == control.RESULT_AUTH
    sp = control.encode_set_param
    assert client.request(client.signed(sp(1, 120), b"wrong"))[3] == control.RESULT_AUTH
    ok = client.signed(sp(1, 120))
    assert client.request(ok)[3] == control.RESULT_OK
    assert client.request(ok)[3] == control.RESULT_AUTH  # replayed: the counter is old
    assert client.request(client.signed(sp(200, 1)))[3] == control.RESULT_ARGS
    # offset must stay below onset: rejected, previous value kept
    assert client.request(client.signed(sp(2, 500)))[3] == control.RESULT_ARGS
    assert client.request(client.signed(sp(1, 90)))[3] == control.RESULT_OK


def _inject(client: BoardClient, counts: np.ndarray) -> None:
    flat = counts.astype(np.int16).ravel().tolist()
    step = 3 * control.MAX_SAMPLES
    for i in range(0, len(flat), step):
        client.send(control.encode_samples(flat[i : i + step]))


def test_injection_refused_without_key_and_replays_with_it() -> None:
    _, stream = _stream_of("spasm-cluster", 3)
    part = SensorStream(stream.t0, stream.rate_hz, stream.counts[: 50 * 240])
    expected = [wire.decode(p)[1] for p in _expected(part)]
    assert sum(r[0] == wire.KIND_EVENT for r in expected) >= 3
    with BoardRunner(None, speed=10, key=KEY, heapsize="320k") as runner:
        client = BoardClient(runner.port)
        try:
            assert client.request(control.encode(control.INJECT_START, (1,)))[3] == (
                control.RESULT_AUTH
            )
            assert client.wait(lambda: bool(client.stream), 10)  # boot counter known
            assert client.request(client.signed(control.encode_inject_start(2),
                                                b"not the key"))[3] == control.RESULT_AUTH
            assert client.request(control.encode_samples([1, 2, 3]))[3] == control.RESULT_STATE
            start_cmd = client.signed(control.encode_inject_start(3))
            assert client.request(start_cmd)[3] == control.RESULT_OK
            # A replayed INJECT_START is refused.
            assert client.request(start_cmd)[3] == control.RESULT_AUTH
            with client.cond:
                start = max(client.stream)
            _inject(client, part.counts)
            n_stream = sum(r[0] != wire.KIND_STATUS for r in expected)
            assert client.wait(
                lambda: sum(
                    wire.peek_kind(p) != wire.KIND_STATUS
                    for s, p in client.stream.items() if s > start
                ) >= n_stream,
                30,
            ), runner.log()
            assert client.wait(
                lambda: any(
                    client.decode(p)[1][3] & wire.ST_INJECTION
                    for s, p in client.stream.items()
                    if s > start and wire.peek_kind(p) == wire.KIND_STATUS
                ),
                10,
            )
            got = [r for s, r in client.records() if s > start and r[0] != wire.KIND_STATUS]
            base = got[0][1] - expected[0][1]
            assert [(r[0], r[1] - base) + r[2:] for r in got[: len(expected)]] == expected

            # The snippet is the newest SNIPPET_S of injected samples, in order.
            reply = client.request(control.encode_get_snippet())
            n = config.SNIPPET_S * config.RATE_HZ
            assert reply[3] == control.RESULT_OK and reply[4] == n
            assert client.wait(lambda: len(client.snippets) >= n, 20)
            idx = [s for s, _ in client.snippets]
            assert idx == list(range(n))
            xyz = np.array([r[2:5] for _, r in client.snippets])
            assert np.array_equal(xyz, part.counts[-n:])
            assert client.snippets[0][1][5] == wire.SNIP_FIRST
            assert client.snippets[-1][1][5] == wire.SNIP_LAST

            assert client.request(control.encode_inject_stop())[3] == control.RESULT_OK
            with client.cond:
                after = max(client.stream)
            assert client.wait(
                lambda: any(
                    wire.peek_kind(p) == wire.KIND_STATUS
                    and not client.decode(p)[1][3] & wire.ST_INJECTION
                    for s, p in client.stream.items() if s > after
                ),
                10,
            )
        finally:
            client.close()


def test_sensor_absent_reported_board_keeps_running() -> None:
    with BoardRunner(None, speed=20, knobs={"absent": 1, "battery_mv": 3300}) as runner:
        client = BoardClient(runner.port)
        try:
            assert client.wait(lambda: len(client.stream) >= 2, 20), runner.log()
            for _, rec in client.records((wire.KIND_STATUS,)):
                assert not rec[3] & wire.ST_SENSOR_OK
                assert rec[3] & wire.ST_BATTERY_LOW and rec[2] == 3300
            assert any(r[3] & wire.ST_I2C_ERROR for _, r in client.records())
            # The sensor comes back: the driver's re-init finds it.
            runner.set_knobs(absent=0)
            assert client.wait(
                lambda: any(wire.decode(p)[1][3] & wire.ST_SENSOR_OK
                            for p in client.stream.values()),
                20,
            )
        finally:
            client.close()


def test_fifo_overflow_reported() -> None:
    # 5 s: past the FIFO's 3.4 s at 50 Hz, short of the watchdog (config.WDT_MS).
    with BoardRunner(None, speed=0, after_end="keep",
                     knobs={"stall_at_ms": 3000, "stall_ms": 5000}) as runner:
        client = BoardClient(runner.port)
        try:
            assert client.wait(
                lambda: any(wire.decode(p)[1][3] & wire.ST_FIFO_OVERFLOW
                            for p in client.stream.values()),
                20,
            ), runner.log()
            assert runner.running()
        finally:
            client.close()


def test_stopped_board_sends_nothing_more() -> None:
    runner = BoardRunner(None, speed=50)
    client = BoardClient(runner.start())
    try:
        assert client.wait(lambda: len(client.stream) >= 1, 20), runner.log()
        code = runner.stop()
        assert code is not None and not runner.running()
        with client.cond:
            n = len(client.arrivals)
        # 50x real time: a running board would send a status packet every 0.2 s.
        client.wait(lambda: len(client.arrivals) > n, 1.0)
        with client.cond:
            assert len(client.arrivals) == n
    finally:
        client.close()
        runner.stop()
