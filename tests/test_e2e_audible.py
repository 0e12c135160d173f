"""The night as a parent runs it: the installed ``spasmwatch run``, as the systemd unit
runs it (no ``--config``, a fresh HOME), against the virtual board, and the alarm must be
**audible**: a real PulseAudio server with a null sink, whose monitor is recorded and
measured. Nothing here configures the sound: the built-in defaults must.
"""

from __future__ import annotations

import array
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tooling import require_tool

pytestmark = pytest.mark.slow

RATE = 16000


def _spasmwatch() -> str:
    exe = Path(sys.executable).with_name("spasmwatch")
    assert exe.exists(), "the package's console script must be installed"
    return str(exe)


@pytest.fixture()
def sound_server(tmp_path: Path):
    """A user-space PulseAudio with a null sink as the default output; yields the env."""
    pulse = require_tool("pulseaudio", "apt-get install pulseaudio")
    require_tool("parec", "apt-get install pulseaudio-utils")
    require_tool("paplay", "apt-get install pulseaudio-utils")
    home = tmp_path / "home"
    runtime = tmp_path / "run"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    sock = runtime / "pulse.sock"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SPASMWATCH_", "XDG_", "PULSE_"))}
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(runtime), PULSE_SERVER=f"unix:{sock}")
    server = subprocess.Popen(
        [pulse, "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit",
         "--log-target=stderr", "-L", "module-null-sink sink_name=nursery",
         "-L", f"module-native-protocol-unix auth-anonymous=1 socket={sock}",
         "-L", "module-always-sink"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]  # type: ignore
            assert time.monotonic() < deadline, "PulseAudio did not start"
            time.sleep(0.1)
        subprocess.run(["pactl", "set-default-sink", "nursery"], env=env, check=True)
        yield env
    finally:
        server.terminate()
        server.wait(10)


def test_run_without_config_sounds_the_alarm_on_the_default_sound_server(
        sound_server: dict[str, str], tmp_path: Path) -> None:
    env = sound_server
    rec_path = tmp_path / "nursery.raw"
    with open(rec_path, "wb") as rec_file:
        recorder = subprocess.Popen(
            ["parec", "-d", "nursery.monitor", "--format=s16le", f"--rate={RATE}",
             "--channels=1", "--latency-msec=50"], env=env, stdout=rec_file)
        try:
            time.sleep(0.5)
            run = subprocess.run(
                [_spasmwatch(), "run", "--simulate", "spasm-cluster", "--speed", "0"],
                env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
            time.sleep(1.0)  # the tail of the last play reaches the monitor
        finally:
            recorder.terminate()
            recorder.wait(10)
    out = run.stdout
    assert run.returncode == 0, (out + run.stderr)[-3000:]
    assert "(absent: built-in defaults)" in out  # no config file anywhere: defaults
    assert "check    audio: ok" in out, out[-3000:]
    assert "ALARM" in out and "alarm sent via audio" in out, out[-3000:]
    assert "Nobody will hear" not in out
    samples = array.array("h")
    samples.frombytes(rec_path.read_bytes()[: len(rec_path.read_bytes()) // 2 * 2])
    assert len(samples) > RATE, "the recorder heard nothing at all"
    peak = max(abs(s) for s in samples)
    # The first alarm plays at [audio] volume_start = 0.4 of full scale (0.9 * 32767).
    assert peak > 0.25 * 32767, f"the alarm was not audible: peak {peak}"
    # ... and it is the alarm's tone, not a click: many loud samples.
    loud = sum(1 for s in samples if abs(s) > 0.2 * 32767)
    assert loud > 0.2 * RATE, f"only {loud} loud samples"
