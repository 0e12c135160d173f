"""COBS framing, control payloads, auth tags and the new wire kinds.

Round trips and garbage tolerance are property-tested (hypothesis) on CPython; the same
modules then run under real MicroPython and must produce the same bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spasmwatch.firmware import auth, control, framing, wire

payloads = st.binary(min_size=1, max_size=framing.MAX_PAYLOAD)


@given(payloads)
def test_cobs_round_trip_and_no_zero_inside(data: bytes) -> None:
    frame = framing.encode(data)
    assert frame[-1:] == b"\x00" and b"\x00" not in frame[:-1]
    assert len(frame) <= len(data) + 2
    assert framing.cobs_decode(frame[:-1]) == data


@given(st.lists(payloads, min_size=1, max_size=8), st.data())
def test_deframer_any_chunking(items: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(framing.encode(p) for p in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    d = framing.Deframer()
    got: list[bytes] = []
    last = 0
    for c in [*cuts, len(stream)]:
        got += d.feed(stream[last:c])
        last = c
    assert got == items
    assert d.frames == len(items) and d.bad_frames == 0


@given(st.binary(max_size=300), st.lists(payloads, min_size=1, max_size=5))
def test_garbage_then_delimiter_loses_nothing_after(garbage: bytes, items: list[bytes]) -> None:
    # REPL text or a traceback, then the lone zero the device sends when its link starts.
    d = framing.Deframer()
    got = d.feed(garbage + b"\x00" + b"".join(framing.encode(p) for p in items))
    # Garbage may decode as (at most a few) frames of its own; the real ones all follow.
    assert got[len(got) - len(items):] == items
    assert len(got) - len(items) <= garbage.count(0) + 1


def _valid_packet(p: bytes) -> bool:
    try:
        wire.decode(p)
    except wire.WireError:
        return False
    return True


@given(
    st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=126), max_size=200),
    st.integers(0, 0xFFFF),
)
def test_text_glued_to_a_frame_is_recovered_with_validate(text: str, seq: int) -> None:
    pkt = wire.encode(seq, (wire.KIND_STATUS, 1234, 3900, 1, 5, 100, 50, 4))
    d = framing.Deframer(validate=_valid_packet)
    got = d.feed(text.encode() + framing.encode(pkt))  # no zero between text and frame
    assert got == [pkt]


def test_deframer_buffer_is_bounded_and_resyncs() -> None:
    d = framing.Deframer()
    cap = len(d.buf)
    assert d.feed(b"\x01" * 100_000) == []
    assert len(d.buf) == cap and d.overruns == 1
    assert d.feed(b"\x00" + framing.encode(b"ok")) == [b"ok"]
    assert d.feed(b"\x00\x00\x00") == []  # empty frames: ignored


def test_malformed_cobs_counted_not_raised() -> None:
    d = framing.Deframer()
    assert d.feed(b"\x05\x01\x00") == []  # code says 4 more bytes, only 1 there
    assert d.bad_frames == 1
    with pytest.raises(framing.FramingError):
        framing.cobs_decode(b"\x05\x01")
    with pytest.raises(framing.FramingError):
        framing.encode(b"")
    with pytest.raises(framing.FramingError):
        framing.encode(b"x" * (framing.MAX_PAYLOAD + 1))


# --- control -------------------------------------------------------------------------

KEY = b"test-key-0123456789"

CASES = [
    (control.encode_ping(7), control.PING, (7,)),
    (control.encode_resend(65530, 4), control.RESEND, (65530, 4)),
    (control.encode_set_time(1_780_000_000), control.SET_TIME, (1_780_000_000,)),
    (control.sign(control.encode_set_param(1, -5), KEY, 7, 3), control.SET_PARAM, (1, -5)),
    (control.encode_get_snippet(), control.GET_SNIPPET, ()),
    (control.sign(control.encode_inject_start(99), KEY, 7, 4), control.INJECT_START, (99,)),
    (control.encode_hello(0xDEADBEEF), control.HELLO, (0xDEADBEEF,)),
    (control.encode_inject_stop(), control.INJECT_STOP, ()),
]


@pytest.mark.parametrize(("payload", "op", "args"), CASES, ids=lambda c: str(c)[:20])
def test_control_round_trip(payload: bytes, op: int, args: tuple) -> None:
    assert len(payload) <= control.MAX_CONTROL
    assert control.decode(payload) == (op, args)


def test_control_signatures_bind_key_boot_and_counter() -> None:
    p = control.sign(control.encode_set_param(3, 500), KEY, boot=9, cnt=5)
    assert control.check(p, KEY, 9, last_cnt=4) == 5
    assert control.check(p, KEY, 9, last_cnt=5) == -1  # replayed: counter not newer
    assert control.check(p, KEY, 10, last_cnt=0) == -1  # replayed after a reboot
    assert control.check(p, b"other key", 9) == -1
    assert control.check(p, b"", 9) == -1  # no key configured: nothing verifies
    assert control.check(control.encode_set_param(3, 500), KEY, 9) == -1  # no tag
    forged = p[:-1] + bytes([p[-1] ^ 1])
    assert control.check(forged, KEY, 9) == -1
    bumped = p[:-8] + (6).to_bytes(4, "little") + p[-4:]  # counter edited, tag kept
    assert control.check(bumped, KEY, 9) == -1
    with pytest.raises(control.ControlError):
        control.sign(control.encode_ping(1), b"", 1, 1)
    with pytest.raises(control.ControlError):
        control.sign(control.encode_hello(1), KEY, 1, 1)  # the challenge is never signed
    assert len(control.sign(control.encode_set_param(1, -1), KEY, 1, 1)) <= control.MAX_CONTROL


@given(st.lists(st.integers(-32768, 32767), min_size=3, max_size=3 * control.MAX_SAMPLES)
       .filter(lambda v: len(v) % 3 == 0))
def test_samples_round_trip(counts: list[int]) -> None:
    op, (raw,) = control.decode(control.encode_samples(counts))
    assert op == control.SAMPLES
    assert list(memoryview(raw).cast("h")) == counts


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_control_decode_only_raises_control_error(data: bytes) -> None:
    try:
        op, args = control.decode(data)
    except control.ControlError as exc:
        assert exc.reason in ("short", "long", "opcode", "length")
        return
    assert op in control.NAMES


def test_control_encode_rejects_bad_args() -> None:
    with pytest.raises(control.ControlError):
        control.encode_set_time(-1)
    with pytest.raises(control.ControlError):
        control.encode_samples([1, 2])
    with pytest.raises(control.ControlError):
        control.encode(0x7F)


@given(st.binary(max_size=100), st.binary(max_size=300))
def test_hmac_matches_python_hmac(key: bytes, msg: bytes) -> None:
    assert auth.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


# --- wire additions --------------------------------------------------------------------


def test_snippet_and_reply_packets_round_trip() -> None:
    snip = (wire.KIND_SNIPPET, 5000, -32768, 17, 32767, wire.SNIP_FIRST)
    reply = (wire.KIND_REPLY, 123456, control.RESEND, control.RESULT_GONE, 4_000_000_000)
    for seq, rec in ((42, snip), (7, reply)):
        pkt = wire.encode(seq, rec)
        assert len(pkt) == wire.PLAIN_LEN
        assert wire.decode(pkt) == (seq, rec)
        assert wire.peek_kind(pkt) in wire.OUT_OF_BAND


# --- the same bytes under MicroPython ---------------------------------------------------

MPY_SCRIPT = """
import json
from firmware import auth, control, framing, wire
out = {}
PAYLOADS = (b"\\x00", b"abc", bytes(range(256))[1:255])
out["frames"] = [framing.encode(bytes(p)).hex() for p in PAYLOADS]
out["control"] = [p.hex() for p in (
    control.encode_ping(7), control.encode_resend(65530, 4),
    control.sign(control.encode_set_param(1, -5), KEY, 7, 3),
    control.sign(control.encode_inject_start(99), KEY, 7, 4),
    control.encode_samples([1, -2, 3, 32767, -32768, 0]))]
d = framing.Deframer()
text = b"Traceback...\\n\\x00"
out["deframed"] = [p.hex() for p in d.feed(text + framing.encode(b"\\x01\\x00\\x02"))]
out["decoded"] = [list(control.decode(bytes.fromhex(h))) for h in out["control"][:4]]
out["tag"] = auth.tag(KEY, b"hello").hex()
out["reply"] = wire.encode(3, (wire.KIND_REPLY, 9, 1, 0, 7)).hex()
out["errors"] = []
for bad in (b"", b"\x7f", b"\x02\x01", b"\x01" * 21, b"\x08\x01"):
    try:
        control.decode(bad)
        out["errors"].append(None)
    except control.ControlError as exc:
        out["errors"].append(exc.reason)
print(json.dumps(out))
"""


def test_micropython_produces_the_same_bytes(run_micropython) -> None:  # type: ignore[no-untyped-def]
    proc = run_micropython(f"KEY = {KEY!r}\n" + MPY_SCRIPT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["frames"] == [
        framing.encode(p).hex() for p in (b"\x00", b"abc", bytes(range(256))[1:255])
    ]
    want = [
        control.encode_ping(7), control.encode_resend(65530, 4),
        control.sign(control.encode_set_param(1, -5), KEY, 7, 3),
        control.sign(control.encode_inject_start(99), KEY, 7, 4),
        control.encode_samples([1, -2, 3, 32767, -32768, 0]),
    ]
    assert out["control"] == [p.hex() for p in want]
    assert out["deframed"] == ["010002"]
    assert out["decoded"] == [[op, list(args)] for op, args in map(control.decode, want[:4])]
    assert out["tag"] == auth.tag(KEY, b"hello").hex()
    assert out["reply"] == wire.encode(3, (wire.KIND_REPLY, 9, 1, 0, 7)).hex()
    assert out["errors"] == ["short", "opcode", "length", "long", "length"]
