"""A bleak backend on Bumble: the host's bleak code runs unchanged on a virtual radio.

bleak 3 accepts third-party backends (``BleakScanner(backend=...)``,
``BleakClient(backend=...)``). ``BumbleScanner`` and ``BumbleClient`` implement its
``BaseBleakScanner`` / ``BaseBleakClient`` contracts with a Bumble *central*: a Bumble
host (``bumble.device.Device``) on a virtual controller. That controller is either

* in this process, on a ``bumble.link.LocalLink`` shared with a peripheral (tests):
  ``BumbleCentral.on_link(link)``, passed as ``bumble=central``; or
* reached through any Bumble HCI transport spec, e.g. ``tcp-client:127.0.0.1:PORT`` for
  the controller ``simulator/ble_bridge.py`` exposes (``spasmwatch run --ble NAME
  --ble-backend bumble:tcp-client:127.0.0.1:PORT``): passed as ``bumble="SPEC"``, or
  taken from the ``SPASMWATCH_BUMBLE_TRANSPORT`` environment variable.

One Bumble host per virtual controller: scanners and clients of one event loop that
name the same transport share one ``BumbleCentral``; it is opened on first use and
closed (host and transport) when its last user stops or disconnects, so nothing
outlives the event loop that made it.

Conversions bleak expects: addresses as ``AA:BB:CC:DD:EE:FF`` (the address type rides
in ``BLEDevice.details``), UUIDs as lowercase 128-bit strings, notification payloads as
``bytearray``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bumble import core, hci
from bumble.att import ATT_Error
from bumble.controller import Controller
from bumble.core import AdvertisingData, PhysicalTransport
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy, DescriptorProxy
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport import open_transport
from bumble.transport.common import AsyncPipeSink, Transport

log = logging.getLogger(__name__)

TRANSPORT_ENV = "SPASMWATCH_BUMBLE_TRANSPORT"
#: ATT MTU the central asks for after connecting (bleak's BlueZ/CoreBluetooth do the
#: same exchange implicitly); the peripheral may answer with less.
REQUESTED_MTU = 247
DEFAULT_CENTRAL_ADDRESS = "C0:98:E5:00:00:C1"  # random static (top bits 11)

_PROPERTY_NAMES: tuple[tuple[int, CharacteristicPropertyName], ...] = (
    (0x01, "broadcast"),
    (0x02, "read"),
    (0x04, "write-without-response"),
    (0x08, "write"),
    (0x10, "notify"),
    (0x20, "indicate"),
    (0x40, "authenticated-signed-writes"),
    (0x80, "extended-properties"),
)


def bleak_uuid(u: core.UUID) -> str:
    """Bumble UUID -> the lowercase 128-bit string bleak uses everywhere."""
    return str(uuidlib.UUID(bytes=bytes(reversed(u.to_bytes(force_128=True)))))


def bleak_address(address: hci.Address) -> str:
    """Bumble address -> ``AA:BB:CC:DD:EE:FF`` (without Bumble's ``/P`` type suffix)."""
    return address.to_string(with_type_qualifier=False).upper()


def property_names(properties: int) -> list[CharacteristicPropertyName]:
    return [name for bit, name in _PROPERTY_NAMES if properties & bit]


@dataclass(frozen=True)
class BumbleDeviceDetails:
    """``BLEDevice.details`` for this backend: the typed address to connect to.

    Deliberately not a dict, so bleak-retry-connector never mistakes it for BlueZ's.
    """

    address: hci.Address


class BumbleCentral:
    """One Bumble host on one virtual controller, shared by this loop's scanners/clients."""

    def __init__(
        self,
        device: Device,
        *,
        transport: Transport | None = None,
        key: tuple[int, str] | None = None,
        owned: bool = True,
    ) -> None:
        self.device = device
        self._transport = transport
        self._key = key
        self._users = 0
        self._owned = owned  # closed automatically when the last user leaves
        self._powered = False
        self._lock = asyncio.Lock()
        self.closed = False

    @classmethod
    def on_link(
        cls, link: LocalLink, address: str = DEFAULT_CENTRAL_ADDRESS, name: str = "central"
    ) -> BumbleCentral:
        """A central on a new controller of an in-process ``LocalLink``.

        The caller owns it: close it with ``await central.close()`` before the loop ends.
        """
        controller = Controller(f"{name}-ctrl", link=link)
        host = Host(controller, AsyncPipeSink(controller))
        device = Device(name=name, address=hci.Address(address), host=host)
        return cls(device, owned=False)

    @classmethod
    async def from_spec(cls, spec: str, address: str = DEFAULT_CENTRAL_ADDRESS) -> BumbleCentral:
        """A central on the controller behind a Bumble HCI transport spec."""
        try:
            transport = await open_transport(spec)
        except (OSError, ValueError, core.BaseBumbleError) as exc:
            raise BleakError(f"cannot open Bumble transport {spec!r}: {exc}") from exc
        device = Device.with_hci("spasmwatch-host", hci.Address(address),
                                 transport.source, transport.sink)
        return cls(device, transport=transport)

    async def acquire(self) -> Device:
        async with self._lock:
            if self.closed:
                raise BleakError("Bumble central is closed")
            if not self._powered:
                try:
                    await asyncio.wait_for(self.device.power_on(), 10)
                except (TimeoutError, core.BaseBumbleError, hci.HCI_Error) as exc:
                    raise BleakError(f"virtual Bluetooth controller did not start: {exc}") \
                        from exc
                self._powered = True
            self._users += 1
            return self.device

    async def release(self) -> None:
        async with self._lock:
            self._users = max(0, self._users - 1)
            if self._users or not self._owned:
                return
        await self.close()

    async def close(self) -> None:
        """Disconnect everything and close the host and its transport (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self._key is not None:
            _CENTRALS.pop(self._key, None)
        for conn in list(self.device.connections.values()):
            try:
                await asyncio.wait_for(conn.disconnect(), 2)
            except Exception as exc:  # noqa: BLE001 - best effort while tearing down
                log.debug("disconnect during close: %s", exc)
        if self.device.scanning:
            try:
                await asyncio.wait_for(self.device.stop_scanning(), 2)
            except Exception as exc:  # noqa: BLE001
                log.debug("stop_scanning during close: %s", exc)
        if self._transport is not None:
            await self._transport.close()
        # The pipe host keeps no tasks; a transport host's reader ends with its socket.
        self.device.host.remove_all_listeners()


# Centrals opened from a transport spec, per (event loop, spec): one host per controller.
_CENTRALS: dict[tuple[int, str], BumbleCentral] = {}


async def central_for(option: BumbleCentral | str | None) -> BumbleCentral:
    """Resolve the ``bumble=`` option (or the environment) to a shared central."""
    if isinstance(option, BumbleCentral):
        return option
    spec = option or os.environ.get(TRANSPORT_ENV)
    if not spec:
        raise BleakError(
            f"the Bumble backend needs a transport: pass bumble='tcp-client:HOST:PORT' or set "
            f"{TRANSPORT_ENV}"
        )
    key = (id(asyncio.get_running_loop()), spec)
    central = _CENTRALS.get(key)
    if central is None or central.closed:
        central = await BumbleCentral.from_spec(spec)
        central._key = key
        _CENTRALS[key] = central
    return central


# -- scanner ---------------------------------------------------------------------------


def advertisement_data(adv: Advertisement) -> tuple[str | None, AdvertisementData]:
    """Bumble advertisement -> (local name, bleak AdvertisementData)."""
    data = adv.data
    name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(
        AdvertisingData.SHORTENED_LOCAL_NAME
    )
    local_name = name if isinstance(name, str) else None
    uuids: list[str] = []
    for ad_type in (
        AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    ):
        for u in data.get_all(ad_type):
            for item in u if isinstance(u, list) else [u]:
                if isinstance(item, core.UUID):
                    uuids.append(bleak_uuid(item))
    manufacturer: dict[int, bytes] = {}
    for md in data.get_all(AdvertisingData.MANUFACTURER_SPECIFIC_DATA):
        if isinstance(md, tuple) and len(md) == 2:
            manufacturer[int(md[0])] = bytes(md[1])
    service_data: dict[str, bytes] = {}
    for sd_type in (
        AdvertisingData.SERVICE_DATA_16_BIT_UUID,
        AdvertisingData.SERVICE_DATA_32_BIT_UUID,
        AdvertisingData.SERVICE_DATA_128_BIT_UUID,
    ):
        for sd in data.get_all(sd_type):
            if isinstance(sd, tuple) and len(sd) == 2 and isinstance(sd[0], core.UUID):
                service_data[bleak_uuid(sd[0])] = bytes(sd[1])
    tx = data.get(AdvertisingData.TX_POWER_LEVEL)
    rssi = adv.rssi if adv.rssi != Advertisement.RSSI_NOT_AVAILABLE else -127
    return local_name, AdvertisementData(
        local_name=local_name,
        manufacturer_data=manufacturer,
        service_data=service_data,
        service_uuids=uuids,
        tx_power=tx if isinstance(tx, int) else None,
        rssi=rssi,
        platform_data=(adv,),
    )


class BumbleScanner(BaseBleakScanner):
    """``BaseBleakScanner`` on a Bumble central (pass as ``BleakScanner(backend=...)``)."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        *,
        bumble: BumbleCentral | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._option = bumble
        self._active = scanning_mode != "passive"
        self._central: BumbleCentral | None = None
        self._listener: Callable[[Advertisement], None] | None = None

    async def start(self) -> None:
        if self._central is not None:
            return
        central = await central_for(self._option)
        device = await central.acquire()
        self.seen_devices = {}

        def on_advertisement(adv: Advertisement) -> None:
            name, ad = advertisement_data(adv)
            if not self.is_allowed_uuid(ad.service_uuids):
                return
            address = bleak_address(adv.address)
            dev = self.create_or_update_device(
                address, address, name, BumbleDeviceDetails(adv.address), ad
            )
            self.call_detection_callbacks(dev, ad)

        device.on(Device.EVENT_ADVERTISEMENT, on_advertisement)
        self._listener = on_advertisement
        self._central = central
        try:
            await device.start_scanning(active=self._active, filter_duplicates=False)
        except (core.BaseBumbleError, hci.HCI_Error) as exc:
            await self.stop()
            raise BleakError(f"cannot start scanning: {exc}") from exc

    async def stop(self) -> None:
        central, self._central = self._central, None
        if central is None:
            return
        device = central.device
        if self._listener is not None:
            device.remove_listener(Device.EVENT_ADVERTISEMENT, self._listener)
            self._listener = None
        if device.scanning and not central.closed:
            try:
                await device.stop_scanning()
            except (core.BaseBumbleError, hci.HCI_Error) as exc:
                log.debug("stop_scanning: %s", exc)
        await central.release()


# -- client ----------------------------------------------------------------------------


def _parse_address(address: str) -> hci.Address:
    try:
        # LE addresses default to random (what peripherals such as the ESP32 use).
        return hci.Address.from_string_for_transport(address, PhysicalTransport.LE)
    except (ValueError, core.InvalidArgumentError) as exc:
        raise BleakError(f"not a Bluetooth address: {address!r}") from exc


class BumbleClient(BaseBleakClient):
    """``BaseBleakClient`` on a Bumble central (pass as ``BleakClient(backend=...)``)."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        bumble: BumbleCentral | str | None = None,
        services: set[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self._option = bumble
        self._target: hci.Address | None = None
        self._name: str | None = None
        if isinstance(address_or_ble_device, BLEDevice):
            details = address_or_ble_device.details
            if isinstance(details, BumbleDeviceDetails):
                self._target = details.address
            self._name = address_or_ble_device.name
        self._central: BumbleCentral | None = None
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._subscriptions: dict[int, Callable[[bytes], None]] = {}
        self._closing = False

    # -- properties --

    @property
    def name(self) -> str:
        return self._name or self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        conn = self._connection
        return int(conn.att_mtu) if conn is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    # -- connection --

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self._connection is not None:
            return
        timeout = float(kwargs.get("timeout", self._timeout))
        target = self._target or _parse_address(self.address)
        central = await central_for(self._option)
        device = await central.acquire()
        try:
            try:
                connection = await device.connect(
                    target, transport=PhysicalTransport.LE, timeout=timeout
                )
            except core.TimeoutError as exc:
                raise TimeoutError(f"{self.address}: no answer within {timeout:g} s") from exc
            except (core.BaseBumbleError, hci.HCI_Error) as exc:
                raise BleakError(f"{self.address}: connection failed: {exc}") from exc
            self._central = central
            self._connection = connection
            connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)
            self._peer = Peer(connection)
            try:
                await self._peer.request_mtu(REQUESTED_MTU)
            except (core.BaseBumbleError, ATT_Error) as exc:
                log.debug("MTU exchange refused, staying at 23: %s", exc)
            self.services = await self._discover()
        except BaseException:
            if self._connection is not None:
                await self._teardown(disconnect=True)
            else:
                await central.release()
            raise

    async def _discover(self) -> BleakGATTServiceCollection:
        peer = self._peer
        assert peer is not None
        try:
            await peer.discover_services()
            collection = BleakGATTServiceCollection()
            for svc in peer.services:
                await svc.discover_characteristics()
                bsvc = BleakGATTService(svc, svc.handle, bleak_uuid(svc.uuid))
                collection.add_service(bsvc)
                for ch in svc.characteristics:
                    await peer.discover_descriptors(ch)
                    bch = BleakGATTCharacteristic(
                        ch, ch.handle, bleak_uuid(ch.uuid), property_names(int(ch.properties)),
                        lambda: self.mtu_size - 3, bsvc,
                    )
                    collection.add_characteristic(bch)
                    for desc in ch.descriptors:
                        collection.add_descriptor(
                            BleakGATTDescriptor(desc, desc.handle, bleak_uuid(desc.type), bch)
                        )
        except (core.BaseBumbleError, ATT_Error) as exc:
            raise BleakError(f"service discovery failed: {exc}") from exc
        return collection

    def _on_disconnection(self, reason: int) -> None:
        was_closing = self._closing
        log.debug("%s disconnected (reason 0x%02X)", self.address, reason)
        task = asyncio.get_running_loop().create_task(self._teardown(disconnect=False))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)
        if not was_closing and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def _teardown(self, disconnect: bool) -> None:
        conn, self._connection = self._connection, None
        central, self._central = self._central, None
        self._peer = None
        self._subscriptions.clear()
        if conn is not None and disconnect:
            try:
                await asyncio.wait_for(conn.disconnect(), 5)
            except (TimeoutError, core.BaseBumbleError, hci.HCI_Error) as exc:
                log.debug("disconnect: %s", exc)
        if central is not None:
            await central.release()

    async def disconnect(self) -> None:
        if self._connection is None:
            return
        self._closing = True
        try:
            await self._teardown(disconnect=True)
        finally:
            self._closing = False

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("pairing is not supported by the Bumble backend")

    async def unpair(self) -> None:
        raise NotImplementedError("pairing is not supported by the Bumble backend")

    # -- I/O --

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError("Not connected")
        return self._peer

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False,
        **kwargs: Any,
    ) -> bytearray:
        proxy = cast(CharacteristicProxy[bytes], characteristic.obj)
        return bytearray(await self._att(self._require_peer().read_value(proxy)))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        proxy = cast(DescriptorProxy, descriptor.obj)
        return bytearray(await self._att(self._require_peer().read_value(proxy)))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        proxy = cast(CharacteristicProxy[bytes], characteristic.obj)
        await self._att(
            self._require_peer().write_value(proxy, bytes(data), with_response=response)
        )

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        proxy = cast(DescriptorProxy, descriptor.obj)
        await self._att(self._require_peer().write_value(proxy, bytes(data), with_response=True))

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        proxy = cast(CharacteristicProxy[bytes], characteristic.obj)

        def deliver(value: bytes) -> None:
            callback(bytearray(value))  # bleak hands callbacks a bytearray

        self._subscriptions[characteristic.handle] = deliver
        await self._att(self._require_peer().subscribe(proxy, deliver, prefer_notify=True))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        proxy = cast(CharacteristicProxy[bytes], characteristic.obj)
        deliver = self._subscriptions.pop(characteristic.handle, None)
        await self._att(self._require_peer().unsubscribe(proxy, deliver))

    async def _att(self, awaitable: Any) -> Any:
        """Await a Bumble GATT operation, mapping its errors to bleak's."""
        try:
            return await awaitable
        except ATT_Error as exc:
            raise BleakGATTProtocolError(int(exc.error_code)) from exc
        except core.TimeoutError as exc:
            raise BleakError(f"GATT operation timed out: {exc}") from exc
        except (core.BaseBumbleError, hci.HCI_Error) as exc:
            if self._connection is None:
                raise BleakError("Not connected (the link dropped)") from exc
            raise BleakError(f"GATT operation failed: {exc}") from exc


_tasks: set[asyncio.Task[None]] = set()


async def find_device(
    name_or_address: str, *, timeout: float = 10.0, bumble: BumbleCentral | str | None = None,
    service_uuids: list[str] | None = None,
) -> BLEDevice:
    """Scan until a device with this local name or address advertises (helper for tests)."""
    from bleak import BleakScanner

    want = name_or_address.upper()
    extra: dict[str, Any] = {"bumble": bumble}
    if service_uuids is not None:
        extra["service_uuids"] = service_uuids
    device = await BleakScanner.find_device_by_filter(
        lambda d, ad: d.address.upper() == want or (ad.local_name or "") == name_or_address,
        timeout=timeout, backend=BumbleScanner, **extra,
    )
    if device is None:
        raise BleakDeviceNotFoundError(name_or_address, f"{name_or_address} not found")
    return device


__all__ = [
    "BumbleCentral",
    "BumbleClient",
    "BumbleDeviceDetails",
    "BumbleScanner",
    "TRANSPORT_ENV",
    "bleak_address",
    "bleak_uuid",
    "central_for",
    "find_device",
]
