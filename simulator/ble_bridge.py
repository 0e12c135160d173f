"""The simulated sensor's radio: a Bumble peripheral driven by the firmware's BLE calls.

The firmware runs under MicroPython (unix port), where ``simulator/board/bluetooth.py``
stands in for the missing ``bluetooth`` module and forwards every call over a loopback
socket to this bridge. The bridge turns them into a real Bluetooth LE peripheral: a
Bumble host on a virtual controller, with the GATT database, advertising,
notifications, writes and connect/disconnect events the firmware asked for. Centrals
reach it through a second virtual controller on the same virtual radio (``RadioLink``):

* in-process: ``BumbleCentral.on_link(bridge.link)`` (tests), or
* over TCP: every connection to ``hci_port`` gets a fresh virtual controller, so a
  Bumble host in another process (``spasmwatch run --ble NAME --ble-backend
  bumble:<bridge.transport_spec>``) acts as the laptop's Bluetooth adapter.

The virtual radio has no supervision timeout, so the bridge ends links itself when a
side dies (firmware socket closed, central's HCI socket closed) and can simulate radio
loss on demand (``drop_link``, ``set_in_range``): both sides then see a disconnection
with reason "connection timeout", as they would when the baby's sack leaves range.

Firmware socket protocol (JSON lines, data as hex): requests ``{"op": ...}``, some with
an ``"id"`` answered by ``{"re": id, ...}``; events ``{"ev": IRQ, ...}`` use
MicroPython's IRQ numbers; ``{"ack": n}`` returns notification credits.

Run alone: ``python -m spasmwatch.simulator.ble_bridge`` prints the two ports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bumble import core, hci
from bumble.controller import Controller
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Descriptor, Service
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink, StreamPacketSource

log = logging.getLogger(__name__)

PERIPHERAL_ADDRESS = "F1:5A:57:00:00:01"  # random static: top two bits set
CONNECTION_TIMEOUT = hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR  # 0x08

# MicroPython ``bluetooth`` IRQ numbers (docs.micropython.org, library/bluetooth)
IRQ_CENTRAL_CONNECT = 1
IRQ_CENTRAL_DISCONNECT = 2
IRQ_GATTS_WRITE = 3
IRQ_MTU_EXCHANGED = 21

# MicroPython characteristic flags: the low byte is the GATT properties byte.
FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008


class RadioLink(LocalLink):
    """A ``LocalLink`` with a range switch for one controller (the sensor's).

    Out of range, nothing to or from that controller gets through: no advertising PDUs,
    no data, no new connections. Faking at the lowest level: the hosts on either side
    run unchanged.
    """

    def __init__(self) -> None:
        super().__init__()
        self.isolated: set[Controller] = set()

    def add_controller(self, controller: Controller) -> None:
        super().add_controller(controller)
        # Bumble's virtual controller answers a scan with the advertising data again
        # instead of the advertiser's scan response data; a real one sends the scan
        # response (where a sensor puts its name, next to a 128-bit UUID that fills
        # the advertising packet). Patch the reports on their way to the host.
        send = controller.send_hci_packet

        def send_hci_packet(packet: hci.HCI_Packet) -> None:
            send(self._fix_scan_responses(packet))

        controller.send_hci_packet = send_hci_packet  # type: ignore[method-assign]
        # Its LE Create Connection Cancel does nothing either, so a host whose connect
        # times out waits forever; the spec ends the attempt with a connection complete
        # event carrying "unknown connection identifier".
        def cancel(_command: object) -> hci.HCI_StatusReturnParameters:
            return self._cancel_connect(controller)

        controller.on_hci_le_create_connection_cancel_command = cancel  # type: ignore[method-assign,assignment]

    @staticmethod
    def _cancel_connect(controller: Controller) -> hci.HCI_StatusReturnParameters:
        pending = controller.pending_le_connection
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        controller.pending_le_connection = None
        event = hci.HCI_LE_Connection_Complete_Event(
            status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
            connection_handle=0, role=hci.Role.CENTRAL,
            peer_address_type=pending.peer_address.address_type,
            peer_address=pending.peer_address, connection_interval=0,
            peripheral_latency=0, supervision_timeout=0, central_clock_accuracy=0,
        )
        # After the command's own completion event, as a real controller orders them.
        asyncio.get_running_loop().call_soon(controller.send_hci_packet, event)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)

    def scan_response_data(self, address: hci.Address) -> bytes:
        """The scan response data the controller advertising as ``address`` would send."""
        ctrl = self.find_le_controller(address)
        if ctrl is None:
            return b""
        for adv_set in ctrl.advertising_sets.values():
            if adv_set.enabled and adv_set.address == address:
                return bytes(adv_set.scan_response_data)
        legacy = ctrl.le_legacy_advertiser
        return bytes(legacy.scan_response_data) if legacy.enabled else b""

    def _fix_scan_responses(self, packet: hci.HCI_Packet) -> hci.HCI_Packet:
        if isinstance(packet, hci.HCI_LE_Extended_Advertising_Report_Event):
            flag = hci.HCI_LE_Extended_Advertising_Report_Event.EventType.SCAN_RESPONSE
            if not any(r.event_type & flag for r in packet.reports):
                return packet
            reports = [
                dataclasses.replace(r, data=self.scan_response_data(r.address))
                if r.event_type & flag else r
                for r in packet.reports
            ]
            return hci.HCI_LE_Extended_Advertising_Report_Event(reports)
        if isinstance(packet, hci.HCI_LE_Advertising_Report_Event):
            rsp = hci.HCI_LE_Advertising_Report_Event.EventType.SCAN_RSP
            if not any(r.event_type == rsp for r in packet.reports):
                return packet
            legacy = [
                dataclasses.replace(r, data=self.scan_response_data(r.address))
                if r.event_type == rsp else r
                for r in packet.reports
            ]
            return hci.HCI_LE_Advertising_Report_Event(legacy)
        return packet

    def _blocked(self, a: Controller | None, b: Controller | None) -> bool:
        return a in self.isolated or b in self.isolated

    def send_acl_data(self, sender_controller, destination_address, transport, data):  # type: ignore[no-untyped-def]
        dest = self.find_le_controller(destination_address)
        if self._blocked(sender_controller, dest):
            return
        super().send_acl_data(sender_controller, destination_address, transport, data)

    def send_advertising_pdu(self, sender_controller, packet):  # type: ignore[no-untyped-def]
        if sender_controller in self.isolated:
            return
        loop = asyncio.get_running_loop()
        for c in self.controllers:
            if c is not sender_controller and c not in self.isolated:
                loop.call_soon(c.on_ll_advertising_pdu, packet)

    def send_ll_control_pdu(self, sender_address, receiver_address, packet):  # type: ignore[no-untyped-def]
        a = self.find_le_controller(sender_address)
        b = self.find_le_controller(receiver_address)
        if self._blocked(a, b):
            return
        super().send_ll_control_pdu(sender_address, receiver_address, packet)

    def drop_connections(self, controller: Controller, reason: int = CONNECTION_TIMEOUT) -> int:
        """End every LE connection of ``controller`` on both sides, as a lost radio does.

        Each side's controller reports a disconnection (``reason``) to its own host, the
        way a supervision timeout would; returns how many links were dropped.
        """
        dropped = 0
        for conn in list(controller.le_connections.values()):
            peer = self.find_le_controller(conn.peer_address)
            if peer is not None and peer is not controller:
                peer_conn = peer.le_connections.get(conn.self_address)
                if peer_conn is not None:
                    peer.on_le_disconnected(peer_conn, reason)
            if conn.peer_address in controller.le_connections:
                controller.on_le_disconnected(conn, reason)
            dropped += 1
        return dropped


def _uuid(text: str) -> core.UUID:
    return core.UUID(text)


@dataclass
class _Registered:
    characteristic: Characteristic[bytes]
    value: bytearray = field(default_factory=bytearray)


class BridgePeripheral:
    """A Bumble peripheral exposing MicroPython's ``bluetooth.BLE`` operations.

    ``on_event(irq, args, data)`` receives what the firmware's IRQ handler should see:
    ``(IRQ_CENTRAL_CONNECT, (conn, addr_type, addr_hex))``, ``(IRQ_GATTS_WRITE,
    (conn, value_handle))`` with the written bytes, and so on.
    """

    def __init__(
        self, link: RadioLink, address: str = PERIPHERAL_ADDRESS,
        on_event: Callable[[int, tuple[Any, ...], bytes | None], None] | None = None,
    ) -> None:
        self.link = link
        self.controller = Controller("sensor-ctrl", link=link)
        host = Host(self.controller, AsyncPipeSink(self.controller))
        self.device = Device(name="spasmwatch", address=hci.Address(address), host=host)
        self.device.on(Device.EVENT_CONNECTION, self._on_connection)
        self.on_event = on_event or (lambda irq, args, data: None)
        self.handles: dict[int, _Registered] = {}
        self.powered = False
        self.notifications = 0
        self.writes = 0
        self._adv: tuple[int, bytes, bytes, bool] | None = None

    @property
    def address(self) -> str:
        return str(self.device.random_address.to_string(with_type_qualifier=False))

    async def power_on(self) -> None:
        if not self.powered:
            await self.device.power_on()
            self.powered = True

    # -- GATT database --

    def register_services(self, services: list[Any]) -> list[list[int]]:
        """MicroPython's ``gatts_register_services`` on JSON-friendly input.

        ``services`` is ``[[service_uuid, [[chr_uuid, flags, [[desc_uuid, flags], ...]],
        ...]], ...]``; returns the value handles per service in MicroPython's order
        (each characteristic, then its own descriptors; automatic CCCDs not listed).
        """
        result: list[list[int]] = []
        for svc_uuid, chars in services:
            characteristics: list[Characteristic[bytes]] = []
            layout: list[tuple[Characteristic[bytes], list[Descriptor]]] = []
            for item in chars:
                ch_uuid, flags = item[0], int(item[1])
                descriptors = [
                    Descriptor(_uuid(d[0]), self._permissions(int(d[1])), b"")
                    for d in (item[2] if len(item) > 2 else [])
                ]
                ch: Characteristic[bytes] = Characteristic(
                    _uuid(ch_uuid), Characteristic.Properties(flags & 0xFF),
                    self._permissions(flags), None, descriptors,
                )
                ch.value = CharacteristicValue(
                    read=lambda conn, ch=ch: bytes(self.handles[ch.handle].value),
                    write=lambda conn, value, ch=ch: self._on_write(conn, ch, value),
                )
                characteristics.append(ch)
                layout.append((ch, descriptors))
            self.device.add_service(Service(_uuid(svc_uuid), characteristics))
            handles: list[int] = []
            for ch, descriptors in layout:
                self.handles[ch.handle] = _Registered(ch)
                handles.append(ch.handle)
                handles.extend(d.handle for d in descriptors)
            result.append(handles)
        return result

    @staticmethod
    def _permissions(flags: int) -> Characteristic.Permissions:
        perms = Characteristic.Permissions(0)
        if flags & FLAG_READ:
            perms |= Characteristic.Permissions.READABLE
        if flags & (FLAG_WRITE | FLAG_WRITE_NO_RESPONSE):
            perms |= Characteristic.Permissions.WRITEABLE
        return perms

    def _registered(self, handle: int) -> _Registered:
        reg = self.handles.get(handle)
        if reg is None:
            raise ValueError(f"no characteristic value with handle {handle}")
        return reg

    def gatts_write(self, handle: int, data: bytes) -> None:
        self._registered(handle).value[:] = data

    def gatts_read(self, handle: int) -> bytes:
        return bytes(self._registered(handle).value)

    def _on_write(self, conn: Connection, ch: Characteristic[bytes], value: bytes) -> None:
        self.handles[ch.handle].value[:] = value
        self.writes += 1
        self.on_event(IRQ_GATTS_WRITE, (conn.handle, ch.handle), bytes(value))

    async def notify(self, conn_handle: int, value_handle: int, data: bytes | None) -> bool:
        """Send a notification (even without a subscription, as MicroPython does)."""
        conn = self.device.connections.get(conn_handle)
        reg = self._registered(value_handle)
        if conn is None:
            return False
        value = bytes(reg.value) if data is None else data
        await self.device.notify_subscriber(conn, reg.characteristic, value, force=True)
        self.notifications += 1
        return True

    # -- GAP --

    async def advertise(
        self, interval_us: int | None, adv_data: bytes = b"", resp_data: bytes = b"",
        connectable: bool = True,
    ) -> None:
        """MicroPython's ``gap_advertise``: ``interval_us=None`` stops advertising."""
        await self.device.stop_advertising()
        if interval_us is None:
            self._adv = None
            return
        self._adv = (interval_us, adv_data, resp_data, connectable)
        from bumble.device import AdvertisingType

        await self.device.start_advertising(
            advertising_type=(
                AdvertisingType.UNDIRECTED_CONNECTABLE_SCANNABLE if connectable
                else AdvertisingType.UNDIRECTED_SCANNABLE
            ),
            advertising_data=adv_data, scan_response_data=resp_data,
            advertising_interval_min=max(20.0, interval_us / 1000),
            advertising_interval_max=max(20.0, interval_us / 1000),
        )

    async def disconnect(self, conn_handle: int) -> bool:
        conn = self.device.connections.get(conn_handle)
        if conn is None:
            return False
        await conn.disconnect()
        return True

    def _on_connection(self, conn: Connection) -> None:
        self._adv = None  # a connection ends advertising, as on NimBLE
        addr = conn.peer_address
        conn.on(Connection.EVENT_DISCONNECTION,
                lambda reason, conn=conn: self._on_disconnection(conn, reason))
        conn.on(Connection.EVENT_CONNECTION_ATT_MTU_UPDATE,
                lambda conn=conn: self.on_event(IRQ_MTU_EXCHANGED,
                                                (conn.handle, conn.att_mtu), None))
        self.on_event(IRQ_CENTRAL_CONNECT,
                      (conn.handle, int(addr.address_type), bytes(addr.address_bytes).hex()),
                      None)

    def _on_disconnection(self, conn: Connection, reason: int) -> None:
        addr = conn.peer_address
        self.on_event(IRQ_CENTRAL_DISCONNECT,
                      (conn.handle, int(addr.address_type), bytes(addr.address_bytes).hex()),
                      None)

    async def stop(self) -> None:
        """The sensor went away: stop advertising and drop its links."""
        self.link.drop_connections(self.controller)
        if self.powered:
            with contextlib.suppress(Exception):
                await self.device.stop_advertising()


class _HciConnection(asyncio.Protocol):
    """One TCP client = one fresh virtual controller on the radio (H4 framing)."""

    def __init__(self, bridge: BleBridge) -> None:
        self.bridge = bridge
        self.controller: Controller | None = None
        self.transport: asyncio.Transport | None = None
        self.source = StreamPacketSource()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = tr = transport
        self.bridge.hci_clients += 1

        class Sink:
            def on_packet(_, packet: bytes) -> None:
                if not tr.is_closing():
                    tr.write(packet)

        self.controller = Controller(
            f"central-{self.bridge.hci_clients}", host_source=self.source, host_sink=Sink(),
            link=self.bridge.link,
        )

    def data_received(self, data: bytes) -> None:
        self.source.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        # The central's host is gone: its links time out on the sensor's side too.
        ctrl, self.controller = self.controller, None
        if ctrl is not None:
            self.bridge.link.drop_connections(ctrl)
            self.bridge.link.isolated.discard(ctrl)
            if ctrl in self.bridge.link.controllers:
                self.bridge.link.remove_controller(ctrl)


class BleBridge:
    """The sensor's virtual radio: firmware socket + Bumble peripheral + central access.

    ``await start()`` binds loopback ports (``firmware_port``, ``hci_port``; 0 picks free
    ones); ``await close()`` stops everything. Tests use ``link`` for in-process centrals.
    """

    def __init__(self, address: str = PERIPHERAL_ADDRESS, max_inflight: int = 10) -> None:
        self.link = RadioLink()
        self.peripheral = BridgePeripheral(self.link, address, self._on_peripheral_event)
        self.max_inflight = max_inflight
        self.firmware_port = 0
        self.hci_port = 0
        self.hci_clients = 0
        self.firmware_sessions = 0
        self.firmware_connected = asyncio.Event()
        self._fw_server: asyncio.Server | None = None
        self._hci_server: asyncio.Server | None = None
        self._fw_writer: asyncio.StreamWriter | None = None
        self._fw_task: asyncio.Task[None] | None = None
        self.advertise_calls = 0  # gap_advertise calls from the firmware that started it
        self.advertise_calls_before_failure = 0
        self.starving = False
        self.withheld = 0  # credits not returned while starving

    @property
    def transport_spec(self) -> str:
        """The Bumble transport a central in another process connects through."""
        return f"tcp-client:127.0.0.1:{self.hci_port}"

    async def start(self, firmware_port: int = 0, hci_port: int = 0) -> None:
        await self.peripheral.power_on()
        self._fw_server = await asyncio.start_server(
            self._serve_firmware, "127.0.0.1", firmware_port
        )
        self.firmware_port = self._fw_server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        self._hci_server = await loop.create_server(
            lambda: _HciConnection(self), "127.0.0.1", hci_port
        )
        self.hci_port = self._hci_server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for server in (self._fw_server, self._hci_server):
            if server is not None:
                server.close()
        if self._fw_writer is not None:
            self._fw_writer.transport.abort()  # the reader sees EOF and cleans up
        if self._fw_task is not None and not self._fw_task.done():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._fw_task), 2)
        await self.peripheral.stop()
        for server in (self._fw_server, self._hci_server):
            if server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 2)

    # -- radio faults --

    async def fail_connection(self) -> None:
        """A connection attempt that fails, as NimBLE reports it: advertising stops and
        the firmware gets ``_IRQ_CENTRAL_DISCONNECT`` for a handle that never connected
        (BLE_HS_CONN_HANDLE_NONE, addr_type 0xFF: extmod/nimble/modbluetooth_nimble.c)."""
        self.advertise_calls_before_failure = self.advertise_calls
        await self.peripheral.advertise(None)
        self._send({"ev": IRQ_CENTRAL_DISCONNECT, "a": [0xFFFF, 0xFF, "000000000000"]})

    def starve_credits(self, starve: bool) -> None:
        """Withhold notification credits (a central that stops reading, or a radio that
        gives no connection events): the firmware's ``gatts_notify`` runs out of buffers."""
        self.starving = starve
        if not starve and self.withheld:
            self._send({"ack": self.withheld})
            self.withheld = 0

    def drop_link(self) -> int:
        """Lose the radio link now (both sides see a connection timeout)."""
        return self.link.drop_connections(self.peripheral.controller)

    def set_in_range(self, in_range: bool) -> None:
        """Out of range: links drop and nothing is heard until back in range."""
        if in_range:
            self.link.isolated.discard(self.peripheral.controller)
        else:
            self.drop_link()
            self.link.isolated.add(self.peripheral.controller)

    # -- firmware side --

    def _send(self, msg: dict[str, Any]) -> None:
        writer = self._fw_writer
        if writer is not None and not writer.is_closing():
            writer.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")

    def _on_peripheral_event(self, irq: int, args: tuple[Any, ...], data: bytes | None) -> None:
        msg: dict[str, Any] = {"ev": irq, "a": list(args)}
        if data is not None:
            msg["d"] = data.hex()
        self._send(msg)

    async def _serve_firmware(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self._fw_writer is not None:  # one sensor per radio
            writer.write(b'{"error":"busy"}\n')
            writer.close()
            return
        self._fw_writer = writer
        self.firmware_sessions += 1
        self.firmware_connected.set()
        self._fw_task = asyncio.current_task()
        try:
            while line := await reader.readline():
                try:
                    msg = json.loads(line)
                    await self._handle(msg)
                except (ValueError, KeyError, TypeError, IndexError) as exc:
                    log.warning("bad request from firmware %r: %s", line[:80], exc)
                    if isinstance(msg, dict) and "id" in msg:
                        self._send({"re": msg["id"], "error": str(exc)})
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            # The firmware process ended: the sensor vanishes from the air.
            self._fw_writer = None
            self.firmware_connected.clear()
            await self.peripheral.stop()
            writer.close()

    async def _handle(self, msg: dict[str, Any]) -> None:
        op = msg["op"]
        p = self.peripheral
        reply: dict[str, Any] | None = None
        if op == "hello":
            reply = {"addr": p.address, "inflight": self.max_inflight}
        elif op == "register":
            reply = {"handles": p.register_services(msg["services"])}
        elif op == "write":
            p.gatts_write(int(msg["h"]), bytes.fromhex(msg["d"]))
            if msg.get("u"):
                for conn in list(p.device.connections):
                    await p.notify(conn, int(msg["h"]), None)
        elif op == "notify":
            data = bytes.fromhex(msg["d"]) if msg.get("d") is not None else None
            try:
                await p.notify(int(msg["c"]), int(msg["h"]), data)
            finally:
                if self.starving:
                    self.withheld += 1
                else:
                    self._send({"ack": 1})
        elif op == "adv":
            interval = msg.get("i")
            if interval is not None:
                self.advertise_calls += 1
            await p.advertise(
                None if interval is None else int(interval), bytes.fromhex(msg.get("a", "")),
                bytes.fromhex(msg.get("r", "")), bool(msg.get("c", True)),
            )
        elif op == "disc":
            reply = {"ok": await p.disconnect(int(msg["c"]))}
        elif op == "name":
            p.device.name = str(msg["v"])
        else:
            raise ValueError(f"unknown op {op!r}")
        if "id" in msg:
            self._send({"re": msg["id"], **(reply or {})})


async def _run(args: argparse.Namespace) -> int:
    bridge = BleBridge()
    await bridge.start(args.firmware_port, args.hci_port)
    print(f"firmware-port {bridge.firmware_port}", flush=True)
    print(f"hci-port {bridge.hci_port}", flush=True)
    print(f"central-transport {bridge.transport_spec}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if args.exit_after:
            await asyncio.wait_for(stop.wait(), args.exit_after)
        else:
            await stop.wait()
    except TimeoutError:
        pass
    finally:
        await bridge.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--firmware-port", type=int, default=0,
                    help="loopback port for the MicroPython process (0: any free)")
    ap.add_argument("--hci-port", type=int, default=0,
                    help="loopback port for centrals' HCI (0: any free)")
    ap.add_argument("--exit-after", type=float, default=0, help="stop after N seconds")
    args = ap.parse_args(argv)
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
