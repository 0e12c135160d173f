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

import difflib
import math
import os
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from spasmwatch.host.errors import UserError
from spasmwatch.host.monitor.alerts import AlertConfig

ENV_CONFIG = "SPASMWATCH_CONFIG"
ENV_PUSH_URLS = "SPASMWATCH_PUSH_URLS"
ENV_CALL_URLS = "SPASMWATCH_CALL_URLS"
ENV_MQTT_USERNAME = "SPASMWATCH_MQTT_USERNAME"
ENV_MQTT_PASSWORD = "SPASMWATCH_MQTT_PASSWORD"

#: Channel names a ``[alarm] groups`` entry may use.
CHANNEL_NAMES = ("audio", "desktop", "push", "call", "mqtt")
AUDIO_PLAYERS = ("auto", "pw-play", "paplay", "aplay")
#: Channels that can wake a sleeping parent (desktop pop-ups cannot).
WAKING_CHANNELS = ("audio", "push", "call", "mqtt")


class SettingsError(UserError):
    """A configuration problem; the message names the file and the key."""


class Section(BaseModel):
    """A TOML section: strict types, no unknown keys, no NaN or infinity, checked on
    assignment too (a CLI flag that overrides a field is validated like the file)."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False,
                              validate_assignment=True)


class MonitorSettings(Section):
    """Conditions that make the alarm state ``fault`` (besides the engine's own faults)."""

    heartbeat_timeout_s: float = Field(30.0, ge=1, le=3600)  # no packet this long: fault
    expected_rate_hz: int = Field(50, ge=0, le=1000)  # the sensor's rate; 0 = do not check
    rate_tolerance_pct: float = Field(10.0, ge=0, le=100)
    placement_check_min: float = Field(30.0, ge=0, le=24 * 60)  # no movement at all; 0 = off
    placement_max_mean_mg: int = Field(3, ge=0, le=1000)  # summary mean at or below: none
    clock_tolerance_s: float = Field(120.0, ge=1, le=86400)  # device clock ahead / back
    host_battery_low_pct: int = Field(20, ge=0, le=100)  # host on battery below; 0 = off
    power_supply_dir: str = "/sys/class/power_supply"


class AlarmSettings(Section):
    """How alarms latch, repeat and widen to more channels."""

    groups: list[list[str]] = Field(
        default_factory=lambda: [["audio", "desktop", "push", "mqtt"], ["call"]])
    escalate_after_s: float = Field(120.0, ge=1, le=86400)  # unacked: widen to next group
    repeat_every_s: float = Field(60.0, ge=1, le=86400)  # unacked alarm: notify again
    fault_repeat_s: float = Field(900.0, ge=0, le=86400)  # unacked fault reminder; 0 = once
    warning_hold_s: float = Field(300.0, ge=0, le=86400)  # a warning shows this long
    max_mute_min: float = Field(120.0, ge=1, le=24 * 60)
    delivery_timeout_s: float = Field(20.0, ge=1, le=600)


class AudioSettings(Section):
    enabled: bool = True
    player: str = "auto"  # auto = first of pw-play, paplay, aplay on PATH
    device: str = ""  # passed as aplay -D / paplay -d / pw-play --target ("null": silent)
    sound_dir: str = ""  # where generated WAVs go; "" = a cache folder
    volume_start: float = Field(0.4, ge=0.05, le=1.0)  # amplitude of the first play
    volume_step: float = Field(0.2, ge=0.0, le=1.0)  # added on each repeat
    plays_per_notice: int = Field(2, ge=1, le=20)


class DesktopSettings(Section):
    enabled: bool = False  # convenience only: never counted as delivered


class AppriseSettings(Section):
    urls: list[str] = Field(default_factory=list)


class MqttSettings(Section):
    enabled: bool = False
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    username: str = ""
    password: str = ""
    base_topic: str = "spasmwatch"
    discovery_prefix: str = "homeassistant"
    device_id: str = "spasmwatch"
    keepalive_s: int = Field(30, ge=5, le=3600)


class WebUISettings(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)


class VideoSettings(Section):
    """A camera clip around every alarm (host/records/video.py); off while ``source`` is
    empty."""

    source: str = ""  # rtsp://..., /dev/videoN, or lavfi:SPEC (ffmpeg test source)
    pre_s: float = Field(20.0, ge=0, le=600)  # seconds of video before the alarm
    post_s: float = Field(20.0, ge=1, le=600)  # seconds after it
    dir: str = ""  # where clips go; "" = $XDG_DATA_HOME/spasmwatch/clips


class Settings(Section):
    """Everything the monitor is built from (``host/compose.py``): one model, loaded once."""

    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    patterns: AlertConfig = Field(default_factory=AlertConfig)
    alarm: AlarmSettings = Field(default_factory=AlarmSettings)
    audio: AudioSettings = Field(default_factory=AudioSettings)
    desktop: DesktopSettings = Field(default_factory=DesktopSettings)
    push: AppriseSettings = Field(default_factory=AppriseSettings)
    call: AppriseSettings = Field(default_factory=AppriseSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    webui: WebUISettings = Field(default_factory=WebUISettings)
    video: VideoSettings = Field(default_factory=VideoSettings)
    _source: str = PrivateAttr("<defaults>")  # the file these came from (not a TOML key)
    _secrets_from_env: list[str] = PrivateAttr(default_factory=list)  # variable names used

    @property
    def source(self) -> str:
        return self._source

    @property
    def secrets_from_env(self) -> list[str]:
        return self._secrets_from_env

    def public(self) -> dict[str, Any]:
        """The TOML-shaped values (what a config file can set)."""
        return self.model_dump()

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


SECTIONS = tuple(Settings.model_fields)

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


def _unknown(where: str, key: str, known: list[str], what: str = "key") -> SettingsError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    return SettingsError(f"{where}: unknown {what} {key!r}{hint}")


_EXPECTED = {
    "bool_type": "true or false", "int_type": "an integer", "float_type": "a number",
    "string_type": "a string", "list_type": "a list", "model_type": "a table (section)",
    "dict_type": "a table (section)", "finite_number": "a finite number",
}


def _from_validation(exc: ValidationError, source: str) -> SettingsError:
    """The first problem, as one line naming the file, section and key."""
    err = exc.errors(include_url=False)[0]
    loc = [str(x) for x in err["loc"]]
    where = source
    if loc:
        where += f": [{loc[0]}]"
        if len(loc) > 1:
            where += " " + ".".join(loc[1:])
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        if len(loc) == 1:
            return _unknown(source, loc[0], list(SECTIONS), "section")
        model: Any = Settings.model_fields[loc[0]].annotation
        return _unknown(f"{source}: [{loc[0]}]", loc[-1], list(model.model_fields))
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        field = Settings.model_fields[loc[0]].annotation.model_fields[loc[1]]  # type: ignore
        lo = hi = None
        for m in field.metadata:
            lo = getattr(m, "ge", lo) if getattr(m, "ge", None) is not None else lo
            hi = getattr(m, "le", hi) if getattr(m, "le", None) is not None else hi
        return SettingsError(f"{where}: {value!r} is out of range ({lo} .. {hi})")
    if kind in _EXPECTED:
        return SettingsError(f"{where}: expected {_EXPECTED[kind]}, got {value!r}")
    return SettingsError(f"{where}: {err['msg']} (got {value!r})")


def settings_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Settings:
    """Build and validate settings from parsed TOML; errors name ``source`` and the key."""
    for sec_name, sec_val in data.items():
        if sec_name not in SECTIONS:
            raise _unknown(source, sec_name, list(SECTIONS), "section")
        if not isinstance(sec_val, Mapping):
            raise SettingsError(
                f"{source}: [{sec_name}]: expected a table (section), got {sec_val!r}")
    try:
        s = Settings.model_validate(dict(data))
    except ValidationError as exc:
        raise _from_validation(exc, source) from None
    s._source = source
    check_cross_fields(s, source)
    return s


def set_field(s: Settings, section: str, key: str, value: Any, where: str) -> None:
    """Override one field (a CLI flag), validated like the file; errors name ``where``."""
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingsError(f"{where}: {value!r} is not a finite number")
    try:
        setattr(getattr(s, section), key, value)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise SettingsError(f"{where}: {err['msg']} (got {value!r})") from None


def check_cross_fields(s: Settings, source: str) -> None:
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
            s._secrets_from_env.append(var)
    if env.get(ENV_MQTT_USERNAME):
        s.mqtt.username = env[ENV_MQTT_USERNAME]
        s._secrets_from_env.append(ENV_MQTT_USERNAME)
    if env.get(ENV_MQTT_PASSWORD):
        s.mqtt.password = env[ENV_MQTT_PASSWORD]
        s._secrets_from_env.append(ENV_MQTT_PASSWORD)
    check_cross_fields(s, f"{s.source} + environment")
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
        s = Settings()
        s._source = f"{p} (absent: built-in defaults)"
        return apply_environment(s, env)
    try:
        data = tomllib.loads(p.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{p}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses per nested array/table: "a = [[[[...]]]]"
        raise SettingsError(f"{p}: not valid TOML: nested too deeply") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{p}: cannot read: {exc}") from None
    return apply_environment(settings_from_dict(data, str(p)), env)


def redact_url(url: str) -> str:
    """``scheme://…``: apprise URLs carry their secrets anywhere after the scheme (an
    ntfy topic is the "host"), so reports show the scheme only."""
    return url.partition("://")[0] + "://…"
