"""Serial link over a real pty with pyserial: frames, garbage, control, unplug."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pty_device import Item, PtyDevice, status

from spasmwatch.firmware import control, framing, wire
from spasmwatch.host.links.base import Link, LinkError, LinkLost
from spasmwatch.host.links.serial_link import PROBE_TOKEN, SerialLink, crc_ok


def run(coro):  # noqa: ANN001, ANN201 - tiny helper
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_missing_port_is_a_clear_link_error(tmp_path: Path) -> None:
    link = SerialLink(str(tmp_path / "ttyACM9"))
    with pytest.raises(LinkError, match=r"ttyACM9: no such port$"):
        run(link.open())
    run(link.close())  # safe on a link that never opened


def test_implements_the_link_protocol() -> None:
    assert isinstance(SerialLink("/dev/null"), Link)


def test_packets_arrive_and_garbage_between_frames_is_counted(tmp_path: Path) -> None:
    port = tmp_path / "ttyACM0"
    packets = [wire.encode(i, status(10.0 * i)) for i in range(3)]

    async def scenario() -> tuple[list[bytes], SerialLink]:
        with PtyDevice([], port) as dev:
            link = SerialLink(str(port))
            await link.open()
            dev.write_raw(framing.encode(packets[0]))
            # A MicroPython traceback, then a frame glued to REPL text without a zero.
            dev.write_raw(b"Traceback (most recent call last):\r\n  File \"main.py\"\r\n\x00")
            dev.write_raw(b">>> " + framing.encode(packets[1]))
            dev.write_raw(b"\xff\xfe\x00" + framing.encode(packets[2]))
            got = [await link.recv() for _ in range(4)]
            # The first is the reply to the link's probe PING (sent on open).
            assert wire.decode(got.pop(0))[1][2:4] == (control.PING, control.RESULT_OK)
            await link.close()
            return got, link

    got, link = run(scenario())
    assert got == packets
    assert link.stats.frames_in == 4
    assert link.stats.garbage_bytes >= len(b">>> ") + 2 + 40
    assert link.stats.bad_frames >= 2


def test_control_payloads_reach_the_device(tmp_path: Path) -> None:
    port = tmp_path / "ttyACM0"

    async def scenario(dev: PtyDevice) -> bytes:
        link = SerialLink(str(port))
        await link.open()
        await link.send_control(control.encode_ping(1234))
        reply = await link.recv()
        if wire.decode(reply)[1][4] == PROBE_TOKEN:  # the link's own probe on open
            reply = await link.recv()
        await link.close()
        return reply

    with PtyDevice([], port) as dev:
        reply = run(scenario(dev))
    assert (control.PING, (1234,)) in dev.controls
    _, rec = wire.decode(reply)
    assert rec[0] == wire.KIND_REPLY and rec[2:] == (control.PING, control.RESULT_OK, 1234)


def test_unplugged_port_raises_link_lost_and_recv_keeps_failing(tmp_path: Path) -> None:
    port = tmp_path / "ttyACM0"

    async def scenario(dev: PtyDevice) -> SerialLink:
        link = SerialLink(str(port))
        await link.open()  # returns once the device has spoken (its status packet)
        dev.unplug()
        with pytest.raises(LinkLost):
            while True:
                await link.recv()  # what arrived before the unplug, then LinkLost
        with pytest.raises(LinkLost):
            await link.recv()
        with pytest.raises(LinkLost):
            await link.send_control(control.encode_ping())
        await link.close()
        await link.close()
        return link

    with PtyDevice([Item(0.0, status(0.0))], port, speed=1.0) as dev:
        run(scenario(dev))


def test_crc_ok_accepts_packets_only() -> None:
    pkt = wire.encode(7, status(1.0))
    assert crc_ok(pkt)
    assert not crc_ok(pkt[:-1] + bytes([pkt[-1] ^ 1]))
    assert not crc_ok(b"abc")
