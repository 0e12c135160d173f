"""Pairing: `spasmwatch pair` over the virtual board's serial port, key files, the
host's Session (boot counter, challenge, command counter) and what the receive path
does with packets that are not from the paired sensor."""

from __future__ import annotations

import io
import os
import stat
import time
from pathlib import Path

import pytest
from bus import js

from spasmwatch.firmware import auth, config, control, wire
from spasmwatch.host.cli.main import main
from spasmwatch.host.errors import UserError
from spasmwatch.host.monitor.engine import Engine
from spasmwatch.host.monitor.ingest import PacketIngest
from spasmwatch.host.pairing import (
    Pairing,
    Session,
    load_pairing,
    save_pairing,
    session_for_run,
    web_token,
)
from spasmwatch.simulator.board_runner import BoardRunner

KEY = bytes(range(16))


def _hello_answer(key: bytes, boot: int, token: int, last_cnt: int = 0, seq: int = 0) -> bytes:
    rec = (wire.KIND_REPLY, last_cnt, control.HELLO, control.RESULT_OK, boot)
    return wire.encode(seq, rec, lambda b: auth.hello_tag(key, boot, token, b))


def _packet(key: bytes, boot: int, seq: int, rec: tuple) -> bytes:
    return wire.encode(seq, rec, lambda b: auth.packet_tag(key, boot, b))


STATUS = (wire.KIND_STATUS, 10_000, 3900, wire.ST_SENSOR_OK, 0, 100, 50, 4)


def test_pair_over_the_virtual_boards_serial_port(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   micropython_exe: str) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("SPASMWATCH_CONFIG", raising=False)
    workdir = tmp_path / "board"
    with BoardRunner(None, speed=5, workdir=workdir, heapsize="320k") as runner:
        out = io.StringIO()
        assert main(["pair", "--port", runner.port], out) == 0
        assert "paired with the sensor" in out.getvalue()
        p = load_pairing(tmp_path / "cfg" / "spasmwatch")
        assert p is not None and len(p.key) == 16 and p.port == runner.port
        path = tmp_path / "cfg" / "spasmwatch" / "pairing.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        # The key is on the board's flash (hex), not in any firmware source.
        assert (workdir / config.AUTH_KEY_FILE).read_text().strip() == p.key.hex()
        out = io.StringIO()
        assert main(["pair", "--show"], out) == 0 and p.key_id in out.getvalue()
        assert p.key.hex() not in out.getvalue()
        # Re-pairing makes a new key; wiping removes it from both sides.
        assert main(["pair", "--port", runner.port], io.StringIO()) == 0
        p2 = load_pairing(tmp_path / "cfg" / "spasmwatch")
        assert p2 is not None and p2.key != p.key
        assert (workdir / config.AUTH_KEY_FILE).read_text().strip() == p2.key.hex()
        assert main(["pair", "--port", runner.port, "--wipe"], io.StringIO()) == 0
        assert not (workdir / config.AUTH_KEY_FILE).exists()
        assert load_pairing(tmp_path / "cfg" / "spasmwatch") is None
        boots = int((workdir / config.BOOT_FILE).read_text())
        assert boots >= 3  # start-up + one per pairing


def test_pairing_file_must_be_private(tmp_path: Path) -> None:
    path = save_pairing(tmp_path, Pairing(KEY, "cot", time.time()))
    assert load_pairing(tmp_path) is not None
    os.chmod(path, 0o644)
    with pytest.raises(UserError, match="readable by other users"):
        load_pairing(tmp_path)
    tok = web_token(tmp_path / "t")
    assert tok == web_token(tmp_path / "t") and len(tok) >= 24


def test_unpaired_run_needs_pair_or_insecure(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="spasmwatch pair"):
        session_for_run(False, tmp_path / "config.toml")
    assert session_for_run(True, tmp_path / "config.toml") is None
    save_pairing(tmp_path, Pairing(KEY, "cot", time.time()))
    s = session_for_run(False, tmp_path / "config.toml")
    assert s is not None and s.key == KEY


def test_session_challenge_boot_counter_and_commands() -> None:
    s = Session(KEY)
    hello = s.hello()
    token = control.decode(hello)[1][0]
    # An answer under another key, or to an older challenge, is not accepted.
    assert not s.accept_hello(_hello_answer(b"x" * 16, 7, token))
    assert not s.accept_hello(_hello_answer(KEY, 7, token ^ 1))
    assert s.accept_hello(_hello_answer(KEY, 7, token, last_cnt=41))
    assert s.boot == 7 and s.cnt == 41
    assert not s.accept_hello(_hello_answer(KEY, 7, token))  # answered once only
    body_ok = _packet(KEY, 7, 1, STATUS)
    assert wire.decode(body_ok, s)
    with pytest.raises(wire.WireError):
        wire.decode(_packet(KEY, 6, 1, STATUS), s)  # an older boot never verifies
    assert wire.decode(_packet(KEY, 9, 0, STATUS), s) and s.boot == 9 and s.cnt == 0
    with pytest.raises(wire.WireError):
        wire.decode(_packet(KEY, 7, 2, STATUS), s)  # and now 7 is old too
    signed = s.sign(control.encode_set_param(1, 100))
    assert control.check(signed, KEY, 9, 0) == 1
    assert control.check(s.sign(control.encode_ping(1)), KEY, 9, 1) == 2
    s.note_reply((wire.KIND_REPLY, 0, control.PING, control.RESULT_AUTH, 50))
    assert control.check(s.sign(control.encode_ping(1)), KEY, 9, 50) == 51
    assert s.sign(control.encode_hello(3)) == control.encode_hello(3)  # never signed


def test_out_of_band_packets_never_raise_in_ingest() -> None:
    """The known bug: CRC-valid snippet/reply packets made PacketIngest.feed raise."""
    ing = PacketIngest()
    snip = wire.encode(3, (wire.KIND_SNIPPET, 5, 1, 2, 3, wire.SNIP_FIRST))
    reply = wire.encode(3, (wire.KIND_REPLY, 5, control.PING, 0, 1))
    assert ing.feed(snip) is None and ing.feed(reply) is None
    assert ing.stats.out_of_band == 2 and ing.stats.decode_errors == 0


def _paired_engine() -> tuple[Engine, Session]:
    s = Session(KEY)
    s.boot = 3
    return Engine(verifier=s), s


def test_forged_packets_raise_the_foreign_fault_and_nothing_else() -> None:
    eng, _ = _paired_engine()
    outs = []
    for i in range(3):
        ev = (wire.KIND_EVENT, 1000 * i, wire.CLS_SPASM_LIKE, 1, 3, 900, 1200, 500, 80, 400, 20)
        outs += js(eng.feed_packet(wire.encode(i, ev), received_at=100.0 + i))  # unsigned
        outs += js(eng.feed_packet(_packet(b"y" * 16, 3, 10 + i, ev), received_at=100.5 + i))
    kinds = [o.get("kind") for o in outs]
    assert "foreign_packets" in kinds and "spasm_cluster" not in kinds
    assert not [o for o in outs if o["type"] == "event"]
    assert eng.ingest.stats.foreign == 6 and eng.ingest.stats.accepted == 0
    [fault] = [o for o in outs if o.get("kind") == "foreign_packets"]
    assert fault["level"] == "fault" and "Another device" in fault["message"]
    # It clears after 10 quiet minutes (tick), not because of a forged packet.
    assert not [o for o in js(eng.tick(200.0)) if o.get("kind") == "fault_cleared"]
    cleared = [o for o in js(eng.tick(800.0)) if o.get("kind") == "fault_cleared"]
    assert cleared and cleared[0]["details"]["fault"] == "foreign_packets"


def test_test_mode_fault_while_the_sensor_injects() -> None:
    eng, _ = _paired_engine()
    inj = (wire.KIND_STATUS, 10_000, 3900, wire.ST_SENSOR_OK | wire.ST_INJECTION, 0, 100, 50, 4)
    outs = js(eng.feed_packet(_packet(KEY, 3, 0, inj), received_at=10.0))
    [fault] = [o for o in outs if o.get("kind") == "test_mode"]
    assert fault["level"] == "fault" and "test mode, not watching" in fault["message"]
    outs = js(eng.feed_packet(_packet(KEY, 3, 1, STATUS[:1] + (20_000,) + STATUS[2:]),
                           received_at=20.0))
    assert [o["details"]["fault"] for o in outs if o.get("kind") == "fault_cleared"] == [
        "test_mode"]
