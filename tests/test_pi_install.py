"""Where the virtual board cannot run (a Raspberry Pi) and optional libraries are missing.

* ``micropython`` is found beside ``sys.executable`` before PATH (a venv not activated);
* no message tells a Pi user to install what has no wheel there;
* ``demo`` and ``run --simulate`` without MicroPython run the firmware's detector
  in-process, say so in one line, and still alarm on a spasm cluster;
* a missing apprise / aiomqtt / desktop-notifier is named as missing, no traceback;
* ``--version`` works without numpy.

MicroPython is hidden by replacing ``optional.find_micropython`` (the one place that
looks); libraries are hidden by ``sys.modules[name] = None`` (import then fails).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tooling import missing

from spasmwatch.host import optional
from spasmwatch.host.alerts.alarm_state import Notice
from spasmwatch.host.alerts.channels.base import DeliveryError
from spasmwatch.host.cli.main import main
from spasmwatch.host.links.inprocess_board import InProcessBoard, InProcessLink
from spasmwatch.host.settings import MqttSettings


def _run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = main(argv, out=out)
    return code, out.getvalue()


@pytest.fixture
def no_micropython(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(optional, "find_micropython", lambda: None)


@pytest.fixture
def on_a_pi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(optional.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(optional.sys, "platform", "linux")


def test_micropython_found_beside_the_python_before_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv_bin = tmp_path / "venv" / "bin"
    on_path = tmp_path / "elsewhere"
    for d in (venv_bin, on_path):
        d.mkdir(parents=True)
        exe = d / "micropython"
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    monkeypatch.setattr(optional.sys, "executable", str(venv_bin / "python"))
    monkeypatch.setenv("PATH", str(on_path))
    assert optional.find_micropython() == str(venv_bin / "micropython")
    (venv_bin / "micropython").unlink()  # not beside it: PATH
    assert optional.find_micropython() == str(on_path / "micropython")
    monkeypatch.setenv("PATH", "")
    assert optional.find_micropython() is None


def test_board_runner_uses_the_interpreter_beside_sys_executable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real interpreter from this venv starts the board with PATH emptied."""
    if optional.find_micropython() is None:
        pytest.skip("no MicroPython on this platform")
    beside = Path(sys.executable).parent / "micropython"
    if not beside.exists():
        missing("micropython is not installed beside this Python")  # fails under CI
    from spasmwatch.simulator import scenarios
    from spasmwatch.simulator.board_runner import BoardRunner

    monkeypatch.setenv("PATH", "")
    trace, _ = scenarios.generate("hypnic-jerks", seed=1)
    runner = BoardRunner(trace, speed=0)
    try:
        port = runner.start()
        assert port.startswith("/dev/") and runner.running()
    finally:
        runner.stop()


def test_messages_on_a_pi_never_ask_for_what_cannot_install(on_a_pi: None) -> None:
    assert not optional.micropython_supported()
    for text in (optional.micropython_message(), optional.in_process_note()):
        assert "pip install" not in text and "linux aarch64" in text, text
    # Bumble has aarch64 wheels (tests/test_wheels_aarch64.py): naming the extra is fine.
    assert "pip install 'spasmwatch[sim]'" in optional.bumble_message()


def test_messages_on_x86_64_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(optional.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(optional.sys, "platform", "linux")
    assert optional.micropython_supported()
    assert "pip install 'spasmwatch[sim]'" in optional.micropython_message()
    assert "pip install 'spasmwatch[sim]'" in optional.in_process_note()


def test_demo_without_micropython_runs_in_process_and_says_so_once(
    no_micropython: None, on_a_pi: None
) -> None:
    code, text = _run(["demo", "--scenario", "spasm-cluster", "--speed", "0"])
    assert code == 0
    notes = [ln for ln in text.splitlines() if "in this process instead" in ln]
    assert len(notes) == 1 and "linux aarch64" in notes[0]
    assert "pip install" not in text
    assert "ALARM" in text and "runs under MicroPython" not in text


def test_demo_over_ble_without_micropython_is_one_clear_error(
    no_micropython: None, on_a_pi: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = _run(["demo", "--link", "ble", "--speed", "0"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "needs the virtual board" in err and "pip install" not in err


def test_run_simulate_without_micropython_alarms_through_the_daemon(
    no_micropython: None, tmp_path: Path
) -> None:
    db = tmp_path / "night.db"
    code, text = _run(["run", "--simulate", "spasm-cluster", "--speed", "0", "--json",
                       "--db", str(db)])
    assert code == 0
    records = [json.loads(line) for line in text.splitlines()]
    notes = [r for r in records if r["type"] == "link" and r["state"] == "in-process"]
    assert len(notes) == 1 and "in this process instead" in notes[0]["message"]
    alarms = [r for r in records if r["type"] == "alert" and r["level"] == "alarm"]
    assert len(alarms) >= 1
    summary = [r for r in records if r.get("state") == "summary"]
    assert summary and "0 missing" in summary[0]["message"]
    # the snippet came back from the in-process board's raw-sample ring: at --speed 0
    # the board runs ahead of the parts asked for while the cluster goes on, so a part
    # may leave a short hole (kept as missing samples, the snippet marked partial)
    snips = [r for r in records if r["type"] == "snippet"]
    assert snips and snips[0]["received"] >= 0.9 * snips[0]["expected"]
    assert db.exists() and db.stat().st_size > 0


def test_in_process_link_answers_like_the_firmware() -> None:
    """SET_TIME gets device ms, RESEND serves the ring (then GONE for what is not)."""
    from spasmwatch.firmware import control, wire

    async def go() -> None:
        board = InProcessBoard("spasm-cluster", speed=0)
        board.start()
        link = board.connect()
        assert isinstance(link, InProcessLink)
        await link.open()
        first = [wire.decode(await link.recv()) for _ in range(5)]
        assert [seq for seq, _ in first] == [0, 1, 2, 3, 4]
        assert first[0][1][0] == wire.KIND_STATUS
        await link.send_control(control.encode_set_time(1_700_000_000))
        seq, rec = wire.decode(await link.recv())
        assert rec[0] == wire.KIND_REPLY and rec[2] == control.SET_TIME
        assert rec[3] == control.RESULT_OK and rec[4] == board.now_ms() and seq == 4
        await link.send_control(control.encode_resend(2, 3))
        again = [wire.decode(await link.recv()) for _ in range(3)]
        assert [s for s, _ in again[:2]] == [2, 3] and again[:2] == first[2:4]
        assert again[2][1][2:4] == (control.RESEND, control.RESULT_OK)
        await link.send_control(control.encode_resend(4, 9))  # 5..9 not sent yet
        *_, (_, reply) = [wire.decode(await link.recv()) for _ in range(2)]
        assert reply[2:5] == (control.RESEND, control.RESULT_GONE, 1)
        await link.close()
        board.stop()

    asyncio.run(go())


def test_missing_apprise_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from spasmwatch.host.alerts.channels.apprise_channel import AppriseChannel, check_url

    monkeypatch.setitem(sys.modules, "apprise", None)
    why = check_url("ntfy://example/topic")
    assert why is not None and why.startswith("missing optional library apprise")
    with pytest.raises(DeliveryError, match="missing optional library apprise.*pip install"):
        asyncio.run(AppriseChannel("phone", ["ntfy://example/topic"]).send(
            Notice(0.0, "alarm", "k", "t", "m")))


def test_missing_aiomqtt_is_named_not_a_broker_problem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from spasmwatch.host.alerts.channels.mqtt_ha import MqttHomeAssistant

    monkeypatch.setitem(sys.modules, "aiomqtt", None)

    async def go() -> str:
        ch = MqttHomeAssistant(MqttSettings(enabled=True, host="127.0.0.1", port=9))
        await ch.start()
        await asyncio.sleep(0.05)
        try:
            await ch.send(Notice(0.0, "alarm", "k", "t", "m"))
        except DeliveryError as exc:
            return str(exc)
        finally:
            await ch.stop()
        return ""

    text = asyncio.run(go())
    assert text.startswith("missing optional library aiomqtt") and "broker" not in text


def test_missing_desktop_notifier_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from spasmwatch.host.alerts.channels.desktop import DesktopChannel

    monkeypatch.setitem(sys.modules, "desktop_notifier", None)
    with pytest.raises(DeliveryError, match="missing optional library desktop-notifier"):
        asyncio.run(DesktopChannel().send(Notice(0.0, "alarm", "k", "t", "m")))


def test_version_and_help_work_without_numpy() -> None:
    code = ("import sys; sys.modules['numpy'] = None\n"
            "from spasmwatch.host.cli.main import main\n"
            "try:\n    main(['--version'])\nexcept SystemExit as e:\n    sys.exit(e.code)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("spasmwatch ") and "Traceback" not in proc.stderr
