"""Control payloads, host -> device: the one definition (MicroPython/CPython).

API (stable; the host imports it as ``spasmwatch.firmware.control``):

    encode_ping(token=0) / encode_resend(from_seq, to_seq) / encode_set_time(unix_s)
    encode_set_param(param_id, value, key=None) / encode_get_snippet()
    encode_inject_start(key, nonce) / encode_inject_stop(key=None)
    encode_samples(counts)             # trace injection: flat x,y,z int16 counts (serial)
    encode(opcode, args=(), key=None)  # generic; appends a 4-byte auth tag when key given
    decode(payload) -> (opcode, args)  # raises ControlError; args is a tuple of ints
                                       # (for SAMPLES: a 1-tuple holding the raw bytes)
    split(payload) -> (opcode, args, body, tag)   # tag is None when absent
    authorised(payload, key) -> bool   # payload carries a valid tag under key
    NAMES, NEEDS_AUTH, PARAMS (param id -> DetectorConfig field), RESULT_* reply codes

Layout: opcode u8, then the opcode's little-endian args (fixed size per opcode), then
optionally a 4-byte auth tag = HMAC-SHA256(key, opcode + args)[:4] (firmware/auth.py).
Every payload is <= 20 bytes (one BLE write), except SAMPLES frames, which only the
USB serial link accepts (up to MAX_SAMPLES samples of 6 bytes). The device answers
each command with a wire KIND_REPLY packet (opcode, RESULT_* code, a u32 value), see
firmware/wire.py; replies and snippets are outside the packet sequence numbers.

Commands and replies:
    PING(token u32)           -> OK, value = token
    RESEND(from u16, to u16)  -> the ring's packets from..to (inclusive, wrapping) again,
                                 then OK (all found) or GONE (some left the ring),
                                 value = packets resent
    SET_TIME(unix_s u32)      -> OK, value = device ms at reception (maps device time)
    SET_PARAM(id u8, value i32) [tag]  -> OK / ARGS (unknown id, value rejected) / AUTH
    GET_SNIPPET()             -> OK, value = samples, then KIND_SNIPPET packets
    INJECT_START(nonce u32) tag -> OK / AUTH (no key, bad tag or a reused nonce)
    INJECT_STOP() [tag]       -> OK
    SAMPLES(n x (x, y, z) i16) -> nothing while injecting (STATE reply when not)
    INFO(item u8)             -> OK, value = the item (INFO_* below; ``spasmwatch doctor``)
                                 / ARGS (unknown item)
"""

import struct

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


from . import auth

MAX_CONTROL = const(20)
TAG_LEN = const(4)
MAX_SAMPLES = const(40)  # 241-byte frame; serial only

PING = const(0x01)
RESEND = const(0x02)
SET_TIME = const(0x03)
SET_PARAM = const(0x04)
GET_SNIPPET = const(0x05)
INJECT_START = const(0x06)
INJECT_STOP = const(0x07)
SAMPLES = const(0x08)
INFO = const(0x09)

# INFO items (reply value, u32)
INFO_VERSION = const(0)  # firmware version major << 16 | minor << 8 | patch
INFO_HASH = const(1)  # first 4 bytes (big-endian) of the firmware files' SHA-256
INFO_WHOAMI = const(2)  # MPU WHO_AM_I as last read (0xFFFFFFFF: never answered)
INFO_SAMPLES = const(3)  # samples read from the sensor since start (u32, wraps)
INFO_OVERFLOWS = const(4)  # FIFO overflows since start
INFO_I2C_ERRORS = const(5)  # I2C errors since start
INFO_REANCHORS = const(6)  # sample clock corrections since start
INFO_BLE = const(7)  # failed BLE connections << 16 | BLE IRQ handler errors
INFO_ERRORS = const(8)  # main loop exceptions since start
INFO_CLOCK_PPM = const(9)  # sensor sample clock vs the board's clock, ppm (i32 as u32)

NAMES = {
    PING: "ping", RESEND: "resend", SET_TIME: "set_time", SET_PARAM: "set_param",
    GET_SNIPPET: "get_snippet", INJECT_START: "inject_start", INJECT_STOP: "inject_stop",
    SAMPLES: "samples", INFO: "info",
}
# struct format of each opcode's args (SAMPLES is variable and handled apart)
_ARGS = {
    PING: "<I", RESEND: "<HH", SET_TIME: "<I", SET_PARAM: "<Bi", GET_SNIPPET: "",
    INJECT_START: "<I", INJECT_STOP: "", INFO: "<B",
}
# Commands the device refuses without a valid tag: changing what is detected, and
# feeding the detector samples that did not come from the sensor.
NEEDS_AUTH = (SET_PARAM, INJECT_START)

# SET_PARAM ids -> the DetectorConfig keyword they set (physical units, see config.py)
PARAMS = {
    1: "onset_mg",
    2: "offset_mg",
    3: "quiet_ms",
    4: "jerk_max_ms",
    5: "spasm_max_ms",
    6: "spasm_max_tilt_mg",
    7: "spasm_min_excursion_mg",
    8: "spasm_max_peaks",
    9: "spasm_min_crest_x10",
    10: "active_mg",
}

# Reply result codes (wire KIND_REPLY ``result``)
RESULT_OK = const(0)
RESULT_AUTH = const(1)  # tag missing or wrong, no key configured, or nonce reused
RESULT_ARGS = const(2)  # well-formed but the value is not accepted
RESULT_BAD = const(3)  # undecodable payload (unknown opcode, wrong length)
RESULT_GONE = const(4)  # RESEND: some packets are no longer in the ring
RESULT_STATE = const(5)  # not possible now (e.g. SAMPLES outside injection mode)
RESULT_LINK = const(6)  # not allowed on this link (e.g. SAMPLES over BLE)
RESULT_NAMES = ("ok", "auth", "args", "bad", "gone", "state", "link")


class ControlError(ValueError):
    """A control payload that cannot be decoded; ``reason`` is a short word."""

    def __init__(self, reason, detail=""):
        super().__init__(reason + (": " + detail if detail else ""))
        self.reason = reason


def _size(fmt):
    return struct.calcsize(fmt) if fmt else 0


def encode(opcode, args=(), key=None):
    """Generic encoder: opcode + packed args [+ tag when ``key`` is given]."""
    fmt = _ARGS.get(opcode)
    if fmt is None:
        raise ControlError("opcode", "cannot encode opcode %r" % (opcode,))
    try:
        body = bytes([opcode]) + (struct.pack(fmt, *args) if fmt else b"")
    except (struct.error, OverflowError, TypeError, ValueError) as exc:
        raise ControlError("args", "%s: %s" % (NAMES[opcode], exc)) from None
    if fmt == "" and len(args):
        raise ControlError("args", "%s takes no arguments" % NAMES[opcode])
    if key:
        body = body + auth.tag(key, body)
    return body


def encode_ping(token=0):
    return encode(PING, (token,))


def encode_resend(from_seq, to_seq):
    return encode(RESEND, (from_seq & 0xFFFF, to_seq & 0xFFFF))


def encode_set_time(unix_s):
    return encode(SET_TIME, (unix_s,))


def encode_set_param(param_id, value, key=None):
    return encode(SET_PARAM, (param_id, value), key)


def encode_get_snippet():
    return encode(GET_SNIPPET)


def encode_inject_start(key, nonce):
    if not key:
        raise ControlError("auth", "INJECT_START needs the device key")
    return encode(INJECT_START, (nonce,), key)


def encode_inject_stop(key=None):
    return encode(INJECT_STOP, (), key)


def encode_info(item):
    return encode(INFO, (item,))


def encode_samples(counts):
    """SAMPLES frame from flat x, y, z int16 counts (1..MAX_SAMPLES samples)."""
    n = len(counts)
    if n == 0 or n % 3 or n // 3 > MAX_SAMPLES:
        raise ControlError("args", "samples: need 1..%d whole x,y,z samples" % MAX_SAMPLES)
    try:
        return bytes([SAMPLES]) + struct.pack("<%dh" % n, *counts)
    except (struct.error, OverflowError) as exc:
        raise ControlError("args", "samples: %s" % exc) from None


def split(payload):
    """(opcode, args, body, tag-or-None); raises ControlError."""
    n = len(payload)
    if n == 0:
        raise ControlError("short", "empty control payload")
    op = payload[0]
    if op == SAMPLES:
        m = n - 1
        if m == 0 or m % 6 or m // 6 > MAX_SAMPLES:
            raise ControlError("length", "samples frame of %d bytes" % n)
        return op, (bytes(payload[1:]),), payload, None
    if n > MAX_CONTROL:
        raise ControlError("long", "%d bytes" % n)
    fmt = _ARGS.get(op)
    if fmt is None:
        raise ControlError("opcode", "unknown opcode 0x%02x" % op)
    size = 1 + _size(fmt)
    if n == size:
        tag = None
    elif n == size + TAG_LEN:
        tag = bytes(payload[size:])
    else:
        raise ControlError("length", "%s needs %d or %d bytes, got %d" % (
            NAMES[op], size, size + TAG_LEN, n))
    args = struct.unpack(fmt, bytes(payload[1:size])) if fmt else ()
    return op, args, bytes(payload[:size]), tag


def decode(payload):
    """(opcode, args) of a control payload; raises ControlError when malformed."""
    op, args, _, _ = split(payload)
    return op, args


def authorised(payload, key):
    """True when ``payload`` is well formed and carries a valid tag under ``key``."""
    try:
        _, _, body, tag = split(payload)
    except ControlError:
        return False
    return tag is not None and auth.verify(key, body, tag)
