"""Video clips of alarms, with pre-roll: the clip starts before the alarm fired.

A spasm cluster is often over before a parent reaches the cot, and clinicians ask for
video of the episode. ``SegmentRecorder`` keeps ``ffmpeg`` running on a camera (an RTSP
URL, a V4L2 device such as ``/dev/video0``, or any ffmpeg input) writing a rolling ring
of short segments (``-f segment -segment_time S -segment_wrap N``): the last ``N * S``
seconds are always on disk and the disk use stays bounded. When an alarm fires,
``save_clip`` waits for the post-roll to be recorded, copies the segments that overlap
``[alarm - pre_s, alarm + post_s]`` out of the ring (before ffmpeg overwrites them) and
joins them without re-encoding (concat demuxer, ``-c copy``). The clip therefore starts
at a segment boundary at or before ``alarm - pre_s``.

Wall-clock times of segments: ffmpeg appends ``name,start,end`` (seconds of stream time)
to a CSV segment list as each segment completes; a completed file's modification time is
its wall-clock end, which anchors stream time to the wall clock.

Saved clips are recorded in a ``clips`` table of the monitor's database (created on
first write) so the report can link them. ``AlarmClipper`` connects this to the engine's
outputs: feed it what ``Engine.feed_packet`` returns.
"""

from __future__ import annotations

import csv
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from spasmwatch.host.monitor.alerts import Alert
from spasmwatch.host.monitor.outputs import Output
from spasmwatch.host.monitor.store import Store


class VideoError(RuntimeError):
    """ffmpeg missing, a camera that cannot be opened, or a clip that cannot be made."""


@dataclass(frozen=True)
class Clip:
    id: int
    alert_t: float  # when the alarm fired (host seconds)
    start: float  # wall-clock start of the clip's first frame (approximate, ±1 frame)
    end: float
    path: str
    source: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Segment:
    name: str
    start: float  # wall clock
    end: float


def find_ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise VideoError("ffmpeg is not installed (Debian: apt-get install ffmpeg)")
    return path


def input_args(source: str, fps: int = 10) -> list[str]:
    """ffmpeg input and codec options for a camera source.

    * ``rtsp://...``: the stream is copied as it comes (no re-encoding on the host);
    * ``/dev/videoN``: a V4L2 webcam, encoded to H.264 (one key frame per second so
      segments cut cleanly);
    * ``lavfi:SPEC``: an ffmpeg test source read at its native rate (tests, demos);
    * anything else is passed to ``-i`` and re-encoded.
    """
    encode = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
              "-g", str(fps), "-an"]
    if source.startswith(("rtsp://", "rtsps://")):
        return ["-rtsp_transport", "tcp", "-i", source, "-c", "copy"]
    if source.startswith("/dev/video"):
        return ["-f", "v4l2", "-framerate", str(fps), "-i", source, *encode]
    if source.startswith("lavfi:"):
        return ["-re", "-f", "lavfi", "-i", source[len("lavfi:"):], *encode]
    return ["-i", source, *encode]


class SegmentRecorder:
    """Keep the last ``segment_s * wrap`` seconds of a camera on disk, in segments."""

    def __init__(
        self,
        source: str,
        buffer_dir: str | Path,
        segment_s: float = 5.0,
        wrap: int = 12,
        fps: int = 10,
    ) -> None:
        if segment_s <= 0 or wrap < 3:
            raise ValueError("segment_s must be > 0 and wrap >= 3")
        self.source = source
        self.dir = Path(buffer_dir)
        self.segment_s = segment_s
        self.wrap = wrap
        self.fps = fps
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None
        self._lock = threading.Lock()  # copies out of the ring are serialised

    @property
    def span_s(self) -> float:
        """Seconds of video the ring holds (pre-roll + post-roll must fit in it)."""
        return self.segment_s * (self.wrap - 1)

    @property
    def list_path(self) -> Path:
        return self.dir / "segments.csv"

    def start(self, timeout_s: float | None = None) -> None:
        """Start ffmpeg; return once the first segment is complete (or raise)."""
        ffmpeg = find_ffmpeg()
        self.dir.mkdir(parents=True, exist_ok=True)
        for old in list(self.dir.glob("seg*.ts")) + [self.list_path]:
            old.unlink(missing_ok=True)
        cmd = [
            ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
            *input_args(self.source, self.fps),
            "-f", "segment", "-segment_time", f"{self.segment_s:g}",
            "-segment_wrap", str(self.wrap), "-reset_timestamps", "1",
            "-segment_list", str(self.list_path), "-segment_list_type", "csv",
            str(self.dir / "seg%03d.ts"),
        ]
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr
        )
        limit = time.monotonic() + (timeout_s or 3 * self.segment_s + 15.0)
        while not self.segments():
            self._check_alive()
            if time.monotonic() > limit:
                self.stop()
                raise VideoError(f"{self.source}: no video segment within the time limit")
            time.sleep(0.05)  # polling for a file ffmpeg writes; not a timing assumption

    def _check_alive(self) -> None:
        proc = self._proc
        if proc is None:
            raise VideoError("recorder is not running")
        if proc.poll() is not None:
            err = self._stderr_tail()
            self._proc = None
            raise VideoError(
                f"ffmpeg stopped (exit {proc.returncode}) reading {self.source}: {err}"
            )

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no message"

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # ffmpeg closes the current segment cleanly on SIGTERM
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> SegmentRecorder:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def segments(self) -> list[Segment]:
        """Completed segments still in the ring, oldest first, on the wall clock."""
        try:
            with self.list_path.open(newline="") as f:
                rows = [r for r in csv.reader(f) if len(r) == 3]
        except FileNotFoundError:
            return []
        if not rows:
            return []
        # The file being written now reuses the name of the row `wrap` places back.
        busy = rows[-self.wrap][0] if len(rows) >= self.wrap else None
        latest: dict[str, tuple[float, float]] = {}
        for name, a_s, b_s in rows[-self.wrap:]:
            latest[name] = (float(a_s), float(b_s))
        offsets = []
        for name, (_, b) in latest.items():
            if name == busy:
                continue
            try:
                offsets.append(os.stat(self.dir / name).st_mtime - b)
            except FileNotFoundError:
                continue
        if not offsets:
            return []
        w0 = statistics.median(offsets)  # wall clock of stream time 0
        segs = [Segment(n, w0 + a, w0 + b) for n, (a, b) in latest.items() if n != busy]
        return sorted(segs, key=lambda s: s.start)

    def save_clip(
        self,
        alert_t: float,
        out_path: str | Path,
        pre_s: float = 20.0,
        post_s: float = 20.0,
        timeout_s: float | None = None,
    ) -> tuple[float, float]:
        """Write the clip around ``alert_t`` (epoch seconds) to ``out_path``.

        Blocks until the post-roll is on disk. Returns the clip's (start, end) on the wall
        clock. Raises VideoError when the pre-roll is no longer (or never was) in the ring.
        """
        if pre_s + post_s + self.segment_s > self.span_s:
            raise VideoError(
                f"pre-roll + post-roll ({pre_s + post_s:g} s) do not fit in the ring "
                f"({self.span_s:g} s): raise wrap or segment_s"
            )
        want_from, want_to = alert_t - pre_s, alert_t + post_s
        limit = time.monotonic() + (timeout_s or post_s + 3 * self.segment_s + 10.0)
        while True:
            segs = self.segments()
            if segs and segs[-1].end >= want_to:
                break
            self._check_alive()
            if time.monotonic() > limit:
                raise VideoError("the camera stopped delivering video before the post-roll")
            time.sleep(0.05)  # waiting for ffmpeg to finish the post-roll segment
        picked = [s for s in segs if s.end > want_from and s.start < want_to]
        if not picked or picked[0].start > want_from + self.segment_s:
            raise VideoError(f"no video from {want_from:.0f} in the ring any more")
        with self._lock, tempfile.TemporaryDirectory() as tmp:
            listing = Path(tmp) / "list.txt"
            with listing.open("w") as f:
                for i, s in enumerate(picked):
                    copy = Path(tmp) / f"{i:04d}.ts"
                    shutil.copyfile(self.dir / s.name, copy)  # out of the ring first
                    f.write(f"file '{copy}'\n")
            out = Path(out_path)
            out.parent.mkdir(parents=True, exist_ok=True)
            res = subprocess.run(
                [find_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                 "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                 "-movflags", "+faststart", str(out)],
                capture_output=True, text=True, timeout=120,
            )
            if res.returncode != 0:
                raise VideoError(f"joining segments failed: {res.stderr.strip()[-300:]}")
        return picked[0].start, picked[-1].end


# -- the clips table ----------------------------------------------------------------------


def add_clip(store: Store, alert_t: float, start: float, end: float, path: str,
             source: str) -> Clip:
    conn = store.connection
    cur = conn.execute(
        "INSERT INTO clips (alert_t, start, end, path, source, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (alert_t, start, end, path, source, time.time()),
    )
    conn.commit()
    assert cur.lastrowid is not None
    return Clip(cur.lastrowid, alert_t, start, end, path, source)


def clips_in(store: Store, since: float, until: float) -> list[Clip]:
    """Clips of alarms raised in ``[since, until)``, oldest first."""
    rows = store.connection.execute(
        "SELECT id, alert_t, start, end, path, source FROM clips"
        " WHERE alert_t >= ? AND alert_t < ? ORDER BY alert_t", (since, until),
    ).fetchall()
    return [Clip(*r) for r in rows]


class AlarmClipper:
    """Save a clip for every alarm in the engine's outputs, in the background.

    ``handle(outputs)`` returns at once; each alarm's clip is written by a worker thread
    after its post-roll (alarms within one clip of each other share the first clip).
    ``on_clip`` / ``on_error`` are called from that thread. The store is only written
    from the caller's thread via ``collect()`` (SQLite connections are not shared).
    """

    def __init__(
        self,
        recorder: SegmentRecorder,
        clip_dir: str | Path,
        pre_s: float = 20.0,
        post_s: float = 20.0,
        on_error: Callable[[float, Exception], None] | None = None,
    ) -> None:
        self.recorder = recorder
        self.clip_dir = Path(clip_dir)
        self.pre_s = pre_s
        self.post_s = post_s
        self.on_error = on_error
        self._threads: list[threading.Thread] = []
        self._done: list[tuple[float, float, float, str]] = []
        self._done_lock = threading.Lock()
        self._last_alarm: float | None = None

    def handle(self, outputs: Iterable[Output]) -> int:
        """Start a clip for each new alarm among the outputs; returns how many started."""
        return sum(self.alarm_at(o.t) for o in outputs
                   if isinstance(o, Alert) and o.level == "alarm")

    def alarm_at(self, t: float) -> bool:
        """An alarm at ``t`` (the camera's clock): start its clip unless the previous
        alarm's clip covers it; True when a clip was started."""
        if self._last_alarm is not None and t - self._last_alarm < self.post_s:
            return False  # already inside the previous alarm's clip
        self._last_alarm = t
        th = threading.Thread(target=self._save, args=(t,), daemon=True)
        th.start()
        self._threads.append(th)
        return True

    def _save(self, t: float) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(t))
        path = self.clip_dir / f"alarm-{stamp}.mp4"
        try:
            start, end = self.recorder.save_clip(t, path, self.pre_s, self.post_s)
        except Exception as exc:  # reported, never lost silently; monitoring goes on
            if self.on_error is not None:
                self.on_error(t, exc)
            return
        with self._done_lock:
            self._done.append((t, start, end, str(path)))

    def wait(self, timeout_s: float = 120.0) -> None:
        """Wait for the clips under way (end of the night, tests)."""
        limit = time.monotonic() + timeout_s
        for th in self._threads:
            th.join(max(0.0, limit - time.monotonic()))
        self._threads = [th for th in self._threads if th.is_alive()]

    def collect(self, store: Store) -> list[Clip]:
        """Record the finished clips in the store (call from the store's thread)."""
        with self._done_lock:
            done, self._done = self._done, []
        return [add_clip(store, t, a, b, p, self.recorder.source) for t, a, b, p in done]
