"""``spasmwatch config init|check``: write the commented default file; validate one."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TextIO

from spasmwatch.host.errors import UserError
from spasmwatch.host.settings import (
    ENV_CONFIG,
    Settings,
    default_path,
    load_settings,
    redact_url,
    template_text,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("config", help="write or check the alert configuration file")
    sub = p.add_subparsers(dest="config_command", required=True)
    i = sub.add_parser("init", help="write a commented default configuration")
    i.add_argument("--config", help=f"file to write (default: ${ENV_CONFIG} or "
                   "~/.config/spasmwatch/config.toml)")
    i.add_argument("--force", action="store_true", help="overwrite an existing file")
    i.set_defaults(func=cmd_init)
    c = sub.add_parser("check", help="validate the configuration and list the channels")
    c.add_argument("--config", help="file to check")
    c.set_defaults(func=cmd_check)


def cmd_init(args: argparse.Namespace, out: TextIO) -> int:
    path = Path(args.config) if args.config else default_path()
    if path.exists() and not args.force:
        raise UserError(f"{path}: already exists (use --force to overwrite)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template_text(), "utf-8")
        os.chmod(path, 0o600)  # it may hold tokens once edited
    except OSError as exc:
        raise UserError(f"{path}: cannot write: {exc}") from None
    out.write(f"wrote {path}\nedit it, then run: spasmwatch config check --config {path}\n")
    return 0


def describe(s: Settings) -> list[str]:
    """What the settings will do, one line each; secrets are never printed."""
    lines = [f"configuration: {s.source}"]
    chans = s.enabled_channels()
    grouped = {n for g in s.alarm.groups for n in g}
    for i, g in enumerate(s.alarm.groups):
        when = "at once" if i == 0 else f"after {i * s.alarm.escalate_after_s:g} s unacknowledged"
        lines.append(f"group {i + 1} ({when}): " + (", ".join(
            f"{n}" + ("" if n in chans else " (not configured, skipped)") for n in g)))
    for n in chans:
        if n not in grouped:
            lines.append(f"warning: channel {n!r} is configured but in no [alarm] groups "
                         "entry, so only `alert test` uses it")
    if not chans:
        lines.append("warning: no channel is configured: alarms are only stored")
    elif set(chans) <= {"audio", "desktop"}:
        lines.append("note: only this computer makes a sound or shows alerts; add [push] "
                     "or [mqtt] to reach a phone in another room")
    for name in ("push", "call"):
        urls = getattr(s, name).urls
        if urls:
            lines.append(f"{name}: " + ", ".join(redact_url(u) for u in urls))
    if s.mqtt.enabled:
        lines.append(f"mqtt: {s.mqtt.host}:{s.mqtt.port} as "
                     f"{s.mqtt.username or '(anonymous)'}, topics {s.mqtt.base_topic}/"
                     f"{s.mqtt.device_id}/…")
    if s.webui.enabled:
        lines.append(f"web page: http://{s.webui.host}:{s.webui.port}/")
    if s.secrets_from_env:
        lines.append("from the environment: " + ", ".join(s.secrets_from_env))
    return lines


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    s = load_settings(args.config, must_exist=bool(args.config))
    problems: list[str] = []
    if s.push.urls or s.call.urls:
        from spasmwatch.host.alerts.channels.apprise_channel import check_url

        for name in ("push", "call"):
            for u in getattr(s, name).urls:
                why = check_url(u)
                if why:
                    problems.append(f"[{name}] urls: {why}")
    if s.audio.enabled:
        from spasmwatch.host.alerts.channels.audio import find_player

        if find_player(s.audio.player) is None:
            problems.append("[audio] player: no audio player found on PATH (install "
                            "alsa-utils for aplay, or pipewire / pulseaudio-utils)")
    for line in describe(s):
        out.write(line + "\n")
    if problems:
        raise UserError("; ".join(problems))
    out.write("configuration ok\n")
    return 0
