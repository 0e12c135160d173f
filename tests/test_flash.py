"""``spasmwatch flash``: the plan, the dry run, and real flashing onto MicroPython.

Two real targets stand in for a board: a folder run by the unix MicroPython
(``FolderTransport``, as the HIL suite's simulated board uses), and a MicroPython REPL
on a pseudo-terminal reached by the real ``mpremote`` (``MpremoteTransport``, the code
path used on a real board). Hashes are always computed by MicroPython's hashlib.
"""

from __future__ import annotations

import hashlib
import io
import os
import pty
import select
import shutil
import subprocess
import threading
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from spasmwatch.host.cli import main as cli
from spasmwatch.host.flash import (
    FIRMWARE_DIR,
    FlashError,
    FolderTransport,
    MpremoteTransport,
    build_plan,
    flash,
    format_plan,
    parse_setting,
)

pytestmark = pytest.mark.usefixtures("micropython_exe")


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return cli.main(["flash", *argv], out=out), out.getvalue()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- plan and dry run -------------------------------------------------------------------


def test_dry_run_lists_every_module_with_hash_and_target() -> None:
    code, text = run_cli("--dry-run", "--name", "cot-1", "--set", "STATUS_S=5")
    assert code == 0
    modules = sorted(p for p in FIRMWARE_DIR.glob("*.py") if p.name != "main.py")
    assert modules, "no firmware modules found"
    for src in modules:
        line = next(ln for ln in text.splitlines() if ln.startswith(f"firmware/{src.name} "))
        assert _sha(src) in line and str(src.stat().st_size) in line.split()
    main_line = next(ln for ln in text.splitlines() if ln.startswith("main.py "))
    assert _sha(FIRMWARE_DIR / "main.py") in main_line
    assert "DEVICE_NAME = 'cot-1'" in text and "STATUS_S = 5" in text
    assert f"{len(modules) + 2} files" in text  # + main.py + device_config.py


def test_dry_run_mpy_compiles_for_the_esp32_s3() -> None:
    plan = build_plan(mpy=True)
    try:
        fw = [f for f in plan.files if f.role == "firmware"]
        assert fw and all(f.target.endswith(".mpy") for f in fw)
        for f in fw:
            header = f.source.read_bytes()[:4]
            # 'M', mpy v6; arch bits stay 0 as long as no @native code is used.
            assert header[:2] == b"M\x06", f.target
            assert f.sha256 == _sha(f.source)
        # MicroPython only runs a main.py at boot; the config stays editable source.
        assert {f.target for f in plan.files if f.role != "firmware"} == {
            "main.py", "device_config.py"
        }
        assert "compiled with mpy-cross -march=xtensawin" in format_plan(plan)
    finally:
        plan.cleanup()


def test_key_is_installed_but_never_shown(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_bytes(b"s3cret-key-123\n")
    code, text = run_cli("--dry-run", "--key-file", str(key))
    assert code == 0
    assert "spasmwatch.key" in text and "(secret, not shown)" in text
    assert hashlib.sha256(b"s3cret-key-123").hexdigest() not in text


def test_parse_setting_types_values_like_config() -> None:
    assert parse_setting("STATUS_S=0x10") == ("STATUS_S", 16)
    assert parse_setting("MPU_GYRO=yes") == ("MPU_GYRO", True)
    assert parse_setting("BATTERY_DIVIDER=2.5") == ("BATTERY_DIVIDER", 2.5)
    assert parse_setting("DEVICE_NAME=cot") == ("DEVICE_NAME", "cot")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "NOPE=1"], "setting NOPE: not a firmware/config.py constant"),
        (["--set", "STATUS_S=ten"], "expected an integer"),
        (["--set", "RATE_HZ=100"], "cannot be overridden per device"),
        (["--set", "novalue"], "expected NAME=VALUE"),
        (["--name", "has space"], "device name 'has space'"),
        (["--name", "x" * 21], "1-20 letters"),
        (["--key-file", "/nonexistent/key"], "cannot read key file"),
    ],
)
def test_bad_options_are_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_cli("--dry-run", *argv)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1, err


def test_missing_port_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_cli("--port", "/dev/ttyNO_SUCH_BOARD")
    assert code == 2
    assert "no such serial port" in capsys.readouterr().err


# --- flashing a simulated board (folder + MicroPython) ----------------------------------


def _mp_in(folder: Path, code: str) -> str:
    """Run code under MicroPython as the board would: cwd and sys.path = its root."""
    exe = shutil.which("micropython")
    assert exe
    proc = subprocess.run(
        [exe, "-c", code], cwd=folder, capture_output=True, text=True, timeout=30,
        env=dict(os.environ, MICROPYPATH=f"{folder}:.frozen"), check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_flash_folder_installs_verifies_and_configures(tmp_path: Path) -> None:
    board = tmp_path / "board"
    plan = build_plan({"DEVICE_NAME": "cot-2", "STATUS_S": 7}, key=b"k3y")
    result = flash(plan, FolderTransport(board))
    assert sorted(result.copied) == sorted(f.target for f in plan.files)
    assert result.verified == {f.target: f.sha256 for f in plan.files}
    for f in plan.files:
        assert (board / f.target).read_bytes() == f.source.read_bytes()
    # The board's own config module picks up the per-device overrides; the host's not.
    out = _mp_in(board, "import firmware.config as c; print(c.DEVICE_NAME, c.STATUS_S)")
    assert out.split() == ["cot-2", "7"]
    assert (board / "spasmwatch.key").read_bytes() == b"k3y"
    plan.cleanup()

    # Flashing again copies nothing: every hash already matches on the device.
    again = build_plan({"DEVICE_NAME": "cot-2", "STATUS_S": 7}, key=b"k3y")
    result = flash(again, FolderTransport(board))
    assert result.copied == [] and len(result.unchanged) == len(again.files)
    again.cleanup()


def test_switching_to_mpy_removes_shadowing_sources(tmp_path: Path) -> None:
    board = tmp_path / "board"
    flash(build_plan(), FolderTransport(board))
    (board / "firmware" / "old_module.py").write_text("X = 1\n")
    # Bytecode-only .mpy for the ESP32-S3 loads in the unix MicroPython too.
    plan = build_plan(mpy=True)
    result = flash(plan, FolderTransport(board))
    plan.cleanup()
    assert "firmware/old_module.py" in result.removed
    assert "firmware/wire.py" in result.removed
    assert not list((board / "firmware").glob("*.py"))
    out = _mp_in(board, "import firmware.wire as w; print(w.__file__, w.VERSION)")
    assert out.split()[0].endswith("wire.mpy")


class CorruptingTransport(FolderTransport):
    """A copy that flips one byte of one file: the on-device hash must catch it."""

    def put(self, source: Path, target: str) -> None:
        super().put(source, target)
        if target == "firmware/wire.py":
            dest = self.root / target
            data = bytearray(dest.read_bytes())
            data[100] ^= 0x01
            dest.write_bytes(bytes(data))


def test_corrupted_copy_fails_verification(tmp_path: Path) -> None:
    plan = build_plan()
    with pytest.raises(FlashError, match="verification failed for firmware/wire.py"):
        flash(plan, CorruptingTransport(tmp_path / "board"))
    plan.cleanup()


def test_not_micropython_is_refused(tmp_path: Path) -> None:
    import sys

    plan = build_plan()
    with pytest.raises(FlashError, match="not MicroPython"):
        flash(plan, FolderTransport(tmp_path, micropython=sys.executable))
    plan.cleanup()
    assert not (tmp_path / "firmware").exists()


def test_mpy_version_mismatch_is_refused(tmp_path: Path) -> None:
    plan = build_plan(mpy=True, march="x64")  # viper code needs a native arch
    sample = next(f for f in plan.files if f.target.endswith(".mpy"))
    data = bytearray(sample.source.read_bytes())
    data[1] = 5  # an .mpy from an older MicroPython release
    sample.source.write_bytes(bytes(data))
    with pytest.raises(FlashError, match="does not match the board's MicroPython"):
        flash(plan, FolderTransport(tmp_path / "board"))
    plan.cleanup()


def test_cli_flash_folder(tmp_path: Path) -> None:
    code, text = run_cli("--folder", str(tmp_path / "b"), "--name", "cot-3")
    assert code == 0, text
    assert "found MicroPython on linux" in text
    assert "all 16 files verified" in text or "files verified" in text
    assert "DEVICE_NAME = 'cot-3'" in (tmp_path / "b" / "device_config.py").read_text()


# --- flashing through mpremote, the real-board code path ---------------------------------


@pytest.fixture
def repl_on_pty(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A MicroPython REPL on a serial-like port: (port path, its filesystem root).

    MicroPython runs on one pty, mpremote opens another; a thread copies bytes between
    the two masters, like a USB-serial cable. Stopped and closed at teardown.
    """
    exe = shutil.which("micropython")
    assert exe
    root = tmp_path / "fs"
    root.mkdir()
    dev_master, dev_slave = pty.openpty()
    host_master, host_slave = pty.openpty()
    for fd in (dev_slave, host_slave):
        tty.setraw(fd)
    proc = subprocess.Popen(
        [exe], stdin=dev_slave, stdout=dev_slave, stderr=dev_slave, cwd=root,
        env=dict(os.environ, MICROPYPATH=f"{root}:.frozen"),
    )
    stop = threading.Event()

    def bridge() -> None:
        pairs = {dev_master: host_master, host_master: dev_master}
        while not stop.is_set():
            ready, _, _ = select.select(list(pairs), [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                os.write(pairs[fd], data)

    thread = threading.Thread(target=bridge, daemon=True)
    thread.start()
    try:
        yield os.ttyname(host_slave), root
    finally:
        stop.set()
        thread.join(timeout=5)
        proc.kill()
        proc.wait(timeout=10)
        for fd in (dev_master, dev_slave, host_master, host_slave):
            os.close(fd)


def test_flash_through_mpremote(repl_on_pty: tuple[str, Path]) -> None:
    port, root = repl_on_pty
    # A soft reset would end the unix interpreter, so connect with mpremote's "resume".
    transport = MpremoteTransport(port, soft_reset=False, timeout=20)
    plan = build_plan({"DEVICE_NAME": "cot-4"})
    result = flash(plan, transport, reset=False)
    assert result.device.implementation == "micropython"
    assert sorted(result.copied) == sorted(f.target for f in plan.files)
    for f in plan.files:
        assert (root / f.target).read_bytes() == f.source.read_bytes(), f.target
    # A second run over the same port finds everything in place.
    result = flash(plan, transport, reset=False)
    assert result.copied == []
    plan.cleanup()
