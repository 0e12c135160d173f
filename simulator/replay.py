"""Replay a trace through the firmware detector and the host engine, in-process.

The same firmware modules that run on the board (``spasmwatch.firmware``) do the
detection here; the same wire format carries their records to the host engine. The
trace is resampled to the firmware's rate (with an anti-alias filter when going down),
quantised to MPU6050 counts at the firmware's range, and fed in FIFO-sized blocks.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spasmwatch.firmware import config as fwconfig
from spasmwatch.firmware import wire
from spasmwatch.firmware.detector import Detector
from spasmwatch.simulator.resample import resample
from spasmwatch.simulator.sensor_model import g_to_counts
from spasmwatch.simulator.traceio import Trace


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


def iter_replay(
    trace: Trace,
    engine: Any,
    cfg: fwconfig.DetectorConfig | None = None,
) -> Iterator[tuple[float, dict[str, Any]]]:
    """Yield (trace time when known, output dict) for a whole trace, in time order.

    ``engine`` is a ``spasmwatch.host.monitor.engine.Engine`` whose clock starts at the trace's
    first sample; the final item(s) come from ``engine.finish()``.
    """
    cfg = cfg or fwconfig.DetectorConfig()
    stream = to_sensor_stream(trace, cfg)
    gaps = list(stream.gaps)
    t_now = stream.t0
    for t_now, packets in detector_packets(stream, cfg):
        while gaps and gaps[0][0] <= t_now:
            start, end = gaps.pop(0)
            # Lost samples are data loss, never silent.
            yield t_now, {
                "type": "gap", "t": start, "start": start, "end": end,
                "message": f"trace has no samples for {end - start:.1f} s (held still)",
            }
        for p in packets:
            for out in engine.feed_packet(p):
                yield t_now, out
    for out in engine.finish():
        yield t_now, out
