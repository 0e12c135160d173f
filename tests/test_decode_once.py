"""Each packet is decoded once on its way in: the daemon decodes at the entry and hands
the decoded packet on (to the engine, or to its own path for replies and snippets)."""

from __future__ import annotations

import asyncio

import pytest

from spasmwatch.firmware import control, wire
from spasmwatch.host.daemon import Daemon, DaemonConfig, MonitorEngine
from spasmwatch.host.links.base import Link
from spasmwatch.host.monitor.outputs import EventOutput, Output, StatusOutput

T0 = 1_700_000_000.0


class ListLink(Link):
    """Hands out the given packets, then ends (like a finished simulation)."""

    name = "list"

    def __init__(self, packets: list[bytes]) -> None:
        self.packets = list(packets)
        self.sent: list[bytes] = []

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def recv(self) -> bytes:
        await asyncio.sleep(0)
        if not self.packets:
            raise EOFError
        return self.packets.pop(0)

    async def send_control(self, payload: bytes) -> None:
        self.sent.append(payload)


def test_every_packet_is_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = wire.decode

    def counting(data: bytes, *args: object, **kwargs: object) -> tuple[int, tuple]:
        calls.append(bytes(data))
        return real(data, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(wire, "decode", counting)
    status = (wire.KIND_STATUS, 5_000, 3900, wire.ST_SENSOR_OK, 10, 80, 50, 4)
    event = (wire.KIND_EVENT, 6_000, wire.CLS_SPASM_LIKE, wire.STATE_SETTLING, 1, 1000, 400,
             100, 40, 150, 7)
    reply = (wire.KIND_REPLY, 7_000, control.PING, control.RESULT_OK, 0)
    packets = [wire.encode(0, status), wire.encode(1, event), wire.encode(1, reply),
               b"\x00garbage"]
    outs: list[Output] = []
    link = ListLink(packets)
    engine = MonitorEngine(heartbeat_s=1e9)
    daemon = Daemon(lambda: link, engine, outs.append,
                    DaemonConfig(set_time=False, snippets=False), clock=lambda: T0)
    asyncio.run(daemon.run())
    assert sorted(calls) == sorted(packets)  # each one, once: the first too (t0 anchor)
    assert engine.anchored and engine.t0 == T0 - 5.0
    assert [type(o) for o in outs if isinstance(o, (StatusOutput, EventOutput))] == [
        StatusOutput, EventOutput]
    assert daemon.replies == 1 and engine.decode_errors == 1
