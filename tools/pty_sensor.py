"""A sensor on a pseudo-terminal, for ``spasmwatch run --serial`` with no hardware.

    python tools/pty_sensor.py SCENARIO [--speed 10] [--seconds 60] [--link PATH]

Prints the pty's path on the first line of stdout (and makes ``--link PATH`` a symlink
to it), then plays the scenario through the firmware's detector in this process
(``host/links/inprocess_board.py``: no MicroPython needed, so it runs on a Raspberry
Pi) and writes its wire packets as COBS frames (``firmware/framing.py``), answering
PING, SET_TIME, RESEND and GET_SNIPPET as the firmware does. What the host has not read
is dropped when the pty's buffer is full, as a USB CDC port drops it.

Used by ``tools/pi_smoke.sh`` (``run --serial`` in an arm64 Debian under qemu-user).
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import time
import tty
from collections import deque

from spasmwatch.firmware import framing
from spasmwatch.host.links.inprocess_board import InProcessBoard


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", help="scenario name (spasmwatch simulate --help)")
    ap.add_argument("--speed", type=float, default=1.0, help="times real time (1)")
    ap.add_argument("--seconds", type=float, default=3600.0, help="stop after (3600)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--link", help="also reachable as this symlink")
    ap.add_argument("--wait-for-host", action="store_true",
                    help="switch the sensor on when the host first sends a command")
    args = ap.parse_args(argv)
    if not args.speed > 0:
        ap.error("--speed must be above 0")
    board = InProcessBoard(args.scenario, seed=args.seed, speed=args.speed)
    if not args.wait_for_host:
        board.start()
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    path = os.ttyname(slave)
    if args.link:
        if os.path.islink(args.link):
            os.unlink(args.link)
        os.symlink(path, args.link)
    print(path, flush=True)
    deframer = framing.Deframer()
    out: deque[bytes] = deque()
    dropped = 0
    end = time.monotonic() + args.seconds
    try:
        while time.monotonic() < end:
            on = board.running()
            wait = 0.2 if not on else 0.0 if out else min(board.due_in_s(), 0.2)
            readable, _, _ = select.select([master], [], [], wait)
            if readable:
                try:
                    data = os.read(master, 4096)
                except BlockingIOError:
                    data = b""
                for payload in deframer.feed(data):
                    if not board.running():
                        board.start()
                    out.extend(board.handle(payload))
            if board.running() and board.due_in_s() <= 0:
                out.append(board.take())
            while out:
                try:
                    os.write(master, framing.encode(out.popleft()))
                except BlockingIOError:  # nobody reads: gone, as on a real port
                    dropped += 1
    except KeyboardInterrupt:
        pass
    finally:
        if args.link and os.path.islink(args.link):
            os.unlink(args.link)
        os.close(master)
        os.close(slave)
    print(f"sent up to seq {board.seq}, {dropped} frames dropped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
