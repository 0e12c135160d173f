"""The default path, as a user runs it: the installed CLI, a fresh HOME, no config file.

Settings are found the same way by every command; bad numbers on the command line give
one line and exit 2; a missing Bluetooth service is retried, never a traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _cli() -> str:
    exe = Path(sys.executable).with_name("spasmwatch")
    assert exe.exists()
    return str(exe)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SPASMWATCH_", "XDG_", "PULSE_"))}
    env.update(HOME=str(home), DBUS_SYSTEM_BUS_ADDRESS="unix:path=/nonexistent/dbus",
               **extra)
    return env


@pytest.mark.parametrize(("flags", "message"), [
    (["--heartbeat", "nan"], "--heartbeat"),
    (["--heartbeat", "inf"], "--heartbeat"),
    (["--heartbeat", "0"], "--heartbeat"),
    (["--gap", "nan"], "--gap"),
    (["--gap", "-5"], "--gap"),
    (["--min-spasms", "0"], "--min-spasms"),
    (["--speed", "-1"], "--speed"),
    (["--speed", "nan"], "--speed"),
])
def test_bad_numbers_on_run_are_one_line_and_exit_2(tmp_path: Path, flags: list[str],
                                                     message: str) -> None:
    res = subprocess.run([_cli(), "run", "--simulate", "quiet", *flags], env=_env(tmp_path),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in res.stderr


def test_settings_come_from_spasmwatch_config_without_a_flag(tmp_path: Path) -> None:
    cfg = tmp_path / "night.toml"
    cfg.write_text("[audio]\nenabled = false\n[webui]\nenabled = false\n"
                   "[monitor]\nheartbeat_timeout_s = nan\n")
    res = subprocess.run([_cli(), "run", "--simulate", "quiet", "--speed", "0"],
                         env=_env(tmp_path, SPASMWATCH_CONFIG=str(cfg)),
                         capture_output=True, text=True, timeout=120)
    # The file named by the environment is read (and its NaN refused with its key).
    assert res.returncode == 2
    assert str(cfg) in res.stderr and "heartbeat_timeout_s" in res.stderr


def test_no_alerts_is_said_at_start(tmp_path: Path) -> None:
    res = subprocess.run([_cli(), "run", "--simulate", "quiet", "--speed", "0", "--no-alerts"],
                         env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "ALERTS ARE OFF" in res.stdout
    assert "check    audio" not in res.stdout  # nothing was started to deliver
    assert "(absent: built-in defaults)" in res.stdout


def test_run_ble_without_a_bluetooth_service_keeps_retrying(tmp_path: Path) -> None:
    proc = subprocess.Popen([_cli(), "run", "--ble", "--insecure", "--heartbeat", "2"],
                            env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        seen = ""
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
            if seen.count("cannot connect") >= 2 and "No data from the sensor" in seen:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    seen += out
    assert "Bluetooth is not available" in seen, seen[-2000:] + err[-2000:]
    assert "No data from the sensor" in seen  # the heartbeat fault while retrying
    assert "Traceback" not in err
    assert proc.returncode == 0
