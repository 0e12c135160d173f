"""``spasmwatch flash``: install the firmware onto a MicroPython board (or show the plan).

    spasmwatch flash --port /dev/ttyACM0 [--name NAME] [--set NAME=VALUE ...]
                     [--key-file FILE] [--mpy [--march ARCH]] [--no-reset]
    spasmwatch flash --dry-run [...]      # list files, sizes, hashes, config; no board
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, TextIO

from spasmwatch.host.errors import UserError
from spasmwatch.host.flash import (
    FlashError,
    FolderTransport,
    MpremoteTransport,
    Transport,
    build_plan,
    flash,
    format_plan,
    parse_setting,
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "flash",
        help="install the firmware onto a board running MicroPython",
        description="Copy the firmware to a MicroPython board with mpremote, verify every "
        "file by its SHA-256 computed on the board, write the per-device config and reset "
        "the board. MicroPython itself is installed with esptool: see docs/flashing.md.",
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--port", help="serial port of the board, e.g. /dev/ttyACM0")
    target.add_argument("--dry-run", action="store_true",
                        help="show what would be copied (no board needed)")
    target.add_argument("--folder", help=argparse.SUPPRESS)  # simulated board (tests, HIL)
    p.add_argument("--name", help="device name advertised over Bluetooth (DEVICE_NAME)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a firmware/config.py constant on this device (repeatable)")
    p.add_argument("--key-file", help="install this authentication key (spasmwatch.key)")
    p.add_argument("--mpy", action="store_true",
                   help="compile to .mpy with mpy-cross first (smaller, faster import)")
    p.add_argument("--march", default="xtensawin",
                   help="mpy-cross architecture for --mpy (default xtensawin: ESP32-S3)")
    p.add_argument("--no-reset", action="store_true", help="do not reset the board afterwards")
    p.add_argument("--pair", action="store_true",
                   help="then pair it over the same USB port (spasmwatch pair)")
    p.set_defaults(func=cmd_flash)


def _settings(args: argparse.Namespace) -> dict[str, object]:
    settings = dict(parse_setting(s) for s in args.set)
    if args.name is not None:
        settings["DEVICE_NAME"] = args.name
    return settings


def _key(args: argparse.Namespace) -> bytes | None:
    if not args.key_file:
        return None
    try:
        return Path(args.key_file).read_bytes()
    except OSError as exc:
        raise UserError(f"{args.key_file}: cannot read key file ({exc.strerror})") from None


def _transport(args: argparse.Namespace) -> Transport:
    if args.folder:
        return FolderTransport(Path(args.folder))
    port = str(args.port)
    if port.startswith("/dev/") and not os.path.exists(port):
        raise UserError(f"{port}: no such serial port (is the board plugged in?)")
    return MpremoteTransport(port)


def cmd_flash(args: argparse.Namespace, out: TextIO) -> int:
    try:
        plan = build_plan(_settings(args), mpy=args.mpy, march=args.march, key=_key(args))
    except FlashError as exc:
        raise UserError(str(exc)) from None
    try:
        if args.dry_run:
            out.write(format_plan(plan))
            return 0
        transport = _transport(args)

        def progress(msg: str) -> None:
            out.write(msg + "\n")
            out.flush()

        result = flash(plan, transport, reset=not args.no_reset, progress=progress)
    except FlashError as exc:
        raise UserError(str(exc)) from None
    finally:
        plan.cleanup()
    out.write(
        f"flashed: {len(result.copied)} copied, {len(result.unchanged)} unchanged, "
        f"{len(result.removed)} removed; all {len(result.verified)} files verified\n"
    )
    if args.port is None:
        return 0
    if args.pair and not args.no_reset:
        # Physical access is the proof: pair over the cable the board was flashed over.
        from spasmwatch.host.cli.main import main

        return main(["pair", "--port", args.port], out)
    out.write(f"next: pair it, so that only this sensor is believed: "
              f"spasmwatch pair --port {args.port}\n")
    return 0
