"""Simulated ``bluetooth`` for the MicroPython unix port: the board's BLE, over a socket.

The unix port has no ``bluetooth`` module; this one, first on ``MICROPYPATH``, offers
the subset of ``bluetooth.BLE`` the firmware uses (``active``, ``config``, ``irq``,
``gap_advertise``, ``gap_disconnect``, ``gatts_register_services``, ``gatts_read``,
``gatts_write``, ``gatts_notify``, ``gatts_indicate``, ``gatts_set_buffer``) plus
``UUID`` and the ``FLAG_*`` constants, and forwards every call to
``simulator/ble_bridge.py`` (a Bumble peripheral) at ``SPASMWATCH_BLE_BRIDGE``
("127.0.0.1:PORT", loopback only), one JSON object per line.

Like the board, IRQs arrive asynchronously: a reader thread receives the bridge's
events and hands them to the main thread with ``micropython.schedule``, so the
firmware's IRQ handler runs between bytecodes of the main loop, as on the ESP32.

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

import builtin_only
import micropython

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


class UUID:
    """A 16-bit (int) or 128-bit (string) UUID, compared by value."""

    def __init__(self, value):
        if isinstance(value, UUID):
            value = value.text
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
        self.inbox = []
        self.scheduled = False
        self.buf = b""
        self.dead = False
        self.replies = {}
        self.next_id = 1
        _thread.start_new_thread(self._reader, ())

    def _reader(self):
        # Runs in its own thread: only socket reads and hand-over, no firmware state.
        while True:
            try:
                chunk = self.sock.recv(4096)
            except OSError:
                chunk = b""
            with self.lock:
                self.inbox.append(chunk)
                must = not self.scheduled
                self.scheduled = True
            while must:
                try:
                    micropython.schedule(_pump, None)
                    must = False
                except RuntimeError:  # schedule queue full: the main thread is busy
                    _rt.sleep_ms(1)
            if not chunk:
                return

    def take(self):
        with self.lock:
            chunks = self.inbox
            self.inbox = []
            self.scheduled = False
        return chunks

    def send(self, msg):
        if self.dead:
            raise OSError(_ENOTCONN)
        try:
            self.sock.sendall(json.dumps(msg).encode() + b"\n")
        except OSError:
            self.dead = True
            raise


_session = None
_state = {
    "active": False, "irq": None, "values": {}, "conns": set(), "inflight": 0,
    "max_inflight": 10, "addr": b"\x00" * 6, "gap_name": "MPY", "mtu": 23,
    "buffers": {},
}


def _hex(data):
    return binascii.hexlify(bytes(data)).decode()


def _pump(_arg):
    """Main thread: parse what the reader thread received and run the IRQ handler."""
    s = _session
    if s is None:
        return
    for chunk in s.take():
        if not chunk:
            _bridge_gone()
            continue
        s.buf += chunk
        while True:
            i = s.buf.find(b"\n")
            if i < 0:
                break
            line = s.buf[:i]
            s.buf = s.buf[i + 1:]
            if line:
                _dispatch(json.loads(line))


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
    if handler is not None:
        handler(event, data)


def _dispatch(msg):
    if "re" in msg:
        _session.replies[msg["re"]] = msg
        return
    if "ack" in msg:
        _state["inflight"] = max(0, _state["inflight"] - msg["ack"])
        return
    ev = msg.get("ev")
    a = msg.get("a", [])
    if ev == _IRQ_CENTRAL_CONNECT:
        _state["conns"].add(a[0])
        _irq(ev, (a[0], a[1], binascii.unhexlify(a[2])))
    elif ev == _IRQ_CENTRAL_DISCONNECT:
        _state["conns"].discard(a[0])
        _irq(ev, (a[0], a[1], binascii.unhexlify(a[2])))
    elif ev == _IRQ_GATTS_WRITE:
        data = binascii.unhexlify(msg.get("d", ""))
        cap = _state["buffers"].get(a[1])
        if cap is not None:
            size, append = cap
            old = _state["values"].get(a[1], b"") if append else b""
            data = (old + data)[:size] if size else data
        _state["values"][a[1]] = data
        _irq(ev, (a[0], a[1]))
    else:
        _irq(ev, tuple(a))


def _request(op, **fields):
    """Send a request and wait (really, not on the simulated clock) for its reply."""
    s = _session
    rid = s.next_id
    s.next_id += 1
    fields["op"] = op
    fields["id"] = rid
    s.send(fields)
    t0 = _rt.ticks_ms()
    while rid not in s.replies:
        if s.dead or _rt.ticks_diff(_rt.ticks_ms(), t0) > _REPLY_TIMEOUT_MS:
            raise OSError(_ENOTCONN)
        _pump(None)
        if rid not in s.replies:
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
        if _state["inflight"] >= _state["max_inflight"]:
            _pump(None)  # credits may be waiting in the inbox
            if _state["inflight"] >= _state["max_inflight"]:
                raise OSError(_ENOMEM)
        msg = {"op": "notify", "c": conn_handle, "h": value_handle}
        msg["d"] = None if data is None else _hex(data)
        _state["inflight"] += 1
        s.send(msg)

    def gatts_indicate(self, conn_handle, value_handle, data=None):
        # Delivered as a notification; the simulated radio does not lose it.
        self.gatts_notify(conn_handle, value_handle, data)
        _irq(_IRQ_GATTS_INDICATE_DONE, (conn_handle, value_handle, 0))
