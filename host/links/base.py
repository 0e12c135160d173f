"""The interface every host-side link implements, and its errors.

A link moves raw wire packets (``firmware/wire.py``, ≤ 20 bytes each) from the sensor
to the host and control payloads (``firmware/control.py``) back. The daemon only
talks to this interface, so serial, BLE and the simulator are interchangeable.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class LinkError(Exception):
    """The link could not be opened; ``str()`` is one line a person can act on."""


class LinkLost(Exception):
    """An open link dropped (cable pulled, out of range, device reset)."""


@runtime_checkable
class Link(Protocol):
    """Async transport of wire packets; one instance per connection attempt is fine."""

    name: str

    async def open(self) -> None:
        """Connect; raise LinkError with a clear reason if that is impossible."""
        ...

    async def recv(self) -> bytes:
        """Return the next raw wire packet; raise LinkLost when the link drops."""
        ...

    async def send_control(self, payload: bytes) -> None:
        """Send one control payload to the device; raise LinkLost if not connected."""
        ...

    async def close(self) -> None:
        """Disconnect and release resources; safe to call twice."""
        ...
