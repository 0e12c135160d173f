"""Trying to break the night from the outside, as a user runs it: the installed
``spasmwatch`` command, a fresh HOME, no config file.

Each case must end in one clear line (exit 2) or a loud fault while the watching goes
on — never a traceback, never silence: the terminal closing under ``spasmwatch run``
(SIGHUP), a second monitor started on the same record, a settings file nested deeper
than the TOML parser's recursion.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from spasmwatch.host.monitor.store import Store


def _cli() -> str:
    exe = Path(sys.executable).with_name("spasmwatch")
    assert exe.exists(), "the spasmwatch command is not installed next to this Python"
    return str(exe)


def _env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SPASMWATCH_", "XDG_", "PULSE_"))}
    env["HOME"] = str(home)
    return env


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


def _wait_exit(pid: int, timeout: float) -> int | None:
    """The raw wait status of ``pid``, or None (then killed) if still running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def test_a_closed_terminal_does_not_end_the_night(tmp_path: Path) -> None:
    """``run`` in a terminal that goes away (an SSH session dropped): SIGHUP used to end
    the monitor at once, silently. It must keep watching, store the alarm that comes
    after the hang-up and, being a simulation, end by itself with exit code 0."""
    db = tmp_path / "night.db"
    exe = _cli()
    argv = [exe, "run", "--simulate", "spasm-cluster", "--speed", "20", "--db", str(db)]
    env = _env(tmp_path)
    pid, master = pty.fork()  # the child's controlling terminal is this pty
    if pid == 0:  # pragma: no cover - the child
        try:
            os.execve(exe, argv, env)
        finally:
            os._exit(127)
    try:
        seen = _read_until(master, b"connected", 60.0)
        assert b"connected" in seen, seen.decode(errors="replace")[-2000:]
        assert b"ALARM" not in seen  # the cluster comes after the hang-up
    finally:
        os.close(master)  # the terminal goes away: the kernel sends SIGHUP
    status = _wait_exit(pid, 240.0)
    assert status is not None, "the simulation did not end by itself after the hang-up"
    assert not os.WIFSIGNALED(status), f"ended by signal {os.WTERMSIG(status)}"
    assert os.WEXITSTATUS(status) == 0
    with Store(db) as store:
        assert [(a.level, a.kind) for a in store.alerts() if a.level == "alarm"] == [
            ("alarm", "spasm_cluster")]


def test_a_second_monitor_on_the_same_record_says_so_in_one_line(tmp_path: Path) -> None:
    """Two monitors on one record mixed two nights (each took the other's packets for
    duplicates): the second stops with one line naming the first; the first goes on."""
    db = tmp_path / "night.db"
    env = _env(tmp_path)
    first = subprocess.Popen(
        [_cli(), "run", "--simulate", "quiet", "--speed", "1", "--db", str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert first.stdout is not None
        deadline = time.monotonic() + 60
        for line in first.stdout:
            if "connected" in line or time.monotonic() > deadline:
                break
        second = subprocess.run(
            [_cli(), "run", "--simulate", "quiet", "--speed", "0", "--db", str(db)],
            capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 2, second.stdout[-2000:] + second.stderr
        assert second.stderr == (
            f"spasmwatch: error: {db}: another spasmwatch monitor is already recording "
            f"here (pid {first.pid}); stop it first, or record elsewhere with --db\n")
        assert first.poll() is None  # the first one is still watching
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    # The lock went with the first monitor: the record can be used again.
    third = subprocess.run(
        [_cli(), "run", "--simulate", "quiet", "--speed", "0", "--db", str(db)],
        capture_output=True, text=True, env=env, timeout=120)
    assert third.returncode == 0, third.stderr


def test_a_killed_monitor_leaves_no_stale_lock(tmp_path: Path) -> None:
    db = tmp_path / "night.db"
    env = _env(tmp_path)
    first = subprocess.Popen(
        [_cli(), "run", "--simulate", "quiet", "--speed", "1", "--db", str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert first.stdout is not None
    for line in first.stdout:
        if "connected" in line:
            break
    first.kill()  # no clean shutdown at all
    first.wait()
    again = subprocess.run(
        [_cli(), "run", "--simulate", "quiet", "--speed", "0", "--db", str(db)],
        capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stderr


def test_settings_nested_beyond_the_parser_give_one_line(tmp_path: Path) -> None:
    """tomllib recurses once per nested array: a deep one was a RecursionError."""
    cfg = tmp_path / "config.toml"
    cfg.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    for argv in (["config", "check", "--config", str(cfg)],
                 ["run", "--simulate", "quiet", "--config", str(cfg)]):
        proc = subprocess.run([_cli(), *argv], capture_output=True, text=True,
                              env=_env(tmp_path), timeout=120)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert proc.stderr == f"spasmwatch: error: {cfg}: not valid TOML: nested too deeply\n"


def test_a_full_disk_mid_night_still_delivers_the_alarm(tmp_path: Path) -> None:
    """The disk fills up (RLIMIT_FSIZE: writes past it fail with EFBIG): the record is
    a loud ``storage_failed`` fault, and the alarm still goes out to the channels. The
    alarm state's own log on the same disk used to raise in ``AlertHub.handle``: every
    output after that was lost to the alarm state, the alarm was shown but never sent."""
    import json
    import resource

    from pty_device import PtyDevice, scenario_schedule

    db = tmp_path / "night.db"
    Store(db).close()  # the schema, written before the disk fills up
    limit = db.stat().st_size + 24 * 1024  # a few commits' worth of write-ahead log

    def full_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    items, _ = scenario_schedule("spasm-cluster")
    port = tmp_path / "ttyACM0"
    errfile = tmp_path / "stderr.txt"
    with PtyDevice(items, port), errfile.open("wb") as errs:
        proc = subprocess.Popen(
            [_cli(), "run", "--serial", str(port), "--insecure", "--db", str(db), "--json"],
            stdout=subprocess.PIPE, stderr=errs, env=_env(tmp_path), preexec_fn=full_disk)
        outs: list[dict] = []
        try:
            assert proc.stdout is not None
            fd = proc.stdout.fileno()
            os.set_blocking(fd, False)
            buf = b""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(
                    (o["type"], o.get("level")) == ("delivery", "alarm") for o in outs):
                select.select([fd], [], [], 0.5)
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    chunk = b""
                *lines, buf = (buf + chunk).split(b"\n")
                outs += [json.loads(line) for line in lines]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    err = errfile.read_text(errors="replace")
    kinds = [(o.get("level"), o.get("kind")) for o in outs if o["type"] == "alert"]
    assert ("fault", "storage_failed") in kinds, kinds
    assert ("alarm", "spasm_cluster") in kinds, kinds
    # The alarm reached the channels (delivered or not: there may be no sound server).
    assert [o for o in outs if o["type"] == "delivery" and o.get("kind") == "spasm_cluster"]
    assert "Traceback" not in err, err[-3000:]
    assert err.count("the record could not be saved") <= 2, err[-3000:]  # no flood


def test_a_failed_sound_does_not_claim_other_channels_that_do_not_exist(
    tmp_path: Path,
) -> None:
    """With no config there is no other channel that can wake anyone: the fault about
    the sound must say so, not "the other channels still work"."""
    import json

    env = _env(tmp_path)
    env["PATH"] = str(Path(sys.executable).parent)  # no pw-play, paplay or aplay
    proc = subprocess.run(
        [_cli(), "run", "--simulate", "quiet", "--speed", "0", "--json"],
        capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    outs = [json.loads(line) for line in proc.stdout.splitlines()]
    [fault] = [o for o in outs if o["type"] == "alert"
               and o.get("kind") == "delivery_failed_audio" and o["level"] == "fault"]
    assert "No other channel is set up to wake anyone" in fault["message"], fault
    assert "still" not in fault["message"]
