"""BLE link, device side: a GATT peripheral on MicroPython's ``bluetooth`` (NimBLE).

API (the device-link interface shared with firmware/serial_link.py):
    BleLink(ble=None, name=config.DEVICE_NAME, adv_interval_us=ADV_INTERVAL_US)
    name = "ble"
    .send(packet) -> bool      # one notification; False when no central or no buffers
    .poll() -> list            # control payloads written since the last call
    .connected() -> bool       # a central is connected and subscribed (see below)
    .service() -> None         # advertise again after a disconnection

GATT layout (one primary service, ``config.SERVICE_UUID``; docs/ble.md):
    EVENT_UUID    notify          event and summary packets, resends, snippets, replies
    STATUS_UUID   read + notify   status packets; a read returns the latest one
    CONTROL_UUID  write (+ without response)   control payloads (firmware/control.py)

A central is taken as listening once it has written to the control point (the host
link writes a PING right after subscribing): MicroPython does not report CCCD writes,
and notifications sent before the subscription would be dropped by the central's
stack. Until then ``send`` returns False and the packets wait in the app's ring.

IRQs (board facts, checked by tests/test_micropython_contract.py against MicroPython's
sources): on the ESP32 they run on the NimBLE task, interleaved with the main loop
between bytecodes, not at a safe point; an exception escaping the handler makes
MicroPython disable it for good; a failed connection attempt arrives as
``_IRQ_CENTRAL_DISCONNECT`` with a handle that was never connected (addr_type 0xFF),
after which NimBLE is no longer advertising; the ``addr`` memoryview is only valid
inside the handler. So the handler is guarded as a whole (errors counted), copies what
it keeps, hands control payloads to ``poll()`` through a fixed ring written only by the
IRQ (``rx_w``) and read only by the main loop (``rx_r``), and any disconnection while no
central is connected marks advertising as stopped so ``service()`` starts it again.
Client writes longer than the characteristic's buffer (20 bytes by default) would be
truncated: the control characteristic's buffer is config.BLE_RX_BUFFER bytes.

Every wire packet is <= 20 bytes, so one packet is one notification even at the
default ATT MTU of 23; a larger MTU changes nothing here. A notification that NimBLE
cannot queue (out of buffers: the central is slower than the detector) makes ``send``
return False; the app's ring buffer keeps the packet and the host asks for a RESEND.

``bluetooth`` is imported when a link is made, not at import time, so this module
imports on ports without Bluetooth (the unix port; the simulator puts its own
``bluetooth.py`` first on the path). ``ble`` may be any object with the
``bluetooth.BLE`` methods used here.
"""

from . import config, wire
from .compat import const

EVENT_UUID = "6e5f0002-8a1c-4b5e-9f3a-5057a5e0a7c1"
STATUS_UUID = "6e5f0003-8a1c-4b5e-9f3a-5057a5e0a7c1"
CONTROL_UUID = "6e5f0004-8a1c-4b5e-9f3a-5057a5e0a7c1"

ADV_INTERVAL_US = const(250000)  # fast enough to reconnect within a second or so
MAX_RX = const(16)  # control payloads kept until poll(); more are dropped (counted)

# bluetooth IRQ events and characteristic flags (values fixed by MicroPython's API)
_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)
_FLAG_READ = const(0x0002)
_FLAG_WRITE_NO_RESPONSE = const(0x0004)
_FLAG_WRITE = const(0x0008)
_FLAG_NOTIFY = const(0x0010)

_ADV_FLAGS = const(0x01)
_ADV_UUID128_COMPLETE = const(0x07)
_ADV_NAME_COMPLETE = const(0x09)


def uuid_le_bytes(text):
    """'6e5f0001-...' -> the 16 bytes, least significant first (advertising order)."""
    h = text.replace("-", "")
    return bytes(int(h[i:i + 2], 16) for i in range(30, -2, -2))


def _ad(ad_type, value):
    return bytes((len(value) + 1, ad_type)) + value


def adv_payload():
    """Advertising data: flags (LE general discoverable, no BR/EDR) + the service UUID."""
    return _ad(_ADV_FLAGS, b"\x06") + _ad(_ADV_UUID128_COMPLETE, uuid_le_bytes(config.SERVICE_UUID))


def resp_payload(name):
    """Scan response: the complete local name (it does not fit beside a 128-bit UUID)."""
    return _ad(_ADV_NAME_COMPLETE, name.encode()[:29])


class BleLink:
    name = "ble"

    def __init__(self, ble=None, name=config.DEVICE_NAME, adv_interval_us=ADV_INTERVAL_US):
        import bluetooth

        if ble is None:
            ble = bluetooth.BLE()
        self.ble = ble
        self.device_name = name
        self.adv_interval_us = adv_interval_us
        self.conn = -1  # connection handle of the central, -1 when none
        self.ready = False  # the central has written to the control point
        self.mtu = 23
        self.rx = [b""] * MAX_RX  # slots; IRQ writes rx_w, poll() reads rx_r
        self.rx_w = 0
        self.rx_r = 0
        self.irq_errors = 0
        self.failed_connects = 0
        self.sent = 0
        self.busy = 0  # notifications refused (no buffers): resent on request
        self.rx_dropped = 0
        self.connects = 0
        self.advertising = False
        ble.active(True)
        ble.config(gap_name=name)
        ble.irq(self._irq)
        service = (
            bluetooth.UUID(config.SERVICE_UUID),
            (
                (bluetooth.UUID(EVENT_UUID), _FLAG_NOTIFY),
                (bluetooth.UUID(STATUS_UUID), _FLAG_READ | _FLAG_NOTIFY),
                (bluetooth.UUID(CONTROL_UUID), _FLAG_WRITE | _FLAG_WRITE_NO_RESPONSE),
            ),
        )
        ((self.h_event, self.h_status, self.h_control),) = ble.gatts_register_services(
            (service,)
        )
        ble.gatts_set_buffer(self.h_control, config.BLE_RX_BUFFER)
        self._adv = adv_payload()
        self._resp = resp_payload(name)
        self._advertise()

    def _advertise(self):
        try:
            self.ble.gap_advertise(self.adv_interval_us, adv_data=self._adv,
                                   resp_data=self._resp)
            self.advertising = True
        except OSError:
            self.advertising = False  # tried again from service()

    def _irq(self, event, data):
        # On the board this runs on the NimBLE task between any two bytecodes of the
        # main loop. Guarded as a whole: one exception would disable it for good.
        try:
            self._on_irq(event, data)
        except Exception:  # noqa: BLE001 - keep the handler alive
            self.irq_errors += 1

    def _on_irq(self, event, data):
        if event == _IRQ_CENTRAL_CONNECT:
            conn = data[0]
            if self.conn >= 0:
                self.ble.gap_disconnect(conn)  # one host at a time
                return
            self.conn = conn
            self.ready = False
            self.mtu = 23
            self.connects += 1
            self.advertising = False  # NimBLE stops advertising on a connection
        elif event == _IRQ_CENTRAL_DISCONNECT:
            if self.conn >= 0 and data[0] == self.conn:
                self.conn = -1
                self.ready = False
                self.advertising = False
            elif self.conn < 0:
                # A connection attempt that failed (NimBLE: a handle never connected,
                # addr_type 0xFF): advertising has stopped; service() restarts it.
                self.failed_connects += 1
                self.advertising = False
        elif event == _IRQ_GATTS_WRITE:
            conn, handle = data[0], data[1]
            if handle == self.h_control and conn == self.conn:
                self.ready = True
                w = self.rx_w
                if w - self.rx_r < MAX_RX:
                    self.rx[w % MAX_RX] = bytes(self.ble.gatts_read(handle))
                    self.rx_w = w + 1  # published after the slot is filled
                else:
                    self.rx_dropped += 1
        elif event == _IRQ_MTU_EXCHANGED:
            if data[0] == self.conn:
                self.mtu = data[1]

    def send(self, packet):
        if self.conn < 0 or not self.ready:
            return False
        if wire.peek_kind(packet) == wire.KIND_STATUS:
            handle = self.h_status
            self.ble.gatts_write(handle, packet)  # what a read returns
        else:
            handle = self.h_event
        try:
            self.ble.gatts_notify(self.conn, handle, packet)
        except OSError:
            self.busy += 1
            return False
        self.sent += 1
        return True

    def poll(self):
        # Only the main loop moves rx_r; the IRQ only moves rx_w (after filling the
        # slot), so an IRQ between any two bytecodes here loses nothing.
        found = []
        r = self.rx_r
        while r != self.rx_w:
            found.append(self.rx[r % MAX_RX])
            r += 1
            self.rx_r = r
        return found

    def connected(self):
        return self.conn >= 0 and self.ready

    def service(self):
        if self.conn < 0 and not self.advertising:
            self._advertise()
