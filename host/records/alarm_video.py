"""The running monitor's alarm video: ``[video]`` settings -> recorder + clipper.

``AlarmVideo(settings.video, emit)`` owns a ``video.SegmentRecorder`` (ffmpeg keeping the
last ``pre_s + post_s`` and a little more on disk) and a ``video.AlarmClipper``;
``spasmwatch run --config`` starts it before the sensor link and stops it after the
daemon. The daemon hands it every batch of outputs (``Daemon.observers``); for each
alarm the clipper saves, in a worker thread, a clip from ``pre_s`` before to ``post_s``
after the moment the alarm was raised on this computer's clock (the camera's clock),
and finished clips are recorded in the store's ``clips`` table from the daemon's thread,
so the report links them. Video never holds up monitoring: a camera that cannot be
opened or a clip that fails becomes a ``link`` output line and monitoring goes on.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from spasmwatch.host.monitor.alerts import Alert
from spasmwatch.host.monitor.outputs import ClipSaved, LinkNote, Output
from spasmwatch.host.monitor.store import Store
from spasmwatch.host.records.video import AlarmClipper, Clip, SegmentRecorder, VideoError
from spasmwatch.host.settings import VideoSettings

__all__ = ["AlarmVideo", "default_clip_dir", "ring_geometry"]

log = logging.getLogger("spasmwatch.video")


def default_clip_dir() -> Path:
    """``$XDG_DATA_HOME/spasmwatch/clips`` (``~/.local/share/...`` by default)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "spasmwatch" / "clips"


def ring_geometry(pre_s: float, post_s: float) -> tuple[float, int]:
    """(segment seconds, segments in the ring) holding a clip of ``pre_s + post_s``.

    Short clips get 1 s segments (a clip starts up to one segment early), long ones up
    to 5 s (fewer files); the ring holds the clip plus two spare segments.
    """
    segment_s = min(5.0, max(1.0, (pre_s + post_s) / 8.0))
    wrap = int((pre_s + post_s) / segment_s) + 3
    return segment_s, wrap


class AlarmVideo:
    """Clips of alarms for the daemon; see the module docstring."""

    def __init__(self, cfg: VideoSettings, emit: Callable[[Output], None],
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.emit = emit
        self.clock = clock
        clip_dir = Path(cfg.dir).expanduser() if cfg.dir else default_clip_dir()
        segment_s, wrap = ring_geometry(cfg.pre_s, cfg.post_s)
        self.recorder = SegmentRecorder(cfg.source, clip_dir / ".ring", segment_s, wrap)
        self.clipper = AlarmClipper(self.recorder, clip_dir, cfg.pre_s, cfg.post_s,
                                    on_error=self._failed)
        self.store: Store | None = None
        self.running = False
        self.clips: list[Clip] = []
        self._errors: list[str] = []  # from worker threads, reported on the loop's thread

    def start(self, store: Store | None) -> bool:
        """Start the camera ring; False (and a ``link`` line) if it cannot be opened."""
        self.store = store
        try:
            self.recorder.start()
        except VideoError as exc:
            self._note("video", f"alarm video is OFF: {exc}")
            return False
        self.running = True
        self._note("video", f"recording alarm clips from {_redact(self.cfg.source)} "
                   f"({self.cfg.pre_s:g} s before, {self.cfg.post_s:g} s after)")
        return True

    def observe(self, outs: list[Output]) -> None:
        """Every batch of daemon outputs (on the loop's thread): start clips of alarms."""
        if not self.running:
            return
        if any(isinstance(o, Alert) and o.level == "alarm" for o in outs):
            # The camera runs on this computer's clock: centre the clip on the moment
            # the alarm was raised here (the alarm record's ``t`` is the sensor's time).
            self.clipper.alarm_at(self.clock())
        self.collect()

    def collect(self) -> None:
        """Record finished clips in the store and report failures (loop's thread)."""
        errors, self._errors = self._errors, []
        for e in errors:
            self._note("video", e)
        if self.store is None:
            return
        for clip in self.clipper.collect(self.store):
            self.clips.append(clip)
            self.emit(ClipSaved(self.clock(), clip.alert_t, clip.start, clip.end, clip.path,
                                clip.id))

    def stop(self) -> None:
        """Finish the clips under way (their post-roll), record them, stop the camera."""
        if self.running:
            self.clipper.wait(self.cfg.post_s + 3 * self.recorder.segment_s + 30.0)
            self.collect()
        self.recorder.stop()
        self.running = False

    def _failed(self, t: float, exc: Exception) -> None:
        log.error("alarm clip for %s failed: %s", t, exc)
        self._errors.append(f"the video clip of the alarm could not be saved: {exc}")

    def _note(self, state: str, message: str) -> None:
        self.emit(LinkNote(self.clock(), state, message))


def _redact(source: str) -> str:
    """A camera URL without its credentials."""
    if "://" in source and "@" in source:
        scheme, rest = source.split("://", 1)
        return f"{scheme}://…@{rest.rsplit('@', 1)[1]}"
    return source
