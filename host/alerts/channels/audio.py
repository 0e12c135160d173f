"""The local audible alarm: a WAV synthesised here, played by aplay / paplay / pw-play.

Works with no network at all. The sounds are generated in code (no binary assets): a
two-tone alarm, a softer two-note warning chime and a low double beep for faults, at the
loudness asked for, so an unacknowledged alarm can get louder on every repeat (and play
more times). ``device = "null"`` with aplay is ALSA's null sink: the whole path (file,
player, exit code) runs with no sound card, which is how the tests use it.

A player that is missing or exits non-zero is a failed delivery (the hub raises a fault
on the other channels): a silent speaker must never look like a delivered alarm.
"""

from __future__ import annotations

import array
import asyncio
import math
import os
import shutil
import wave
from pathlib import Path

from spasmwatch.host.alerts.alarm_state import Notice
from spasmwatch.host.alerts.channels.base import Channel, DeliveryError
from spasmwatch.host.settings import AudioSettings

RATE = 16000
_PLAYER_ORDER = ("pw-play", "paplay", "aplay")
_MAX_PLAYS = 10

# level -> tone sequence: (frequency Hz, seconds); 0 Hz is a pause.
PATTERNS: dict[str, tuple[tuple[float, float], ...]] = {
    "alarm": ((880, 0.22), (660, 0.22)) * 3 + ((0, 0.3),),
    "warning": ((523, 0.18), (0, 0.05), (659, 0.3), (0, 0.3)),
    "fault": ((440, 0.25), (0, 0.12), (440, 0.25), (0, 0.3)),
    "info": ((659, 0.15), (0, 0.05), (523, 0.2), (0, 0.2)),
}


def synth_wav(path: Path, level: str, volume: float) -> Path:
    """Write the 16-bit mono WAV for ``level`` at ``volume`` (0..1) and return its path."""
    amp = max(0.0, min(volume, 1.0)) * 0.9 * 32767
    ramp = int(0.005 * RATE)  # 5 ms fades: no clicks
    samples = array.array("h")
    for freq, secs in PATTERNS.get(level, PATTERNS["alarm"]):
        n = int(secs * RATE)
        for i in range(n):
            if freq <= 0:
                samples.append(0)
                continue
            env = min(1.0, i / ramp, (n - 1 - i) / ramp)
            samples.append(int(amp * env * math.sin(2 * math.pi * freq * i / RATE)))
    return write_wav(path, samples.tobytes())


def write_silence(path: Path, seconds: float) -> Path:
    """A silent 16-bit mono WAV (the self-check plays it: no sound, same path)."""
    return write_wav(path, b"\x00\x00" * int(seconds * RATE))


def write_wav(path: Path, frames: bytes) -> Path:
    """16-bit mono frames at ``RATE`` to ``path``, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(frames)
    os.replace(tmp, path)  # a player never sees a half-written file
    return path


def player_command(player: str, device: str, wav: Path) -> list[str]:
    """The command line that plays ``wav`` on ``device`` ("" = default output)."""
    exe = Path(player).name
    dev: list[str] = []
    if device:
        dev = {"aplay": ["-D", device], "paplay": ["-d", device],
               "pw-play": ["--target", device]}.get(exe, [])
    quiet = ["-q"] if exe == "aplay" else []
    return [player, *quiet, *dev, str(wav)]


def find_player(choice: str) -> str | None:
    """Full path of the configured player, or of the first one on PATH for "auto"."""
    for name in (_PLAYER_ORDER if choice == "auto" else (choice,)):
        found = shutil.which(name)
        if found:
            return found
    return None


def default_sound_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "spasmwatch" / "sounds"


class AudioChannel(Channel):
    name = "audio"

    def __init__(self, s: AudioSettings) -> None:
        self.s = s
        self.sound_dir = Path(s.sound_dir) if s.sound_dir else default_sound_dir()
        self._proc: asyncio.subprocess.Process | None = None
        self._silenced = False
        self.played: list[list[str]] = []  # command lines run (for reports and tests)

    def volume_for(self, notice: Notice) -> float:
        return min(1.0, self.s.volume_start + self.s.volume_step * notice.repeat)

    def plays_for(self, notice: Notice) -> int:
        if notice.level != "alarm":
            return 1
        return min(_MAX_PLAYS, self.s.plays_per_notice + notice.repeat)

    async def send(self, notice: Notice) -> str:
        player = find_player(self.s.player)
        if player is None:
            wanted = ", ".join(_PLAYER_ORDER) if self.s.player == "auto" else self.s.player
            raise DeliveryError(f"no audio player on PATH (looked for {wanted})")
        volume = self.volume_for(notice)
        level = notice.level if notice.level in PATTERNS else "alarm"
        wav = self.sound_dir / f"{level}-{round(volume * 100):03d}.wav"
        if not wav.exists():
            synth_wav(wav, level, volume)
        cmd = player_command(player, self.s.device, wav)
        self._silenced = False
        plays = self.plays_for(notice)
        for _ in range(plays):
            if self._silenced:
                return "silenced by an acknowledgement"
            self.played.append(cmd)
            self._proc = await asyncio.create_subprocess_exec(
                *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            try:
                _, err = await self._proc.communicate()
            except asyncio.CancelledError:
                self._kill()
                raise
            rc = self._proc.returncode
            self._proc = None
            if rc != 0 and not self._silenced:
                lines = err.decode(errors="replace").strip().splitlines() or ["no output"]
                why = " / ".join(ln.strip() for ln in lines)[:300]
                raise DeliveryError(f"{Path(player).name} exited with {rc}: {why}")
        return f"played {plays}x at {volume:.0%} with {Path(player).name}"

    async def check(self) -> tuple[bool, str]:
        """Play a fraction of a second of silence on the configured device: proves the
        player, the sound server or card and the device are there, without a sound."""
        player = find_player(self.s.player)
        if player is None:
            wanted = ", ".join(_PLAYER_ORDER) if self.s.player == "auto" else self.s.player
            return False, f"no sound player found (looked for {wanted})"
        wav = self.sound_dir / "check-silence.wav"
        if not wav.exists():
            write_silence(wav, 0.1)
        cmd = player_command(player, self.s.device, wav)
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            _, err = await proc.communicate()
        except OSError as exc:
            return False, f"{Path(player).name} could not be started: {exc}"
        if proc.returncode != 0:
            first = (err.decode(errors="replace").strip().splitlines() or ["no output"])[0]
            return False, (f"the sound output does not work ({Path(player).name} exited "
                           f"with {proc.returncode}: {first[:160]})")
        where = self.s.device or "the default output"
        return True, f"sound works: {Path(player).name} on {where}"

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.kill()

    def silence(self) -> None:
        self._silenced = True
        self._kill()
