"""BLE link to the sensor: bleak (+ bleak-retry-connector) on the GATT layout of
``firmware/ble_link.py``.

``BleLink(name_or_address)`` scans for a sensor advertising the spasmwatch service
(``config.SERVICE_UUID``) with that local name or address, connects with
``bleak_retry_connector.establish_connection`` (retries with backoff on the transient
errors real adapters produce), subscribes to the event and status characteristics and
hands every notification to ``recv()`` as one raw wire packet, in arrival order.
Control payloads go to the control point as writes with response. When the link drops
(out of range, sensor reset) the packets already received are still returned, then
``recv`` raises ``LinkLost``; the daemon reconnects with a new ``open()``.

Backends: ``backend=None`` uses bleak's platform backend (BlueZ on Linux) unless the
``SPASMWATCH_BLE_BACKEND`` environment variable names one; ``"bumble:SPEC"`` uses the
Bumble backend of ``host/links/bleak_bumble.py`` over the Bumble HCI transport
``SPEC`` (e.g. ``bumble:tcp-client:127.0.0.1:PORT`` for ``simulator/ble_bridge.py``);
a ``BumbleCentral`` object uses that in-process central (tests).

Paired (``session``: ``host/pairing.py``): the first control write is a HELLO challenge
instead of a PING, and a device is kept only if it answers it with the pairing key
(``proven``); otherwise it is disconnected, remembered in ``rejected`` and reported,
and every other device with the same name (or the paired ``address``) is tried in
turn. A neighbour's sensor, or a rogue device squatting the name, is never used.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError
from bleak_retry_connector import establish_connection

from spasmwatch.firmware import ble_link as gatt
from spasmwatch.firmware import config, control
from spasmwatch.host.links.base import LinkError, LinkLost
from spasmwatch.host.pairing import Session

__all__ = ["BACKEND_ENV", "BleBackend", "BleLink", "BleStats", "discover_sensors",
           "resolve_backend"]

log = logging.getLogger("spasmwatch.link.ble")

BACKEND_ENV = "SPASMWATCH_BLE_BACKEND"
MAX_QUEUED_PACKETS = 4096  # notifications waiting for recv(): bounded, oldest dropped
ATT_HEADER = 3  # opcode + handle: an ATT payload is at most MTU - 3 bytes
HELLO_TIMEOUT_S = 3.0  # a device that has not proved the key by then is not ours


@dataclass(frozen=True)
class BleBackend:
    """Which bleak backend classes to use, and the extra keyword arguments they take."""

    scanner: type[BaseBleakScanner] | None = None
    client: type[BaseBleakClient] | None = None
    kwargs: tuple[tuple[str, Any], ...] = ()
    label: str = "system Bluetooth"

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = dict(self.kwargs)
        if self.scanner is not None:
            opts["backend"] = self.scanner
        return opts

    def client_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = dict(self.kwargs)
        if self.client is not None:
            opts["backend"] = self.client
        return opts


def resolve_backend(backend: object = None) -> BleBackend:
    """``None`` / ``"bumble:SPEC"`` / a ``BumbleCentral`` / a ``BleBackend`` -> BleBackend."""
    if isinstance(backend, BleBackend):
        return backend
    if backend is None:
        backend = os.environ.get(BACKEND_ENV) or None
    if backend is None or backend == "system":
        return BleBackend()
    from spasmwatch.host.links import bleak_bumble

    if isinstance(backend, bleak_bumble.BumbleCentral):
        return BleBackend(bleak_bumble.BumbleScanner, bleak_bumble.BumbleClient,
                          (("bumble", backend),), "Bumble (in-process)")
    if isinstance(backend, str) and backend.startswith("bumble:") and len(backend) > 7:
        spec = backend[len("bumble:"):]
        return BleBackend(bleak_bumble.BumbleScanner, bleak_bumble.BumbleClient,
                          (("bumble", spec),), f"Bumble ({spec})")
    raise LinkError(
        f"unknown BLE backend {backend!r}: use 'system' or 'bumble:TRANSPORT' "
        "(e.g. bumble:tcp-client:127.0.0.1:9100)"
    )


def _looks_like_address(text: str) -> bool:
    parts = text.split(":")
    return (len(parts) == 6 and all(len(p) == 2 for p in parts)) or len(text) == 36


async def discover_sensors(
    timeout: float = 5.0, backend: object = None
) -> list[tuple[BLEDevice, AdvertisementData]]:
    """Every spasmwatch sensor advertising within ``timeout`` s (strongest first)."""
    be = resolve_backend(backend)
    try:
        found = await BleakScanner.discover(
            timeout=timeout, return_adv=True, service_uuids=[config.SERVICE_UUID],
            **be.options(),
        )
    except BleakError as exc:
        raise LinkError(f"cannot scan with {be.label}: {exc}") from exc
    return sorted(found.values(), key=lambda item: -item[1].rssi)


@dataclass
class BleStats:
    """Counts for one link instance."""

    packets_in: int = 0
    controls_out: int = 0
    overflow_packets: int = 0  # dropped because nobody called recv() for too long
    connects: int = 0


class BleLink:
    """The ``Link`` protocol over Bluetooth LE (bleak; any backend)."""

    name = "ble"

    def __init__(
        self,
        name_or_address: str,
        *,
        backend: object = None,
        scan_timeout: float = 10.0,
        connect_attempts: int = 3,
        max_queued: int = MAX_QUEUED_PACKETS,
        session: Session | None = None,
        address: str = "",
    ) -> None:
        if not name_or_address:
            raise LinkError("BLE sensor name or address is empty")
        self.target = name_or_address
        # A bad backend is reported by open() (a LinkError the daemon shows), not here.
        self._backend_error: LinkError | None = None
        try:
            self.backend = resolve_backend(backend)
        except LinkError as exc:
            self.backend = BleBackend()
            self._backend_error = exc
        self.scan_timeout = scan_timeout
        self.connect_attempts = connect_attempts
        self.max_queued = max_queued
        self.stats = BleStats()
        self.device: BLEDevice | None = None
        self._client: BleakClient | None = None
        self._queue: asyncio.Queue[bytes | LinkLost] = asyncio.Queue()
        self._lost: LinkLost | None = None
        self._control: BleakGATTCharacteristic | None = None
        self.session = session
        self.address = address  # the paired sensor's address, when known: tried first
        self.proven = False  # the connected device answered HELLO with the pairing key
        self.rejected: list[tuple[str, str]] = []  # (address, reason) of devices refused
        self._hello: asyncio.Future[bool] | None = None
        self.hello_answer: bytes | None = None

    # -- Link protocol -------------------------------------------------------------------

    @property
    def mtu(self) -> int:
        """The negotiated ATT MTU (23 until an exchange; BlueZ always reports 23)."""
        return self._client.mtu_size if self._client is not None else 23

    async def open(self) -> None:
        if self._backend_error is not None:
            raise self._backend_error
        if self._client is not None and self._client.is_connected:
            return
        self.proven = False
        if self.session is None:
            await self._connect(await self._find())
            return
        # Paired: the remembered address first, then every device with the name.
        tried: set[str] = set()
        queue: list[BLEDevice] = []
        try:
            queue.append(await self._find(self.address or None))
        except LinkError:
            if not self.address:
                raise
        scanned = False
        while queue or not scanned:
            if not queue:
                # The first device did not prove the key: look at every one with the name.
                scanned = True
                queue = [d for d in await self._candidates() if d.address not in tried]
                continue
            device = queue.pop(0)
            if device.address in tried:
                continue
            tried.add(device.address)
            try:
                await self._connect(device)
            except LinkError as exc:
                self.rejected.append((device.address, str(exc)))
                if "pairing key" in str(exc):
                    self.session.rejected.append((time.time(), device.address))
                log.warning("%s", exc)
                continue
            if self.proven:
                return
        raise LinkError(
            f"no paired spasmwatch sensor answered: {len(self.rejected)} device(s) "
            f"{'at ' + self.address if self.address else 'named ' + repr(self.target)} "
            "did not prove the pairing key and were ignored (a neighbour's sensor, a rogue "
            "device, or this sensor paired with another computer: `spasmwatch pair`)"
        )

    async def _candidates(self) -> list[BLEDevice]:
        """Every device advertising the service with the target name (paired mode)."""
        try:
            found = await BleakScanner.discover(
                timeout=min(self.scan_timeout, 3.0), return_adv=True,
                service_uuids=[config.SERVICE_UUID], **self.backend.options())
        except BleakError as exc:
            raise LinkError(f"cannot scan with {self.backend.label}: {exc}") from exc
        return [dev for dev, adv in found.values()
                if (adv.local_name or dev.name) == self.target
                or dev.address.upper() == self.target.upper()]

    async def _connect(self, device: BLEDevice) -> None:
        self._queue = asyncio.Queue()
        self._lost = None
        try:
            client = await establish_connection(
                BleakClient, device, self.target,
                disconnected_callback=self._on_disconnect,
                max_attempts=self.connect_attempts,
                use_services_cache=False,
                **self.backend.client_options(),
            )
        except (BleakError, TimeoutError) as exc:
            raise LinkError(f"{self.target}: could not connect over BLE: {exc}") from exc
        self._client = client
        try:
            await self._subscribe(client)
            if self.session is not None:
                await self._prove(device)
        except BaseException:
            await self._disconnect()
            raise
        self.device = device
        self.stats.connects += 1
        log.info("connected to %s (%s), ATT MTU %d%s", self.target, device.address, self.mtu,
                 ", pairing key proven" if self.proven else "")

    async def _prove(self, device: BLEDevice) -> None:
        assert self._hello is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._hello), HELLO_TIMEOUT_S)
        except TimeoutError:
            raise LinkError(
                f"ignored BLE device {device.address} advertising as {self.target!r}: it "
                f"did not prove the pairing key within {HELLO_TIMEOUT_S:g} s (not the "
                "paired sensor)") from None
        finally:
            self._hello = None
        self.proven = True

    async def recv(self) -> bytes:
        if self._lost is not None and self._queue.empty():
            raise self._lost
        if self._client is None and self._queue.empty():
            raise LinkLost(f"{self.target}: BLE link is not open")
        item = await self._queue.get()
        if isinstance(item, LinkLost):
            self._lost = item
            raise item
        return item

    async def send_control(self, payload: bytes) -> None:
        client, ctl = self._client, self._control
        if client is None or ctl is None or not client.is_connected:
            raise LinkLost(f"{self.target}: BLE link is not connected")
        limit = min(control.MAX_CONTROL, self.mtu - ATT_HEADER)
        if not 0 < len(payload) <= limit:
            raise ValueError(f"control payload of {len(payload)} bytes (1..{limit} allowed)")
        try:
            await client.write_gatt_char(ctl, bytes(payload), response=True)
        except (BleakError, TimeoutError, OSError) as exc:
            raise LinkLost(f"{self.target}: control write failed: {exc}") from exc
        self.stats.controls_out += 1

    async def close(self) -> None:
        await self._disconnect()

    # -- internals -----------------------------------------------------------------------

    async def _find(self, address: str | None = None) -> BLEDevice:
        want = address or self.target
        by_address = _looks_like_address(want)

        def match(dev: BLEDevice, adv: AdvertisementData) -> bool:
            if by_address:
                return dev.address.upper() == want.upper()
            return (adv.local_name or dev.name) == want

        try:
            device = await BleakScanner.find_device_by_filter(
                match, timeout=self.scan_timeout, service_uuids=[config.SERVICE_UUID],
                **self.backend.options(),
            )
        except BleakError as exc:
            raise LinkError(f"cannot scan for {want} with {self.backend.label}: {exc}") \
                from exc
        if device is None:
            raise LinkError(
                f"no spasmwatch sensor {'at' if by_address else 'named'} {want!r} advertised "
                f"within {self.scan_timeout:g} s: is it switched on, charged, in range and "
                "not connected to another host?"
            )
        return device

    async def _subscribe(self, client: BleakClient) -> None:
        service = client.services.get_service(config.SERVICE_UUID)
        if service is None:
            raise LinkError(
                f"{self.target} has no spasmwatch service ({config.SERVICE_UUID}): "
                "not a spasmwatch sensor, or firmware too old"
            )
        chars = {c.uuid: c for c in service.characteristics}
        missing = [u for u in (gatt.EVENT_UUID, gatt.STATUS_UUID, gatt.CONTROL_UUID)
                   if u not in chars]
        if missing:
            raise LinkError(f"{self.target}: spasmwatch service lacks {', '.join(missing)}")
        self._control = chars[gatt.CONTROL_UUID]
        try:
            await client.start_notify(chars[gatt.EVENT_UUID], self._on_notify)
            await client.start_notify(chars[gatt.STATUS_UUID], self._on_notify)
            # The first control write tells the sensor we listen (firmware/ble_link.py):
            # it holds its packets until then. It answers the PING with a reply packet.
            if self.session is not None:
                # Paired: the first write is the challenge; its answer proves the device.
                self._hello = asyncio.get_running_loop().create_future()
                first = self.session.hello()
            else:
                first = control.encode_ping(self.stats.connects)
            await client.write_gatt_char(self._control, first, response=True)
        except (BleakError, TimeoutError) as exc:
            raise LinkError(f"{self.target}: cannot subscribe to notifications: {exc}") \
                from exc

    def _on_notify(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        hello = self._hello
        if hello is not None and self.session is not None and not hello.done() \
                and self.session.accept_hello(bytes(data)):
            self.hello_answer = bytes(data)  # AuthLink hands it on as the first reply
            hello.set_result(True)
            return
        if self._queue.qsize() >= self.max_queued:
            try:
                self._queue.get_nowait()  # oldest goes; its seq gap is backfilled later
                self.stats.overflow_packets += 1
            except asyncio.QueueEmpty:
                pass
        self.stats.packets_in += 1
        self._queue.put_nowait(bytes(data))

    def _on_disconnect(self, _client: BleakClient) -> None:
        self._queue.put_nowait(LinkLost(
            f"{self.target}: BLE link lost (out of range, switched off or restarted)"
        ))
        self._control = None

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        self._control = None
        if client is None:
            return
        try:
            await client.disconnect()
        except (BleakError, TimeoutError, OSError) as exc:
            log.debug("disconnect %s: %s", self.target, exc)
