"""``spasmwatch run``: monitor a sensor all night over serial, BLE or a simulation.

Picks the link from the options, opens the store (a file under the user's data folder
by default; a simulation uses memory unless ``--db`` is given), resumes the sequence
state from it, and runs the ``Daemon`` until Ctrl-C / SIGTERM (exit 0) or, for a
simulation, the end of the scenario. Output is one human line per event/alert, or JSON
lines with ``--json``; times are the local wall clock.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from spasmwatch.firmware import config as fwconfig
from spasmwatch.host.cli.output import alert_config, format_output
from spasmwatch.host.errors import UserError
from spasmwatch.host.links.base import Link
from spasmwatch.host.monitor.daemon import Daemon, DaemonConfig, MonitorEngine, resume_from_store
from spasmwatch.host.monitor.store import Store

__all__ = ["default_db_path", "register", "cmd_run"]


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/spasmwatch/spasmwatch.db`` (``~/.local/share/...`` by default)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "spasmwatch" / "spasmwatch.db"


def register(subparsers: Any) -> None:
    r = subparsers.add_parser(
        "run", help="monitor the sensor all night (serial, BLE or simulation)",
        description="Connect to the sensor and keep monitoring: reconnects, backfills "
        "missing packets, raises a fault when data stops. Ctrl-C stops it.",
    )
    src = r.add_mutually_exclusive_group()
    src.add_argument("--serial", metavar="PORT", help="USB serial port (e.g. /dev/ttyACM0)")
    src.add_argument("--ble", nargs="?", const=fwconfig.DEVICE_NAME, metavar="NAME|ADDRESS",
                     help=f"Bluetooth LE device (default name {fwconfig.DEVICE_NAME!r})")
    src.add_argument("--simulate", metavar="SCENARIO",
                     help="no hardware: the firmware on a virtual board plays a scenario")
    r.add_argument("--ble-backend", metavar="SPEC",
                   help="bleak backend for --ble, e.g. bumble:tcp-client:127.0.0.1:PORT")
    r.add_argument("--speed", type=float, default=1.0,
                   help="--simulate: times real time (0: as fast as possible)")
    r.add_argument("--seed", type=int, default=1, help="--simulate: scenario seed")
    r.add_argument("--link", choices=("serial", "ble"), default="serial",
                   help="--simulate: reach the board over its USB serial port (default) "
                   "or Bluetooth LE (a real Bluetooth stack on a virtual radio)")
    r.add_argument("--db", help=f"SQLite file (default {default_db_path()}; "
                   "--simulate: in memory)")
    r.add_argument("--device", help="device name in the database (default: the link's)")
    r.add_argument("--json", action="store_true", help="JSON lines on stdout")
    r.add_argument("--quiet", action="store_true", help="alerts and clusters only")
    r.add_argument("--heartbeat", type=float, default=30.0, metavar="S",
                   help="fault when no packet arrives for this long (default 30 s)")
    r.add_argument("--config", help="alert delivery configuration (TOML, see "
                   "docs/alerts.md): sound, phone, Home Assistant, web page")
    r.add_argument("--insecure", action="store_true",  # security (issue 9)
                   help="monitor without a paired, authenticated link (NOT recommended: "
                   "any nearby device could fake or hide alarms; see docs/security.md)")
    r.add_argument("--min-spasms", type=int, help="spasm-like events for an alarm (3)")
    r.add_argument("--gap", type=float, help="max gap between them in s (60)")
    r.set_defaults(func=cmd_run)


def _local_clock_s(t: float) -> float:
    """Seconds since local midnight, so ``format_output`` prints wall-clock HH:MM:SS."""
    if t < 1e9:  # not an epoch time (should not happen in a live run)
        return t
    d = dt.datetime.fromtimestamp(t)
    return d.hour * 3600 + d.minute * 60 + d.second + d.microsecond / 1e6


def human_line(o: dict[str, Any], quiet: bool = False) -> str | None:
    """One line for a daemon output (records, alerts, link changes), local time."""
    if o["type"] == "link":
        return f"{dt.datetime.fromtimestamp(o['t']):%H:%M:%S}  LINK    {o['message']}"
    if quiet and o["type"] == "event":
        return None
    if o["type"] == "clip":
        return (f"{dt.datetime.fromtimestamp(o['t']):%H:%M:%S}  VIDEO   clip of the alarm "
                f"saved: {o['path']} ({o['end'] - o['start']:.0f} s)")
    if o["type"] == "snippet":
        state = "complete" if o["complete"] else "partial: some packets did not arrive"
        return (f"{dt.datetime.fromtimestamp(o['alert_t']):%H:%M:%S}  SNIPPET raw sensor "
                f"snippet of the alarm: {len(o['samples'])} samples, "
                f"{o['t_end'] - o['t']:.1f} s ({state})")
    shifted = {**o}
    for k in ("t", "start", "end"):
        if isinstance(o.get(k), (int, float)):
            shifted[k] = _local_clock_s(float(o[k]))
    return format_output(shifted)


def _link_factory(args: argparse.Namespace) -> tuple[Callable[[], Link], str]:
    """(a function making a fresh link per connection attempt, default device name)."""
    if args.serial:
        from spasmwatch.host.links.serial_link import SerialLink

        port = args.serial
        return (lambda: SerialLink(port)), fwconfig.DEVICE_NAME
    if args.ble is not None:
        try:
            from spasmwatch.host.links import ble_link
        except ImportError as exc:
            raise UserError(f"BLE is not available: {exc}") from exc
        kwargs: dict[str, Any] = {}
        if args.ble_backend:
            kwargs["backend"] = args.ble_backend
        if args.session is not None:  # security: only the device that proves the key
            kwargs["session"] = args.session
        target = args.ble
        return (lambda: ble_link.BleLink(target, **kwargs)), fwconfig.DEVICE_NAME
    if args.simulate:
        board = args.board
        # The board's radio (simulator/ble_bridge.py: the same BleLink as --ble, on
        # bleak's Bumble backend) or its serial port (the same SerialLink as --serial),
        # authenticated with the key the board paired itself with.
        return board.connect, board.device_name
    raise UserError("choose the sensor: --serial PORT, --ble [NAME|ADDRESS] or "
                    "--simulate SCENARIO (see 'spasmwatch scan' for BLE devices)")


def simulated_ble_connect(board: Any) -> Callable[[], Link]:
    """A fresh ``BleLink`` per connection to a started ``SimulatedBoard(link="ble")``."""
    try:
        from spasmwatch.host.links.ble_link import BleLink
    except ImportError as exc:
        raise UserError(f"BLE is not available: {exc}") from exc
    del BleLink  # security: the board's own authenticated link (sim_link.py)
    connect: Callable[[], Link] = board.connect
    return connect


def _open_store(args: argparse.Namespace) -> Store:
    if args.db is None and args.simulate:
        return Store(":memory:")
    path = Path(args.db) if args.db else default_db_path()
    if str(path) != ":memory:":
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{path.parent}: cannot create folder: {exc}") from exc
    try:
        return Store(path)
    except Exception as exc:  # sqlite3.Error, schema mismatch: one clear line
        raise UserError(f"{path}: cannot open database: {exc}") from exc


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    if args.heartbeat <= 0:
        raise UserError("--heartbeat must be positive")
    if args.speed < 0:
        raise UserError("--speed must be 0 or more")
    args.board = None
    if args.simulate:
        from spasmwatch.host.links.sim_link import SimulatedBoard, check_scenario

        check_scenario(args.simulate)
        args.board = SimulatedBoard(args.simulate, seed=args.seed, speed=args.speed,
                                    link=args.link)
    elif args.link != "serial":
        raise UserError("--link is for --simulate; use --serial PORT or --ble for a sensor")
    # security (issue 9): a paired, authenticated link (host/pairing.py) unless --insecure;
    # a simulated board pairs itself.
    from spasmwatch.host.pairing import session_for_run

    args.session = (args.board.session() if args.board is not None
                    else session_for_run(args.insecure, args.config))
    connect, device = _link_factory(args)
    if args.session is not None and args.board is None:
        from spasmwatch.host.links.auth_link import AuthLink

        inner, session = connect, args.session

        def connect() -> Link:
            return AuthLink(inner(), session)
    settings = None
    if args.config:  # alert delivery and video (settings.py); without it: terminal only
        from spasmwatch.host.settings import load_settings

        settings = load_settings(args.config, must_exist=True)
    store = _open_store(args)
    video: Any = None
    try:
        daemon: Daemon | None = None
        board = args.board

        def emit(o: dict[str, Any]) -> None:
            if args.json:
                out.write(json.dumps(o, default=str) + "\n")
            else:
                line = human_line(o, args.quiet)
                if line is not None:
                    out.write(line + "\n")
            out.flush()
            if board is not None and daemon is not None:
                end_when_over(daemon, board, o)

        if settings is not None and settings.video.source:
            # Before the sensor: the camera ring must already hold the pre-roll when
            # the first alarm comes.
            from spasmwatch.host.records.alarm_video import AlarmVideo

            video = AlarmVideo(settings.video, emit)
            video.start(store)
        if board is not None:
            board.start()  # stopped in ``finally``, also after Ctrl-C / SIGTERM
        engine = MonitorEngine(alert_config(args), store=store, device=args.device or device,
                               heartbeat_s=args.heartbeat, verifier=args.session)

        resumed = resume_from_store(engine, store, time.time())
        if resumed:
            emit({"type": "link", "t": time.time(), "state": "resumed",
                  "message": f"resumed from {store.path} ({resumed} recent records)"})
        hub = None
        if settings is not None:  # alert delivery (host/delivery.py)
            from spasmwatch.host.alerts.delivery import AlertHub

            hub = AlertHub(settings, store)
            if settings.webui.enabled:  # security: the page's address carries its token
                from spasmwatch.host.pairing import settings_folder, web_token

                w = settings.webui
                emit({"type": "link", "t": time.time(), "state": "web",
                      "message": f"web page: http://{w.host}:{w.port}/?token="
                      f"{web_token(settings_folder(args.config))}"})
        daemon = Daemon(connect, engine, emit, DaemonConfig(heartbeat_s=args.heartbeat),
                        hub=hub)
        if video is not None:
            daemon.observers.append(video.observe)
        code = asyncio.run(_run(daemon))
        if video is not None:
            video.stop()  # the clips under way get their post-roll and are recorded
        if board is not None:
            # The summary of a simulation: what the firmware sent, what the host got.
            st = engine.ingest.stats
            emit({"type": "link", "t": time.time(), "state": "summary",
                  "message": f"simulation over: {st.accepted} packets accepted, "
                  f"{engine.ingest.missing} missing, {st.duplicates} duplicates, "
                  f"{daemon.connects} connection(s), {daemon.replies} replies"})
        return code
    finally:
        if video is not None:
            video.stop()  # no-op after a clean stop; ends ffmpeg after an error
        if args.board is not None:
            args.board.stop()
        store.close()


# Real seconds the backfill gets after the scenario is over (the daemon gives a range
# up after 3 requests 5 s apart).
GIVE_UP_S = 15.0


def end_when_over(daemon: Daemon, board: Any, o: dict[str, Any]) -> None:
    """End the daemon once a record's device time is past the simulated scenario.

    Only when no packet is missing any more and no backfill is under way (first contact
    answered, every RESEND done: over BLE at ``--speed 0`` the board can be past the
    scenario before the host has even connected), or when the device has gone on for
    another minute regardless (what is still missing stays missing), counted from the
    first record past the end the host saw and lasting at least ``GIVE_UP_S`` of real
    time (at ``--speed 0`` a device minute passes in a fraction of a second).
    """
    t_ms = o.get("t_ms")
    if o.get("type") not in ("event", "summary", "status") or not isinstance(t_ms, int):
        return
    if not board.is_over(t_ms) or daemon.finished:
        return
    if getattr(board, "over_since", None) is None:
        board.over_since = (t_ms, time.monotonic())
    ms0, wall0 = board.over_since
    complete = daemon.engine.ingest.missing == 0 and not daemon.backfilling
    if complete or (t_ms - ms0 >= 60_000 and time.monotonic() - wall0 >= GIVE_UP_S):
        daemon.end_of_data()


async def _run(daemon: Daemon) -> int:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, daemon.stop)
        except (NotImplementedError, RuntimeError):  # not the main thread / Windows
            pass
    try:
        return await daemon.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):
                pass


if __name__ == "__main__":  # pragma: no cover - convenience
    from spasmwatch.host.cli.main import main

    sys.exit(main(["run", *sys.argv[1:]]))
