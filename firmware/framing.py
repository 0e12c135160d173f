"""Serial framing: COBS, one frame = COBS(payload) + b"\\x00" (MicroPython/CPython).

API (stable; used by firmware/serial_link.py and the host serial link):

    encode(payload) -> bytes           # COBS(payload) + b"\\x00"; payload 1..MAX_PAYLOAD
    cobs_encode(data) -> bytes         # COBS only, no delimiter
    cobs_decode(data) -> bytes         # raises FramingError on a malformed COBS body
    Deframer(max_payload=MAX_PAYLOAD, validate=None)
        .feed(data) -> list[bytes]     # every whole payload completed by ``data``
        .frames, .bad_frames, .overruns, .garbage_bytes   # counters (never reset)
    FramingError(ValueError)

A frame on the link is a wire packet (device -> host) or a control payload
(host -> device). Zero never occurs inside COBS output, so the zero byte delimits
frames and a receiver re-synchronises at the next zero after any garbage: REPL text,
a traceback, a half frame from before the port was opened. The device also sends a
lone zero when its link starts, so whatever was printed before ends there.

The Deframer keeps at most ``max_payload + max_payload // 254 + 2`` bytes (allocated
once): a run of bytes without a zero longer than that is dropped up to the next zero
and counted as an overrun. Text glued to the front of a frame (no zero in between)
makes the frame undecodable as a whole; with ``validate`` (a callable returning True
for a payload it accepts, e.g. a CRC check) the Deframer then tries the frame's
suffixes and keeps the first one that decodes and validates, so a frame that follows
garbage is not lost. Empty frames (two zeros in a row) are ignored silently.
"""

from .compat import const

DELIM = const(0)
# Largest payload a frame may carry: wire packets and control payloads are <= 20 bytes;
# trace-injection sample frames (serial only) are larger. 254 keeps COBS at one code
# byte per frame.
MAX_PAYLOAD = const(254)


class FramingError(ValueError):
    """A frame whose COBS body is malformed."""


def cobs_encode(data):
    """COBS-encode ``data`` (no trailing delimiter)."""
    out = bytearray(len(data) + len(data) // 254 + 1)
    code_at = 0
    code = 1
    j = 1
    for b in data:
        if b == 0:
            out[code_at] = code
            code_at = j
            j += 1
            code = 1
        else:
            out[j] = b
            j += 1
            code += 1
            if code == 0xFF:
                out[code_at] = code
                code_at = j
                j += 1
                code = 1
    out[code_at] = code
    return bytes(out[:j])


def _decode_into(src, start, end, dst):
    """COBS-decode src[start:end] into dst; return the length, or -1 if malformed."""
    i = start
    n = 0
    cap = len(dst)
    while i < end:
        code = src[i]
        if code == 0:
            return -1
        i += 1
        stop = i + code - 1
        if stop > end:
            return -1
        while i < stop:
            b = src[i]
            if b == 0 or n >= cap:
                return -1
            dst[n] = b
            n += 1
            i += 1
        if code != 0xFF and i < end:
            if n >= cap:
                return -1
            dst[n] = 0
            n += 1
    return n


def cobs_decode(data):
    """COBS-decode one frame body (without its delimiter); raise FramingError if bad."""
    dst = bytearray(len(data))
    n = _decode_into(data, 0, len(data), dst)
    if n < 0:
        raise FramingError("malformed COBS frame")
    return bytes(dst[:n])


def encode(payload):
    """One frame for the link: COBS(payload) + b"\\x00"."""
    n = len(payload)
    if n == 0 or n > MAX_PAYLOAD:
        raise FramingError("payload must be 1..%d bytes, not %d" % (MAX_PAYLOAD, n))
    return cobs_encode(payload) + b"\x00"


class Deframer:
    """Incremental frame splitter with a bounded, preallocated buffer (see module doc)."""

    def __init__(self, max_payload=MAX_PAYLOAD, validate=None):
        self.max_payload = max_payload
        self.validate = validate
        self.cap = max_payload + max_payload // 254 + 2
        self.buf = bytearray(self.cap)
        self.out = bytearray(self.cap)
        self.n = 0
        self.skipping = False  # dropping an over-long run until the next zero
        self.frames = 0
        self.bad_frames = 0
        self.overruns = 0
        self.garbage_bytes = 0

    def feed(self, data):
        """Take received bytes; return the payloads of all frames they complete."""
        found = []
        buf = self.buf
        cap = self.cap
        for b in data:
            if b == 0:
                if self.skipping:
                    self.skipping = False
                elif self.n:
                    p = self._finish()
                    if p is not None:
                        found.append(p)
                self.n = 0
            elif self.skipping:
                self.garbage_bytes += 1
            elif self.n >= cap:
                self.overruns += 1
                self.garbage_bytes += self.n + 1
                self.n = 0
                self.skipping = True
            else:
                buf[self.n] = b
                self.n += 1
        return found

    def _finish(self):
        n = self.n
        m = _decode_into(self.buf, 0, n, self.out)
        if m > 0 and m <= self.max_payload:
            p = bytes(self.out[:m])
            if self.validate is None or self.validate(p):
                self.frames += 1
                return p
        if self.validate is not None:
            # Garbage glued to the front of a frame: find the frame as a suffix.
            for start in range(1, n):
                m = _decode_into(self.buf, start, n, self.out)
                if m > 0 and m <= self.max_payload:
                    p = bytes(self.out[:m])
                    if self.validate(p):
                        self.frames += 1
                        self.garbage_bytes += start
                        return p
        self.bad_frames += 1
        self.garbage_bytes += n
        return None
