"""MicroPython and CPython run the same firmware detector to the same bytes.

The firmware modules are imported by the host and simulator under CPython and run on
the board under MicroPython; these tests run the real MicroPython interpreter over the
same sensor stream and compare every packet, byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spasmwatch.firmware import config, wire
from spasmwatch.simulator import real_data, scenarios
from spasmwatch.simulator.replay import SensorStream, detector_packets, to_sensor_stream
from spasmwatch.simulator.traceio import Trace

REPO = Path(__file__).resolve().parent.parent
MPY_REPLAY = REPO / "simulator" / "mpy_replay.py"


def _both(run_micropython, tmp_path: Path, stream: SensorStream,
          cfg: config.DetectorConfig) -> tuple[list[str], list[str]]:
    counts = tmp_path / "counts.bin"
    stream.counts.astype("<i2").tofile(counts)
    cpython = [p.hex() for _, packets in detector_packets(stream, cfg) for p in packets]
    proc = run_micropython(MPY_REPLAY, (str(counts), str(cfg.rate_hz), str(cfg.range_g)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cpython, proc.stdout.split()


def _kinds(packets: list[str]) -> set[int]:
    return {wire.decode(bytes.fromhex(p))[1][0] for p in packets}


@pytest.mark.parametrize(
    ("scenario", "rate_hz", "range_g"),
    [("spasm-cluster", 50, 4), ("mixed-night", 50, 4), ("hypnic-jerks", 100, 16),
     ("handling", 25, 2)],
)
def test_scenarios_give_identical_packets(run_micropython, tmp_path, scenario, rate_hz, range_g):
    cfg = config.DetectorConfig(rate_hz=rate_hz, range_g=range_g)
    trace, _ = scenarios.generate(scenario, seed=3)
    cpython, micropython = _both(run_micropython, tmp_path, to_sensor_stream(trace, cfg), cfg)
    assert micropython == cpython
    # Not a vacuous comparison: events and summaries were produced.
    assert {wire.KIND_EVENT, wire.KIND_SUMMARY} <= _kinds(cpython)


def test_a_spasm_cluster_reaches_the_wire_as_spasm_like_events(run_micropython, tmp_path):
    cfg = config.DetectorConfig()
    trace, labels = scenarios.generate("spasm-cluster", seed=3)
    _, micropython = _both(run_micropython, tmp_path, to_sensor_stream(trace, cfg), cfg)
    classes = [
        rec[2] for rec in (wire.decode(bytes.fromhex(p))[1] for p in micropython)
        if rec[0] == wire.KIND_EVENT
    ]
    assert classes.count(wire.CLS_SPASM_LIKE) >= 3
    assert sum(1 for lb in labels if lb.label == "spasm") >= 3


def test_real_recording_gives_identical_packets(run_micropython, tmp_path):
    recs = list(real_data.wheel_recordings())
    root = real_data.shared_data_root()
    if root is not None:
        recs += list(real_data.sisfall_recordings(root, ("D14", "D19")))[:20]
    if not recs:
        pytest.skip("no real recordings here (pip install gaitpy sit2standpy aeon, ../shared/data)")
    cfg = config.DetectorConfig()
    joined = real_data.concatenate(recs, "real-joined")
    trace = Trace(joined.t, joined.acc, meta=joined.meta, source="real-joined")
    cpython, micropython = _both(run_micropython, tmp_path, to_sensor_stream(trace, cfg), cfg)
    assert micropython == cpython
    assert wire.KIND_EVENT in _kinds(cpython)


def test_bad_packets_raise_wire_errors_under_micropython(run_micropython):
    good = wire.encode(5, (wire.KIND_STATUS, 1000, 3900, 1, 10, 100, 50, 4))
    flipped = bytes([good[0], good[1] ^ 0x10]) + good[2:]
    code = (
        "from firmware import wire\n"
        "for data in ({!r}, {!r}, {!r}):\n"
        "    try:\n"
        "        wire.decode(data)\n"
        "        print('accepted')\n"
        "    except wire.WireError as e:\n"
        "        print(e.reason)\n"
        "print(wire.decode({!r})[0])\n".format(good[:9], flipped, good + b"\x00" * 5, good)
    )
    proc = run_micropython(code)
    assert proc.stdout.split() == ["short", "crc", "long", "5"], proc.stdout
