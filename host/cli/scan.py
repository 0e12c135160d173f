"""``spasmwatch scan``: list Bluetooth LE devices advertising the spasmwatch service.

Uses bleak's ``BleakScanner`` filtered on ``firmware/config.py``'s ``SERVICE_UUID``; a
``backend`` (a bleak backend class, e.g. the Bumble one for a virtual radio) can be
passed for tests and simulations (``--ble-backend bumble:SPEC``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import dataclass
from typing import Any, TextIO

from spasmwatch.firmware import config as fwconfig
from spasmwatch.host.cli import argtypes
from spasmwatch.host.errors import UserError

__all__ = ["Found", "register", "scan_devices"]


@dataclass(frozen=True)
class Found:
    address: str
    name: str | None
    rssi: int


async def scan_devices(timeout: float = 5.0, backend: type | None = None,
                       **backend_kwargs: Any) -> list[Found]:
    """Devices advertising ``SERVICE_UUID``, strongest signal first."""
    from bleak import BleakScanner

    kwargs: dict[str, Any] = dict(backend_kwargs)
    if backend is not None:
        kwargs["backend"] = backend
    found = await BleakScanner.discover(
        timeout, return_adv=True, service_uuids=[fwconfig.SERVICE_UUID], **kwargs
    )
    want = fwconfig.SERVICE_UUID.lower()
    out = [
        Found(dev.address, adv.local_name or dev.name, adv.rssi)
        for dev, adv in found.values()
        if want in (u.lower() for u in adv.service_uuids)
    ]
    return sorted(out, key=lambda f: -f.rssi)


def _backend(spec: str | None) -> tuple[type | None, dict[str, Any]]:
    if not spec:
        return None, {}
    kind, _, rest = spec.partition(":")
    if kind != "bumble" or not rest:
        raise UserError(f"--ble-backend {spec!r}: expected bumble:TRANSPORT")
    from spasmwatch.host.links.bleak_bumble import BumbleScanner

    return BumbleScanner, {"bumble": rest}


def cmd_scan(args: argparse.Namespace, out: TextIO) -> int:
    if args.timeout <= 0:
        raise UserError("--timeout must be positive")
    backend, kw = _backend(args.ble_backend)
    try:
        found = asyncio.run(scan_devices(args.timeout, backend, **kw))
    except Exception as exc:  # bleak raises BleakError / OSError without an adapter
        raise UserError(f"cannot scan for Bluetooth devices: {exc}") from exc
    for f in found:
        if args.json:
            out.write(json.dumps({"address": f.address, "name": f.name, "rssi": f.rssi}) + "\n")
        else:
            out.write(f"{f.address}  {f.rssi:4d} dBm  {f.name or '(no name)'}\n")
    if not found and not args.json:
        out.write("no spasmwatch sensor found (is it on and in range?)\n")
    return 0


def register(subparsers: Any) -> None:
    s = subparsers.add_parser("scan", help="list spasmwatch sensors nearby (Bluetooth LE)")
    s.add_argument("--timeout", type=argtypes.TIMEOUT_S, default=5.0, help="seconds to listen (5)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--ble-backend", metavar="SPEC", help="e.g. bumble:tcp-client:HOST:PORT")
    s.set_defaults(func=cmd_scan)
