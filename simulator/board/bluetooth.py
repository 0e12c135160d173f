"""Simulated ``bluetooth`` for the MicroPython unix port: the board's BLE, over a socket.

The unix port has no ``bluetooth`` module; this one, first on ``MICROPYPATH``, offers
the subset of ``bluetooth.BLE`` the firmware uses (``active``, ``config``, ``irq``,
``gap_advertise``, ``gap_disconnect``, ``gatts_register_services``, ``gatts_read``,
``gatts_write``, ``gatts_notify``, ``gatts_indicate``, ``gatts_set_buffer``) plus
``UUID`` and the ``FLAG_*`` constants, and forwards every call to
``simulator/ble_bridge.py`` (a Bumble peripheral) at ``SPASMWATCH_BLE_BRIDGE``
("127.0.0.1:PORT", loopback only), one JSON object per line.

As strict as the ESP32 (MicroPython's extmod/modbluetooth.c, extmod/nimble; the
contract test holds the codes and shapes to a copy of them, tests/fixtures/):

* IRQs run on another thread (the reader thread here, the NimBLE task on the ESP32)
  while the main loop runs, between any two of its bytecodes, not at a safe point.
* An exception escaping the handler is printed and the handler is disabled for good
  (``invoke_irq_handler_run_protected``): later events are not delivered.
* ``addr`` is a memoryview of a buffer that is reused after the handler returns (its
  bytes are overwritten here), so a handler that keeps it keeps garbage.
* A client write longer than the characteristic's buffer (20 bytes,
  MP_BLUETOOTH_DEFAULT_ATTR_LEN, unless ``gatts_set_buffer`` made it larger) is
  truncated to it.
* The bridge can fail a connection attempt (``_IRQ_CENTRAL_DISCONNECT`` for a handle
  never connected, advertising stopped) and withhold notification credits.

Notifications are flow-controlled like NimBLE's buffer pool: at most ``inflight`` (the
bridge's figure, default 10) may be on their way; one more raises ``OSError(ENOMEM)``
until the bridge reports them sent. When the bridge goes away every connection ends
(``_IRQ_CENTRAL_DISCONNECT``) and later calls raise ``OSError``; nothing crashes.
"""

import _thread
import binascii
import json
import os
import socket
import sys

import builtin_only

with builtin_only.path():
    import time as _rt  # the built-in module, not the simulator's time.py

FLAG_BROADCAST = 0x0001
FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010
FLAG_INDICATE = 0x0020
FLAG_AUTHENTICATED_SIGNED_WRITE = 0x0040
FLAG_AUX_WRITE = 0x0100
FLAG_READ_ENCRYPTED = 0x0200
FLAG_READ_AUTHENTICATED = 0x0400
FLAG_READ_AUTHORIZED = 0x0800
FLAG_WRITE_ENCRYPTED = 0x1000
FLAG_WRITE_AUTHENTICATED = 0x2000
FLAG_WRITE_AUTHORIZED = 0x4000

_IRQ_CENTRAL_CONNECT = 1
_IRQ_CENTRAL_DISCONNECT = 2
_IRQ_GATTS_WRITE = 3
_IRQ_GATTS_INDICATE_DONE = 20

_ENOMEM = 12
_ENOTCONN = 107
_REPLY_TIMEOUT_MS = 5000
_DEFAULT_ATTR_LEN = 20  # MP_BLUETOOTH_DEFAULT_ATTR_LEN


class UUID:
    """A 16-bit (int) or 128-bit (string) UUID, compared by value."""

    def __init__(self, value):
        if isinstance(value, UUID):
            value = str(value)
        if isinstance(value, int):
            if not 0 <= value <= 0xFFFF:
                raise ValueError("16-bit UUID out of range")
            text = f"{value:04x}"
        elif isinstance(value, (bytes, bytearray)):
            if len(value) == 2:
                text = f"{value[0] | value[1] << 8:04x}"
            elif len(value) == 16:
                h = binascii.hexlify(bytes(reversed(value))).decode()
                text = h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
            else:
                raise ValueError("UUID bytes must be 2 or 16 long")
        else:
            text = str(value).lower()
            if len(text.replace("-", "")) not in (4, 32):
                raise ValueError("invalid UUID " + str(value))
        self.text = text

    def __eq__(self, other):
        return isinstance(other, UUID) and other.text == self.text

    def __hash__(self):
        return hash(self.text)

    def __str__(self):
        return self.text

    def __repr__(self):
        return "UUID('" + self.text + "')"


class _Session:
    """The one socket to the bridge, shared by every BLE() object of this process."""

    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        if host not in ("127.0.0.1", "localhost"):
            raise OSError("SPASMWATCH_BLE_BRIDGE must be a loopback address: " + addr)
        self.sock = socket.socket()
        self.sock.connect(socket.getaddrinfo(host, int(port))[0][-1])
        self.lock = _thread.allocate_lock()
        self.buf = b""
        self.dead = False
        self.replies = {}
        self.next_id = 1
        _thread.start_new_thread(self._reader, ())

    def _reader(self):
        # The radio's task: receives the bridge's messages and runs the firmware's IRQ
        # handler right here, concurrently with the main thread (as NimBLE's task does).
        while True:
            try:
                chunk = self.sock.recv(4096)
            except OSError:
                chunk = b""
            with self.lock:
                if not chunk:
                    _bridge_gone()
                    return
                self.buf += chunk
                while True:
                    i = self.buf.find(b"\n")
                    if i < 0:
                        break
                    line = self.buf[:i]
                    self.buf = self.buf[i + 1:]
                    if line:
                        _dispatch(json.loads(line))

    def send(self, msg):
        if self.dead:
            raise OSError(_ENOTCONN)
        try:
            self.sock.sendall(json.dumps(msg).encode() + b"\n")
        except OSError:
            self.dead = True
            raise


_session = None
_CREDITS = _thread.allocate_lock()  # inflight is counted by both threads
_state = {  # type: dict
    "active": False, "irq": None, "values": {}, "conns": set(), "inflight": 0,
    "max_inflight": 10, "addr": b"\x00" * 6, "gap_name": "MPY", "mtu": 23,
    "buffers": {}, "addr_buf": bytearray(6), "irq_disabled": False,
}


def _hex(data):
    return binascii.hexlify(bytes(data)).decode()


def _bridge_gone():
    s = _session
    if s is not None and not s.dead:
        s.dead = True
    for conn in list(_state["conns"]):
        _state["conns"].discard(conn)
        _irq(_IRQ_CENTRAL_DISCONNECT, (conn, 0, b"\x00" * 6))
    _state["inflight"] = 0


def _irq(event, data):
    handler = _state["irq"]
    if handler is None:
        return
    try:
        handler(event, data)
    except Exception as exc:  # noqa: BLE001 - what MicroPython does with it
        print("Unhandled exception in IRQ callback handler")
        sys.print_exception(exc)
        _state["irq"] = None  # disabled for good, as on the board
        _state["irq_disabled"] = True


def _addr_irq(event, a):
    """CONNECT/DISCONNECT: (conn, addr_type, addr) with addr a memoryview that is only
    valid inside the handler: its buffer is scribbled over afterwards."""
    buf = _state["addr_buf"]
    buf[:] = binascii.unhexlify(a[2])
    _irq(event, (a[0], a[1], memoryview(buf)))
    for i in range(6):
        buf[i] = 0xEE


def _dispatch(msg):
    if "re" in msg:
        s = _session
        if s is not None:
            s.replies[msg["re"]] = msg
        return
    if "ack" in msg:
        with _CREDITS:
            _state["inflight"] = max(0, _state["inflight"] - msg["ack"])
        return
    ev = msg.get("ev")
    a = msg.get("a", [])
    if ev == _IRQ_CENTRAL_CONNECT:
        _state["conns"].add(a[0])
        _addr_irq(ev, a)
    elif ev == _IRQ_CENTRAL_DISCONNECT:
        _state["conns"].discard(a[0])
        _addr_irq(ev, a)
    elif ev == _IRQ_GATTS_WRITE:
        data = binascii.unhexlify(msg.get("d", ""))
        size, append = _state["buffers"].get(a[1], (_DEFAULT_ATTR_LEN, False))
        old = _state["values"].get(a[1], b"") if append else b""
        data = (old + data)[:size]
        _state["values"][a[1]] = data
        _irq(ev, (a[0], a[1]))
    else:
        _irq(ev, tuple(a))


def _request(op, **fields):
    """Send a request and wait (really, not on the simulated clock) for its reply."""
    s = _session
    assert s is not None
    rid = s.next_id
    s.next_id += 1
    fields["op"] = op
    fields["id"] = rid
    s.send(fields)
    t0 = _rt.ticks_ms()
    while rid not in s.replies:  # filled in by the reader thread
        if s.dead or _rt.ticks_diff(_rt.ticks_ms(), t0) > _REPLY_TIMEOUT_MS:
            raise OSError(_ENOTCONN)
        _rt.sleep_ms(1)
    reply = s.replies.pop(rid)
    if "error" in reply:
        raise ValueError(reply["error"])
    return reply


def _need_active():
    if not _state["active"] or _session is None:
        raise OSError(_ENOTCONN)
    return _session


class BLE:
    """``bluetooth.BLE()``: every instance drives the same simulated radio."""

    def active(self, flag=None):
        global _session
        if flag is None:
            return _state["active"]
        if flag and not _state["active"]:
            if _session is None or _session.dead:
                addr = os.getenv("SPASMWATCH_BLE_BRIDGE")
                if not addr:
                    raise OSError("no Bluetooth here: set SPASMWATCH_BLE_BRIDGE=127.0.0.1:PORT "
                                  "(simulator/ble_bridge.py)")
                _session = _Session(addr)
                hello = _request("hello")
                _state["addr"] = binascii.unhexlify(hello["addr"].replace(":", ""))
                _state["max_inflight"] = hello.get("inflight", 10)
            _state["active"] = True
        elif not flag and _state["active"]:
            _state["active"] = False
            if _session is not None and not _session.dead:
                _session.send({"op": "adv", "i": None})
        return _state["active"]

    def config(self, *names, **values):
        if names:
            if len(names) != 1:
                raise TypeError("config takes one name to read")
            name = names[0]
            if name == "mac":
                return (1, _state["addr"])
            if name in ("gap_name", "mtu"):
                return _state[name]
            raise ValueError("unknown config param")
        for key, value in values.items():
            if key == "gap_name":
                _state["gap_name"] = str(value)
                if _session is not None and not _session.dead:
                    _session.send({"op": "name", "v": str(value)})
            elif key == "mtu":
                _state["mtu"] = int(value)
            elif key not in ("rxbuf", "io", "bond", "le_secure", "mitm", "addr_mode"):
                raise ValueError("unknown config param")
        return None

    def irq(self, handler):
        _state["irq"] = handler

    def gap_advertise(self, interval_us, adv_data=None, resp_data=None, connectable=True):
        s = _need_active()
        msg = {"op": "adv", "i": interval_us, "c": bool(connectable)}
        if adv_data is not None:
            msg["a"] = _hex(adv_data)
        if resp_data is not None:
            msg["r"] = _hex(resp_data)
        s.send(msg)

    def gap_disconnect(self, conn_handle):
        s = _need_active()
        if conn_handle not in _state["conns"]:
            return False
        s.send({"op": "disc", "c": conn_handle})
        return True

    def gatts_register_services(self, services_definition):
        _need_active()
        services = []
        for svc_uuid, chars in services_definition:
            out = []
            for ch in chars:
                item = [str(UUID(ch[0])), int(ch[1])]
                if len(ch) > 2:
                    item.append([[str(UUID(d[0])), int(d[1])] for d in ch[2]])
                out.append(item)
            services.append([str(UUID(svc_uuid)), out])
        reply = _request("register", services=services)
        result = []
        for handles in reply["handles"]:
            for h in handles:
                _state["values"][h] = b""
            result.append(tuple(handles))
        return tuple(result)

    def gatts_read(self, value_handle):
        if value_handle not in _state["values"]:
            raise OSError(22)  # EINVAL, as for an unknown handle on the board
        return _state["values"][value_handle]

    def gatts_write(self, value_handle, data, send_update=False):
        s = _need_active()
        if value_handle not in _state["values"]:
            raise OSError(22)
        _state["values"][value_handle] = bytes(data)
        s.send({"op": "write", "h": value_handle, "d": _hex(data), "u": bool(send_update)})

    def gatts_set_buffer(self, value_handle, length, append=False):
        _state["buffers"][value_handle] = (int(length), bool(append))

    def gatts_notify(self, conn_handle, value_handle, data=None):
        s = _need_active()
        if conn_handle not in _state["conns"]:
            raise OSError(_ENOTCONN)
        with _CREDITS:
            if _state["inflight"] >= _state["max_inflight"]:
                raise OSError(_ENOMEM)  # credits come back from the reader thread
            _state["inflight"] += 1
        msg = {"op": "notify", "c": conn_handle, "h": value_handle}
        msg["d"] = None if data is None else _hex(data)
        s.send(msg)

    def gatts_indicate(self, conn_handle, value_handle, data=None):
        # Delivered as a notification; the simulated radio does not lose it.
        self.gatts_notify(conn_handle, value_handle, data)
        _irq(_IRQ_GATTS_INDICATE_DONE, (conn_handle, value_handle, 0))
