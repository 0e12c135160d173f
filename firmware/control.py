"""Control payloads, host -> device: the one definition (MicroPython/CPython).

API (stable; the host imports it as ``spasmwatch.firmware.control``):

    encode_ping(token=0) / encode_resend(from_seq, to_seq) / encode_set_time(unix_s)
    encode_set_param(param_id, value) / encode_get_snippet()
    encode_inject_start(nonce=0) / encode_inject_stop()
    encode_hello(token) / encode_pair(key)     # challenge; pairing (serial only)
    encode_samples(counts)             # trace injection: flat x,y,z int16 counts (serial)
    encode(opcode, args=())            # generic, untagged
    sign(payload, key, boot, cnt) -> payload + cnt u32 + 4-byte tag
    decode(payload) -> (opcode, args)  # raises ControlError; args is a tuple of ints
                                       # (SAMPLES, PAIR: a 1-tuple holding the raw bytes)
    split(payload) -> (opcode, args, body, cnt, tag)   # cnt -1 and tag None: untagged
    check(payload, key, boot, last_cnt) -> cnt > last_cnt of a valid tag, else -1
    NAMES, NEEDS_AUTH, UNSIGNED, PARAMS (param id -> DetectorConfig field), RESULT_* codes

Layout: opcode u8, then the opcode's little-endian args (fixed size per opcode), then
optionally (a *signed* command) a command counter u32 and a 4-byte tag =
auth.command_tag(key, boot, counter, opcode + args). The device accepts a signed
command only when the tag verifies under its key and *current boot counter* and the
counter is above the last one it accepted in this boot: a recorded command never works
again, not even after a reboot (the boot counter has moved on). The host learns the
boot counter and the last counter from the reply to HELLO.

Every payload is <= 20 bytes (one BLE write), except SAMPLES frames, which only the
USB serial link accepts (up to MAX_SAMPLES samples of 6 bytes). The device answers
each command with a wire KIND_REPLY packet (opcode, RESULT_* code, a u32 value), see
firmware/wire.py; replies and snippets are outside the packet sequence numbers.

Who needs a signature (docs/security.md): on a paired device every command over BLE
except HELLO; over USB serial (physical access) only NEEDS_AUTH; PAIR only over USB
serial and never signed (it replaces the key). An unpaired device refuses NEEDS_AUTH.

Commands and replies:
    PING(token u32)           -> OK, value = token
    RESEND(from u16, to u16)  -> the ring's packets from..to (inclusive, wrapping) again,
                                 then OK (all found) or GONE (some left the ring),
                                 value = packets resent
    SET_TIME(unix_s u32)      -> OK, value = device ms at reception (maps device time)
    SET_PARAM(id u8, value i32) -> OK / ARGS (unknown id, value rejected) / AUTH
    GET_SNIPPET()             -> OK, value = samples, then KIND_SNIPPET packets
    INJECT_START(nonce u32)   -> OK / AUTH; test mode: the sensor is not watching
    INJECT_STOP()             -> OK
    SAMPLES(n x (x, y, z) i16) -> nothing while injecting (STATE reply when not)
    HELLO(token u32)          -> OK, value = boot counter, time field = last command
                                 counter; tagged with auth.hello_tag over the token
    PAIR(key 16 bytes)        -> OK, value = the new boot counter (tagged with the new
                                 key); all-zero key: unpair. LINK over BLE.
    INFO(item u8)             -> OK, value = the item (INFO_* below; ``spasmwatch doctor``)
                                 / ARGS (unknown item)
Any signed command that fails: AUTH, value = the last accepted counter.
"""

import struct

from . import auth
from .compat import const

MAX_CONTROL = const(20)
TAG_LEN = const(4)
CNT_LEN = const(4)
KEY_LEN = const(16)
MAX_SAMPLES = const(40)  # 241-byte frame; serial only

PING = const(0x01)
RESEND = const(0x02)
SET_TIME = const(0x03)
SET_PARAM = const(0x04)
GET_SNIPPET = const(0x05)
INJECT_START = const(0x06)
INJECT_STOP = const(0x07)
SAMPLES = const(0x08)
HELLO = const(0x09)
PAIR = const(0x0A)
INFO = const(0x0B)

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
    SAMPLES: "samples", HELLO: "hello", PAIR: "pair", INFO: "info",
}
# struct format of each opcode's args (SAMPLES and PAIR carry raw bytes, handled apart)
_ARGS = {
    PING: "<I", RESEND: "<HH", SET_TIME: "<I", SET_PARAM: "<Bi", GET_SNIPPET: "",
    INJECT_START: "<I", INJECT_STOP: "", HELLO: "<I", INFO: "<B",
}
# Commands the device refuses without a valid signature on any link: changing what is
# detected, and feeding the detector samples that did not come from the sensor.
NEEDS_AUTH = (SET_PARAM, INJECT_START)
# Never signed: the challenge itself, pairing (serial only), injected samples (serial
# only, and only in a test mode entered by a signed INJECT_START).
UNSIGNED = (HELLO, PAIR, SAMPLES)

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
RESULT_AUTH = const(1)  # signature missing or wrong, no key, counter not increasing
RESULT_ARGS = const(2)  # well-formed but the value is not accepted
RESULT_BAD = const(3)  # undecodable payload (unknown opcode, wrong length)
RESULT_GONE = const(4)  # RESEND: some packets are no longer in the ring
RESULT_STATE = const(5)  # not possible now (e.g. SAMPLES outside injection mode)
RESULT_LINK = const(6)  # not allowed on this link (e.g. SAMPLES or PAIR over BLE)
RESULT_NAMES = ("ok", "auth", "args", "bad", "gone", "state", "link")


class ControlError(ValueError):
    """A control payload that cannot be decoded; ``reason`` is a short word."""

    def __init__(self, reason, detail=""):
        super().__init__(reason + (": " + detail if detail else ""))
        self.reason = reason


def _size(fmt):
    return struct.calcsize(fmt) if fmt else 0


def encode(opcode, args=()):
    """Generic encoder: opcode + packed args (unsigned; see ``sign``)."""
    fmt = _ARGS.get(opcode)
    if fmt is None:
        raise ControlError("opcode", "cannot encode opcode %r" % (opcode,))
    if fmt == "" and len(args):
        raise ControlError("args", "%s takes no arguments" % NAMES[opcode])
    try:
        return bytes([opcode]) + (struct.pack(fmt, *args) if fmt else b"")
    except (struct.error, OverflowError, TypeError, ValueError) as exc:
        raise ControlError("args", "%s: %s" % (NAMES[opcode], exc)) from None


def sign(payload, key, boot, cnt):
    """``payload`` (unsigned) + command counter + tag under ``key`` and ``boot``."""
    if not key:
        raise ControlError("auth", "signing needs the device key")
    op = payload[0] if len(payload) else 0
    if op in UNSIGNED:
        raise ControlError("auth", "%s is never signed" % NAMES.get(op, "opcode"))
    if not 0 < cnt <= 0xFFFFFFFF:
        raise ControlError("auth", "command counter out of range")
    body = bytes(payload)
    return body + struct.pack("<I", cnt) + auth.command_tag(key, boot, cnt, body)


def encode_ping(token=0):
    return encode(PING, (token & 0xFFFFFFFF,))


def encode_resend(from_seq, to_seq):
    return encode(RESEND, (from_seq & 0xFFFF, to_seq & 0xFFFF))


def encode_set_time(unix_s):
    return encode(SET_TIME, (unix_s,))


def encode_set_param(param_id, value):
    return encode(SET_PARAM, (param_id, value))


def encode_get_snippet():
    return encode(GET_SNIPPET)


def encode_inject_start(nonce=0):
    return encode(INJECT_START, (nonce & 0xFFFFFFFF,))


def encode_inject_stop():
    return encode(INJECT_STOP)


def encode_hello(token):
    return encode(HELLO, (token & 0xFFFFFFFF,))


def encode_pair(key):
    """PAIR with a KEY_LEN-byte key (all zeros: unpair)."""
    if len(key) != KEY_LEN:
        raise ControlError("args", "pair: the key must be %d bytes" % KEY_LEN)
    return bytes([PAIR]) + bytes(key)


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
    """(opcode, args, body, cnt, tag); cnt is -1 and tag None when unsigned."""
    n = len(payload)
    if n == 0:
        raise ControlError("short", "empty control payload")
    op = payload[0]
    if op == SAMPLES:
        m = n - 1
        if m == 0 or m % 6 or m // 6 > MAX_SAMPLES:
            raise ControlError("length", "samples frame of %d bytes" % n)
        return op, (bytes(payload[1:]),), payload, -1, None
    if n > MAX_CONTROL:
        raise ControlError("long", "%d bytes" % n)
    if op == PAIR:
        if n != 1 + KEY_LEN:
            raise ControlError("length", "pair needs %d bytes, got %d" % (1 + KEY_LEN, n))
        return op, (bytes(payload[1:]),), payload, -1, None
    fmt = _ARGS.get(op)
    if fmt is None:
        raise ControlError("opcode", "unknown opcode 0x%02x" % op)
    size = 1 + _size(fmt)
    if n == size:
        cnt = -1
        tag = None
    elif n == size + CNT_LEN + TAG_LEN and op not in UNSIGNED:
        (cnt,) = struct.unpack_from("<I", payload, size)
        tag = bytes(payload[size + CNT_LEN:])
    else:
        raise ControlError("length", "%s needs %d or %d bytes, got %d" % (
            NAMES[op], size, size + CNT_LEN + TAG_LEN, n))
    args = struct.unpack(fmt, bytes(payload[1:size])) if fmt else ()
    return op, args, bytes(payload[:size]), cnt, tag


def decode(payload):
    """(opcode, args) of a control payload; raises ControlError when malformed."""
    op, args, _, _, _ = split(payload)
    return op, args


def check(payload, key, boot, last_cnt=0):
    """The counter of a validly signed ``payload`` newer than ``last_cnt``, else -1."""
    try:
        _, _, body, cnt, tag = split(payload)
    except ControlError:
        return -1
    if tag is None or not key or cnt <= last_cnt:
        return -1
    if not auth.same(auth.command_tag(key, boot, cnt, body), tag):
        return -1
    return cnt
