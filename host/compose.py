"""The composition root: the one place that builds a monitor from settings.

``demo``, ``run`` (serial, BLE, simulation) and the systemd unit (which runs ``run``)
all call ``build_monitor``: link, engine, store, alarm state and delivery, video and
the start-up self-check come from one ``Settings`` object loaded by ``load_for_cli``
(``--config``, else ``$SPASMWATCH_CONFIG``, else the default file if it exists, else
the built-in defaults, which include the local audible alarm). Monitoring without alert
delivery happens only when the caller asks for it (``alerts=False``, the ``--no-alerts``
flag), and the monitor then says so at start.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import signal
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spasmwatch.firmware import config as fwconfig
from spasmwatch.host.daemon import Daemon, DaemonConfig, MonitorEngine, resume_from_store
from spasmwatch.host.errors import UserError
from spasmwatch.host.links.base import Link
from spasmwatch.host.monitor.outputs import DATA_OUTPUTS, LinkNote, Output
from spasmwatch.host.monitor.store import Store
from spasmwatch.host.settings import Settings, load_settings

Emit = Callable[[Output], None]

__all__ = ["Monitor", "SensorSource", "SimulationEnd", "build_monitor", "load_for_cli",
           "open_store"]


def load_for_cli(config: str | None) -> Settings:
    """Settings as every command loads them: ``--config`` must exist; otherwise
    ``$SPASMWATCH_CONFIG`` / the default file are used when present, else defaults."""
    return load_settings(config, must_exist=bool(config))


@dataclass
class SensorSource:
    """Where the data comes from: exactly one of a serial port, a BLE device or a
    simulated board (``board``: a ``SimulatedBoard``, started by the monitor)."""

    serial: str | None = None
    ble: str | None = None
    ble_backend: str | None = None
    board: Any = None
    # The pairing (host/pairing.py ``Session``): verifies every packet, signs every
    # command. None only with --insecure (or a board with nothing to guard).
    session: Any = None

    @property
    def simulated(self) -> bool:
        return self.board is not None

    def device_name(self) -> str:
        return self.board.device_name if self.board is not None else fwconfig.DEVICE_NAME

    def connector(self) -> Callable[[], Link]:
        """A function making a fresh link per connection attempt."""
        if self.board is not None:
            # The board's own link: its serial port or radio (authenticated with the key
            # it paired itself with), or the in-process board's queue.
            connect: Callable[[], Link] = self.board.connect
            return connect
        if self.serial:
            from spasmwatch.host.links.serial_link import SerialLink

            port = self.serial

            def inner() -> Link:
                return SerialLink(port)
        elif self.ble is not None:
            try:
                from spasmwatch.host.links.ble_link import BleLink
            except ImportError as exc:
                raise UserError(f"Bluetooth LE is not available: {exc}") from exc
            target = self.ble
            kwargs: dict[str, Any] = {}
            if self.ble_backend:
                kwargs["backend"] = self.ble_backend
            if self.session is not None:  # only the device that proves the key
                kwargs["session"] = self.session

            def inner() -> Link:
                return BleLink(target, **kwargs)
        else:
            raise UserError("choose the sensor: --serial PORT, --ble [NAME|ADDRESS] or "
                            "--simulate SCENARIO (see 'spasmwatch scan' for BLE devices)")
        if self.session is None:
            return inner
        from spasmwatch.host.links.auth_link import AuthLink

        session = self.session
        return lambda: AuthLink(inner(), session)


# Real seconds the backfill gets after a simulated scenario is over (the daemon gives a
# range up after 3 requests 5 s apart).
GIVE_UP_S = 15.0


@dataclass
class SimulationEnd:
    """End the daemon once a record's device time is past the simulated scenario.

    Only when no packet is missing any more and no backfill is under way (first contact
    answered, every RESEND done: over BLE at ``--speed 0`` the board can be past the
    scenario before the host has even connected), or when the device has gone on for
    another minute regardless (what is still missing stays missing), counted from the
    first record past the end the host saw and lasting at least ``give_up_s`` of real
    time (at ``--speed 0`` a device minute passes in a fraction of a second).
    """

    board: Any
    give_up_s: float = GIVE_UP_S
    over_since: tuple[int, float] | None = None

    def observe(self, daemon: Daemon, o: Output) -> None:
        if not isinstance(o, DATA_OUTPUTS):
            return
        t_ms = o.record.t_ms
        if not self.board.is_over(t_ms) or daemon.finished:
            return
        if self.over_since is None:
            self.over_since = (t_ms, time.monotonic())
        ms0, wall0 = self.over_since
        complete = daemon.engine.missing == 0 and not daemon.backfilling
        if complete or (t_ms - ms0 >= 60_000 and time.monotonic() - wall0 >= self.give_up_s):
            daemon.end_of_data()


def open_store(db: str | Path | None) -> Store:
    """The SQLite record: ``":memory:"``/None for none, else a file (folder created)."""
    if db is None or str(db) == ":memory:":
        return Store(":memory:")
    path = Path(db)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{path.parent}: cannot create folder: {exc}") from exc
    try:
        return Store(path)
    except Exception as exc:  # sqlite3.Error, schema mismatch: one clear line
        raise UserError(f"{path}: cannot open database: {exc}") from exc


def lock_record(store: Store) -> int | None:
    """Hold ``<db>.lock`` while one monitor records into ``store``; returns its fd.

    Two monitors on one record (the service and a `run` in a terminal) would each take
    the other's packets for duplicates and mix two sensors' nights: the second one stops
    with one line instead. ``flock`` is released however the holder ends (even SIGKILL).
    """
    if store.path == ":memory:" or store.path.startswith("file::memory:"):
        return None
    lock = Path(store.path + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise UserError(f"{lock}: cannot create the record's lock file: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            os.close(fd)  # no locks on this file system (some NFS): record unguarded
            return None
        holder = os.pread(fd, 16, 0).decode("ascii", "replace").strip()
        os.close(fd)
        pid = f" (pid {holder})" if holder.isdigit() else ""
        raise UserError(f"{store.path}: another spasmwatch monitor is already recording here"
                        f"{pid}; stop it first, or record elsewhere with --db") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    except OSError:
        pass  # only a hint for the message above (a full disk must not stop the night)
    return fd


@dataclass
class Monitor:
    """Everything one night needs, built by ``build_monitor``; ``run()`` then ``close()``."""

    settings: Settings
    source: SensorSource
    store: Store
    engine: MonitorEngine
    daemon: Daemon
    hub: Any = None  # alerts.delivery.AlertHub, None only with alerts=False
    video: Any = None  # records.alarm_video.AlarmVideo when [video] source is set
    sim_end: SimulationEnd | None = None
    notes: list[str] = field(default_factory=list)  # what was said at start
    record_lock: int | None = None  # lock_record's fd, released by close()

    def run(self) -> int:
        """Start the board (simulation) and video, monitor until stopped, clean up."""
        try:
            if self.video is not None:
                # Before the sensor: the camera ring must already hold the pre-roll when
                # the first alarm comes.
                self.video.start(self.store)
            if self.source.board is not None:
                self.source.board.start()
            code = asyncio.run(run_daemon(self.daemon))
            if self.video is not None:
                self.video.stop()  # clips under way get their post-roll and are recorded
            return code
        finally:
            self.close()

    def close(self) -> None:
        if self.video is not None:
            self.video.stop()  # no-op after a clean stop; ends ffmpeg after an error
        if self.source.board is not None:
            self.source.board.stop()
        self.store.close()
        if self.record_lock is not None:
            os.close(self.record_lock)  # releases the flock
            self.record_lock = None


def build_monitor(
    settings: Settings,
    source: SensorSource,
    emit: Emit,
    *,
    db: str | Path | None,
    device: str | None = None,
    alerts: bool = True,
    check_clock: bool = True,
    daemon_config: DaemonConfig | None = None,
) -> Monitor:
    """Build the monitor for one night from ``settings`` (see the module docstring).

    ``emit`` gets every output (records, alerts, link changes, delivery outcomes) in
    order; it is where the terminal, ``--json`` or a test listens. ``check_clock=False``
    for an accelerated simulation, whose device clock runs ahead of the wall by design.
    """
    connect = source.connector()
    store = open_store(db)
    record_lock: int | None = None
    try:
        record_lock = lock_record(store)
        if not check_clock:
            settings.monitor.clock_tolerance_s = 86400.0
        engine = MonitorEngine(settings.patterns, store=store,
                               device=device or source.device_name(),
                               heartbeat_s=settings.monitor.heartbeat_timeout_s,
                               verifier=source.session)
        sim_end = SimulationEnd(source.board) if source.board is not None else None
        daemon_ref: list[Daemon] = []

        def emit_all(o: Output) -> None:
            try:
                emit(o)
            finally:  # a failing terminal must not keep a simulation from ending
                if sim_end is not None and daemon_ref:
                    sim_end.observe(daemon_ref[0], o)

        resumed = resume_from_store(engine, store, time.time())
        if resumed:
            emit(LinkNote(time.time(), "resumed",
                          f"resumed from {store.path} ({resumed} recent records)"))
        hub = None
        if alerts:
            from spasmwatch.host.alerts.delivery import AlertHub

            hub = AlertHub(settings, store, on_output=emit_all, faults=engine.faults)
        video = None
        if settings.video.source:
            from spasmwatch.host.records.alarm_video import AlarmVideo

            video = AlarmVideo(settings.video, emit_all)
        daemon = Daemon(connect, engine, emit_all, daemon_config or DaemonConfig(), hub=hub)
        daemon_ref.append(daemon)
        if video is not None:
            daemon.observers.append(video.observe)
    except BaseException:
        store.close()
        if record_lock is not None:
            os.close(record_lock)
        raise
    return Monitor(settings, source, store, engine, daemon, hub, video, sim_end,
                   record_lock=record_lock)


HANGUP_MESSAGE = ("the terminal hung up (SIGHUP): monitoring and alarms go on; stop it "
                  "with Ctrl-C in a terminal, `kill PID` (SIGTERM) or systemctl")


def _detach_hung_up_terminal() -> None:
    """Point stdout/stderr at /dev/null if their terminal has hung up.

    A hung-up tty answers every write with EIO: the lines would fail one by one and the
    final flush would end the process with an error. A ``kill -HUP`` with the terminal
    still there leaves it alone (its ioctls still work).
    """
    for fd in (1, 2):
        try:
            termios.tcgetattr(fd)
        except termios.error as exc:
            if exc.args and exc.args[0] == errno.EIO:  # hung up (ENOTTY: not a tty)
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, fd)
                os.close(null)


def _hung_up(daemon: Daemon) -> None:
    """The terminal went away (an SSH session dropped, a window closed): keep watching.

    SIGHUP's default would end the monitor at once and silently, in the middle of a
    night; its lines now go nowhere, but the alarm sound and the other channels do not
    need the terminal (a failing terminal never stops the alarms: ``Daemon._out``).
    """
    try:
        _detach_hung_up_terminal()
    except OSError:
        pass
    try:
        daemon.emit({"type": "link", "t": time.time(), "state": "hangup",
                     "message": HANGUP_MESSAGE})
    except Exception:  # noqa: BLE001 - the terminal is gone: nothing to write on
        pass


async def run_daemon(daemon: Daemon) -> int:
    """Run ``daemon`` with Ctrl-C and SIGTERM ending it cleanly (exit 0); SIGHUP (the
    terminal closed) does not end it."""
    loop = asyncio.get_running_loop()
    handlers: list[tuple[signal.Signals, Callable[[], None]]] = [
        (signal.SIGINT, daemon.stop), (signal.SIGTERM, daemon.stop),
        (signal.SIGHUP, lambda: _hung_up(daemon)),
    ]
    for sig, handler in handlers:
        try:
            loop.add_signal_handler(sig, handler)
        except (NotImplementedError, RuntimeError):  # not the main thread / Windows
            pass
    try:
        return await daemon.run()
    finally:
        for sig, _ in handlers:
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):
                pass
