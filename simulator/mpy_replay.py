"""Run the firmware detector over a file of raw counts, under MicroPython (or CPython).

    micropython simulator/mpy_replay.py COUNTS.bin RATE_HZ RANGE_G [BLOCK]

COUNTS.bin holds little-endian int16 x, y, z per sample (the sensor stream the simulator
makes from a trace). Prints one hex-encoded wire packet per line, the same bytes the
board would send. Used by the tests to prove MicroPython and CPython agree; written in
the common subset, with ``firmware`` importable from MICROPYPATH / sys.path.
"""

import sys
from array import array

from firmware import config, wire
from firmware.detector import Detector


def main(argv):
    path = argv[1]
    cfg = config.DetectorConfig(rate_hz=int(argv[2]), range_g=int(argv[3]))
    block = int(argv[4]) if len(argv) > 4 else config.FIFO_BATCH
    det = Detector(cfg)
    seq = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(6 * block)
            if not chunk:
                break
            n = len(chunk) // 6
            # The detector reads an array('h') (little-endian, as on the board).
            buf = array("h", chunk[: 6 * n])
            det.process(buf, n)
            for rec in det.pop():
                sys.stdout.write("%s\n" % "".join("%02x" % b for b in wire.encode(seq, rec)))
                seq = (seq + 1) & 0xFFFF


main(sys.argv)
