"""Hardware-in-the-loop: the flashed firmware on a board, seen only through its serial port.

Every test runs on the virtual board (default, CI) and, with ``--hil-port``, on a real
ESP32-S3 (docs/hil.md). The board is flashed with ``spasmwatch flash``'s code first.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from hil_boards import (
    IN_BAND,
    RealBoard,
    SerialClient,
    VirtualBoard,
    assert_matches_simulator,
    backfill,
    detections,
    expected_records,
    in_band,
    inject_start,
    inject_trace,
    is_kind,
    next_nonce,
    spasm_like,
    status_dict,
    trace_counts,
)

from spasmwatch.firmware import config as fwconfig
from spasmwatch.firmware import control, wire

Board = VirtualBoard | RealBoard


@pytest.fixture
def client(board: Board) -> Any:
    c = board.connect()
    yield c
    c.close()


def test_flash_verified_and_sensor_seen(board: Board, client: SerialClient) -> None:
    _, rec = client.wait_for(is_kind(wire.KIND_STATUS))
    st = status_dict(rec)
    assert st["flags"] & wire.ST_SENSOR_OK, f"sensor not seen: {st}\n{board.log()}"
    assert not st["flags"] & wire.ST_INJECTION  # injection is off by default
    assert (st["rate_hz"], st["range_g"]) == (fwconfig.RATE_HZ, fwconfig.RANGE_G)
    assert st["heap_kb"] > 20


def test_missing_sensor_is_reported(board: Board, client: SerialClient) -> None:
    if not board.can_set_knobs:
        pytest.skip("needs a sensor fault: virtual board only")
    client.wait_for(lambda p: p[1][0] == wire.KIND_STATUS and p[1][3] & wire.ST_SENSOR_OK)
    board.set_knobs(absent=1)
    client.wait_for(
        lambda p: p[1][0] == wire.KIND_STATUS and not p[1][3] & wire.ST_SENSOR_OK
    )
    board.set_knobs(absent=0)  # the driver re-initialises: the sensor comes back
    client.wait_for(lambda p: p[1][0] == wire.KIND_STATUS and p[1][3] & wire.ST_SENSOR_OK)


def test_heartbeat_every_status_period(client: SerialClient) -> None:
    first = client.wait_for(is_kind(wire.KIND_STATUS))
    second = client.wait_for(is_kind(wire.KIND_STATUS), timeout=fwconfig.STATUS_S * 3)
    dt = second[1][1] - first[1][1]
    assert fwconfig.STATUS_S * 1000 <= dt <= fwconfig.STATUS_S * 1000 + 1000, dt
    assert second[0] > first[0]  # in-band sequence numbers grow


def test_battery_and_charging_reported(board: Board, client: SerialClient) -> None:
    _, rec = client.wait_for(is_kind(wire.KIND_STATUS))
    st = status_dict(rec)
    low = bool(st["flags"] & wire.ST_BATTERY_LOW)
    if st["battery_mv"]:
        assert low == (st["battery_mv"] < fwconfig.BATTERY_LOW_MV), st
    if not board.can_set_knobs:
        return
    board.set_knobs(battery_mv=3300, charging=1)
    _, rec = client.wait_for(
        lambda p: p[1][0] == wire.KIND_STATUS and abs(p[1][2] - 3300) < 60
    )
    assert rec[3] & wire.ST_BATTERY_LOW and rec[3] & wire.ST_CHARGING, status_dict(rec)
    board.set_knobs(battery_mv=4100, charging=0)
    _, rec = client.wait_for(
        lambda p: p[1][0] == wire.KIND_STATUS and abs(p[1][2] - 4100) < 60
    )
    assert not rec[3] & (wire.ST_BATTERY_LOW | wire.ST_CHARGING), status_dict(rec)


def test_injection_needs_the_key(client: SerialClient) -> None:
    rec = client.command(client.signed(control.encode_inject_start(next_nonce()), b"not-the-key"))
    assert rec[3] == control.RESULT_AUTH
    untagged = control.encode(control.INJECT_START, (next_nonce(),))
    assert client.command(untagged)[3] == control.RESULT_AUTH
    # Samples are refused outside injection mode.
    assert client.command(control.encode_samples([0, 0, 8192]))[3] == control.RESULT_STATE
    start = client.signed(control.encode_inject_start(next_nonce()))
    assert client.command(start)[3] == control.RESULT_OK
    _, rec = client.wait_for(is_kind(wire.KIND_STATUS))
    assert rec[3] & wire.ST_INJECTION
    assert client.command(control.encode_inject_stop())[3] == control.RESULT_OK
    # A replayed INJECT_START (same counter, valid tag) is refused.
    rec = client.command(start)
    assert rec[3] == control.RESULT_AUTH


def test_injected_trace_matches_simulator(board: Board, client: SerialClient) -> None:
    """A known trace through the board's own detector gives the simulator's events."""
    counts = trace_counts()
    expected = expected_records(counts)
    assert spasm_like(expected) >= 3

    client.wait_for(is_kind(wire.KIND_STATUS))
    first, last = inject_trace(client, counts)
    got: dict[int, tuple[Any, ...]] = {}
    for seq, r in client.packets:
        if first < seq <= last and r[0] in IN_BAND:
            got.setdefault(seq, r)
    backfill(client, got, first + 1, last)
    detected = detections(got, first + 1, last)
    assert_matches_simulator(detected, expected)
    assert spasm_like(detected) >= 3


def test_reboot_survival(board: Board, client: SerialClient) -> None:
    client.wait_for(is_kind(wire.KIND_STATUS))
    client.close()
    board.reboot()
    again = board.connect()
    try:
        _, rec = again.wait_for(is_kind(wire.KIND_STATUS))
        assert rec[3] & wire.ST_SENSOR_OK
        assert rec[1] < 60_000  # device time restarted: it really rebooted
        # The key file survived the reboot: injection can still be authorised.
        assert inject_start(again) == control.RESULT_OK
        assert again.command(control.encode_inject_stop())[3] == control.RESULT_OK
    finally:
        again.close()
    if isinstance(board, VirtualBoard):
        # Every flashed file is still intact, by hash computed on the board.
        assert board.flash().copied == []


def test_link_drop_and_backfill(board: Board, client: SerialClient) -> None:
    seq0, _ = client.wait_for(in_band)
    drop_s = 0.3 if isinstance(board, VirtualBoard) else fwconfig.STATUS_S + 2
    deadline = time.monotonic() + 120
    while True:
        # Host side of the link goes away; the board keeps measuring and sending.
        client.ser.close()
        time.sleep(drop_s)  # a disconnected spell; the loop checks a gap really occurred
        client.ser.open()
        client.ser.reset_input_buffer()
        client.deframer = type(client.deframer)()
        seq1, _ = client.wait_for(in_band)
        if seq1 > seq0 + 1 or time.monotonic() > deadline:
            break
        seq0 = seq1
    assert seq1 > seq0 + 1, "no packets were missed while the link was down"
    mark = len(client.packets)
    rec = client.command(control.encode_resend(seq0 + 1, seq1 - 1))
    assert rec[3] == control.RESULT_OK and rec[4] == seq1 - seq0 - 1, rec
    resent = {s: r for s, r in client.packets[mark:] if r[0] in IN_BAND}
    assert set(range(seq0 + 1, seq1)) <= set(resent)
    # Backfilled in order: each kind's device times grow (a summary's time is its period
    # end from the sample clock, so it may sit just before an earlier-sent status).
    for kind in IN_BAND:
        times = [resent[s][1] for s in range(seq0 + 1, seq1) if resent[s][0] == kind]
        assert times == sorted(times), (kind, times)
