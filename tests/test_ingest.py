"""Ingest: bad bytes never raise and are counted by reason; seq/clock wrap, gaps, dupes."""

from __future__ import annotations

import logging
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from spasmwatch.firmware import wire
from spasmwatch.host.monitor.ingest import Event, PacketIngest, Status, Summary
from spasmwatch.host.monitor.sequence import Verdict


def event(t_ms: int, cls: int = wire.CLS_SPASM_LIKE, dur_ms: int = 1000) -> tuple:
    return (wire.KIND_EVENT, t_ms, cls, wire.STATE_ASLEEP, 2, dur_ms, 400, 120, 40, 150, 7)


def status(t_ms: int, flags: int = wire.ST_SENSOR_OK) -> tuple:
    return (wire.KIND_STATUS, t_ms, 3900, flags, 12, 80, 50, 4)


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<H", wire.crc16(body, len(body)))


def test_decoded_records_are_typed_with_names_and_host_time() -> None:
    ing = PacketIngest(t0=1000.0)
    r = ing.feed(wire.encode(7, event(5000, dur_ms=1500)), received_at=1234.5)
    assert r is not None and isinstance(r.record, Event) and r.kind == "event"
    ev = r.record
    assert (ev.seq, ev.t, ev.cls, ev.state, ev.peaks) == (7, 1005.0, "spasm_like", "asleep", 2)
    assert ev.duration_s == wire.mf8_decode(wire.mf8_encode(1500)) / 1000
    assert ev.end == ev.t + ev.duration_s
    assert ev.received_at == 1234.5
    s = ing.feed(wire.encode(8, status(6000, wire.ST_SENSOR_OK | wire.ST_FIFO_OVERFLOW)))
    assert s is not None and isinstance(s.record, Status)
    assert s.record.flags == ("sensor_ok", "fifo_overflow") and s.record.sensor_ok
    summ = (wire.KIND_SUMMARY, 60000, 60, 12, 4, 1, 800, 20, wire.STATE_SETTLING)
    m = ing.feed(wire.encode(9, summ))
    assert m is not None and isinstance(m.record, Summary)
    assert (m.record.t, m.record.start, m.record.state) == (1060.0, 1000.0, "settling")
    assert ing.stats.kinds == {"event": 1, "status": 1, "summary": 1}


def test_every_wire_error_reason_is_counted_logged_and_never_raises(caplog) -> None:
    good = wire.encode(1, event(1000))
    flipped = bytearray(good)
    flipped[9] ^= 0x04
    v2 = bytearray(good[:-2])
    v2[0] = (2 << 5) | wire.KIND_EVENT
    unknown_kind = bytearray(good[:-2])
    unknown_kind[0] = (wire.VERSION << 5) | 9
    bad_class = bytearray(good[:-2])
    bad_class[7] = (3 << 6) | bad_class[7] & 0x3F
    tagged = wire.encode(2, event(2000), tagger=lambda body: b"\x01\x02\x03\x04")
    plain_but_20 = with_crc(good[:-2] + b"\x00\x00\x00\x00")
    cases = {
        "short": good[:10],
        "long": good + bytes(5),
        "crc": bytes(flipped),
        "version": with_crc(bytes(v2)),
        "kind": with_crc(bytes(unknown_kind)),
        "value": with_crc(bytes(bad_class)),
        "auth": tagged,  # tagged, and this ingest has no verifier
        "length": plain_but_20,
    }
    ing = PacketIngest()
    with caplog.at_level(logging.WARNING, logger="spasmwatch.ingest"):
        for data in cases.values():
            assert ing.feed(data) is None
    assert ing.stats.errors == {reason: 1 for reason in cases}
    assert ing.stats.decode_errors == len(cases) == ing.stats.error_run
    bad_lines = [r for r in caplog.records if "undecodable" in r.getMessage()]
    assert len(bad_lines) == len(cases)
    assert ing.feed(good) is not None and ing.stats.error_run == 0


def test_unexpected_decoder_exception_counts_as_malformed() -> None:
    def broken_verifier(body: bytes, tag: bytes) -> bool:
        raise KeyError("key store unavailable")

    ing = PacketIngest(verifier=broken_verifier)
    tagged = wire.encode(2, event(2000), tagger=lambda body: b"abcd")
    assert ing.feed(tagged) is None
    assert ing.stats.errors == {"malformed": 1}


def test_verified_tag_is_accepted_and_wrong_tag_rejected() -> None:
    key = b"k3y!"

    def tag(body: bytes) -> bytes:
        return bytes(b ^ key[i % 4] for i, b in enumerate(body[:4]))

    ing = PacketIngest(verifier=lambda body, t: tag(body) == t)
    assert ing.feed(wire.encode(1, event(1000), tagger=tag)) is not None
    assert ing.feed(wire.encode(2, event(2000), tagger=lambda b: b"nope")) is None
    assert ing.stats.errors == {"auth": 1}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=24), min_size=1, max_size=20))
def test_random_bytes_never_raise_and_every_packet_is_accounted_for(blobs) -> None:
    ing = PacketIngest()
    results = [ing.feed(b) for b in blobs]
    s = ing.stats
    accepted = sum(r is not None for r in results)
    assert s.packets == len(blobs)
    assert accepted == s.accepted
    assert s.accepted + s.duplicates + s.decode_errors == s.packets
    assert set(s.errors) <= {
        "short", "long", "crc", "version", "length", "auth", "kind", "value", "malformed",
    }


def test_sequence_wrap_is_not_a_gap() -> None:
    ing = PacketIngest()
    for i, seq in enumerate((65533, 65534, 65535, 0, 1)):
        r = ing.feed(wire.encode(seq, event(1000 * (i + 1))))
        assert r is not None and r.verdict is Verdict.NEW and r.gap == 0
    assert ing.stats.lost == 0 and ing.missing_ranges() == []
    assert ing.seq.top == 65536 + 1  # unwrapped


def test_gap_is_counted_remembered_and_backfilled() -> None:
    ing = PacketIngest()
    ing.feed(wire.encode(10, event(1000)))
    r = ing.feed(wire.encode(14, event(5000)))
    assert r is not None and r.gap == 3
    assert ing.stats.lost == 3 and ing.missing_ranges() == [(11, 13)]
    b = ing.feed(wire.encode(12, event(3000)))
    assert b is not None and b.verdict is Verdict.BACKFILL and b.record.t == 3.0
    assert ing.stats.recovered == 1 and ing.missing_ranges() == [(11, 11), (13, 13)]
    # The backfilled packet sent once more is a duplicate now.
    assert ing.feed(wire.encode(12, event(3000))) is None
    assert ing.stats.duplicates == 1


def test_gap_across_the_wrap_is_split_into_ranges() -> None:
    ing = PacketIngest()
    ing.feed(wire.encode(65533, event(1000)))
    r = ing.feed(wire.encode(2, event(2000)))
    assert r is not None and r.gap == 4
    assert ing.missing_ranges() == [(65534, 65535), (0, 1)]


def test_duplicate_packet_is_dropped_and_counted() -> None:
    ing = PacketIngest()
    p = wire.encode(5, event(1000))
    assert ing.feed(p) is not None
    assert ing.feed(p) is None
    assert ing.feed(wire.encode(6, event(2000))) is not None
    assert ing.feed(p) is None
    assert ing.stats.duplicates == 2 and ing.stats.accepted == 2 and ing.stats.lost == 0


def test_dedupe_memory_stays_bounded() -> None:
    ing = PacketIngest(window=64)
    for i in range(5000):
        ing.feed(wire.encode(i, event(1000 * i)))
        assert len(ing.seq._seen) <= 2 * 64
    # Every packet after a big jump in seq: many gaps, each as wide as the window.
    for i in range(1, 500):
        ing.feed(wire.encode(5000 + 200 * i, event(5_000_000 + 1000 * i)))
        assert ing.missing <= 2 * 64
    assert ing.stats.lost == 200 + 498 * 199  # 4999 -> 5200, then steps of 200


def test_device_clock_wrap_keeps_time_increasing() -> None:
    ing = PacketIngest(t0=50.0)
    near_wrap = 2**32 - 500
    a = ing.feed(wire.encode(1, event(near_wrap)))
    b = ing.feed(wire.encode(2, event(300)))  # 800 ms later, after the u32 wrapped
    assert a is not None and b is not None
    assert a.record.t == 50.0 + near_wrap / 1000
    assert b.record.t == 50.0 + (2**32 + 300) / 1000
    # An older packet (e.g. an event that started before a status) still maps before it.
    c = ing.feed(wire.encode(3, event(2**32 - 100)))
    assert c is not None and c.record.t == 50.0 + (2**32 - 100) / 1000


def test_device_restart_is_detected_and_time_does_not_run_backwards() -> None:
    ing = PacketIngest()
    for i in range(5):
        ing.feed(wire.encode(i, event(3_600_000 + 1000 * i)))
    # Rebooted: counts from 0 again with a fresh clock; seq 0 now means something else.
    r = ing.feed(wire.encode(0, event(200)))
    assert r is not None and r.verdict is Verdict.RESTART
    assert ing.stats.restarts == 1 and ing.stats.duplicates == 0
    assert r.record.t >= 3604.0
    nxt = ing.feed(wire.encode(1, event(1200)))
    assert nxt is not None and nxt.verdict is Verdict.NEW and nxt.record.t == r.record.t + 1.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 65535), st.integers(0, 2**32 - 1),
                          st.booleans()), min_size=1, max_size=40))
def test_any_order_of_valid_packets_is_accounted_for(packets) -> None:
    """Resends, reordering, wraps and restarts in any mix: never raises, nothing vanishes."""
    ing = PacketIngest(window=16)
    sent = 0
    for seq, t_ms, resend in packets:
        data = wire.encode(seq, status(t_ms))
        for _ in range(2 if resend else 1):
            r = ing.feed(data)
            sent += 1
            assert r is None or r.record.seq == seq
    s = ing.stats
    assert s.accepted + s.duplicates == sent and s.decode_errors == 0
    assert s.duplicates >= sum(resend for _, _, resend in packets)
    assert ing.missing <= 2 * 16 and s.recovered <= s.lost
