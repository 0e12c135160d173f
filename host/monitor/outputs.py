"""The monitor's output bus: one typed record per thing that happened, JSON only at the edges.

The engine, the daemon, the alerting and the recorders hand these records on in order
(``Daemon._out``); whoever consumes one dispatches on its type (``isinstance`` or
``match``). Each record's ``to_json()`` is its one external form, the same dict the
``--json`` lines, the web page, MQTT and the stored rows have always had (its ``type``
key names the record): ``as_json(o)`` for any of them.

What travels:

* ``EventOutput`` / ``SummaryOutput`` / ``StatusOutput``: a stored record from the sensor
  (``host/monitor/records.py``) with the device it came from (and, for an event, its
  cluster and how it arrived);
* ``Cluster`` (``clustering.py``): a closed cluster of movements;
* ``Alert`` (``alerts.py``): info, warning, alarm or fault, stored before it is handed on;
* ``Gap``: a stretch with no data (packets lost for good, or a trace with no samples);
* ``LinkNote``: the link's or the monitor's own news (connected, lost, video, ...);
* ``ChannelCheck`` / ``Delivery``: the alert channels' start-up check and each delivery;
* ``Snippet`` / ``ClipSaved``: an alarm's raw sensor snippet and its video clip, once saved.

New per-event features go on ``records.Event`` (with a default) and appear in the event's
JSON by its ``to_dict``; nothing here needs to change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from spasmwatch.host.monitor.alerts import Alert
from spasmwatch.host.monitor.clustering import Cluster
from spasmwatch.host.monitor.records import Event, Status, Summary

__all__ = [
    "DATA_OUTPUTS", "Alert", "ChannelCheck", "ClipSaved", "Cluster", "Delivery",
    "EventOutput", "Gap", "LinkNote", "Output", "Snippet", "StatusOutput", "SummaryOutput",
    "as_json",
]


@dataclass(frozen=True, slots=True)
class EventOutput:
    """A stored movement event, the cluster it joined (None: it came too late for one)."""

    event: Event
    device: str
    cluster_id: int | None = None
    arrival: str | None = None  # how it arrived when not in order: backfill, late, ...

    @property
    def record(self) -> Event:
        return self.event

    @property
    def t(self) -> float:
        return self.event.t

    def to_json(self) -> dict[str, Any]:
        d = self.event.to_dict()
        d.update(type="event", device=self.device, cluster_id=self.cluster_id)
        if self.arrival is not None:
            d["arrival"] = self.arrival
        return d


@dataclass(frozen=True, slots=True)
class SummaryOutput:
    """A stored activity summary."""

    summary: Summary
    device: str

    @property
    def record(self) -> Summary:
        return self.summary

    @property
    def t(self) -> float:
        return self.summary.t

    def to_json(self) -> dict[str, Any]:
        d = self.summary.to_dict()
        d.update(type="summary", device=self.device)
        return d


@dataclass(frozen=True, slots=True)
class StatusOutput:
    """A stored device status (heartbeat)."""

    status: Status
    device: str

    @property
    def record(self) -> Status:
        return self.status

    @property
    def t(self) -> float:
        return self.status.t

    def to_json(self) -> dict[str, Any]:
        d = self.status.to_dict()
        d.update(type="status", device=self.device)
        return d


#: The outputs that carry a record from the sensor (they prove data is arriving).
DATA_OUTPUTS = (EventOutput, SummaryOutput, StatusOutput)


@dataclass(frozen=True, slots=True)
class Gap:
    """No data from ``start`` to ``end`` (None: not known), said at ``t``."""

    t: float
    start: float | None
    end: float | None
    message: str
    lost: int | None = None  # packets lost for good (None: a trace without samples)
    device: str | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "gap", "t": self.t, "start": self.start,
                             "end": self.end}
        if self.lost is not None:
            d["lost"] = self.lost
        if self.device is not None:
            d["device"] = self.device
        d["message"] = self.message
        return d


@dataclass(frozen=True, slots=True)
class LinkNote:
    """The link's or the monitor's own news: ``state`` is connected, lost, retry, ended,
    backfill, resumed, video, start, ... (wall clock)."""

    t: float
    state: str
    message: str
    retry_s: float | None = None  # the reconnection delay (lost, retry)
    link: str | None = None  # the link's name (connected)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "link", "t": self.t, "state": self.state,
                             "message": self.message}
        if self.retry_s is not None:
            d["retry_s"] = self.retry_s
        if self.link is not None:
            d["link"] = self.link
        return d


@dataclass(frozen=True, slots=True)
class ChannelCheck:
    """The start-up check of one alert channel (or the web page)."""

    t: float
    channel: str
    ok: bool
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "check", "t": self.t, "channel": self.channel, "ok": self.ok,
                "message": self.message}


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notice sent on one channel: ``ok`` None when the channel cannot confirm."""

    t: float
    channel: str
    ok: bool | None
    level: str
    kind: str
    repeat: int
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "delivery", "t": self.t, "channel": self.channel, "ok": self.ok,
                "level": self.level, "kind": self.kind, "repeat": self.repeat,
                "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Snippet:
    """An alarm's raw sensor snippet (``host/records/snippets.py``): ``samples`` are
    ``[x, y, z]`` in g (None: did not arrive), one every ``1 / rate_hz`` s from ``t``."""

    t: float
    t_end: float
    alert_id: int | None
    alert_t: float
    device: str
    rate_hz: int
    range_g: int
    expected: int | None
    received: int
    parts: int
    complete: bool
    samples: list[list[float] | None]
    snippet_id: int | None = None  # its row, once stored

    def stored(self, row_id: int) -> Snippet:
        return replace(self, snippet_id=row_id)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": "snippet", "t": self.t, "t_end": self.t_end, "alert_id": self.alert_id,
            "alert_t": self.alert_t, "device": self.device, "rate_hz": self.rate_hz,
            "range_g": self.range_g, "expected": self.expected, "received": self.received,
            "parts": self.parts, "complete": self.complete, "samples": self.samples,
        }
        if self.snippet_id is not None:
            d["snippet_id"] = self.snippet_id
        return d


@dataclass(frozen=True, slots=True)
class ClipSaved:
    """An alarm's video clip, saved and recorded."""

    t: float
    alert_t: float
    start: float
    end: float
    path: str
    clip_id: int

    def to_json(self) -> dict[str, Any]:
        return {"type": "clip", "t": self.t, "alert_t": self.alert_t, "start": self.start,
                "end": self.end, "path": self.path, "clip_id": self.clip_id}


Output = (EventOutput | SummaryOutput | StatusOutput | Cluster | Alert | Gap | LinkNote
          | ChannelCheck | Delivery | Snippet | ClipSaved)


def as_json(o: Output) -> dict[str, Any]:
    """The output's external form (``--json`` lines, the web page, MQTT)."""
    return o.to_json()
