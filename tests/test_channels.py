"""Channels and the hub's layered fan-out, with real parts: ``aplay`` on ALSA's null sink,
apprise posting to a local HTTP endpoint that records what it received, real SQLite, and
the ``spasmwatch alert test`` command."""

from __future__ import annotations

import asyncio
import io
import json
import re
import shutil
import threading
import wave
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tooling import require_tool

from spasmwatch.firmware import wire
from spasmwatch.host.alerts.alarm_state import Notice
from spasmwatch.host.alerts.channels.audio import AudioChannel, player_command, synth_wav
from spasmwatch.host.alerts.channels.base import DeliveryError
from spasmwatch.host.alerts.delivery import AlertHub, read_host_battery
from spasmwatch.host.cli import main as cli
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.outputs import Output
from spasmwatch.host.monitor.store import Store
from spasmwatch.host.settings import AudioSettings, Settings, settings_from_dict

T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def aplay() -> str:
    return require_tool("aplay", "apt-get install alsa-utils (see .ci/run)")


class Recorder:
    """A local HTTP endpoint: records every request; paths starting /fail answer 500."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        rec = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                rec.requests.append({"path": self.path, "body": json.loads(body or b"{}")})
                code = 500 if self.path.startswith("/fail") else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "ok") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"


@pytest.fixture
def endpoint() -> Iterator[Recorder]:
    r = Recorder()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def make_settings(tmp: Path, **sections: dict[str, Any]) -> Settings:
    data: dict[str, Any] = {
        "audio": {"player": "aplay", "device": "null", "sound_dir": str(tmp / "snd")},
        "webui": {"enabled": False},
        "monitor": {"host_battery_low_pct": 0},
    }
    for k, v in sections.items():
        data.setdefault(k, {}).update(v)
    return settings_from_dict(data, "test")


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def alarm_outputs() -> list[Output]:
    """Real engine output for three spasm-like movements 8 s apart."""
    eng = Engine(t0=T0)
    outs: list[Output] = []
    for i in range(3):
        rec = (wire.KIND_EVENT, (100 + 8 * i) * 1000, wire.CLS_SPASM_LIKE,
               wire.STATE_SETTLING, 1, 1000, 400, 100, 40, 150, 7)  # spasm-shaped
        outs += eng.feed_packet(wire.encode(i, rec), received_at=T0 + 101 + 8 * i)
    return outs


def test_synth_wav_is_a_valid_wav_and_louder_with_volume(tmp_path: Path) -> None:
    quiet = synth_wav(tmp_path / "q.wav", "alarm", 0.2)
    loud = synth_wav(tmp_path / "l.wav", "alarm", 1.0)
    peaks = []
    for p in (quiet, loud):
        with wave.open(str(p)) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
            assert 1.0 < w.getnframes() / 16000 < 3.0
            import array

            a = array.array("h", w.readframes(w.getnframes()))
            peaks.append(max(abs(x) for x in a))
    assert peaks[1] > 4 * peaks[0] > 0


def test_audio_plays_through_aplay_null_sink_and_escalates(tmp_path: Path, aplay: str) -> None:
    ch = AudioChannel(AudioSettings(player="aplay", device="null", sound_dir=str(tmp_path),
                                    volume_start=0.4, volume_step=0.2, plays_per_notice=2))
    first = Notice(T0, "alarm", "spasm_cluster", "t", "m", audible=True)
    third = Notice(T0, "alarm", "spasm_cluster", "t", "m", audible=True, repeat=2)
    assert asyncio.run(ch.send(first)) == "played 2x at 40% with aplay"
    assert asyncio.run(ch.send(third)) == "played 4x at 80% with aplay"
    assert ch.played[0] == [aplay, "-q", "-D", "null", str(tmp_path / "alarm-040.wav")]
    assert (tmp_path / "alarm-080.wav").exists()


def test_audio_failure_is_a_delivery_error(tmp_path: Path, aplay: str) -> None:
    ch = AudioChannel(AudioSettings(player="aplay", device="no_such_pcm",
                                    sound_dir=str(tmp_path)))
    with pytest.raises(DeliveryError, match="aplay exited with 1: .*no_such_pcm"):
        asyncio.run(ch.send(Notice(T0, "alarm", "k", "t", "m", audible=True)))
    missing = AudioChannel(AudioSettings(player="pw-play", sound_dir=str(tmp_path)))
    if shutil.which("pw-play") is None:
        with pytest.raises(DeliveryError, match="no audio player on PATH"):
            asyncio.run(missing.send(Notice(T0, "alarm", "k", "t", "m", audible=True)))


def test_player_commands() -> None:
    wav = Path("/x.wav")
    assert player_command("/usr/bin/paplay", "sink1", wav) == ["/usr/bin/paplay", "-d", "sink1",
                                                               "/x.wav"]
    assert player_command("pw-play", "", wav) == ["pw-play", "/x.wav"]


def test_alarm_fans_out_to_audio_and_push_with_the_why(tmp_path: Path, aplay: str,
                                                       endpoint: Recorder) -> None:
    s = make_settings(tmp_path, push={"urls": [endpoint.url("phone")]},
                      call={"urls": [endpoint.url("call")]},
                      monitor={"heartbeat_timeout_s": 3600})
    clock = Clock()
    store = Store(tmp_path / "m.db")
    hub = AlertHub(s, store, clock=clock)

    async def run() -> None:
        await hub.start()
        for o in alarm_outputs():
            hub.handle(o)
        await hub.drain()
        # Not acknowledged: after escalate_after_s the call group is added.
        clock.t += 121
        hub.tick()
        await hub.drain()
        hub.ack("test")
        clock.t += 500
        hub.tick()
        await hub.drain()
        await hub.stop()

    asyncio.run(run())
    paths = [r["path"] for r in endpoint.requests]
    # warning + alarm to the phone at once; the repeat at 121 s to phone and call group
    # (those two concurrently, so in either order); nothing after the acknowledgement.
    assert paths[:2] == ["/phone", "/phone"] and sorted(paths[2:]) == ["/call", "/phone"]
    alarm_body = endpoint.requests[1]["body"]
    assert alarm_body["type"] == "failure"  # apprise's most urgent type
    assert "3 spasm-like movements" in alarm_body["message"]
    assert "Why" in alarm_body["message"] and "peak 400 mg" in alarm_body["message"]
    assert all("repeat 1" in r["body"]["message"] for r in endpoint.requests[2:])
    rows = store.connection.execute(
        "SELECT channel, level, repeat, ok FROM alarm_deliveries ORDER BY id").fetchall()
    assert ("audio", "alarm", 0, 1) in rows and ("call", "alarm", 1, 1) in rows
    assert ("audio", "warning", 0, 1) in rows
    assert all(ok == 1 for *_, ok in rows)
    trans = store.connection.execute(
        "SELECT from_state, to_state, source FROM alarm_transitions ORDER BY id").fetchall()
    assert trans[-1] == ("alarm", "ok", "test")
    store.close()


def test_one_failing_channel_does_not_silence_the_others_and_raises_a_fault(
        tmp_path: Path, aplay: str, endpoint: Recorder) -> None:
    # Audio points at a PCM that does not exist: it fails; push must still get the alarm,
    # then a fault about the audio channel, sent on push only.
    s = make_settings(tmp_path, push={"urls": [endpoint.url("phone")]},
                      audio={"device": "no_such_pcm"})
    store = Store(tmp_path / "m.db")
    hub = AlertHub(s, store, clock=Clock())

    async def run() -> None:
        await hub.start()
        for o in alarm_outputs():
            hub.handle(o)
        await hub.drain()
        await hub.stop()

    asyncio.run(run())
    bodies = [r["body"] for r in endpoint.requests]
    assert [b["title"] for b in bodies] == [
        "spasmwatch warning", "spasmwatch ALARM: spasm-like movements",
        "spasmwatch: monitoring problem"]
    assert "the alarm sound could not be played" in bodies[2]["message"]
    # The parent reads a plain sentence; the tool's own error stays in the record.
    assert "no_such_pcm" not in bodies[2]["message"]
    assert "no_such_pcm" in hub.sm.faults["delivery_failed_audio"].details["error"]
    failed = store.connection.execute(
        "SELECT channel, kind, detail FROM alarm_deliveries WHERE ok = 0").fetchall()
    assert {c for c, _, _ in failed} == {"audio"}
    assert hub.sm.state == "alarm"  # the alarm still outranks the fault
    store.close()


def test_failing_push_url_is_reported_per_url(tmp_path: Path, endpoint: Recorder) -> None:
    s = make_settings(tmp_path, audio={"enabled": False},
                      push={"urls": [endpoint.url("ok"), endpoint.url("fail")]})
    hub = AlertHub(s, None, clock=Clock())

    async def run() -> list[Any]:
        await hub.start()
        try:
            return await hub.test_all()
        finally:
            await hub.stop()

    [res] = asyncio.run(run())
    assert res.ok is False and res.detail.startswith("1 of 2 URL(s) failed: #2 json://…")
    assert str(endpoint.port) not in res.detail  # URLs are not logged in full
    assert len(endpoint.requests) == 2


def test_desktop_is_never_counted_as_delivered(tmp_path: Path) -> None:
    s = make_settings(tmp_path, audio={"enabled": False}, desktop={"enabled": True})
    hub = AlertHub(s, None, clock=Clock())

    async def run() -> None:
        await hub.start()
        for o in alarm_outputs():
            hub.handle(o)
        await hub.drain()
        await hub.stop()

    asyncio.run(run())
    oks = {d["ok"] for d in hub.deliveries.memory if d["channel"] == "desktop"}
    assert True not in oks  # None (unconfirmed) where a desktop exists, False where not
    assert not any(k.startswith("delivery_failed") for k in hub.sm.faults)


def test_cli_alert_test_reports_each_channel(tmp_path: Path, aplay: str,
                                             endpoint: Recorder) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[audio]\nplayer = "aplay"\ndevice = "null"\nsound_dir = "{tmp_path}"\n'
        f'[push]\nurls = ["{endpoint.url("phone")}"]\n'
        f'[call]\nurls = ["{endpoint.url("fail")}"]\n')
    out = io.StringIO()
    code = cli.main(["alert", "test", "--config", str(cfg)], out)
    text = out.getvalue()
    assert code == 1
    assert "audio    delivered" in text and "push     delivered" in text
    assert "call     FAILED" in text and "2 of 3 channel(s) ok; failed: call" in text
    [phone] = [r for r in endpoint.requests if r["path"] == "/phone"]
    assert phone["body"]["title"] == "spasmwatch test alert"


def test_host_battery_from_sysfs(tmp_path: Path) -> None:
    bat = tmp_path / "BAT0"
    bat.mkdir()
    (bat / "type").write_text("Battery\n")
    (bat / "capacity").write_text("12\n")
    (bat / "status").write_text("Discharging\n")
    (tmp_path / "AC").mkdir()
    (tmp_path / "AC" / "type").write_text("Mains\n")
    assert read_host_battery(tmp_path) == (12, True)
    assert read_host_battery(tmp_path / "nothing") is None
    s = make_settings(tmp_path, audio={"enabled": False},
                      monitor={"host_battery_low_pct": 20, "power_supply_dir": str(tmp_path)})
    hub = AlertHub(s, None, clock=Clock())
    [n] = [n for n in hub.tick() if n.kind == "host_battery_low"]
    assert "12%" in n.message and hub.sm.state == "fault"


def test_spasmwatch_run_delivers_the_simulated_alarm(tmp_path: Path, aplay: str,
                                                     endpoint: Recorder) -> None:
    """The whole path: simulated sensor -> daemon -> engine -> hub -> sound and phone."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[audio]\nplayer = "aplay"\ndevice = "null"\nsound_dir = "{tmp_path / "snd"}"\n'
        f'[push]\nurls = ["{endpoint.url("phone")}"]\n'
        '[webui]\nport = 0\n[monitor]\nhost_battery_low_pct = 0\n')
    db = tmp_path / "m.db"
    out = io.StringIO()
    code = cli.main(["run", "--simulate", "mixed-night", "--speed", "0", "--quiet",
                     "--config", str(cfg), "--db", str(db)], out)
    assert code == 0
    titles = [r["body"]["title"] for r in endpoint.requests]
    assert "spasmwatch ALARM: spasm-like movements" in titles
    alarms = [r["body"] for r in endpoint.requests if r["body"]["type"] == "failure"]
    assert alarms
    for alarm in alarms:
        # 3 or more: since round 3 the host may count movements that match the others.
        assert re.search(r"\b\d+ spasm-like movements", alarm["message"])
        assert "Why" in alarm["message"]
    assert (tmp_path / "snd" / "alarm-040.wav").exists()
    with Store(db) as store:
        to_states = [r[0] for r in store.connection.execute(
            "SELECT to_state FROM alarm_transitions ORDER BY id")]
        assert "alarm" in to_states
        n_ok = store.connection.execute(
            "SELECT COUNT(*) FROM alarm_deliveries WHERE level = 'alarm' AND ok = 1"
        ).fetchone()[0]
        assert n_ok == 2 * len(alarms)  # each on audio and push
