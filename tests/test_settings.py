"""Settings: the template is the defaults, errors name the key, secrets from environment,
and the ``config init|check`` commands."""

from __future__ import annotations

import io
import tomllib
from pathlib import Path

import pytest

from spasmwatch.host.cli import main as cli
from spasmwatch.host.settings import (
    Settings,
    SettingsError,
    load_settings,
    redact_url,
    settings_from_dict,
    template_text,
)


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return cli.main(list(argv), out), out.getvalue()


def _public(s: Settings) -> dict:
    return s.public()


def test_template_holds_exactly_the_defaults() -> None:
    parsed = settings_from_dict(tomllib.loads(template_text()), "template")
    assert _public(parsed) == _public(Settings())
    # ... and names every key (so the commented file documents them all).
    data = tomllib.loads(template_text())
    for name, field in Settings.model_fields.items():
        keys = set(field.annotation.model_fields)
        assert set(data[name]) == keys, name


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[alarm]\nescalate_afer_s = 10\n",
         r"\[alarm\]: unknown key 'escalate_afer_s' \(did you mean 'escalate_after_s'"),
        ("[audoi]\n", r"unknown section 'audoi' \(did you mean 'audio'"),
        ("[audio]\nvolume_start = 'loud'\n", r"\[audio\] volume_start: expected a number"),
        ("[audio]\nvolume_start = 3\n", r"\[audio\] volume_start: 3 is out of range"),
        ("[alarm]\nescalate_after_s = nan\n", r"\[alarm\] escalate_after_s: expected a finite"),
        ("[monitor]\nheartbeat_timeout_s = inf\n",
         r"\[monitor\] heartbeat_timeout_s: expected a fin"),
        ("[patterns]\nspasm_gap_s = nan\n", r"\[patterns\] spasm_gap_s: expected a finite"),
        ("[patterns]\nalarm_min_spasms = 0\n", r"\[patterns\] alarm_min_spasms: 0 is out of range"),
        ("[video]\npre_s = -inf\n", r"\[video\] pre_s: expected a finite"),
        ("[mqtt]\nport = 70000\n", r"\[mqtt\] port: 70000 is out of range"),
        ("[mqtt]\nenabled = 1\n", r"\[mqtt\] enabled: expected true or false"),
        ("[alarm]\ngroups = [['audio', 'pager']]\n", r"\[alarm\] groups: unknown channel 'pager'"),
        ("[alarm]\ngroups = [['audio'], ['audio']]\n", r"'audio' is listed twice"),
        ("[push]\nurls = ['not a url']\n", r"\[push\] urls: .* is not an apprise URL"),
        ("[mqtt]\nbase_topic = 'a/#'\n", r"\[mqtt\] base_topic: 'a/#' must be"),
        ("[audio]\nplayer = 'vlc'\n", r"\[audio\] player: 'vlc' is not one of"),
        ("monitor = 3\n", r"\[monitor\]: expected a table"),
        ("[monitor\n", r"not valid TOML"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path: Path, toml: str, message: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(toml)
    with pytest.raises(SettingsError, match=message) as exc:
        load_settings(p, env={})
    assert str(p) in str(exc.value)
    code, _ = run_cli("config", "check", "--config", str(p))
    assert code == 2


def test_secrets_come_from_the_environment(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[push]\nurls = ['json://127.0.0.1:9/']\n[mqtt]\nenabled = true\n")
    s = load_settings(p, env={
        "SPASMWATCH_PUSH_URLS": "ntfy://secret-topic, pover://u@t?priority=emergency",
        "SPASMWATCH_MQTT_PASSWORD": "hunter2",
    })
    assert s.push.urls == ["json://127.0.0.1:9/", "ntfy://secret-topic",
                           "pover://u@t?priority=emergency"]
    assert s.mqtt.password == "hunter2"
    assert s.secrets_from_env == ["SPASMWATCH_PUSH_URLS", "SPASMWATCH_MQTT_PASSWORD"]
    assert s.enabled_channels() == ["audio", "push", "mqtt"]
    assert "secret" not in redact_url("ntfy://secret-topic")


def test_missing_file_means_defaults_unless_required(tmp_path: Path) -> None:
    s = load_settings(tmp_path / "none.toml", env={})
    assert _public(s) == _public(Settings())
    with pytest.raises(SettingsError, match="config init"):
        load_settings(tmp_path / "none.toml", env={}, must_exist=True)


def test_config_init_then_check(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "config.toml"
    code, out = run_cli("config", "init", "--config", str(p))
    assert code == 0 and p.read_text() == template_text()
    assert p.stat().st_mode & 0o077 == 0  # may hold tokens: private
    assert run_cli("config", "init", "--config", str(p))[0] == 2  # no silent overwrite
    assert run_cli("config", "init", "--config", str(p), "--force")[0] == 0
    # The default has audio on: check passes where a player exists (aplay in CI).
    p.write_text(p.read_text().replace('player = "auto"', 'player = "aplay"'))
    code, out = run_cli("config", "check", "--config", str(p))
    assert code == 0, out
    assert "group 1 (at once): audio, desktop (not configured, skipped)" in out
    assert "configuration ok" in out


def test_config_check_rejects_url_apprise_does_not_know(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[audio]\nenabled = false\n[push]\nurls = ['nosuchscheme://x']\n")
    code, out = run_cli("config", "check", "--config", str(p))
    assert code == 2
    assert "[push] urls: nosuchscheme://… is not a URL apprise understands" in (
        capsys.readouterr().err)
