"""Board entry point: copied to /main.py on the board (and run by the simulator).

Ctrl-C is disarmed before anything else (``micropython.kbd_intr(-1)``): the host's
frames contain 0x03 (a SET_TIME is ``06 03 ...`` once framed), and on the ESP32-S3's
USB CDC a 0x03 while Ctrl-C is armed raises KeyboardInterrupt, so a board reset with
the daemon attached would stop at the REPL instead of monitoring.

The REPL is reached only by an explicit break-in sequence (``BREAK_IN``, which
``spasmwatch flash`` sends after resetting the board): for ``BOOT_BREAK_MS`` after a
reset this file watches stdin for it; on a match Ctrl-C is re-armed and main.py just
ends (no ``sys.exit()``: on the ESP32 a SystemExit from main.py is a soft reset, which
would boot main.py again), which leaves the board at the REPL. Other bytes that arrive
in the window (a daemon's SET_TIME or PING) are kept and handed to the serial link.

Importing it starts the monitor and never returns, so the toolchain's import test
skips it (it is still compiled by mpy-cross and type-checked).
"""

import micropython

micropython.kbd_intr(-1)  # first statement: 0x03 in a frame must not stop the board

import select  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

BOOT_BREAK_MS = 2000  # the break-in sequence is honoured this long after reset
# Not COBS-framed data (no 0x00), never produced by the host's framing: COBS frames
# end in 0x00 and this has none, and ASCII text this long is never a control payload.
BREAK_IN = b"\x03spasmwatch-repl\r"
BREAK_IN_ACK = "spasmwatch: break-in, monitor not started"


def wait_for_break_in(window_ms=BOOT_BREAK_MS, stream=None, keep=None):
    """True when BREAK_IN arrives on ``stream`` within ``window_ms``.

    Other bytes read meanwhile are appended to ``keep`` (a bytearray, bounded): the
    serial link takes them over, so a command sent during the window is not lost.
    Sleeps (rather than blocking polls) pace the loop, so the virtual board's clock
    moves through the window as the board's does.
    """
    stream = stream if stream is not None else sys.stdin.buffer
    p = select.poll()
    p.register(stream, select.POLLIN)
    one = bytearray(1)
    matched = 0
    start = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), start) < window_ms:
        if not p.poll(0):
            time.sleep_ms(10)
            continue
        if not stream.readinto(one):
            time.sleep_ms(10)
            continue
        c = one[0]
        if c == BREAK_IN[matched]:
            matched += 1
            if matched == len(BREAK_IN):
                return True
        else:
            restart = c == BREAK_IN[0]
            if keep is not None and len(keep) < 512:
                keep.extend(BREAK_IN[:matched])
                if not restart:
                    keep.append(c)
            matched = 1 if restart else 0
    return False


early = bytearray()
if wait_for_break_in(keep=early):
    micropython.kbd_intr(3)
    print(BREAK_IN_ACK)
else:
    from firmware import app

    app.run(early=early)
