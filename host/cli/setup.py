"""``spasmwatch setup``: first run, in plain words.

Step by step: write the settings file (if there is none), find the sensor (a USB serial
port, or a Bluetooth scan), pair it (``spasmwatch pair``, when that command exists),
play the alarm sound and ask whether it was heard, test the other alert channels, and
install the systemd unit (or print the commands that do). ``--yes`` answers every
question with its default for scripts; ``--heard yes|no`` answers the sound question.
Nothing here is needed to run the monitor: it only makes the first night go right.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from spasmwatch.host.errors import UserError
from spasmwatch.host.settings import Settings, default_path, load_settings, template_text

#: USB vendor ids of the boards in hardware/README.md (Espressif's native USB; the
#: CP210x and CH34x bridges of older ESP32 boards).
BOARD_USB_VIDS = {0x303A: "Espressif USB", 0x10C4: "CP210x", 0x1A86: "CH34x"}
UNIT_NAME = "spasmwatch.service"


def unit_path() -> Path:
    """Where the systemd unit shipped with the package is."""
    return Path(str(resources.files("spasmwatch.host").joinpath("data/" + UNIT_NAME)))


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "setup", help="first run: settings, sensor, pairing, sound check, service",
        description="Walks through everything the first night needs, in plain words.")
    p.add_argument("--config", help="settings file to write/use (default: the usual place)")
    p.add_argument("--serial", metavar="PORT", help="the sensor's USB serial port")
    p.add_argument("--yes", action="store_true",
                   help="answer every question with its default (for scripts)")
    p.add_argument("--heard", choices=("yes", "no"),
                   help="answer 'did you hear the alarm?' without asking")
    p.add_argument("--skip-sound", action="store_true", help="do not play the alarm sound")
    p.add_argument("--install-service", action="store_true",
                   help="install and start the systemd unit (needs root)")
    p.add_argument("--unit-path", action="store_true",
                   help="print where the systemd unit file is, and stop")
    p.set_defaults(func=cmd_setup)


class Asker:
    """Questions on the terminal; defaults when not interactive (``--yes`` or no tty)."""

    def __init__(self, out: TextIO, assume_default: bool) -> None:
        self.out = out
        self.assume_default = assume_default or not sys.stdin.isatty()

    def yes_no(self, question: str, default: bool) -> bool:
        hint = "[Y/n]" if default else "[y/N]"
        if self.assume_default:
            self.out.write(f"{question} {hint} {'yes' if default else 'no'} (default)\n")
            return default
        self.out.write(f"{question} {hint} ")
        self.out.flush()
        answer = sys.stdin.readline().strip().lower()
        return default if not answer else answer.startswith("y")


def cmd_setup(args: argparse.Namespace, out: TextIO) -> int:
    if args.unit_path:
        out.write(f"{unit_path()}\n")
        return 0
    ask = Asker(out, args.yes)
    problems: list[str] = []
    out.write("spasmwatch setup. spasmwatch is a monitoring aid, not a medical device.\n\n")

    out.write("1. Settings\n")
    path = Path(args.config) if args.config else default_path()
    if path.exists():
        out.write(f"   using {path}\n")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(template_text())
        out.write(f"   wrote {path} (every setting at its default; the alarm sound is on)\n")
    settings = load_settings(path)

    out.write("\n2. The sensor\n")
    port = args.serial or _find_serial(out)
    if port is None:
        out.write("   No sensor found on USB. To pair it, plug it in with a USB cable and run "
                  "`spasmwatch setup` again; `spasmwatch scan` lists sensors over "
                  "Bluetooth.\n")
        problems.append("no sensor found on USB: not paired")
        out.write("\n3. Pairing: skipped (no sensor on USB)\n")
    else:
        out.write(f"   sensor on {port}\n")
        out.write("\n3. Pairing (only this sensor will be believed)\n")
        problems += _pair(port, out)
        out.write("\n   Checking the sensor (spasmwatch doctor, 10 s)\n")
        from spasmwatch.host.cli.main import main

        if main(["doctor", "--port", port, "--seconds", "10"], out) != 0:
            problems.append(f"the sensor on {port} failed a check (see the FAIL lines)")

    out.write("\n4. The alarm sound\n")
    if args.skip_sound:
        out.write("   skipped (--skip-sound)\n")
    elif not settings.audio.enabled:
        out.write("   the alarm sound is OFF in the settings ([audio] enabled = false)\n")
        problems.append("alarm sound off")
    else:
        problems += _sound_check(settings, args, ask, out)

    out.write("\n5. Other alert channels\n")
    problems += _other_channels(settings, out)

    out.write("\n6. Running all night (systemd)\n")
    problems += _service(args, ask, out)

    out.write("\n")
    if problems:
        out.write("Setup finished with problems to fix before the first night:\n")
        for p in problems:
            out.write(f"  - {p}\n")
        return 1
    out.write("Setup finished: the monitor is ready. Start it with `spasmwatch run --ble` (or "
              "`--serial PORT`), or let systemd run it.\n")
    return 0


def _find_serial(out: TextIO) -> str | None:
    try:
        from serial.tools import list_ports
    except ImportError:
        out.write("   (pyserial is missing: cannot look for USB sensors)\n")
        return None
    boards = [p for p in list_ports.comports() if p.vid in BOARD_USB_VIDS]
    for p in boards:
        out.write(f"   found {p.device} ({BOARD_USB_VIDS[p.vid]}: {p.description})\n")
    return boards[0].device if boards else None


def _pair(port: str, out: TextIO) -> list[str]:
    try:
        importlib.import_module("spasmwatch.host.cli.pair")
    except ImportError:
        out.write("   pairing is not available in this version; the link is not "
                  "authenticated\n")
        return ["the sensor is not paired"]
    from spasmwatch.host.cli.main import main

    code = main(["pair", "--port", port], out)
    return [] if code == 0 else [f"pairing over {port} failed (see above)"]


def _sound_check(settings: Settings, args: argparse.Namespace, ask: Asker,
                 out: TextIO) -> list[str]:
    from spasmwatch.host.alerts.alarm_state import Notice
    from spasmwatch.host.alerts.channels.audio import AudioChannel
    from spasmwatch.host.alerts.channels.base import DeliveryError

    ch = AudioChannel(settings.audio)
    ok, line = asyncio.run(ch.check())
    out.write(f"   {line}\n")
    if not ok:
        return [f"the alarm sound does not work: {line}"]
    notice = Notice(0.0, "alarm", "test", "spasmwatch test", "test of the alarm sound",
                    audible=True, test=True)
    out.write("   Playing the alarm sound now, at the volume of a first alarm...\n")
    try:
        detail = asyncio.run(ch.send(notice))
    except DeliveryError as exc:
        return [f"the alarm sound could not be played: {exc}"]
    out.write(f"   {detail}\n")
    if args.heard is not None:
        heard = args.heard == "yes"
    else:
        heard = ask.yes_no("   Did you hear it from where you sleep?", default=False)
    if not heard:
        return ["the alarm was not heard: turn the volume up, choose another output "
                "([audio] device), or add a phone channel (docs/alerts.md)"]
    return []


def _other_channels(settings: Settings, out: TextIO) -> list[str]:
    others = [n for n in settings.enabled_channels() if n != "audio"]
    if not others:
        out.write("   none configured (a phone notification is a good second channel: "
                  "docs/alerts.md)\n")
        return []
    from spasmwatch.host.alerts.delivery import send_test_alerts

    results = send_test_alerts(settings, skip=("audio",))
    for r in results:
        out.write(f"   {r.channel:<8} {r.label}: {r.detail}\n")
    return [f"{r.channel} failed: {r.detail}" for r in results if r.ok is False]


def _service(args: argparse.Namespace, ask: Asker, out: TextIO) -> list[str]:
    unit = unit_path()
    exe = Path(sys.executable).with_name("spasmwatch")
    commands = [
        "sudo useradd --system --groups audio,bluetooth,dialout spasmwatch",
        "sudo install -d -o spasmwatch -g spasmwatch -m 0700 /etc/spasmwatch",
        f"sudo install -m 0640 -g spasmwatch {default_path()} /etc/spasmwatch/config.toml",
        f"sed 's|/opt/spasmwatch/venv/bin/spasmwatch|{exe}|' {unit} | "
        f"sudo tee /etc/systemd/system/{UNIT_NAME} >/dev/null",
        "sudo systemctl daemon-reload",
        f"sudo systemctl enable --now {UNIT_NAME}",
    ]
    has_systemd = shutil.which("systemctl") is not None
    want = args.install_service or (has_systemd and os.geteuid() == 0 and ask.yes_no(
        "   Install and start the systemd service now?", default=False))
    if not want:
        out.write("   To run the monitor at every boot, run these commands "
                  "(docs/raspberry-pi.md explains them):\n")
        for c in commands:
            out.write(f"     {c}\n")
        return []
    if not has_systemd or os.geteuid() != 0:
        raise UserError("--install-service needs systemd and root (sudo spasmwatch setup "
                        "--install-service)")
    for c in commands:
        cmd = c.replace("sudo ", "")
        res = subprocess.run(cmd, shell=True, capture_output=True, text=True)  # noqa: S602
        status = "ok" if res.returncode == 0 else f"failed ({res.stderr.strip()[:200]})"
        out.write(f"   {cmd}: {status}\n")
        if res.returncode != 0 and "useradd" not in cmd:  # an existing user is fine
            return [f"installing the service failed at: {cmd}"]
    return []
