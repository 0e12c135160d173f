"""Replay a trace through the firmware detector and the host engine, in-process.

The same firmware modules that run on the board (``spasmwatch.firmware``) do the
detection here; the same wire format carries their records to the host engine. The
trace is resampled to the firmware's rate (with an anti-alias filter when going down),
quantised to MPU6050 counts at the firmware's range, and fed in FIFO-sized blocks.

Replay streams: the trace goes through in chunks (``iter_replay_chunks``), so memory
does not grow with its length; a file is read block by block (``replay_file``), an
in-memory ``Trace`` in chunks of ``CHUNK_ROWS`` (``iter_replay``). Both give the same
output for the same samples.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spasmwatch.firmware import config as fwconfig
from spasmwatch.firmware import wire
from spasmwatch.firmware.detector import Detector
from spasmwatch.simulator.resample import StreamResampler, resample
from spasmwatch.simulator.sensor_model import g_to_counts
from spasmwatch.simulator.traceio import Trace, TraceStream, median_interval

#: Rows of an in-memory trace per chunk; also the rows whose median interval fixes the
#: source rate for resampling (a stream cannot look at the whole trace).
CHUNK_ROWS = 65536


@dataclass
class SensorStream:
    """A trace as the firmware would see it: int16 counts at its own rate."""

    t0: float
    rate_hz: int
    counts: np.ndarray  # (n, 3) int16
    gaps: list[tuple[float, float]] = field(default_factory=list)


def to_sensor_stream(trace: Trace, cfg: fwconfig.DetectorConfig) -> SensorStream:
    """Resample a trace to the firmware rate and quantise it at the firmware range."""
    rs = resample(trace.t, trace.acc, float(cfg.rate_hz))
    counts = g_to_counts(rs.x, cfg.range_g)
    return SensorStream(float(rs.t[0]), cfg.rate_hz, counts, list(rs.gaps))


def detector_packets(
    stream: SensorStream, cfg: fwconfig.DetectorConfig, block: int = fwconfig.FIFO_BATCH
) -> Iterator[tuple[float, list[bytes]]]:
    """Run the firmware detector; yield (stream time at block end, packets) per block."""
    det = Detector(cfg)
    flat = array("h", stream.counts.astype(np.int16).ravel().tobytes())
    view = memoryview(flat)
    n = len(stream.counts)
    seq = 0
    for start in range(0, n, block):
        m = min(block, n - start)
        det.process(view[3 * start : 3 * (start + m)], m)
        packets = []
        for rec in det.pop():
            packets.append(wire.encode(seq, rec))
            seq = (seq + 1) & 0xFFFF
        yield stream.t0 + (start + m) / stream.rate_hz, packets


def iter_replay_chunks(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    engine: Any,
    cfg: fwconfig.DetectorConfig | None = None,
    block: int = fwconfig.FIFO_BATCH,
) -> Iterator[tuple[float, Any]]:
    """Yield (trace time when known, output record) for a trace arriving as ``(t, acc)``
    chunks, in time order; memory stays that of one chunk.

    ``engine`` is a ``spasmwatch.host.monitor.engine.Engine`` whose clock starts at the
    trace's first sample: the outputs are its typed records (``host/monitor/outputs.py``;
    a stretch without samples is its ``trace_gap``); the final item(s) come from
    ``engine.finish()``.
    """
    cfg = cfg or fwconfig.DetectorConfig()
    det = Detector(cfg)
    rs: StreamResampler | None = None
    head_t: list[np.ndarray] = []
    head_x: list[np.ndarray] = []
    carry = np.empty((0, 3), dtype=np.int16)  # samples short of a whole FIFO block
    done = 0  # samples given to the detector
    gaps_told = 0
    seq = 0
    t_now = 0.0

    def run(counts: np.ndarray, final: bool) -> Iterator[tuple[float, Any]]:
        nonlocal carry, done, gaps_told, seq, t_now
        assert rs is not None
        counts = np.concatenate((carry, counts)) if len(carry) else counts
        n_whole = len(counts) if final else len(counts) - len(counts) % block
        flat = array("h", counts[:n_whole].astype(np.int16).ravel().tobytes())
        view = memoryview(flat)
        for start in range(0, n_whole, block):
            m = min(block, n_whole - start)
            det.process(view[3 * start : 3 * (start + m)], m)
            done += m
            t_now = rs.t0 + done / cfg.rate_hz
            while gaps_told < len(rs.gaps) and rs.gaps[gaps_told][0] <= t_now:
                # Lost samples are data loss, never silent.
                yield t_now, engine.trace_gap(*rs.gaps[gaps_told])
                gaps_told += 1
            for rec in det.pop():
                packet = wire.encode(seq, rec)
                seq = (seq + 1) & 0xFFFF
                for out in engine.feed_packet(packet):
                    yield t_now, out
        carry = counts[n_whole:]

    for t, acc in chunks:
        if rs is None:
            # The source interval is the median over the first CHUNK_ROWS rows, however
            # the trace is cut into chunks (the output must not depend on that).
            head_t.append(np.asarray(t, dtype=np.float64))
            head_x.append(np.asarray(acc, dtype=np.float64))
            if sum(len(h) for h in head_t) < CHUNK_ROWS:
                continue
            t = np.concatenate(head_t)
            acc = np.concatenate(head_x)
            rs = StreamResampler(float(cfg.rate_hz), float(t[0]),
                                 median_interval(t[:CHUNK_ROWS]))
        yield from run(g_to_counts(rs.feed(t, acc), cfg.range_g), False)
    if rs is None:
        if not head_t:
            raise ValueError("need at least 2 samples")
        t = np.concatenate(head_t)
        if len(t) < 2:
            raise ValueError("need at least 2 samples")
        rs = StreamResampler(float(cfg.rate_hz), float(t[0]), median_interval(t[:CHUNK_ROWS]))
        yield from run(g_to_counts(rs.feed(t, np.concatenate(head_x)), cfg.range_g), False)
    yield from run(g_to_counts(rs.finish(), cfg.range_g), True)
    for out in engine.finish():
        yield t_now, out


def iter_replay(
    trace: Trace,
    engine: Any,
    cfg: fwconfig.DetectorConfig | None = None,
) -> Iterator[tuple[float, Any]]:
    """``iter_replay_chunks`` over an in-memory trace (chunks of ``CHUNK_ROWS`` rows)."""
    chunks = (
        (trace.t[i : i + CHUNK_ROWS], trace.acc[i : i + CHUNK_ROWS])
        for i in range(0, len(trace.t), CHUNK_ROWS)
    )
    return iter_replay_chunks(chunks, engine, cfg)


def replay_file(
    stream: TraceStream, engine: Any, cfg: fwconfig.DetectorConfig | None = None
) -> Iterator[tuple[float, Any]]:
    """``iter_replay_chunks`` over a trace file read block by block (any length)."""
    return iter_replay_chunks(stream, engine, cfg)
