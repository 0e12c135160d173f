"""Push, SMS, phone calls and e-mail through apprise URLs (ntfy, Pushover, Telegram,
Signal, Twilio, mailto, ...).

Each URL is sent separately so the result says which succeeded; any URL failing makes
the delivery fail (a parent relying on that phone would not get it). URLs are never
logged in full: they carry tokens.
"""

from __future__ import annotations

from spasmwatch.host.alerts.alarm_state import Notice
from spasmwatch.host.alerts.channels.base import Channel, DeliveryError
from spasmwatch.host.optional import MissingLibrary, require
from spasmwatch.host.settings import redact_url


def _notify_type(level: str) -> str:
    return {"alarm": "failure", "fault": "warning", "warning": "warning"}.get(level, "info")


def check_url(url: str) -> str | None:
    """None when apprise understands ``url``, else a reason (for ``config check``)."""
    try:
        apprise = require("apprise")
    except MissingLibrary as exc:
        return str(exc)
    ap = apprise.Apprise()
    return None if ap.add(url) else f"{redact_url(url)} is not a URL apprise understands"


class AppriseChannel(Channel):
    def __init__(self, name: str, urls: list[str]) -> None:
        self.name = name
        self.urls = list(urls)

    async def check(self) -> tuple[bool, str]:
        """Every URL must be one apprise understands (nothing is sent)."""
        try:
            bad = [r for r in (check_url(u) for u in self.urls) if r is not None]
        except ImportError:
            return False, "missing optional library apprise (pip install apprise)"
        if bad:
            return False, "; ".join(bad)
        return True, f"{len(self.urls)} URL(s) understood (nothing sent)"

    async def send(self, notice: Notice) -> str:
        try:
            apprise = require("apprise")
        except MissingLibrary as exc:
            raise DeliveryError(str(exc)) from None

        ok: list[str] = []
        failed: list[str] = []
        for i, url in enumerate(self.urls, 1):
            label = f"#{i} {redact_url(url)}"
            ap = apprise.Apprise()
            if not ap.add(url):
                failed.append(f"{label} (not understood)")
                continue
            res = await ap.async_notify(
                body=notice.body(), title=notice.title, notify_type=_notify_type(notice.level))
            (ok if bool(res) else failed).append(label)
        if failed:
            raise DeliveryError(
                f"{len(failed)} of {len(self.urls)} URL(s) failed: {', '.join(failed)}")
        return f"{len(ok)} URL(s) accepted it"
