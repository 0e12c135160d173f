"""bleak on Bumble: the host's BLE code against a real Bluetooth stack on a virtual radio.

A Bumble peripheral with the spasmwatch GATT layout (``simulator/ble_bridge.py``'s
``BridgePeripheral``, driven here from Python) and a Bumble central behind the bleak
backend of ``host/links/bleak_bumble.py`` share one virtual radio. Covered: scanning
(name in the scan response, service UUID filter, address format), connecting, MTU,
discovery, read, notify, write with and without response, disconnects both ways, radio
loss, the TCP-exposed controller, bleak-retry-connector, and ``host/links/ble_link.py``.
Each test runs its own event loop and closes every host it made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError
from bleak_retry_connector import establish_connection

from spasmwatch.firmware import ble_link as gatt
from spasmwatch.firmware import config, control
from spasmwatch.host.links import bleak_bumble
from spasmwatch.host.links.base import Link, LinkError, LinkLost
from spasmwatch.host.links.ble_link import BleLink, discover_sensors, resolve_backend
from spasmwatch.host.links.bleak_bumble import (
    BumbleCentral,
    BumbleClient,
    BumbleDeviceDetails,
    BumbleScanner,
)
from spasmwatch.simulator.ble_bridge import (
    IRQ_CENTRAL_CONNECT,
    IRQ_CENTRAL_DISCONNECT,
    IRQ_GATTS_WRITE,
    IRQ_MTU_EXCHANGED,
    PERIPHERAL_ADDRESS,
    BleBridge,
    BridgePeripheral,
    RadioLink,
)

NOTIFY, READ, WRITE, WRITE_NR = 0x10, 0x02, 0x08, 0x04


class Sensor:
    """A Bumble peripheral registered and advertising like firmware/ble_link.py."""

    def __init__(self, link: RadioLink, name: str = "spasmwatch",
                 address: str = PERIPHERAL_ADDRESS, service: str = config.SERVICE_UUID):
        self.events: list[tuple[int, tuple[Any, ...], bytes | None]] = []
        self.per = BridgePeripheral(link, address, lambda *e: self.events.append(e))
        self.name = name
        self.service = service

    async def start(self) -> Sensor:
        await self.per.power_on()
        ((self.h_event, self.h_status, self.h_control),) = self.per.register_services([
            [self.service, [[gatt.EVENT_UUID, NOTIFY], [gatt.STATUS_UUID, READ | NOTIFY],
                            [gatt.CONTROL_UUID, WRITE | WRITE_NR]]],
        ])
        await self.advertise()
        return self

    async def advertise(self) -> None:
        adv = gatt.adv_payload() if self.service == config.SERVICE_UUID else (
            b"\x02\x01\x06\x11\x07" + gatt.uuid_le_bytes(self.service))
        await self.per.advertise(50_000, adv, gatt.resp_payload(self.name))

    @property
    def conn(self) -> int:
        return next(iter(self.per.device.connections))

    def of(self, irq: int) -> list[tuple[Any, ...]]:
        return [(args, data) for e, args, data in self.events if e == irq]


def run(coro_fn: Callable[[], Awaitable[None]], timeout: float = 20) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), timeout))


async def settle(rounds: int = 20) -> None:
    """Let the virtual radio deliver what is queued (call_soon hops, no wall time)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


def test_uuid_and_address_conversions() -> None:
    from bumble import core, hci

    assert bleak_bumble.bleak_uuid(core.UUID(config.SERVICE_UUID)) == config.SERVICE_UUID
    assert bleak_bumble.bleak_uuid(core.UUID.from_16_bits(0x2902)) == (
        "00002902-0000-1000-8000-00805f9b34fb")
    assert bleak_bumble.bleak_address(hci.Address("f1:5a:57:00:00:01")) == "F1:5A:57:00:00:01"
    assert bleak_bumble.property_names(READ | NOTIFY) == ["read", "notify"]


def test_scan_reports_name_service_and_typed_address() -> None:
    async def body() -> None:
        link = RadioLink()
        await Sensor(link).start()
        other = await Sensor(link, name="thermometer", address="F1:00:00:00:00:02",
                             service="0000181a-0000-1000-8000-00805f9b34fb").start()
        central = BumbleCentral.on_link(link)
        try:
            found = await BleakScanner.discover(
                timeout=0.3, return_adv=True, backend=BumbleScanner, bumble=central)
            assert set(found) == {PERIPHERAL_ADDRESS, other.per.address}
            dev, adv = found[PERIPHERAL_ADDRESS]
            assert adv.local_name == "spasmwatch"  # from the scan response
            assert adv.service_uuids == [config.SERVICE_UUID]
            assert isinstance(dev.details, BumbleDeviceDetails)
            # The service filter leaves the thermometer out.
            only = await BleakScanner.discover(
                timeout=0.3, return_adv=True, service_uuids=[config.SERVICE_UUID],
                backend=BumbleScanner, bumble=central)
            assert set(only) == {PERIPHERAL_ADDRESS}
            sensors = await discover_sensors(0.3, backend=central)
            assert [d.address for d, _ in sensors] == [PERIPHERAL_ADDRESS]
        finally:
            await central.close()

    run(body)


def test_client_discovers_reads_notifies_writes_and_disconnects() -> None:
    async def body() -> None:
        link = RadioLink()
        s = await Sensor(link).start()
        s.per.gatts_write(s.h_status, b"status-1")
        central = BumbleCentral.on_link(link)
        dropped: list[BleakClient] = []
        try:
            dev = await BleakScanner.find_device_by_name(
                "spasmwatch", timeout=2, backend=BumbleScanner, bumble=central)
            assert dev is not None
            client = BleakClient(dev, disconnected_callback=dropped.append,
                                 backend=BumbleClient, bumble=central)
            await client.connect()
            assert client.is_connected and client.mtu_size == 247
            svc = client.services.get_service(config.SERVICE_UUID)
            assert svc is not None
            props = {c.uuid: c.properties for c in svc.characteristics}
            assert props == {
                gatt.EVENT_UUID: ["notify"], gatt.STATUS_UUID: ["read", "notify"],
                gatt.CONTROL_UUID: ["write-without-response", "write"],
            }
            assert await client.read_gatt_char(gatt.STATUS_UUID) == bytearray(b"status-1")
            got: list[Any] = []
            await client.start_notify(gatt.EVENT_UUID, lambda _c, d: got.append(d))
            packets = [bytes([i]) * 16 for i in range(30)]
            for p in packets:
                await s.per.notify(s.conn, s.h_event, p)
            await until(lambda: len(got) == len(packets))
            assert got == packets and all(type(d) is bytearray for d in got)
            await client.write_gatt_char(gatt.CONTROL_UUID, b"\x01ping", response=True)
            await client.write_gatt_char(gatt.CONTROL_UUID, b"\x02", response=False)
            await until(lambda: len(s.of(IRQ_GATTS_WRITE)) == 2)
            assert [d for _, d in s.of(IRQ_GATTS_WRITE)] == [b"\x01ping", b"\x02"]
            assert s.of(IRQ_MTU_EXCHANGED)[0][0][1] == 247
            await client.disconnect()
            await until(lambda: len(s.of(IRQ_CENTRAL_DISCONNECT)) == 1)
            assert not client.is_connected and dropped == []  # asked for: no callback
        finally:
            await central.close()

    run(body)


def test_radio_loss_calls_disconnected_callback_and_fails_io() -> None:
    async def body() -> None:
        link = RadioLink()
        s = await Sensor(link).start()
        central = BumbleCentral.on_link(link)
        lost = asyncio.Event()
        try:
            dev = await bleak_bumble.find_device("spasmwatch", timeout=2, bumble=central)
            client = BleakClient(dev, disconnected_callback=lambda _c: lost.set(),
                                 backend=BumbleClient, bumble=central)
            await client.connect()
            link.drop_connections(s.per.controller)
            await asyncio.wait_for(lost.wait(), 2)
            assert not client.is_connected
            assert s.of(IRQ_CENTRAL_DISCONNECT)[0][0][0] == s.of(IRQ_CENTRAL_CONNECT)[0][0][0]
            with pytest.raises(BleakError):
                await client.read_gatt_char(gatt.STATUS_UUID)
        finally:
            await central.close()

    run(body)


def test_connect_to_silent_address_times_out() -> None:
    async def body() -> None:
        link = RadioLink()
        central = BumbleCentral.on_link(link)
        try:
            client = BleakClient("F1:00:00:00:00:99", timeout=0.3,
                                 backend=BumbleClient, bumble=central)
            with pytest.raises(TimeoutError):
                await client.connect()
            with pytest.raises(BleakError, match="not a Bluetooth address"):
                await BleakClient("nonsense", backend=BumbleClient, bumble=central).connect()
        finally:
            await central.close()

    run(body)


def test_bleak_retry_connector_and_tcp_controller() -> None:
    # The out-of-process path: a central's Bumble host reaches the bridge's radio over
    # TCP (what ``spasmwatch run --ble-backend bumble:tcp-client:...`` uses).
    async def body() -> None:
        bridge = BleBridge()
        await bridge.start()
        s = Sensor.__new__(Sensor)
        s.events = []
        s.per = bridge.peripheral
        s.per.on_event = lambda *e: s.events.append(e)
        s.name, s.service = "spasmwatch", config.SERVICE_UUID
        ((s.h_event, s.h_status, s.h_control),) = s.per.register_services([
            [config.SERVICE_UUID, [[gatt.EVENT_UUID, NOTIFY], [gatt.STATUS_UUID, READ | NOTIFY],
                                   [gatt.CONTROL_UUID, WRITE | WRITE_NR]]]])
        await s.advertise()
        spec = bridge.transport_spec
        try:
            dev = await bleak_bumble.find_device(PERIPHERAL_ADDRESS, timeout=2, bumble=spec)
            client = await establish_connection(
                BleakClient, dev, "sensor", max_attempts=2, backend=BumbleClient, bumble=spec)
            assert client.is_connected and bridge.hci_clients == 2  # scanner, then client
            got: list[bytearray] = []
            await client.start_notify(gatt.EVENT_UUID, lambda _c, d: got.append(d))
            await s.per.notify(s.conn, s.h_event, b"x" * 16)
            await until(lambda: got == [bytearray(b"x" * 16)])
            await client.disconnect()
            assert not bleak_bumble._CENTRALS  # last user gone: host and socket closed
            # A central whose process dies mid-connection: the bridge ends the link.
            await s.advertise()
            central = await bleak_bumble.central_for(spec)
            device = await central.acquire()
            await device.connect(s.per.device.random_address)
            await until(lambda: len(s.per.device.connections) == 1)
            await central.close()
            await until(lambda: not s.per.device.connections)
        finally:
            await bridge.close()

    run(body)


def test_ble_link_delivers_packets_in_order_then_link_lost() -> None:
    async def body() -> None:
        link = RadioLink()
        s = await Sensor(link).start()
        central = BumbleCentral.on_link(link)
        ble = BleLink("spasmwatch", backend=central, scan_timeout=2)
        assert isinstance(ble, Link)
        try:
            await ble.open()
            assert ble.mtu == 247
            # open() announced itself with a PING on the control point.
            await until(lambda: len(s.of(IRQ_GATTS_WRITE)) == 1)
            assert control.decode(s.of(IRQ_GATTS_WRITE)[0][1])[0] == control.PING
            sent = [bytes([i]) * 16 for i in range(10)]
            for i, p in enumerate(sent):
                h = s.h_status if i % 3 == 0 else s.h_event
                await s.per.notify(s.conn, h, p)
            await settle()
            s.per.link.drop_connections(s.per.controller)  # radio lost after delivery
            got = [await asyncio.wait_for(ble.recv(), 2) for _ in sent]
            assert got == sent  # both characteristics, one ordered stream
            with pytest.raises(LinkLost):
                await asyncio.wait_for(ble.recv(), 2)
            with pytest.raises(LinkLost):
                await ble.send_control(control.encode_ping())
            await ble.close()
            await ble.close()  # twice is fine
            # The sensor advertises again: a new open() reconnects.
            await s.advertise()
            await ble.open()
            await ble.send_control(control.encode_resend(3, 7))
            await until(lambda: len(s.of(IRQ_GATTS_WRITE)) == 3)
            assert control.decode(s.of(IRQ_GATTS_WRITE)[-1][1]) == (control.RESEND, (3, 7))
            with pytest.raises(ValueError):
                await ble.send_control(b"x" * 21)
            assert ble.stats.connects == 2 and ble.stats.packets_in == 10
        finally:
            await ble.close()
            await central.close()

    run(body)


def test_ble_link_clear_errors() -> None:
    async def body() -> None:
        link = RadioLink()
        central = BumbleCentral.on_link(link)
        other = await Sensor(link, name="impostor", address="F1:00:00:00:00:03",
                             service="0000181a-0000-1000-8000-00805f9b34fb").start()
        try:
            with pytest.raises(LinkError, match="no spasmwatch sensor named 'spasmwatch'"):
                await BleLink("spasmwatch", backend=central, scan_timeout=0.3).open()
            # Not advertising the service: not even considered.
            with pytest.raises(LinkError, match="no spasmwatch sensor at"):
                await BleLink(other.per.address, backend=central, scan_timeout=0.3).open()
            with pytest.raises(LinkError, match="unknown BLE backend"):
                await BleLink("x", backend="carrier-pigeon").open()
            with pytest.raises(LinkLost):
                await BleLink("x", backend=central).recv()
            with pytest.raises(LinkError):
                BleLink("", backend=central)
        finally:
            await central.close()
        assert resolve_backend("bumble:tcp-client:127.0.0.1:9").kwargs == (
            ("bumble", "tcp-client:127.0.0.1:9"),)

    run(body)


def test_out_of_range_sensor_is_not_found_until_back() -> None:
    async def body() -> None:
        bridge = BleBridge()
        await bridge.start()
        s = Sensor.__new__(Sensor)
        s.per, s.name, s.service, s.events = bridge.peripheral, "spasmwatch", \
            config.SERVICE_UUID, []
        s.per.register_services([[config.SERVICE_UUID, [[gatt.EVENT_UUID, NOTIFY]]]])
        await s.advertise()
        central = BumbleCentral.on_link(bridge.link)
        try:
            bridge.set_in_range(False)
            found = await BleakScanner.discover(timeout=0.3, backend=BumbleScanner,
                                                bumble=central)
            assert found == []
            bridge.set_in_range(True)
            found = await BleakScanner.discover(timeout=0.3, backend=BumbleScanner,
                                                bumble=central)
            assert [d.address for d in found] == [PERIPHERAL_ADDRESS]
        finally:
            await central.close()
            await bridge.close()

    run(body)
