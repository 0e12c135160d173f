"""Desktop notification through ``desktop-notifier`` (D-Bus on Linux).

Convenience only: a notification bubble says nothing about whether anyone saw it, so this
channel never counts as delivered (``confirms = False``) and its failures never raise a
fault. Alarms are sent with critical urgency so they stay on screen.
"""

from __future__ import annotations

from spasmwatch.host.alerts.alarm_state import Notice
from spasmwatch.host.alerts.channels.base import Channel, DeliveryError
from spasmwatch.host.optional import missing_message


class DesktopChannel(Channel):
    name = "desktop"
    confirms = False

    def __init__(self, app_name: str = "spasmwatch") -> None:
        self.app_name = app_name
        self._notifier: object | None = None

    async def send(self, notice: Notice) -> str:
        try:
            from desktop_notifier import DesktopNotifier, Urgency
        except ImportError:  # an optional dependency
            raise DeliveryError(missing_message("desktop_notifier")) from None
        if self._notifier is None:
            self._notifier = DesktopNotifier(app_name=self.app_name)
        urgency = Urgency.Critical if notice.level in ("alarm", "fault") else Urgency.Normal
        try:
            await self._notifier.send(  # type: ignore[attr-defined]
                title=notice.title, message=notice.body(), urgency=urgency)
        except Exception as exc:  # D-Bus missing, no notification server, ...
            raise DeliveryError(f"desktop notification failed: {exc}") from None
        return "handed to the desktop (cannot confirm it was seen)"
