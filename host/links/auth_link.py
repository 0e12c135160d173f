"""An authenticated link: any ``Link`` wrapped with the pairing session's challenge.

``AuthLink(inner, session)`` opens ``inner``, sends a HELLO challenge and waits for the
device's answer signed with the pairing key (``host/pairing.py`` ``Session``); a
device that cannot answer is not the paired sensor and ``open`` raises ``LinkError``.
Stream packets that arrive before the answer cannot be verified yet and are dropped:
the daemon gets them again by sequence number (on first contact the device's whole
ring, later the gap or the tail that the next packet or reply shows): the answer
itself is handed on as the first packet, a reply whose sequence number tells the
daemon how far the device had got. Every control payload is signed on its way out.
A link that already proved the device (``inner.proven``: the BLE link tries each
candidate this way) is not challenged twice.
"""

from __future__ import annotations

import asyncio
import logging

from spasmwatch.firmware import control, wire
from spasmwatch.host.links.base import Link, LinkError
from spasmwatch.host.pairing import Session

__all__ = ["AuthLink", "prove"]

log = logging.getLogger("spasmwatch.link.auth")

HELLO_TIMEOUT_S = 5.0
HELLO_TRIES = 3  # a HELLO or its answer can be lost on a busy link


async def prove(link: Link, session: Session, timeout_s: float = HELLO_TIMEOUT_S,
                tries: int = HELLO_TRIES) -> tuple[bytes, int]:
    """Challenge the device on ``link``: (its answer, packets dropped before it)."""
    skipped = 0
    loop = asyncio.get_running_loop()
    for _ in range(tries):
        await link.send_control(session.hello())
        deadline = loop.time() + timeout_s / tries
        while True:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                data = await asyncio.wait_for(link.recv(), left)
            except TimeoutError:
                break
            if session.accept_hello(data):
                return data, skipped
            skipped += 1
    raise LinkError(
        f"the device on {link.name} did not prove the pairing key within {timeout_s:g} s: "
        "it is not the paired sensor, or it was paired with another computer "
        "(pair again with `spasmwatch pair --port PORT`)"
    )


class AuthLink:
    """The ``Link`` protocol with the challenge on open and signed commands."""

    def __init__(self, inner: Link, session: Session,
                 hello_timeout_s: float = HELLO_TIMEOUT_S) -> None:
        self.inner = inner
        self.session = session
        self.name = inner.name
        self.hello_timeout_s = hello_timeout_s
        self.skipped = 0  # packets dropped while the device proved itself
        self._answer: bytes | None = None

    async def open(self) -> None:
        await self.inner.open()
        if getattr(self.inner, "proven", False):
            self._answer = getattr(self.inner, "hello_answer", None)
            await self._trust()
            return
        try:
            self._answer, skipped = await prove(self.inner, self.session,
                                                self.hello_timeout_s)
            self.skipped += skipped
            await self._trust()
        except BaseException:
            await self.inner.close()
            raise

    async def _trust(self) -> None:
        # A signed command at once: a paired sensor streams over BLE only to a central
        # that signed one (firmware/app.py may_stream), and the stream should resume
        # right after the answer, not after the daemon's first command.
        try:
            await self.send_control(control.encode_ping(0))
        except BaseException:
            await self.inner.close()
            raise

    async def recv(self) -> bytes:
        while True:
            if self._answer is not None:
                data, self._answer = self._answer, None
                return data
            data = await self.inner.recv()
            if wire.peek_kind(data) != wire.KIND_REPLY:
                return data
            if len(data) > 7 and data[7] == control.HELLO:
                # The answer to a HELLO sent again after a lost one: link business only.
                if not self.session.accept_hello(data):
                    log.debug("late or foreign HELLO answer dropped")
                continue
            try:
                _, rec = wire.decode(data, self.session)
            except wire.WireError:
                return data  # the ingest counts it
            self.session.note_reply(rec)
            return data

    async def send_control(self, payload: bytes) -> None:
        await self.inner.send_control(self.session.sign(payload))

    async def close(self) -> None:
        await self.inner.close()
