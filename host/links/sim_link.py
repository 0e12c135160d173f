"""``--simulate``: the real firmware on the virtual board, reached like a USB sensor.

``SimulatedBoard`` generates a scenario trace and starts ``simulator.board_runner.
BoardRunner`` on it: the unmodified ``firmware/main.py`` under the real MicroPython
interpreter, reading a virtual MPU-6050, its USB serial port a real pseudo-terminal.
The host reaches it with the ordinary ``SerialLink`` on ``board.port`` -- the same code
path as ``run --serial /dev/ttyACM0``. Nothing here stands in for the firmware.

The board runs the trace at ``speed`` x real time (0: as fast as possible) and keeps
that pace after the trace (``after_end="keep"``) holding the last sample (a still
baby), so its status packets soon carry a device time past the end of the scenario.
``is_over(t_ms)`` says when a record's device time shows the scenario is over; the
caller (``cmd_run``, ``cmd_demo``) then ends the daemon as if the data source had ended.

Bytes the firmware writes before the host opens the port are lost (pyserial flushes its
input on open); the daemon recovers them from the board's ring buffer on first contact
(``Daemon`` asks for everything up to the sequence number a command reply carries).

``link="ble"`` also starts the sensor's virtual radio, ``simulator/ble_bridge.py`` (a
Bumble peripheral, in its own Python process), and boots the board with
``SPASMWATCH_BLE_BRIDGE`` pointing at it, so the firmware's own ``ble_link.BleLink``
advertises and notifies through a real Bluetooth stack. The host then connects with
``host.links.ble_link.BleLink(board.ble_name, backend=board.ble_backend)``
(``bumble:tcp-client:127.0.0.1:PORT``: its own virtual controller on the same radio).
``stop()`` ends the board and then the bridge.

The board pairs itself: it boots with a fresh random key (``key``), and ``session()``
is the host's side of it (``host/pairing.py``), so a simulation runs the same
authenticated link as a paired sensor; ``connect()`` makes the authenticated link.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import tempfile
import time
from typing import Any

from spasmwatch.firmware import config as fwconfig
from spasmwatch.host.errors import UserError

__all__ = [
    "END_MARGIN_MS", "LINKS", "BleBridgeProcess", "SimulatedBoard", "check_scenario",
    "simulated_board",
]

LINKS = ("serial", "ble")  # how the host reaches the simulated board

# Device time after the last trace sample before the scenario counts as over: the board
# starts sampling within a second of boot, an event is closed after quiet_ms (400 ms)
# and sent with the next FIFO batch (500 ms).
END_MARGIN_MS = 3000


def check_scenario(name: str) -> None:
    """UserError unless ``name`` is a scenario the simulator knows."""
    from spasmwatch.simulator import scenarios

    if name not in scenarios.SCENARIOS:
        raise UserError(f"unknown scenario {name!r}; choose from: "
                        + ", ".join(sorted(scenarios.SCENARIOS)))


def simulated_board(scenario: str, seed: int = 1, speed: float = 1.0,
                    link: str = "serial") -> tuple[Any, str]:
    """(board, note): the virtual board, or without MicroPython the firmware's detector
    in this process (``host/links/inprocess_board.py``) and a one-line note saying so."""
    from spasmwatch.host import optional

    check_scenario(scenario)
    if optional.find_micropython() is not None:
        if link == "ble" and not optional.has_module("bumble"):
            raise UserError(optional.bumble_message())
        return SimulatedBoard(scenario, seed=seed, speed=speed, link=link), ""
    if link != "serial":  # the virtual radio needs the firmware's own BLE code
        raise UserError(f"--link {link} needs the virtual board: "
                        + optional.micropython_message())
    from spasmwatch.host.links.inprocess_board import InProcessBoard

    return InProcessBoard(scenario, seed=seed, speed=speed), optional.in_process_note()


class BleBridgeProcess:
    """``python -m spasmwatch.simulator.ble_bridge`` as a child process (loopback ports).

    Its own process keeps Bumble's asyncio loop apart from the daemon's, as the radio
    is apart from the host in real life. It gets SIGTERM if this process dies.
    """

    def __init__(self, start_timeout_s: float = 20.0) -> None:
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.firmware_port = 0
        self.hci_port = 0
        self._log: Any = None

    @property
    def backend(self) -> str:
        """The bleak backend spec for ``BleLink`` (a fresh central per connection)."""
        return f"bumble:tcp-client:127.0.0.1:{self.hci_port}"

    def start(self) -> None:
        from spasmwatch.simulator.board_runner import _die_with_parent

        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spasmwatch.simulator.ble_bridge"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log,
            preexec_fn=_die_with_parent, close_fds=True,
        )
        assert self.proc.stdout is not None
        ports: dict[str, int] = {}
        buf = b""
        deadline = time.monotonic() + self.start_timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while "hci-port" not in ports or "firmware-port" not in ports:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.stop()
                    raise UserError("the virtual Bluetooth radio did not start in time")
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    err = self.log().strip().splitlines()
                    self.stop()
                    raise UserError("the virtual Bluetooth radio stopped: "
                                    + (err[-1] if err else "no message"))
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    key, _, value = line.decode().partition(" ")
                    if key in ("hci-port", "firmware-port"):
                        ports[key] = int(value)
        self.firmware_port = ports["firmware-port"]
        self.hci_port = ports["hci-port"]

    def log(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self) -> int | None:
        proc, self.proc = self.proc, None
        code = None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()  # the bridge closes its servers on SIGTERM
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            code = proc.returncode
            if proc.stdout is not None:
                proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


class SimulatedBoard:
    """A scenario played by the firmware under MicroPython on a virtual board."""

    device_name = "sim"
    ble_name = fwconfig.DEVICE_NAME  # what the firmware advertises

    def __init__(self, scenario: str, seed: int = 1, speed: float = 1.0,
                 heapsize: str | None = "320k", trace: Any = None,
                 labels: Any = None, link: str = "serial") -> None:
        from spasmwatch.simulator import scenarios

        if link not in LINKS:
            raise UserError(f"unknown link {link!r}; choose from: {', '.join(LINKS)}")
        self.link = link
        self.bridge: BleBridgeProcess | None = None
        if trace is None:
            check_scenario(scenario)
            trace, labels = scenarios.generate(scenario, seed=seed)
        self.scenario = scenario
        self.trace = trace
        self.labels = labels
        from spasmwatch.host.pairing import new_key

        self.key = new_key()  # the board pairs itself (docs/security.md)
        self._session: Any = None
        self.speed = speed
        self.heapsize = heapsize
        self.runner: Any = None
        self.end_ms = 0  # device ms after which the scenario is over (after start)
        self.firmware_log = ""  # what the firmware wrote to stderr (after stop)
        # (device ms, monotonic s) of the first record past the end the host saw
        self.over_since: tuple[int, float] | None = None

    def start(self) -> str:
        """Boot the board; returns its serial port (a pty path)."""
        from spasmwatch.simulator.board_runner import BoardError, BoardRunner

        cfg = fwconfig.DetectorConfig()
        env_key = "SPASMWATCH_BLE_BRIDGE"
        saved = os.environ.pop(env_key, None)  # BLE only when asked for (link="ble")
        try:
            if self.link == "ble":
                self.bridge = BleBridgeProcess()
                self.bridge.start()
                os.environ[env_key] = f"127.0.0.1:{self.bridge.firmware_port}"
            # Over BLE a fast board must not keep racing after the trace: notifications
            # are flow-controlled (10 in flight), so a flood would only be lost and
            # resent; real time after the end is what a sensor does anyway.
            after_end = "realtime" if self.link == "ble" else "keep"
            self.runner = BoardRunner(self.trace, speed=self.speed, end="hold",
                                      after_end=after_end, heapsize=self.heapsize, cfg=cfg,
                                      key=self.key)
            port = self.runner.start()  # the process takes a copy of the environment
        except BoardError as exc:
            self.stop()
            raise UserError(f"cannot start the virtual board: {exc}") from exc
        finally:
            os.environ.pop(env_key, None)
            if saved is not None:
                os.environ[env_key] = saved
        stream = self.runner.stream
        n = len(stream.counts) if stream is not None else 0
        self.end_ms = n * 1000 // cfg.rate_hz + END_MARGIN_MS
        return port

    def session(self) -> Any:
        """The host's pairing session with this board (one per board: counters)."""
        if self._session is None:
            from spasmwatch.host.pairing import Session

            self._session = Session(self.key)
        return self._session

    def connect(self) -> Any:
        """A fresh authenticated link to the started board (serial or BLE)."""
        from spasmwatch.host.links.auth_link import AuthLink

        if self.link == "ble":
            from spasmwatch.host.links.ble_link import BleLink

            inner: Any = BleLink(self.ble_name, backend=self.ble_backend,
                                 session=self.session())
        else:
            from spasmwatch.host.links.serial_link import SerialLink

            inner = SerialLink(self.port)
        return AuthLink(inner, self.session())

    @property
    def ble_backend(self) -> str:
        """``BleLink`` backend reaching the board's radio (``link="ble"``, after start)."""
        return self.bridge.backend if self.bridge is not None else ""

    @property
    def port(self) -> str:
        return self.runner.port if self.runner is not None else ""

    @property
    def duration_s(self) -> float:
        return float(self.trace.duration)

    def is_over(self, t_ms: int) -> bool:
        """True when a stream record with device time ``t_ms`` lies past the scenario."""
        return self.runner is not None and t_ms >= self.end_ms

    def running(self) -> bool:
        return self.runner is not None and self.runner.running()

    def stop(self) -> int | None:
        """Stop the MicroPython process, then the radio (safe to call twice); exit code."""
        runner, self.runner = self.runner, None
        code = None
        if runner is not None:
            code = runner.stop()
            self.firmware_log = runner.log()
        bridge, self.bridge = self.bridge, None
        if bridge is not None:
            bridge.stop()
        return code

    def __enter__(self) -> SimulatedBoard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
