"""Alarm video clips with pre-roll, from ffmpeg's synthetic ``testsrc`` camera (lavfi).

The recorder runs the real ffmpeg writing a rolling segment ring; an alarm raised by the
real engine (a simulated night replayed so that its alarm falls on "now") makes a clip
that starts before the alarm, is recorded in the store and linked from the report.
Under ``CI=true`` a missing ffmpeg fails; elsewhere these tests skip.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from pathlib import Path

import pytest
from records_data import replay_into
from tooling import require_tool

from spasmwatch.host.monitor.outputs import Alert
from spasmwatch.host.monitor.store import Store
from spasmwatch.host.records.nights import find_nights
from spasmwatch.host.records.report import write_report
from spasmwatch.host.records.video import AlarmClipper, SegmentRecorder, VideoError

CAMERA = "lavfi:testsrc=size=160x120:rate=10"


@pytest.fixture
def ffmpeg() -> str:
    require_tool("ffprobe", "Debian: apt-get install ffmpeg (see .ci/run)")
    return require_tool("ffmpeg", "Debian: apt-get install ffmpeg (see .ci/run)")


def probe(path: Path) -> tuple[float, int]:
    """(duration in s, video frames) of a media file, by ffprobe."""
    res = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "format=duration:stream=nb_read_frames", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    info = json.loads(res.stdout)
    return float(info["format"]["duration"]), int(info["streams"][0]["nb_read_frames"])


def wait_for_video(rec: SegmentRecorder, seconds: float, limit_s: float = 30.0) -> None:
    """Poll until the ring holds ``seconds`` of video (a condition, not a fixed sleep)."""
    deadline = time.monotonic() + limit_s
    while True:
        segs = rec.segments()
        if segs and segs[-1].end - segs[0].start >= seconds:
            return
        assert time.monotonic() < deadline, "ffmpeg produced no video"
        time.sleep(0.05)


def first_alarm_offset() -> float:
    """Trace time of the first alarm of the scenario used below (a dry replay)."""
    with Store(":memory:") as s:
        outs = replay_into(s, "spasm-cluster", 1, 0.0)
    return next(o.t for o in outs if isinstance(o, Alert) and o.level == "alarm")


def test_alarm_clip_starts_before_the_alarm_and_is_linked(ffmpeg: str, tmp_path: Path) -> None:
    offset = first_alarm_offset()
    db = tmp_path / "monitor.db"
    errors: list[tuple[float, Exception]] = []
    with SegmentRecorder(CAMERA, tmp_path / "ring", segment_s=1.0, wrap=8) as rec, \
            Store(db) as store:
        clipper = AlarmClipper(rec, tmp_path / "clips", pre_s=2.0, post_s=1.0,
                               on_error=lambda t, e: errors.append((t, e)))
        wait_for_video(rec, 2.5)
        # the engine's clock is anchored so that this night's first alarm happens now
        outs = replay_into(store, "spasm-cluster", 1, time.time() - offset)
        alarms = [o for o in outs if isinstance(o, Alert) and o.level == "alarm"]
        assert alarms
        assert clipper.handle(outs) == 1  # later alarms of the same cluster share it
        clipper.wait(60)
        assert not errors, errors
        (clip,) = clipper.collect(store)
        nights = find_nights(store, tz=dt.UTC)
    t_alarm = alarms[0].t
    assert clip.alert_t == pytest.approx(t_alarm)
    assert clip.start <= t_alarm - 2.0 + 0.05  # pre-roll: starts before the alarm
    assert clip.end >= t_alarm + 1.0 - 0.05
    duration, frames = probe(Path(clip.path))
    assert duration == pytest.approx(clip.end - clip.start, abs=0.35)
    assert frames >= 10 * 3 - 2  # 10 fps over at least pre + post
    # the clip belongs to the night and the report links it relative to itself
    (night,) = nights
    assert [c.path for c in night.clips] == [clip.path]
    out = tmp_path / "report"
    write_report(nights, [], out, tz=dt.UTC)
    page = (out / "report.html").read_text()
    assert 'href="../clips/alarm-' in page
    assert (out / "../clips").resolve() == Path(clip.path).parent.resolve()
    assert rec._proc is None  # the recorder stopped its ffmpeg


def test_a_camera_that_cannot_be_opened_is_a_clear_error(ffmpeg: str, tmp_path: Path) -> None:
    rec = SegmentRecorder(str(tmp_path / "no-such-camera.mp4"), tmp_path / "ring")
    with pytest.raises(VideoError, match="ffmpeg stopped.*no-such-camera.*No such file"):
        rec.start()
    rec.stop()


def test_pre_and_post_roll_must_fit_in_the_ring(tmp_path: Path) -> None:
    rec = SegmentRecorder(CAMERA, tmp_path / "ring", segment_s=2.0, wrap=5)  # 8 s of video
    with pytest.raises(VideoError, match="do not fit in the ring"):
        rec.save_clip(time.time(), tmp_path / "c.mp4", pre_s=5.0, post_s=5.0)
    with pytest.raises(ValueError):
        SegmentRecorder(CAMERA, tmp_path / "ring", segment_s=1.0, wrap=2)
