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
"""

from __future__ import annotations

from typing import Any

from spasmwatch.firmware import config as fwconfig
from spasmwatch.host.errors import UserError

__all__ = ["END_MARGIN_MS", "SimulatedBoard", "check_scenario"]

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


class SimulatedBoard:
    """A scenario played by the firmware under MicroPython on a virtual board."""

    device_name = "sim"

    def __init__(self, scenario: str, seed: int = 1, speed: float = 1.0,
                 heapsize: str | None = "256k", trace: Any = None,
                 labels: Any = None) -> None:
        from spasmwatch.simulator import scenarios

        if trace is None:
            check_scenario(scenario)
            trace, labels = scenarios.generate(scenario, seed=seed)
        self.scenario = scenario
        self.trace = trace
        self.labels = labels
        self.speed = speed
        self.heapsize = heapsize
        self.runner: Any = None
        self.end_ms = 0  # device ms after which the scenario is over (after start)
        self.firmware_log = ""  # what the firmware wrote to stderr (after stop)

    def start(self) -> str:
        """Boot the board; returns its serial port (a pty path)."""
        from spasmwatch.simulator.board_runner import BoardError, BoardRunner

        cfg = fwconfig.DetectorConfig()
        self.runner = BoardRunner(self.trace, speed=self.speed, end="hold",
                                  after_end="keep", heapsize=self.heapsize, cfg=cfg)
        try:
            port = self.runner.start()
        except BoardError as exc:
            raise UserError(f"cannot start the virtual board: {exc}") from exc
        stream = self.runner.stream
        n = len(stream.counts) if stream is not None else 0
        self.end_ms = n * 1000 // cfg.rate_hz + END_MARGIN_MS
        return port

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
        """Stop the MicroPython process (safe to call twice); its exit code."""
        runner, self.runner = self.runner, None
        if runner is None:
            return None
        code = runner.stop()
        self.firmware_log = runner.log()
        return code

    def __enter__(self) -> SimulatedBoard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
