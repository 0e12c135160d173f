"""Wire format: compact, versioned, checked packets of at most 20 bytes.

The one definition of the format, used by the firmware to encode and by the host and
simulator to decode (MicroPython/CPython common subset). Layout, little-endian:

    0      version (bits 7-5) | auth flag (bit 4) | kind (bits 3-0)
    1-2    sequence number, u16, per packet, wraps
    3-6    device time in ms since boot, u32 (event: onset; summary: period end)
    7-13   payload, 7 bytes, by kind (below)
    [14-17 authentication tag, 4 bytes, only when the auth flag is set: firmware/auth.py
           packet_tag over the device's boot counter and bytes 0-13, see docs/security.md]
    last 2 CRC-16/CCITT-FALSE over everything before it

16 bytes without a tag, 20 with one: both fit the default BLE ATT payload of 20 bytes.

Payloads (``mf8`` is an 8-bit minifloat, see ``mf8_encode``: ~3-6 % precision):
    event   class|state|peaks (2|2|4 bits), duration ms mf8, peak mg mf8,
            energy mg*s mf8, net tilt mg mf8, excursion mg mf8, stillness before s u8
    summary period s u8, active s u8, events u8, spasm-like u8, peak mg mf8,
            mean mg mf8, state u8
    status  battery mV u16, flags u8, buffer fill % u8, free heap kB u8, rate Hz u8,
            range g u8
    snippet x i16, y i16, z i16 (raw counts of one sample), flags u8 (SNIP_FIRST,
            SNIP_LAST); header seq = sample index in the snippet, time = sample time
    reply   opcode u8, result u8 (control.RESULT_*), value u32, 0 u8; header seq = the
            last stream sequence number sent (so a host sees a missing tail)
    detail  (round 4) sent right before the event it describes, same device time (the
            event's onset), the event's seq minus 1: tonic tilt direction dx, dy, dz i8
            (the gravity estimate's displacement from the onset posture at the event's
            largest excursion, scaled so its largest component is +-127; 0, 0, 0 = none),
            rise u8 (onset to the largest magnitude, 10 ms units, saturating), hold u8
            (onset to the largest excursion, 20 ms units, saturating), fails u16 (bit i
            set = spasm test i failed, see FAIL_NAMES; 0 = every test passed)

Snippet and reply packets (``OUT_OF_BAND``) answer a control payload
(firmware/control.py): they are not stored for resend and their seq field is not a
stream sequence number, so a host routes them by ``peek_kind`` before its sequence
tracking. Decoders older than these kinds reject them as an unknown kind (``WireError("kind")``);
a detail packet is in band (stored for resend, stream seq) and an old host counts it as
one decode error per event and carries on.
Records are plain tuples whose first item is the kind (see ``*_FIELDS``).
"""

import binascii
import struct

from .compat import const

VERSION = const(1)
KIND_EVENT = const(1)
KIND_SUMMARY = const(2)
KIND_STATUS = const(3)
KIND_SNIPPET = const(4)
KIND_REPLY = const(5)
KIND_DETAIL = const(6)
OUT_OF_BAND = (KIND_SNIPPET, KIND_REPLY)
SNIP_FIRST = const(0x01)
SNIP_LAST = const(0x02)
FLAG_AUTH = const(0x10)
HEADER_LEN = const(7)
PAYLOAD_LEN = const(7)
TAG_LEN = const(4)
CRC_LEN = const(2)
PLAIN_LEN = const(16)
AUTH_LEN = const(20)
MAX_PACKET = const(20)

# Event classes
CLS_JERK = const(0)
CLS_SPASM_LIKE = const(1)
CLS_MOVEMENT = const(2)
CLASS_NAMES = ("jerk", "spasm_like", "movement")

# Arousal state at event onset, from activity over the last minutes
STATE_UNKNOWN = const(0)
STATE_ASLEEP = const(1)
STATE_SETTLING = const(2)
STATE_AWAKE = const(3)
STATE_NAMES = ("unknown", "asleep", "settling", "awake")

# Status flags
ST_SENSOR_OK = const(0x01)
ST_FIFO_OVERFLOW = const(0x02)
ST_I2C_ERROR = const(0x04)
ST_CHARGING = const(0x08)
ST_BATTERY_LOW = const(0x10)
ST_INJECTION = const(0x20)
ST_EVENTS_DROPPED = const(0x40)

# Spasm tests an event failed (the detail packet's fails bits, firmware/detector.py);
# bit i is FAIL_NAMES[i].
FAIL_NAMES = (
    "warmup", "long", "tilt", "no_return", "small_excursion", "peaks", "not_prominent",
    "impulse", "too_strong", "flat", "cut", "short",
)

EVENT_FIELDS = (
    "kind", "t_ms", "cls", "state", "peaks", "duration_ms", "peak_mg", "energy_mgs",
    "tilt_mg", "excursion_mg", "still_s",
)
SUMMARY_FIELDS = (
    "kind", "t_ms", "period_s", "active_s", "events", "spasm_like", "peak_mg", "mean_mg",
    "state",
)
STATUS_FIELDS = (
    "kind", "t_ms", "battery_mv", "flags", "buffer_pct", "heap_kb", "rate_hz", "range_g",
)
SNIPPET_FIELDS = ("kind", "t_ms", "x", "y", "z", "flags")
REPLY_FIELDS = ("kind", "t_ms", "opcode", "result", "value")
DETAIL_FIELDS = ("kind", "t_ms", "dx", "dy", "dz", "rise_10ms", "hold_20ms", "fails")
FIELDS = {
    KIND_EVENT: EVENT_FIELDS, KIND_SUMMARY: SUMMARY_FIELDS, KIND_STATUS: STATUS_FIELDS,
    KIND_SNIPPET: SNIPPET_FIELDS, KIND_REPLY: REPLY_FIELDS, KIND_DETAIL: DETAIL_FIELDS,
}


class WireError(ValueError):
    """A packet that cannot be decoded; ``reason`` is a short machine-readable word."""

    def __init__(self, reason, detail=""):
        super().__init__(reason + (": " + detail if detail else ""))
        self.reason = reason


def mf8_encode(v):
    """Non-negative int -> 8-bit minifloat (4-bit exponent, 4-bit mantissa), rounding down.

    0..15 are exact; above, value = (16 + m) << (e - 1); saturates at 507904.
    """
    if v < 16:
        return v if v > 0 else 0
    e = 1
    while v >= 32:
        v >>= 1
        e += 1
    if e > 15:
        return 0xFF
    return (e << 4) | (v - 16)


def mf8_decode(b):
    e = b >> 4
    m = b & 0x0F
    if e == 0:
        return m
    return (16 + m) << (e - 1)


# CPython's C implementation of the same CRC (MicroPython's binascii lacks it): the
# host decodes tens of thousands of packets a second with it.
_crc_hqx = getattr(binascii, "crc_hqx", None)


def crc16(data, n):
    """CRC-16/CCITT-FALSE of data[0:n] (poly 0x1021, init 0xFFFF)."""
    if _crc_hqx is not None:
        return _crc_hqx(bytes(data[:n]), 0xFFFF)
    crc = 0xFFFF
    for i in range(n):
        crc ^= data[i] << 8
        for _ in range(8):
            if crc & 0x8000:
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF
            else:
                crc = (crc << 1) & 0xFFFF
    return crc


def _sat8(v):
    return 0 if v < 0 else (255 if v > 255 else v)


def _sati8(v):
    return -127 if v < -127 else (127 if v > 127 else v)


def _payload(rec):
    kind = rec[0]
    if kind == KIND_EVENT:
        return struct.pack(
            "<7B",
            (rec[2] & 3) << 6 | (rec[3] & 3) << 4 | (rec[4] if rec[4] < 15 else 15),
            mf8_encode(rec[5]), mf8_encode(rec[6]), mf8_encode(rec[7]),
            mf8_encode(rec[8]), mf8_encode(rec[9]), _sat8(rec[10]),
        )
    if kind == KIND_SUMMARY:
        return struct.pack(
            "<7B", _sat8(rec[2]), _sat8(rec[3]), _sat8(rec[4]), _sat8(rec[5]),
            mf8_encode(rec[6]), mf8_encode(rec[7]), rec[8] & 3,
        )
    if kind == KIND_STATUS:
        mv = rec[2]
        return struct.pack(
            "<HBBBBB", 0 if mv < 0 else (65535 if mv > 65535 else mv), rec[3] & 0xFF,
            _sat8(rec[4]), _sat8(rec[5]), _sat8(rec[6]), _sat8(rec[7]),
        )
    if kind == KIND_SNIPPET:
        return struct.pack("<hhhB", rec[2], rec[3], rec[4], rec[5] & 0xFF)
    if kind == KIND_REPLY:
        return struct.pack("<BBIB", rec[2] & 0xFF, rec[3] & 0xFF, rec[4] & 0xFFFFFFFF, 0)
    if kind == KIND_DETAIL:
        return struct.pack(
            "<bbbBBH", _sati8(rec[2]), _sati8(rec[3]), _sati8(rec[4]), _sat8(rec[5]),
            _sat8(rec[6]), rec[7] & 0xFFFF,
        )
    raise WireError("kind", "cannot encode kind %r" % (kind,))


def peek_kind(data):
    """The kind of a packet without checking it (0 when too short to say)."""
    return data[0] & 0x0F if len(data) else 0


def encode(seq, rec, tagger=None):
    """Record tuple -> packet bytes. ``tagger(bytes) -> 4 bytes`` adds an auth tag."""
    first = VERSION << 5 | rec[0]
    if tagger is not None:
        first |= FLAG_AUTH
    body = struct.pack("<BHI", first, seq & 0xFFFF, rec[1] & 0xFFFFFFFF) + _payload(rec)
    if tagger is not None:
        tag = tagger(body)
        if len(tag) != TAG_LEN:
            raise WireError("auth", "tag must be %d bytes" % TAG_LEN)
        body = body + tag
    return body + struct.pack("<H", crc16(body, len(body)))


def decode(data, verifier=None):
    """Packet bytes -> (seq, record). Raises WireError on anything malformed.

    ``verifier(body, tag) -> bool`` checks an auth tag; a tagged packet with no verifier
    is rejected rather than trusted, and so is an untagged one when there is a verifier.
    """
    n = len(data)
    if n < PLAIN_LEN:
        raise WireError("short", "%d bytes" % n)
    if n > MAX_PACKET:
        raise WireError("long", "%d bytes" % n)
    (crc,) = struct.unpack_from("<H", data, n - CRC_LEN)
    if crc16(data, n - CRC_LEN) != crc:
        raise WireError("crc", "checksum mismatch")
    first = data[0]
    version = first >> 5
    if version != VERSION:
        raise WireError("version", "version %d, this decoder speaks %d" % (version, VERSION))
    authed = first & FLAG_AUTH
    if verifier is not None and not authed:
        raise WireError("unsigned", "packet without a tag from a paired link")
    expected = AUTH_LEN if authed else PLAIN_LEN
    if n != expected:
        raise WireError("length", "%d bytes for a packet that needs %d" % (n, expected))
    if authed:
        if verifier is None:
            raise WireError("auth", "tagged packet but no key configured")
        if not verifier(bytes(data[:HEADER_LEN + PAYLOAD_LEN]),
                        bytes(data[HEADER_LEN + PAYLOAD_LEN:n - CRC_LEN])):
            raise WireError("auth", "tag does not verify")
    kind = first & 0x0F
    _, seq, t_ms = struct.unpack_from("<BHI", data, 0)
    p = HEADER_LEN
    if kind == KIND_EVENT:
        b = struct.unpack_from("<7B", data, p)
        rec: tuple = (
            kind, t_ms, b[0] >> 6, (b[0] >> 4) & 3, b[0] & 15, mf8_decode(b[1]),
            mf8_decode(b[2]), mf8_decode(b[3]), mf8_decode(b[4]), mf8_decode(b[5]), b[6],
        )
        if rec[2] >= len(CLASS_NAMES):
            raise WireError("value", "unknown event class %d" % rec[2])
    elif kind == KIND_SUMMARY:
        b = struct.unpack_from("<7B", data, p)
        rec = (kind, t_ms, b[0], b[1], b[2], b[3], mf8_decode(b[4]), mf8_decode(b[5]), b[6] & 3)
    elif kind == KIND_STATUS:
        mv, fl, buf, heap, rate, rng = struct.unpack_from("<HBBBBB", data, p)
        rec = (kind, t_ms, mv, fl, buf, heap, rate, rng)
    elif kind == KIND_SNIPPET:
        x, y, z, fl = struct.unpack_from("<hhhB", data, p)
        rec = (kind, t_ms, x, y, z, fl)
    elif kind == KIND_REPLY:
        op, res, val, _ = struct.unpack_from("<BBIB", data, p)
        rec = (kind, t_ms, op, res, val)
    elif kind == KIND_DETAIL:
        dx, dy, dz, rise, hold, fails = struct.unpack_from("<bbbBBH", data, p)
        if dx == -128 or dy == -128 or dz == -128:
            raise WireError("value", "detail direction -128 is never sent")
        if fails >> len(FAIL_NAMES):
            raise WireError("value", "unknown detail fail bits 0x%04x" % fails)
        rec = (kind, t_ms, dx, dy, dz, rise, hold, fails)
    else:
        raise WireError("kind", "unknown packet kind %d" % kind)
    return seq, rec
