"""Ring buffer of the most recent packets by sequence number (MicroPython/CPython).

API:
    Ring(size=config.RING_PACKETS, width=wire.MAX_PACKET)
    .put(seq, packet)          # store (overwrites the oldest when full)
    .get(seq) -> memoryview | None    # the packet with that u16 seq, if still held
    .count, .fill_pct()        # packets held, and as % of size

Slots live in bytearrays of CHUNK slots each (``CHUNK * width`` bytes) plus a length
byte and a u16 seq per slot, allocated once: storing a packet allocates nothing. Chunks
rather than one block: a MicroPython heap fragmented by imports may have no single free
run of ``size * width`` bytes (20 KB for 1024 slots) while having plenty in total.
Sequence numbers are u16 and wrap; a slot is found by ``seq % size`` and checked against
the stored seq, so an overwritten packet is reported as gone rather than returned wrong.
"""

from array import array

from . import config, wire

CHUNK_SHIFT = 6
CHUNK = 1 << CHUNK_SHIFT  # slots per bytearray


class Ring:
    def __init__(self, size=config.RING_PACKETS, width=wire.MAX_PACKET):
        if size < 1 or size > 65536:
            raise ValueError("ring size must be 1..65536")
        self.size = size
        self.width = width
        n = (size + CHUNK - 1) >> CHUNK_SHIFT
        self.chunks = [bytearray(CHUNK * width) for _ in range(n)]
        self.views = [memoryview(c) for c in self.chunks]
        self.lens = bytearray(size)  # 0 = empty slot
        self.seqs = array("H", bytes(2 * size))
        self.count = 0

    def put(self, seq, packet):
        n = len(packet)
        if n == 0 or n > self.width:
            raise ValueError("packet length %d not in 1..%d" % (n, self.width))
        seq &= 0xFFFF
        slot = seq % self.size
        at = (slot & (CHUNK - 1)) * self.width
        self.chunks[slot >> CHUNK_SHIFT][at:at + n] = packet
        if self.lens[slot] == 0:
            self.count += 1
        self.lens[slot] = n
        self.seqs[slot] = seq

    def get(self, seq):
        seq &= 0xFFFF
        slot = seq % self.size
        n = self.lens[slot]
        if n == 0 or self.seqs[slot] != seq:
            return None
        at = (slot & (CHUNK - 1)) * self.width
        return self.views[slot >> CHUNK_SHIFT][at:at + n]

    def fill_pct(self):
        return self.count * 100 // self.size
