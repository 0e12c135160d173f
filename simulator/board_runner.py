"""Run the unmodified board firmware under real MicroPython on a virtual board.

API (stable; used by the host daemon, HIL and flash tests):

    write_counts(trace, path, cfg=None) -> SensorStream
        # the trace as the sensor would see it (simulator.replay.to_sensor_stream: the
        # one resampling/quantisation path), written as the virtual MPU-6050's counts file
    BoardRunner(trace=None, *, counts=None, speed=0.0, key=None, knobs=None, end="hold",
                after_end="realtime", heapsize=None, workdir=None, cfg=None,
                firmware_root=None)
        # firmware_root: a folder flashed by ``spasmwatch flash`` (main.py, firmware/,
        # device_config.py) to boot from instead of the repository's firmware/main.py
        .start() -> str        # starts ``micropython firmware/main.py``; returns the path
                               # of the pseudo-terminal that is the board's USB serial
        .port                  # that path (after start)
        .set_knobs(**knobs)    # change fault/board knobs while running (machine.py doc)
        .reset()               # press the reset button: a new firmware process on the
                               # same port (the host stays attached); boots counted
        .auto_reboot           # True (default): a machine.reset() or watchdog reset
                               # (exit code 3 / 5) boots the firmware again, as the board
        .boots, .exit_codes    # firmware starts so far; exit codes of the ended ones
        .ctrl_c                # KeyboardInterrupts raised by 0x03 while Ctrl-C was armed
        .running() -> bool
        .stop(timeout=5.0) -> int | None   # stop the process, close the pty; exit code
        .log() -> str          # what the firmware wrote to stderr
        .stream                # the SensorStream that was written (when given a trace)
        context manager: start on enter, stop on exit

Serial input passes through the runner on its way to the firmware, as through the
ESP32-S3's USB CDC (shared/tinyusb/mp_usbd_cdc.c): a 0x03 byte while the firmware has
Ctrl-C armed (the unix port then catches SIGINT; ``micropython.kbd_intr(-1)`` disarms
it) is dropped, pending input is discarded and KeyboardInterrupt is raised in the
firmware (SIGINT). A pty alone cannot do this: its master side has no line discipline.

The process runs ``firmware/main.py`` with MICROPYPATH = simulator/board (the virtual
``machine`` with I2C bus and MPU-6050, a ``time`` on the simulated clock) : repo :
.frozen, in a private working directory holding the key file (when ``key`` is given)
and the counts file. Its stdin and stdout are the master side of a new pseudo-
terminal (raw mode); the host opens the slave side by its path, e.g. with pyserial, as
it would open /dev/ttyACM0. Bytes the firmware writes before the host opens the port
are discarded (pyserial flushes on open; the firmware's ring buffer and RESEND recover
them). The runner keeps a slave descriptor open so the firmware never sees a hang-up.

``speed`` is simulated seconds per real second; 0 runs as fast as possible (time moves
when the firmware sleeps), and after the trace a fast run continues at real time
(``after_end="keep"`` keeps it fast). The process gets SIGTERM if the Python process
that started it dies (Linux PR_SET_PDEATHSIG), so a crashed test leaves nothing behind.

    python -m spasmwatch.simulator.board_runner --scenario spasm-cluster --speed 60
prints the port path and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty
from pathlib import Path
from typing import Any

import numpy as np

from spasmwatch.firmware import config as fwconfig
from spasmwatch.simulator.replay import SensorStream, to_sensor_stream
from spasmwatch.simulator.traceio import Trace

REPO_ROOT = Path(__file__).resolve().parent.parent
BOARD_DIR = Path(__file__).resolve().parent / "board"
MAIN = REPO_ROOT / "firmware" / "main.py"
COUNTS_MAGIC = b"SWC1"
KNOB_NAMES = (
    "i2c_fail_at", "i2c_fail_count", "i2c_errno", "absent", "whoami", "stall_at_ms",
    "stall_ms", "battery_mv", "charging", "mpu_ppm", "hang_at_ms",
)
REBOOT_CODES = (3, 5)  # machine.reset(), watchdog reset (simulator/board/machine.py)


def sigint_caught(pid: int) -> bool:
    """True when process ``pid`` has a SIGINT handler (MicroPython: Ctrl-C armed)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    except OSError:
        pass
    return False


class BoardError(RuntimeError):
    """The virtual board could not be started (one line a person can act on)."""


def write_counts(
    trace: Trace, path: str | os.PathLike[str], cfg: fwconfig.DetectorConfig | None = None
) -> SensorStream:
    """Write ``trace`` as the virtual sensor's counts file; return the stream."""
    cfg = cfg or fwconfig.DetectorConfig()
    stream = to_sensor_stream(trace, cfg)
    counts = np.ascontiguousarray(stream.counts, dtype="<i2")
    with open(path, "wb") as f:
        f.write(COUNTS_MAGIC + struct.pack("<HBB", stream.rate_hz, cfg.range_g, 0))
        f.write(counts.tobytes())
    return stream


def _die_with_parent() -> None:
    # Runs in the child before exec: SIGTERM it when the parent goes away; a closed
    # terminal (SIGHUP) does not stop the virtual sensor, as it does not stop the monitor.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class BoardRunner:
    """One virtual board: a MicroPython process running the firmware on a pty."""

    def __init__(
        self,
        trace: Trace | None = None,
        *,
        counts: str | os.PathLike[str] | None = None,
        speed: float = 0.0,
        key: bytes | None = None,
        knobs: dict[str, int] | None = None,
        end: str = "hold",
        after_end: str = "realtime",
        heapsize: str | None = None,
        workdir: str | os.PathLike[str] | None = None,
        cfg: fwconfig.DetectorConfig | None = None,
        firmware_root: str | os.PathLike[str] | None = None,
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0 (0 = as fast as possible)")
        if end not in ("hold", "stop"):
            raise ValueError("end must be 'hold' or 'stop'")
        for name in knobs or {}:
            if name not in KNOB_NAMES:
                raise ValueError(f"unknown knob {name!r}; known: {', '.join(KNOB_NAMES)}")
        self.trace = trace
        self.counts = Path(counts) if counts is not None else None
        self.speed = speed
        self.key = key
        self.knobs = dict(knobs or {})
        self.end = end
        self.after_end = after_end
        self.heapsize = heapsize
        self.cfg = cfg or fwconfig.DetectorConfig()
        self.firmware_root = Path(firmware_root) if firmware_root is not None else None
        self._own_dir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else None
        self.stream: SensorStream | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = ""
        self._master = -1
        self._slave = -1
        self._log: Any = None
        self._stdin_w = -1  # runner's end of the firmware's stdin pipe
        self._lock = threading.Lock()
        self._stopping = False
        self._pump: threading.Thread | None = None
        self._ended: subprocess.Popen[bytes] | None = None  # last process seen ended
        self._cmd: list[str] = []
        self._env: dict[str, str] = {}
        self.auto_reboot = True
        self.boots = 0
        self.exit_codes: list[int] = []
        self.ctrl_c = 0

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> str:
        if self.proc is not None:
            raise BoardError("board already started")
        from spasmwatch.host.optional import find_micropython, micropython_message

        exe = find_micropython()  # beside sys.executable first (a venv), then PATH
        if exe is None:
            raise BoardError(micropython_message())
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="spasmwatch-board-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        counts = self.counts
        if self.trace is not None:
            counts = self.workdir / "trace.counts"
            self.stream = write_counts(self.trace, counts, self.cfg)
        if self.key:
            # As `spasmwatch pair` leaves it on a board (firmware/keystore.py: hex).
            (self.workdir / fwconfig.AUTH_KEY_FILE).write_bytes(self.key.hex().encode() + b"\n")
        knob_file = self.workdir / "knobs.txt"
        self._write_knobs(knob_file)
        env = dict(os.environ)
        env.update({
            "MICROPYPATH": os.pathsep.join(
                [str(BOARD_DIR), str(self.firmware_root or REPO_ROOT), ".frozen"]
            ),
            "SPASMWATCH_SIM_SPEED": repr(float(self.speed)),
            "SPASMWATCH_SIM_END": self.end,
            "SPASMWATCH_SIM_AFTER_END": self.after_end,
            "SPASMWATCH_SIM_KNOBS": str(knob_file),
        })
        if counts is not None:
            env["SPASMWATCH_SIM_COUNTS"] = str(counts)
        else:
            env.pop("SPASMWATCH_SIM_COUNTS", None)
        cmd = [exe]
        if self.heapsize:
            cmd += ["-X", f"heapsize={self.heapsize}"]
        cmd.append(str(self.firmware_root / "main.py" if self.firmware_root else MAIN))
        self._cmd, self._env = cmd, env
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave, termios.TCSANOW)
        self.port = os.ttyname(self._slave)
        self._log = open(self.workdir / "firmware.log", "ab")  # noqa: SIM115
        self._stopping = False
        try:
            self._spawn()
        except OSError as exc:
            self._close_fds()
            raise BoardError(f"cannot start micropython: {exc}") from exc
        self._pump = threading.Thread(target=self._serial_in, daemon=True)
        self._pump.start()
        return self.port

    def _spawn(self) -> None:
        """Start a firmware process on the port (stdin: a pipe the runner feeds)."""
        r, w = os.pipe()
        try:
            proc = subprocess.Popen(
                self._cmd, stdin=r, stdout=self._master, stderr=self._log,
                cwd=self.workdir, env=self._env, preexec_fn=_die_with_parent, close_fds=True,
            )
        except OSError:
            os.close(r)
            os.close(w)
            raise
        os.close(r)
        with self._lock:
            old, self._stdin_w = self._stdin_w, w
            self.proc = proc
            self.boots += 1
        if old >= 0:
            os.close(old)

    def _serial_in(self) -> None:
        """Host -> firmware bytes, with the USB CDC's Ctrl-C rule; reboots on reset."""
        import select

        while not self._stopping:
            proc = self.proc
            if (proc is not None and proc is not self._ended and proc.poll() is not None
                    and not self._stopping):
                self._ended = proc
                self.exit_codes.append(proc.returncode)
                if self.auto_reboot and proc.returncode in REBOOT_CODES:
                    self._spawn()
                    continue
            try:
                ready, _, _ = select.select([self._master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self._master, 4096)
            except (OSError, ValueError):
                return
            self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        with self._lock:
            proc, w = self.proc, self._stdin_w
        if proc is None or w < 0 or proc.poll() is not None:
            return  # nobody reads the port: the bytes are lost, as on a board in reset
        start = 0
        for i, b in enumerate(data):
            if b == 3 and sigint_caught(proc.pid):
                # mp_usbd_cdc.c: the interrupt char clears the input buffer and raises
                # KeyboardInterrupt; the byte itself is not delivered.
                self.ctrl_c += 1
                start = i + 1
                os.kill(proc.pid, signal.SIGINT)
                time.sleep(0.01)  # let it land before the next bytes
        try:
            os.write(w, data[start:])
        except OSError:
            pass

    def reset(self, timeout: float = 5.0) -> None:
        """The reset button: the firmware restarts; the port (and the host) stay."""
        proc = self.proc
        if proc is None:
            raise BoardError("board not started")
        saved, self.auto_reboot = self.auto_reboot, False
        try:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout)
            self._spawn()
        finally:
            self.auto_reboot = saved

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> int | None:
        """Stop the firmware process and release the pty; returns its exit code."""
        code = None
        self._stopping = True
        if self._pump is not None:
            self._pump.join(timeout)
            self._pump = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout)
            code = self.proc.returncode
        self._close_fds()
        if self._own_dir and self.workdir is not None and self.proc is not None:
            self._last_log = self.log()
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        self.proc = None
        return code

    def _close_fds(self) -> None:
        for fd in (self._master, self._slave, self._stdin_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = self._stdin_w = -1
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        if self.workdir is not None and (self.workdir / "firmware.log").exists():
            return (self.workdir / "firmware.log").read_text(errors="replace")
        return getattr(self, "_last_log", "")

    # -- knobs ------------------------------------------------------------------------
    def set_knobs(self, **knobs: int) -> None:
        for name in knobs:
            if name not in KNOB_NAMES:
                raise ValueError(f"unknown knob {name!r}; known: {', '.join(KNOB_NAMES)}")
        self.knobs.update(knobs)
        if self.workdir is not None:
            self._write_knobs(self.workdir / "knobs.txt")

    def _write_knobs(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(f"{k}={int(v)}\n" for k, v in self.knobs.items()))
        os.replace(tmp, path)  # atomic: the board never reads half a file

    def __enter__(self) -> BoardRunner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    from spasmwatch.simulator.scenarios import generate
    from spasmwatch.simulator.traceio import read_trace

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--scenario", help="generate this scenario (see spasmwatch simulate)")
    src.add_argument("--trace", help="trace file to play")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--speed", type=float, default=1.0, help="0 = as fast as possible")
    ap.add_argument("--key-file", help="device key for authenticated commands")
    args = ap.parse_args(argv)
    trace = None
    if args.scenario:
        trace, _labels = generate(args.scenario, args.seed)
    elif args.trace:
        trace = read_trace(args.trace)
    key = Path(args.key_file).read_bytes().strip() if args.key_file else None
    runner = BoardRunner(trace, speed=args.speed, key=key)
    print(runner.start(), flush=True)
    try:
        assert runner.proc is not None
        runner.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        code = runner.stop()
        sys.stderr.write(runner.log())
    return 0 if code in (0, None, -signal.SIGTERM) else 1


if __name__ == "__main__":
    sys.exit(main())
