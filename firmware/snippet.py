"""The last ~30 s of raw samples, for GET_SNIPPET (MicroPython/CPython).

API:
    Snippet(seconds=config.SNIPPET_S, rate_hz=config.RATE_HZ)
    .add(buf, n, t_end_ms)     # n samples (x,y,z int16 interleaved); the last at t_end_ms
    .count                     # samples held (<= capacity)
    .start() -> int / .active  # snapshot what is held now and begin sending it
    .next_record() -> (index, record) | None   # wire KIND_SNIPPET records, oldest first

Storage is one preallocated bytearray of ``seconds * rate_hz * 6`` bytes (9 kB at
30 s, 50 Hz), little-endian int16 per axis, written as a ring; adding samples
allocates nothing. A request snapshots the range (oldest index and count) and the
sample clock; while it is being sent, new samples keep arriving and may overwrite the
oldest ones not yet sent: sending starts from the oldest sample still valid, so a
snippet is at most a few samples shorter, never garbled.
"""

from . import config, wire


class Snippet:
    def __init__(self, seconds=config.SNIPPET_S, rate_hz=config.RATE_HZ):
        self.rate_hz = rate_hz
        self.cap = seconds * rate_hz
        self.data = bytearray(self.cap * 6)
        self.head = 0  # total samples ever added
        self.t_end_ms = 0  # time of the newest sample
        self.count = 0
        # snapshot being sent
        self.active = False
        self.next_abs = 0
        self.base_abs = 0
        self.stop_abs = 0
        self.t_stop_ms = 0
        self.first = True

    def add(self, buf, n, t_end_ms):
        data = self.data
        cap = self.cap
        pos = self.head % cap
        j = 0
        for _ in range(n):
            for _k in range(3):
                v = buf[j] & 0xFFFF
                data[6 * pos + 2 * _k] = v & 0xFF
                data[6 * pos + 2 * _k + 1] = v >> 8
                j += 1
            pos += 1
            if pos == cap:
                pos = 0
        self.head += n
        self.count = self.head if self.head < cap else cap
        self.t_end_ms = t_end_ms

    def start(self):
        """Begin sending the samples held now; returns how many that is."""
        self.next_abs = self.head - self.count
        self.base_abs = self.next_abs
        self.stop_abs = self.head
        self.t_stop_ms = self.t_end_ms
        self.first = True
        self.active = self.count > 0
        return self.count

    def next_record(self):
        """(index in the snapshot, KIND_SNIPPET record), or None when it is done."""
        if not self.active:
            return None
        oldest = self.head - self.cap
        if self.next_abs < oldest:
            self.next_abs = oldest  # overwritten meanwhile: skip ahead
        i = self.next_abs
        if i >= self.stop_abs:
            self.active = False
            return None
        at = 6 * (i % self.cap)
        d = self.data
        x = d[at] | d[at + 1] << 8
        y = d[at + 2] | d[at + 3] << 8
        z = d[at + 4] | d[at + 5] << 8
        t = self.t_stop_ms - (self.stop_abs - 1 - i) * 1000 // self.rate_hz
        flags = 0
        if self.first:
            flags |= wire.SNIP_FIRST
            self.first = False
        self.next_abs = i + 1
        if self.next_abs >= self.stop_abs:
            flags |= wire.SNIP_LAST
            self.active = False
        return i - self.base_abs, (
            wire.KIND_SNIPPET, t,
            x - 65536 if x & 0x8000 else x,
            y - 65536 if y & 0x8000 else y,
            z - 65536 if z & 0x8000 else z,
            flags,
        )
