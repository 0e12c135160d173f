"""``spasmwatch pair``: pair this computer with a sensor over its USB cable.

    spasmwatch pair --port /dev/ttyACM0 [--name NAME] [--config FILE]
    spasmwatch pair --port PORT --wipe     # remove the key from sensor and computer
    spasmwatch pair --show                 # what this computer is paired with

Physical access is the proof: the sensor accepts a new key (PAIR) only on its USB
serial port. A fresh random 128-bit key is sent, the sensor stores it in a file on
its flash and starts a new boot counter, then it must answer a HELLO challenge with
that key before the key is kept on this computer (``pairing.json``, mode 0600, beside
the settings file). See docs/security.md.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any, TextIO

from spasmwatch.firmware import auth, control, wire
from spasmwatch.firmware import config as fwconfig
from spasmwatch.host.errors import UserError
from spasmwatch.host.pairing import (
    PAIRING_FILE,
    Pairing,
    Session,
    forget_pairing,
    load_pairing,
    new_key,
    pairing_summary,
    save_pairing,
    settings_folder,
)

__all__ = ["pair_over_serial", "register", "cmd_pair"]

REPLY_TIMEOUT_S = 5.0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "pair", help="pair this computer with a sensor over its USB cable",
        description="Make a new random key, store it on the sensor (over USB: physical "
        "access is the proof) and beside the settings file (mode 0600). Afterwards 'run' "
        "accepts only packets signed with it and connects only to this sensor.",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--port", help="the sensor's USB serial port, e.g. /dev/ttyACM0")
    what.add_argument("--show", action="store_true", help="show the current pairing")
    p.add_argument("--wipe", action="store_true",
                   help="with --port: remove the key from the sensor and this computer")
    p.add_argument("--name", default=fwconfig.DEVICE_NAME,
                   help=f"the sensor's Bluetooth name (default {fwconfig.DEVICE_NAME!r})")
    p.add_argument("--config", help="settings file whose folder keeps the key "
                   "(default: the one `spasmwatch config` uses)")
    p.set_defaults(func=cmd_pair)


async def _reply(link: Any, opcode: int, check: Any, timeout_s: float) -> tuple:
    """The first reply to ``opcode`` that ``check(packet)`` accepts (or UserError)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (left := deadline - loop.time()) > 0:
        try:
            data = await asyncio.wait_for(link.recv(), left)
        except TimeoutError:
            break
        if wire.peek_kind(data) != wire.KIND_REPLY or len(data) < 9 or data[7] != opcode:
            continue
        rec = check(data)
        if rec is not None:
            return rec
    raise UserError(f"{link.port}: no answer to {control.NAMES[opcode].upper()} within "
                    f"{timeout_s:g} s: is spasmwatch firmware running on it "
                    "(`spasmwatch flash`)?")


async def pair_over_serial(port: str, key: bytes, timeout_s: float = REPLY_TIMEOUT_S) -> int:
    """Send ``key`` (16 zero bytes: unpair) and check the sensor took it; its boot count."""
    from spasmwatch.host.links.serial_link import SerialLink

    link = SerialLink(port)
    await link.open()
    try:
        await link.send_control(control.encode_pair(key))
        wipe = key == bytes(len(key))

        def accepted(data: bytes) -> tuple | None:
            def verifier(body: bytes, tag: bytes) -> bool:
                boot = int.from_bytes(body[9:13], "little")
                return auth.same(auth.packet_tag(key, boot, body), tag)

            try:
                _, rec = wire.decode(data, None if wipe else verifier)
            except wire.WireError:
                return None
            return rec

        rec = await _reply(link, control.PAIR, accepted, timeout_s)
        if rec[3] != control.RESULT_OK:
            raise UserError(f"{port}: the sensor refused the key "
                            f"({control.RESULT_NAMES[rec[3]]}): its flash may be full")
        if wipe:
            return int(rec[4])
        # The proof that the key is in place: a signed answer to a fresh challenge.
        session = Session(key)
        await link.send_control(session.hello())
        await _reply(link, control.HELLO,
                     lambda d: (1,) if session.accept_hello(d) else None, timeout_s)
        return int(session.boot or 0)
    finally:
        await link.close()


def cmd_pair(args: argparse.Namespace, out: TextIO) -> int:
    folder = settings_folder(args.config)
    if args.show:
        p = load_pairing(folder)
        out.write(f"paired: {pairing_summary(p)}\n" if p is not None else
                   "not paired: connect the sensor by USB and run "
                   "`spasmwatch pair --port PORT`\n")
        return 0
    if args.wipe:
        asyncio.run(pair_over_serial(args.port, bytes(auth.KEY_LEN)))
        forget_pairing(folder)
        out.write(f"sensor on {args.port} unpaired (key removed from it) and "
                  f"{folder / PAIRING_FILE} removed\n")
        return 0
    key = new_key()
    boot = asyncio.run(pair_over_serial(args.port, key))
    pairing = Pairing(key=key, name=args.name, paired_at=time.time(), port=args.port)
    path = save_pairing(folder, pairing)
    out.write(f"paired with the sensor on {args.port} (key id {pairing.key_id}, boot {boot}); "
              f"key kept in {path} (mode 0600)\n"
              f"`spasmwatch run --ble {args.name}` now accepts only this sensor\n")
    return 0
