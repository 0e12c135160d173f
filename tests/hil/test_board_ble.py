"""Hardware-in-the-loop over BLE: the flashed firmware's radio link, with serial beside it.

Every test runs on the virtual board (its radio a real Bluetooth stack, Bumble, on a
virtual controller: simulator/ble_bridge.py; the host's bleak on Bumble over TCP HCI)
and, with ``--hil-port`` and ``--hil-ble``, on a real ESP32-S3 through the system's
Bluetooth adapter (docs/hil.md). Trace injection is serial-only (SAMPLES frames do not
fit a BLE write), so a known trace goes in over serial and its events come out over BLE.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hil_ble import BleBoard, BleClient
from hil_boards import (
    IN_BAND,
    SerialClient,
    assert_matches_simulator,
    backfill,
    detections,
    expected_records,
    in_band,
    inject_trace,
    is_kind,
    next_nonce,
    spasm_like,
    status_dict,
    trace_counts,
)

from spasmwatch.firmware import config as fwconfig
from spasmwatch.firmware import control, wire

# Samples 0..240 s of spasm-cluster seed 1: the cluster (123-185 s) and its end, a whole
# number of FIFO batches. Its packets fit the board's ring with room to spare.
PREFIX_SAMPLES = 240 * fwconfig.RATE_HZ


@pytest.fixture
def serial_client(ble_board: BleBoard) -> Iterator[SerialClient]:
    c = ble_board.board.connect()
    yield c
    c.close()


@pytest.fixture
def ble(ble_board: BleBoard) -> Iterator[BleClient]:
    c = ble_board.connect_ble()
    yield c
    c.close()


def _stream(client: BleClient, first: int, last: int) -> dict[int, tuple[Any, ...]]:
    """In-band packets first..last received live over ``client``; no seq seen twice."""
    seen = Counter(seq for seq, r in client.packets if r[0] in IN_BAND)
    dup = [s for s, n in seen.items() if n > 1 and first <= s <= last]
    assert not dup, f"sent twice over BLE: {dup}"
    return {seq: r for seq, r in client.packets if r[0] in IN_BAND and first <= seq <= last}


def _status_after(client: BleClient, reply_seq: int) -> dict[str, Any]:
    """The first status packet sent after a command's reply (ordered on the link)."""
    _, rec = client.wait_for(
        lambda p: p[1][0] == wire.KIND_STATUS and p[0] > reply_seq,
        timeout=fwconfig.STATUS_S * 3,
    )
    return status_dict(rec)


def test_ble_status_from_flashed_board(ble_board: BleBoard, ble: BleClient) -> None:
    """The board advertises its flashed name; status comes over BLE; PING is answered."""
    _, rec = ble.wait_for(is_kind(wire.KIND_STATUS), timeout=fwconfig.STATUS_S * 3)
    st = status_dict(rec)
    assert st["flags"] & wire.ST_SENSOR_OK, st
    assert not st["flags"] & wire.ST_INJECTION
    assert (st["rate_hz"], st["range_g"]) == (fwconfig.RATE_HZ, fwconfig.RANGE_G)
    rec = ble.command(control.encode_ping(0x5A5A1234))
    assert (rec[3], rec[4]) == (control.RESULT_OK, 0x5A5A1234)
    assert ble.bad == 0


def test_injected_trace_events_over_ble_match_simulator(
    serial_client: SerialClient, ble: BleClient
) -> None:
    """Samples in over serial, events out over BLE: the simulator's, exactly."""
    counts = trace_counts()
    expected = expected_records(counts)
    assert spasm_like(expected) >= 3

    ble.wait_for(in_band, timeout=fwconfig.STATUS_S * 3)  # BLE streams before we start
    serial_client.wait_for(in_band, timeout=fwconfig.STATUS_S * 3)
    first, last = inject_trace(serial_client, counts)
    # Notifications are ordered: once one sent after INJECT_STOP arrives, every packet
    # of the injection the board could notify has arrived; the rest is backfilled.
    ble.wait_for(lambda p: in_band(p) and p[0] > last, timeout=fwconfig.STATUS_S * 3)
    got = _stream(ble, first + 1, last)
    backfill(ble, got, first + 1, last)
    detected = detections(got, first + 1, last)
    assert_matches_simulator(detected, expected)
    assert spasm_like(detected) >= 3


def test_injection_over_ble_needs_the_key(
    serial_client: SerialClient, ble: BleClient
) -> None:
    """INJECT_START over BLE: refused without a valid tag; with the key it starts, but
    samples still come only over serial (SAMPLES over BLE: RESULT_LINK)."""
    ble.wait_for(is_kind(wire.KIND_STATUS), timeout=fwconfig.STATUS_S * 3)
    refused = [
        control.encode(control.INJECT_START, (next_nonce(),)),  # no tag
        ble.signed(control.encode_inject_start(next_nonce()), b"not-the-key"),  # wrong key
    ]
    for payload in refused:
        seq, rec = ble.exchange(payload, sign=False)
        assert rec[3] == control.RESULT_AUTH, (payload.hex(), rec)
        assert not _status_after(ble, seq)["flags"] & wire.ST_INJECTION
    # Still in sensor mode: serial samples are refused as out of state.
    assert serial_client.command(control.encode_samples([0, 0, 8192]))[3] \
        == control.RESULT_STATE

    # With the key over BLE, injection starts: the key authorises it, not the link...
    start = ble.signed(control.encode_inject_start(next_nonce()))
    seq, rec = ble.exchange(start)
    assert rec[3] == control.RESULT_OK, rec
    assert _status_after(ble, seq)["flags"] & wire.ST_INJECTION
    # ...but samples are serial-only: a SAMPLES frame written to the control point
    # (3 samples fit one 20-byte write) is refused for its link, not fed to the detector.
    three = control.encode_samples([0, 0, 8192] * 3)
    assert len(three) <= control.MAX_CONTROL
    assert ble.command(three)[3] == control.RESULT_LINK
    # The board takes them over serial while injecting (no reply: none is refused) and
    # still answers on serial.
    mark = len(serial_client.packets)
    serial_client.send(control.encode_samples([0, 0, 8192] * 3))
    assert serial_client.command(control.encode_ping(7))[3] == control.RESULT_OK
    assert not any(r[0] == wire.KIND_REPLY and r[2] == control.SAMPLES
                   for _, r in serial_client.packets[mark:])
    seq, rec = ble.exchange(control.encode_inject_stop())
    assert rec[3] == control.RESULT_OK
    assert not _status_after(ble, seq)["flags"] & wire.ST_INJECTION

    # A replayed INJECT_START (same counter, valid tag) over BLE is refused.
    seq, rec = ble.exchange(start)
    assert rec[3] == control.RESULT_AUTH
    assert not _status_after(ble, seq)["flags"] & wire.ST_INJECTION
    assert serial_client.command(control.encode_samples([0, 0, 8192]))[3] \
        == control.RESULT_STATE


def test_ble_link_drop_and_backfill(
    ble_board: BleBoard, serial_client: SerialClient, ble: BleClient
) -> None:
    """Events made while the BLE link is down come back by RESEND over BLE: none lost,
    none twice, and they are the simulator's events for the same samples."""
    counts = trace_counts()[:PREFIX_SAMPLES]
    expected = expected_records(counts)
    assert spasm_like(expected) >= 3

    ble.wait_for(in_band, timeout=fwconfig.STATUS_S * 3)
    serial_client.wait_for(in_band, timeout=fwconfig.STATUS_S * 3)
    ble_board.drop_link(ble)
    seq0 = max(seq for seq, r in ble.packets if r[0] in IN_BAND)
    # While BLE is down the board keeps working: the cluster goes in over serial.
    first, last = inject_trace(serial_client, counts)
    assert seq0 <= first, "the injection's packets must all fall in the outage"
    ble.reconnect()
    ble.wait_for(lambda p: in_band(p) and p[0] > last, timeout=fwconfig.STATUS_S * 3)
    end = max(seq for seq, r in ble.packets if r[0] in IN_BAND)
    got = _stream(ble, seq0 + 1, end)
    assert all(s not in got for s in range(first + 1, last + 1)), \
        "packets made while the link was down arrived live"
    n = backfill(ble, got, seq0 + 1, end)
    assert n >= last - first
    # Complete and in order, each seq once; the same bytes as the board sent on serial.
    assert sorted(got) == list(range(seq0 + 1, end + 1))
    serial = {seq: r for seq, r in serial_client.packets if r[0] in IN_BAND}
    assert all(got[s] == serial[s] for s in got if s in serial)
    detected = detections(got, first + 1, last)
    assert_matches_simulator(detected, expected)
    assert spasm_like(detected) >= 3
