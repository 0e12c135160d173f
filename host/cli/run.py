"""``spasmwatch run``: monitor a sensor all night over serial, BLE or a simulation.

Settings are loaded once (``--config``, else ``$SPASMWATCH_CONFIG``, else the default
file if present, else the built-in defaults with the local audible alarm) and the whole
monitor is built by ``host/compose.py``, the same way for every link, ``demo`` and the
systemd unit. It runs until Ctrl-C / SIGTERM (exit 0) or, for a simulation, the end of
the scenario. Output is plain lines for a parent (``host/cli/terminal.py``), or JSON
lines with ``--json``; times are the local wall clock.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from spasmwatch.firmware import config as fwconfig
from spasmwatch.host.cli import argtypes
from spasmwatch.host.cli.terminal import ParentTerminal
from spasmwatch.host.compose import SensorSource, build_monitor, load_for_cli
from spasmwatch.host.errors import UserError
from spasmwatch.host.monitor.outputs import LinkNote, Output
from spasmwatch.host.settings import set_field

__all__ = ["default_db_path", "register", "cmd_run"]


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/spasmwatch/spasmwatch.db`` (``~/.local/share/...`` by default)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "spasmwatch" / "spasmwatch.db"


def register(subparsers: Any) -> None:
    r = subparsers.add_parser(
        "run", help="monitor the sensor all night (serial, BLE or simulation)",
        description="Connect to the sensor and keep monitoring: reconnects, backfills "
        "missing packets, raises a fault when data stops, sounds the alarm. Ctrl-C stops it.",
    )
    src = r.add_mutually_exclusive_group()
    src.add_argument("--serial", metavar="PORT", help="USB serial port (e.g. /dev/ttyACM0)")
    src.add_argument("--ble", nargs="?", const=fwconfig.DEVICE_NAME, metavar="NAME|ADDRESS",
                     help=f"Bluetooth LE device (default name {fwconfig.DEVICE_NAME!r})")
    src.add_argument("--simulate", metavar="SCENARIO",
                     help="no hardware: the firmware on a virtual board plays a scenario")
    r.add_argument("--ble-backend", metavar="SPEC",
                   help="bleak backend for --ble, e.g. bumble:tcp-client:127.0.0.1:PORT")
    r.add_argument("--speed", type=argtypes.SPEED, default=1.0,
                   help="--simulate: times real time (0: as fast as possible)")
    r.add_argument("--seed", type=argtypes.SEED, default=1, help="--simulate: scenario seed")
    r.add_argument("--link", choices=("serial", "ble"), default="serial",
                   help="--simulate: reach the board over its USB serial port (default) "
                   "or Bluetooth LE (a real Bluetooth stack on a virtual radio)")
    r.add_argument("--db", help=f"SQLite file (default {default_db_path()}; "
                   "--simulate: in memory, nothing is saved)")
    r.add_argument("--device", help="device name in the database (default: the link's)")
    r.add_argument("--json", action="store_true", help="JSON lines on stdout")
    r.add_argument("--quiet", action="store_true", help="alerts and clusters only")
    r.add_argument("--verbose", action="store_true",
                   help="also every movement with its measurements (mg, tilt)")
    r.add_argument("--heartbeat", type=argtypes.HEARTBEAT_S, metavar="S",
                   help="fault when no packet arrives for this long "
                   "(default: [monitor] heartbeat_timeout_s, 30 s)")
    r.add_argument("--config", help="settings file (TOML, see docs/alerts.md; default "
                   "$SPASMWATCH_CONFIG or ~/.config/spasmwatch/config.toml if present)")
    r.add_argument("--insecure", action="store_true",
                   help="monitor without a paired, authenticated link (NOT recommended: "
                   "any nearby device could fake or hide alarms; see docs/security.md)")
    r.add_argument("--no-alerts", action="store_true",
                   help="monitor and record only: no sound, no phone, no web page")
    r.add_argument("--min-spasms", type=argtypes.MIN_SPASMS,
                   help="spasm-like events for an alarm (3)")
    r.add_argument("--gap", type=argtypes.GAP_S, help="max gap between them in s (60)")
    r.set_defaults(func=cmd_run)


def _source(args: argparse.Namespace) -> tuple[SensorSource, str]:
    """The sensor, and a note to say at start (why a simulation runs in-process)."""
    if args.simulate:
        from spasmwatch.host.links.sim_link import simulated_board

        board, note = simulated_board(args.simulate, seed=args.seed, speed=args.speed,
                                      link=args.link)
        # A simulated board pairs itself (the in-process one has no radio to guard).
        session = board.session() if hasattr(board, "session") else None
        return SensorSource(board=board, session=session), note
    if args.link != "serial":
        raise UserError("--link is for --simulate; use --serial PORT or --ble for a sensor")
    if args.serial is None and args.ble is None:
        raise UserError("choose the sensor: --serial PORT, --ble [NAME|ADDRESS] or "
                        "--simulate SCENARIO (see 'spasmwatch scan' for BLE devices)")
    # Only the paired sensor is believed (host/pairing.py, docs/security.md): an unpaired
    # host refuses to monitor with one line, unless --insecure.
    from spasmwatch.host.pairing import session_for_run

    session = session_for_run(args.insecure, args.config)
    if args.serial:
        return SensorSource(serial=args.serial, session=session), ""
    return SensorSource(ble=args.ble, ble_backend=args.ble_backend, session=session), ""
    raise UserError("choose the sensor: --serial PORT, --ble [NAME|ADDRESS] or "
                    "--simulate SCENARIO (see 'spasmwatch scan' for BLE devices)")


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    if not args.speed >= 0 or args.speed == float("inf"):
        raise UserError("--speed must be a finite number, 0 or more")
    settings = load_for_cli(args.config)
    if args.heartbeat is not None:
        set_field(settings, "monitor", "heartbeat_timeout_s", args.heartbeat, "--heartbeat")
    if args.min_spasms is not None:
        set_field(settings, "patterns", "alarm_min_spasms", args.min_spasms, "--min-spasms")
    if args.gap is not None:
        set_field(settings, "patterns", "spasm_gap_s", args.gap, "--gap")
    source, sim_note = _source(args)
    terminal = ParentTerminal(out, verbose=args.verbose, quiet=args.quiet)

    def emit(o: Output) -> None:
        if args.json:
            out.write(json.dumps(o.to_json(), default=str) + "\n")
            out.flush()
        else:
            terminal(o)

    db = args.db if args.db is not None else (None if source.simulated else default_db_path())
    monitor = build_monitor(
        settings, source, emit, db=db, device=args.device, alerts=not args.no_alerts,
        check_clock=not (source.simulated and args.speed != 1.0))

    def say(message: str, state: str = "start") -> None:
        emit(LinkNote(time.time(), state, message))

    say(f"settings: {settings.source}")
    if sim_note:
        say(sim_note, "in-process")
    if source.session is None and not source.simulated:
        say("INSECURE (--insecure): packets are not authenticated; any nearby device could "
            "fake or hide alarms.")
    if args.no_alerts:
        say("ALERTS ARE OFF (--no-alerts): nothing will sound or be sent; movements are "
            "only shown here and recorded.")
    if db is None:
        say("simulation: nothing is saved (pass --db FILE to keep the record)")
    else:
        say(f"record: {monitor.store.path}")
    code = monitor.run()
    if source.simulated:
        # The summary of a simulation: what the firmware sent, what the host got.
        say(f"simulation over: {monitor.engine.summary_line()}, "
            f"{monitor.daemon.connects} connection(s), {monitor.daemon.replies} replies"
            + ("; nothing was saved" if db is None else ""), "summary")
    return code


if __name__ == "__main__":  # pragma: no cover - convenience
    from spasmwatch.host.cli.main import main

    sys.exit(main(["run", *sys.argv[1:]]))
