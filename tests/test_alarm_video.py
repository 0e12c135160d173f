"""Alarm video in the running monitor: ``spasmwatch run --config`` with a ``[video]`` source.

``spasmwatch run --simulate spasm-cluster --speed 0`` (firmware under MicroPython on the
virtual board) with ffmpeg's ``testsrc`` as the camera: the alarm gets a clip starting
before it, recorded in the ``clips`` table and linked from the report; ffmpeg is stopped
with the daemon. A camera that cannot be opened turns video off with one line and the
monitoring goes on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from tooling import require_tool

from spasmwatch.host.monitor.store import Store
from spasmwatch.host.records.alarm_video import ring_geometry
from spasmwatch.host.records.nights import find_nights
from spasmwatch.host.records.report import write_report
from spasmwatch.host.records.video import clips_in

PRE_S, POST_S = 2, 1


def processes_with(name: str, token: str) -> set[str]:
    """Processes called ``name`` started under this test (they inherit its token)."""
    out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True,
                         check=False).stdout
    mine = set()
    for pid in out.split():
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if f"SPASMWATCH_TEST_TOKEN={token}".encode() in env:
            mine.add(pid)
    return mine


def run_monitor(tmp: Path, source: str) -> tuple[list[dict], str]:
    cfg = tmp / "config.toml"
    cfg.write_text(
        "[audio]\nenabled = false\n[webui]\nenabled = false\n"
        f"[video]\nsource = {json.dumps(source)}\npre_s = {PRE_S}\npost_s = {POST_S}\n"
        f"dir = {json.dumps(str(tmp / 'clips'))}\n")
    token = uuid.uuid4().hex
    code = "import sys; from spasmwatch.host.cli.main import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", "--simulate", "spasm-cluster", "--speed", "0",
         "--json", "--config", str(cfg), "--db", str(tmp / "night.db")],
        capture_output=True, text=True, timeout=90, check=False,
        env=dict(os.environ, SPASMWATCH_TEST_TOKEN=token),
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()], token


def test_alarm_clip_from_the_running_monitor_is_recorded_and_linked(tmp_path: Path) -> None:
    require_tool("ffmpeg", "apt-get install ffmpeg")
    ffprobe = require_tool("ffprobe", "apt-get install ffmpeg")
    outs, token = run_monitor(tmp_path, "lavfi:testsrc=size=160x120:rate=10")
    assert not processes_with("ffmpeg", token)  # the camera ring stopped with the daemon
    notes = [o for o in outs if o["type"] == "link" and o["state"] == "video"]
    assert len(notes) == 1 and "recording alarm clips" in notes[0]["message"]
    alarms = [o for o in outs if o["type"] == "alert" and o["level"] == "alarm"]
    clips = [o for o in outs if o["type"] == "clip"]
    assert len(alarms) == 1 and len(clips) == 1
    clip = clips[0]
    assert outs.index(clip) > outs.index(alarms[0])
    path = Path(clip["path"])
    assert path.parent == tmp_path / "clips" and path.stat().st_size > 0
    # The clip starts before the alarm, at a segment boundary near alarm - pre_s (at
    # --speed 0 the alarm comes ~1.5 s after the camera started, so the ring may not yet
    # hold the whole pre-roll: save_clip accepts one segment less), and covers post_s.
    seg_s, _ = ring_geometry(PRE_S, POST_S)
    assert clip["alert_t"] - PRE_S - seg_s - 0.2 <= clip["start"]
    assert clip["start"] <= clip["alert_t"] - PRE_S + seg_s
    assert clip["end"] >= clip["alert_t"] + POST_S - 0.2
    dur = float(subprocess.run(
        [ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
         str(path)], capture_output=True, text=True, check=True).stdout)
    assert abs(dur - (clip["end"] - clip["start"])) < 0.35
    with Store(tmp_path / "night.db") as store:
        (row,) = clips_in(store, 0, 2e10)
        assert row.path == str(path) and row.id == clip["clip_id"]
        nights = find_nights(store)
    write_report(nights, [], tmp_path / "report")
    page = (tmp_path / "report" / "report.html").read_text()
    assert 'class="clip" href="../clips/' + path.name + '"' in page


def test_a_camera_that_cannot_be_opened_turns_video_off_not_monitoring(tmp_path: Path) -> None:
    require_tool("ffmpeg", "apt-get install ffmpeg")
    outs, token = run_monitor(tmp_path, str(tmp_path / "no-such-camera.mp4"))
    notes = [o for o in outs if o["type"] == "link" and o["state"] == "video"]
    assert len(notes) == 1 and "alarm video is OFF" in notes[0]["message"]
    assert [o["kind"] for o in outs if o["type"] == "alert" and o["level"] == "alarm"] == [
        "spasm_cluster"]
    assert not [o for o in outs if o["type"] == "clip"]
    assert not processes_with("ffmpeg", token)


@pytest.mark.parametrize("pre_s,post_s", [(0, 1), (2, 1), (20, 20), (60, 60), (600, 600)])
def test_ring_holds_the_clip(pre_s: float, post_s: float) -> None:
    seg, wrap = ring_geometry(pre_s, post_s)
    assert 1.0 <= seg <= 5.0
    assert pre_s + post_s + seg <= seg * (wrap - 1)  # what SegmentRecorder.save_clip needs
