"""systemd ``sd_notify`` without a dependency: READY, WATCHDOG pings, STATUS, STOPPING.

systemd passes ``NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace) and,
with ``WatchdogSec=``, ``WATCHDOG_USEC``. The daemon sends ``READY=1`` once monitoring
runs and ``WATCHDOG=1`` at half the watchdog interval from the loop that does the work, so
a hung loop gets the service restarted. Outside systemd every call is a harmless no-op.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


def notify(message: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one notification datagram; False when not under systemd or on error."""
    env = os.environ if env is None else env
    addr = env.get("NOTIFY_SOCKET", "")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]  # abstract namespace socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(addr)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


class Watchdog:
    """The service's side of ``Type=notify`` + ``WatchdogSec=``."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        usec = self.env.get("WATCHDOG_USEC", "")
        pid = self.env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID, when set, names the process that must ping: it may not be us.
        mine = not pid or pid == str(os.getpid())
        self.timeout_s = int(usec) / 1e6 if usec.isdigit() and mine else None

    @property
    def enabled(self) -> bool:
        return self.timeout_s is not None

    @property
    def ping_every_s(self) -> float | None:
        """How often to ping: half the timeout, as systemd recommends."""
        return None if self.timeout_s is None else self.timeout_s / 2

    def ready(self, status: str = "monitoring") -> bool:
        return notify(f"READY=1\nSTATUS={status}", self.env)

    def ping(self) -> bool:
        return notify("WATCHDOG=1", self.env)

    def status(self, text: str) -> bool:
        return notify(f"STATUS={text}", self.env)

    def stopping(self) -> bool:
        return notify("STOPPING=1", self.env)
