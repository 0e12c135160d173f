"""The alert-delivery configuration: one TOML file, validated with messages naming the key.

``load_settings(path)`` reads the file (a missing file means "all defaults"), checks every
section and key against the dataclasses below (unknown keys get a "did you mean"), checks
types and ranges, then adds secrets from the environment so they need not sit in the file:

* ``SPASMWATCH_PUSH_URLS`` / ``SPASMWATCH_CALL_URLS``: apprise URLs (space or comma
  separated), added to ``[push] urls`` / ``[call] urls``;
* ``SPASMWATCH_MQTT_USERNAME`` / ``SPASMWATCH_MQTT_PASSWORD``: override ``[mqtt]``.

``spasmwatch config init`` writes ``host/data/config.toml`` (every key, commented), which
is kept in step with these defaults by a test.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, get_type_hints

from spasmwatch.host.errors import UserError

ENV_CONFIG = "SPASMWATCH_CONFIG"
ENV_PUSH_URLS = "SPASMWATCH_PUSH_URLS"
ENV_CALL_URLS = "SPASMWATCH_CALL_URLS"
ENV_MQTT_USERNAME = "SPASMWATCH_MQTT_USERNAME"
ENV_MQTT_PASSWORD = "SPASMWATCH_MQTT_PASSWORD"

#: Channel names a ``[alarm] groups`` entry may use.
CHANNEL_NAMES = ("audio", "desktop", "push", "call", "mqtt")
AUDIO_PLAYERS = ("auto", "pw-play", "paplay", "aplay")


class SettingsError(UserError):
    """A configuration problem; the message names the file and the key."""


@dataclass
class MonitorSettings:
    """Conditions that make the alarm state ``fault`` (besides the engine's own faults)."""

    heartbeat_timeout_s: float = 30.0  # no packet at all for this long: link fault
    expected_rate_hz: int = 50  # the sensor's sample rate; 0 = do not check
    rate_tolerance_pct: float = 10.0
    placement_check_min: float = 30.0  # no body movement at all for this long; 0 = off
    placement_max_mean_mg: int = 3  # summary mean motion at or below this is "none at all"
    clock_tolerance_s: float = 120.0  # device time ahead of arrival / jumping back
    host_battery_low_pct: int = 20  # host on battery below this; 0 = off
    power_supply_dir: str = "/sys/class/power_supply"


@dataclass
class AlarmSettings:
    """How alarms latch, repeat and widen to more channels."""

    groups: list[list[str]] = field(
        default_factory=lambda: [["audio", "desktop", "push", "mqtt"], ["call"]]
    )
    escalate_after_s: float = 120.0  # unacknowledged this long: widen to the next group
    repeat_every_s: float = 60.0  # unacknowledged alarm: notify again this often
    fault_repeat_s: float = 900.0  # unacknowledged fault reminder; 0 = once
    warning_hold_s: float = 300.0  # a warning shows this long after its last cause
    max_mute_min: float = 120.0
    delivery_timeout_s: float = 20.0


@dataclass
class AudioSettings:
    enabled: bool = True
    player: str = "auto"  # auto = first of pw-play, paplay, aplay on PATH
    device: str = ""  # passed as aplay -D / paplay -d / pw-play --target ("null": silent)
    sound_dir: str = ""  # where generated WAVs go; "" = a cache folder
    volume_start: float = 0.4  # amplitude of the first play, 0..1
    volume_step: float = 0.2  # added on each repeat of an unacknowledged alarm
    plays_per_notice: int = 2


@dataclass
class DesktopSettings:
    enabled: bool = False  # convenience only: never counted as delivered


@dataclass
class AppriseSettings:
    urls: list[str] = field(default_factory=list)


@dataclass
class MqttSettings:
    enabled: bool = False
    host: str = "localhost"
    port: int = 1883
    username: str = ""
    password: str = ""
    base_topic: str = "spasmwatch"
    discovery_prefix: str = "homeassistant"
    device_id: str = "spasmwatch"
    keepalive_s: int = 30


@dataclass
class WebUISettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8765


@dataclass
class VideoSettings:
    """A camera clip around every alarm (host/video.py); off while ``source`` is empty."""

    source: str = ""  # rtsp://..., /dev/videoN, or lavfi:SPEC (ffmpeg test source)
    pre_s: float = 20.0  # seconds of video before the alarm
    post_s: float = 20.0  # seconds after it
    dir: str = ""  # where clips go; "" = $XDG_DATA_HOME/spasmwatch/clips


@dataclass
class Settings:
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    alarm: AlarmSettings = field(default_factory=AlarmSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    desktop: DesktopSettings = field(default_factory=DesktopSettings)
    push: AppriseSettings = field(default_factory=AppriseSettings)
    call: AppriseSettings = field(default_factory=AppriseSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    webui: WebUISettings = field(default_factory=WebUISettings)
    video: VideoSettings = field(default_factory=VideoSettings)
    source: str = "<defaults>"  # the file these came from (not a TOML key)
    secrets_from_env: list[str] = field(default_factory=list)  # variable names used

    def enabled_channels(self) -> list[str]:
        """Channels that are configured to deliver something, in ``CHANNEL_NAMES`` order."""
        on = {
            "audio": self.audio.enabled,
            "desktop": self.desktop.enabled,
            "push": bool(self.push.urls),
            "call": bool(self.call.urls),
            "mqtt": self.mqtt.enabled,
        }
        return [n for n in CHANNEL_NAMES if on[n]]


_SECTIONS = tuple(f.name for f in dataclasses.fields(Settings) if f.name not in
                  ("source", "secrets_from_env"))

# (section, key) -> (lowest, highest) allowed, inclusive; None = unbounded on that side.
_RANGES: dict[tuple[str, str], tuple[float | None, float | None]] = {
    ("monitor", "heartbeat_timeout_s"): (1, 3600),
    ("monitor", "expected_rate_hz"): (0, 1000),
    ("monitor", "rate_tolerance_pct"): (0, 100),
    ("monitor", "placement_check_min"): (0, 24 * 60),
    ("monitor", "placement_max_mean_mg"): (0, 1000),
    ("monitor", "clock_tolerance_s"): (1, None),
    ("monitor", "host_battery_low_pct"): (0, 100),
    ("alarm", "escalate_after_s"): (1, None),
    ("alarm", "repeat_every_s"): (1, None),
    ("alarm", "fault_repeat_s"): (0, None),
    ("alarm", "warning_hold_s"): (0, None),
    ("alarm", "max_mute_min"): (1, 24 * 60),
    ("alarm", "delivery_timeout_s"): (1, 600),
    ("audio", "volume_start"): (0.05, 1.0),
    ("audio", "volume_step"): (0.0, 1.0),
    ("audio", "plays_per_notice"): (1, 20),
    ("mqtt", "port"): (1, 65535),
    ("mqtt", "keepalive_s"): (5, 3600),
    ("webui", "port"): (0, 65535),
    ("video", "pre_s"): (0, 600),
    ("video", "post_s"): (1, 600),
}

_TOPIC_OK = re.compile(r"^[A-Za-z0-9_\-/]+$")


def default_path() -> Path:
    """``$SPASMWATCH_CONFIG``, else ``$XDG_CONFIG_HOME/spasmwatch/config.toml``."""
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "spasmwatch" / "config.toml"


def template_text() -> str:
    """The commented default configuration written by ``spasmwatch config init``."""
    return resources.files("spasmwatch.host").joinpath("data/config.toml").read_text("utf-8")


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            list[str]: "a list of strings",
            list[list[str]]: "a list of lists of strings"}.get(tp, str(tp))


def _convert(where: str, tp: Any, value: Any) -> Any:
    """Check ``value`` against the field type; ints are accepted where floats are."""
    ok: bool
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    elif tp == list[str]:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif tp == list[list[str]]:
        ok = isinstance(value, list) and all(
            isinstance(g, list) and all(isinstance(v, str) for v in g) for g in value)
    else:  # pragma: no cover - a field type this loader does not know
        raise TypeError(f"unsupported settings type {tp!r}")
    if not ok:
        raise SettingsError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    return value


def _unknown(where: str, key: str, known: list[str], what: str = "key") -> SettingsError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    return SettingsError(f"{where}: unknown {what} {key!r}{hint}")


def settings_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Settings:
    """Build and validate settings from parsed TOML; errors name ``source`` and the key."""
    s = Settings(source=source)
    for sec_name, sec_val in data.items():
        if sec_name not in _SECTIONS:
            raise _unknown(source, sec_name, list(_SECTIONS), "section")
        where_sec = f"{source}: [{sec_name}]"
        if not isinstance(sec_val, Mapping):
            raise SettingsError(f"{where_sec}: expected a table (section), got {sec_val!r}")
        section = getattr(s, sec_name)
        hints = get_type_hints(type(section))
        for key, value in sec_val.items():
            if key not in hints:
                raise _unknown(where_sec, key, list(hints))
            where = f"{source}: [{sec_name}] {key}"
            value = _convert(where, hints[key], value)
            lo_hi = _RANGES.get((sec_name, key))
            if lo_hi is not None:
                lo, hi = lo_hi
                if (lo is not None and value < lo) or (hi is not None and value > hi):
                    raise SettingsError(
                        f"{where}: {value!r} is out of range "
                        f"({'-inf' if lo is None else lo} .. {'inf' if hi is None else hi})"
                    )
            setattr(section, key, value)
    _check_cross_fields(s, source)
    return s


def _check_cross_fields(s: Settings, source: str) -> None:
    groups = s.alarm.groups
    if not groups or not groups[0]:
        raise SettingsError(f"{source}: [alarm] groups: needs at least one non-empty group")
    seen: set[str] = set()
    for g in groups:
        for name in g:
            if name not in CHANNEL_NAMES:
                raise _unknown(f"{source}: [alarm] groups", name, list(CHANNEL_NAMES),
                               "channel")
            if name in seen:
                raise SettingsError(f"{source}: [alarm] groups: {name!r} is listed twice")
            seen.add(name)
    if s.audio.player not in AUDIO_PLAYERS:
        raise SettingsError(
            f"{source}: [audio] player: {s.audio.player!r} is not one of "
            + ", ".join(AUDIO_PLAYERS))
    for name in ("push", "call"):
        for url in getattr(s, name).urls:
            if "://" not in url:
                raise SettingsError(
                    f"{source}: [{name}] urls: {url.split(':')[0]!r}... is not an apprise "
                    "URL (scheme://...)")
    for key in ("base_topic", "discovery_prefix", "device_id"):
        value = getattr(s.mqtt, key)
        if not _TOPIC_OK.match(value) or value.startswith("/") or value.endswith("/"):
            raise SettingsError(
                f"{source}: [mqtt] {key}: {value!r} must be letters, digits, _ - / "
                "(no wildcards, no leading or trailing /)")


def _split_urls(text: str) -> list[str]:
    return [u for u in re.split(r"[\s,]+", text) if u]


def apply_environment(s: Settings, env: Mapping[str, str] | None = None) -> Settings:
    """Add secrets from the environment (never written back to a file)."""
    env = os.environ if env is None else env
    for var, section in ((ENV_PUSH_URLS, s.push), (ENV_CALL_URLS, s.call)):
        if env.get(var):
            section.urls = section.urls + _split_urls(env[var])
            s.secrets_from_env.append(var)
    if env.get(ENV_MQTT_USERNAME):
        s.mqtt.username = env[ENV_MQTT_USERNAME]
        s.secrets_from_env.append(ENV_MQTT_USERNAME)
    if env.get(ENV_MQTT_PASSWORD):
        s.mqtt.password = env[ENV_MQTT_PASSWORD]
        s.secrets_from_env.append(ENV_MQTT_PASSWORD)
    _check_cross_fields(s, f"{s.source} + environment")
    return s


def load_settings(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    must_exist: bool = False,
) -> Settings:
    """Read, validate and complete the settings (defaults when the file is absent)."""
    p = Path(path) if path is not None else default_path()
    if not p.exists():
        if must_exist:
            raise SettingsError(f"{p}: no such file (create one with `spasmwatch config init`)")
        return apply_environment(Settings(source=f"{p} (absent: defaults)"), env)
    try:
        data = tomllib.loads(p.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{p}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{p}: cannot read: {exc}") from None
    return apply_environment(settings_from_dict(data, str(p)), env)


def redact_url(url: str) -> str:
    """``scheme://…``: apprise URLs carry their secrets anywhere after the scheme (an
    ntfy topic is the "host"), so reports show the scheme only."""
    return url.partition("://")[0] + "://…"
