"""What every delivery channel provides, and how a delivery's outcome is described.

A channel either delivers a notice or raises ``DeliveryError`` with a one-line reason;
the hub records both and turns a failure into a fault on the channels still working.
``confirms`` is False for channels that cannot tell whether anything reached a person
(desktop notifications): they are never counted as delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spasmwatch.host.alerts.alarm_state import Notice


class DeliveryError(Exception):
    """A channel could not deliver; the message says why, in one line."""


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one notice on one channel: ok is True, False, or None (sent, but
    the channel cannot confirm anything reached a person)."""

    channel: str
    ok: bool | None
    detail: str

    @property
    def label(self) -> str:
        return {True: "delivered", False: "FAILED", None: "sent (unconfirmed)"}[self.ok]


class Channel:
    """Base class: override ``send``; the rest are optional hooks."""

    name = "channel"
    confirms = True

    async def start(self) -> None:
        """Open connections (called once by the hub)."""

    async def stop(self) -> None:
        """Close connections and stop background work."""

    async def send(self, notice: Notice) -> str:
        """Deliver ``notice``; return a short detail, or raise ``DeliveryError``."""
        raise NotImplementedError

    async def check(self) -> tuple[bool, str]:
        """The start-up self-check: (works, one plain line). Must not alert anyone."""
        return True, "configured"

    def silence(self) -> None:
        """Stop anything still sounding (an acknowledgement arrived)."""

    async def publish_state(self, snapshot: dict[str, Any]) -> None:
        """Show the current alarm state (channels with a status display)."""
