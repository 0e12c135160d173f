"""USB serial link, device side: wire packets out, control payloads in, COBS framed.

API (the device-link interface shared with firmware/ble_link.py):
    SerialLink(rx=sys.stdin.buffer, tx=sys.stdout.buffer)
    name = "serial"
    .send(packet) -> bool      # one frame; False when the port cannot take it now
    .poll() -> list            # control payloads received since the last call
    .connected() -> bool       # False after a write failed, until one succeeds
    .service() -> None         # nothing to do for serial (kept for the interface)
    .feed(data)                # bytes read before the link existed (main.py's boot
                               # window): their payloads come out of the next poll()

Frames are firmware/framing.py's: COBS(payload) + 0x00. On the board ``sys.stdin`` /
``sys.stdout`` are the USB CDC serial port; in the simulator they are a pseudo-
terminal.

On the ESP32 the USB serial port is always writable: a write to a port that is open
but not read blocks until MICROPY_HW_USB_CDC_TX_TIMEOUT (500 ms), then the data is
lost. One such stall per packet would stop the detector (the FIFO holds 3.4 s), so a
write that took config.SERIAL_STALL_MS or more makes the link refuse packets for
config.SERIAL_BACKOFF_MS (they wait in the app's ring; the host backfills with RESEND
when it reads again). Reads never block: ``select.poll`` says whether a byte is waiting and one
byte is read at a time (MicroPython's stream ``readinto`` waits for the whole buffer),
at most ``max_rx`` bytes per call. Writes check POLLOUT first, so a port nobody reads
(no host attached) drops the frame instead of stalling the detector; the packet stays
in the app's ring buffer for RESEND. The app disables Ctrl-C on stdin
(``micropython.kbd_intr(-1)``) because a frame may contain 0x03.
"""

import select
import sys

from . import config, framing, hal


class SerialLink:
    name = "serial"

    def __init__(self, rx=None, tx=None, max_rx=512):
        self.rx = rx if rx is not None else sys.stdin.buffer
        self.tx = tx if tx is not None else sys.stdout.buffer
        self.max_rx = max_rx
        self.rxp = select.poll()
        self.rxp.register(self.rx, select.POLLIN)
        self.txp = select.poll()
        self.txp.register(self.tx, select.POLLOUT)
        self.deframer = framing.Deframer()
        self.one = bytearray(1)
        self.ok = True
        self.sent = 0
        self.dropped = 0
        self.started = False
        self.early = []
        self.stalls = 0  # writes that blocked (port open, nobody reading)
        self.quiet_until = -1  # hal.ticks_ms() until which sends are refused (-1: none)

    def _writable(self):
        for _obj, ev in self.txp.ipoll(0):
            return bool(ev & select.POLLOUT)
        return False

    def send(self, packet):
        if self.quiet_until >= 0:
            if hal.ticks_diff(self.quiet_until, hal.ticks_ms()) > 0:
                self.dropped += 1
                return False
            self.quiet_until = -1
        t0 = hal.ticks_ms()
        try:
            if not self.started:
                # A lone delimiter ends whatever was printed before (boot text).
                self.tx.write(b"\x00")
                self.started = True
            if not self._writable():
                self.dropped += 1
                return False
            self.tx.write(framing.encode(packet))
        except OSError:
            self.ok = False
            self.dropped += 1
            return False
        if hal.ticks_diff(hal.ticks_ms(), t0) >= config.SERIAL_STALL_MS:
            # The port is open but nobody reads it: stop stalling the loop for a while.
            self.stalls += 1
            self.quiet_until = hal.ticks_add(hal.ticks_ms(), config.SERIAL_BACKOFF_MS)
            self.dropped += 1
            return False
        self.ok = True
        self.sent += 1
        return True

    def feed(self, data):
        for p in self.deframer.feed(data):
            self.early.append(p)

    def poll(self):
        found = self.early
        self.early = []
        one = self.one
        for _ in range(self.max_rx):
            ready = False
            for _obj, ev in self.rxp.ipoll(0):
                ready = bool(ev & select.POLLIN)
            if not ready:
                break
            try:
                n = self.rx.readinto(one)
            except OSError:
                break
            if not n:
                break
            for p in self.deframer.feed(one):
                found.append(p)
        return found

    def connected(self):
        return self.ok

    def service(self):
        return None
