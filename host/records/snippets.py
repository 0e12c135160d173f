"""Raw sensor snippets of alarms: ask the device for them, collect them, keep them.

A clinician looking at an alarm wants the raw movement of the whole cluster: the 30 s
before the alarm and the rest of the cluster after it, on all three axes. The board
holds only its last ``SNIPPET_S`` (30) seconds (firmware/snippet.py), so one alarm's
snippet is gathered in *parts*:

* when the alarm fires the daemon sends ``GET_SNIPPET`` (firmware/control.py): the
  board answers with a ``KIND_REPLY`` whose value is the number of samples it holds,
  then one ``KIND_SNIPPET`` packet per sample (header seq = the sample's index in the
  part, flags ``SNIP_FIRST`` / ``SNIP_LAST``) — the 30 s before the alarm;
* while the alarm's cluster goes on, another part is asked for each time ``follow_s``
  (20) seconds of new data have arrived (on the data's clock, so accelerated
  simulations behave as real time does): consecutive parts overlap by about 10 s, so
  none is missed even when the board skips a few of its oldest samples while sending;
* once the cluster is closed (``cluster_closed``), after ``max_span_s`` in all, when
  another cluster's alarm comes, or when the link drops, the parts are joined into one
  snippet on the device's sample clock, trimmed to 10 s after the cluster's last
  movement. Samples no part delivered are ``null``.

``SnippetCollector`` never holds up alerting (the alarm has been emitted and stored
before the first request is even sent) and tolerates loss: a part whose packets did not
all arrive, or whose last packet never came (``silence_s`` without a packet, or
``max_s`` in all), makes the snippet ``complete: false``.

The output, a ``Snippet`` record (``host/monitor/outputs.py``) given to the daemon's
outputs (JSON lines, ``AlertHub``, which attaches it to the latched alarm's ``why``) and
stored in the ``snippets`` table; as JSON::

    {"type": "snippet", "t": first sample (host s), "t_end": last sample,
     "alert_id": ..., "alert_t": ..., "device": ..., "rate_hz": 50, "range_g": 4,
     "samples": [[x, y, z] or null, ...] in g, one every 1/rate_hz s,
     "expected": sample slots from first to last, "received": samples that arrived,
     "parts": GET_SNIPPET requests answered, "complete": bool}

``complete`` means every part's first and last packets arrived, none in between was
lost and the parts left no hole between them.

The ``snippets`` table is defined in ``host/monitor/schema.py`` with every other table.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spasmwatch.firmware import config as fwconfig
from spasmwatch.firmware import control, wire
from spasmwatch.host.monitor.alerts import Alert
from spasmwatch.host.monitor.outputs import (
    DATA_OUTPUTS,
    Output,
    Snippet,
    StatusOutput,
)
from spasmwatch.host.monitor.store import Store

__all__ = [
    "SnippetCollector", "StoredSnippet", "add_snippet", "snippets_in",
]

log = logging.getLogger("spasmwatch.snippets")


@dataclass(frozen=True)
class StoredSnippet:
    """One stored snippet; ``samples`` are (x, y, z) in g, ``rate_hz`` apart."""

    id: int
    device: str
    alert_id: int | None
    alert_t: float
    t: float  # first sample, host seconds
    t_end: float  # last sample
    rate_hz: int
    range_g: int
    expected: int | None
    complete: bool
    samples: list[list[float] | None]  # None: a sample that did not arrive

    def magnitudes_g(self) -> list[float | None]:
        """|a| of every sample in g (gravity included: about 1 g at rest)."""
        return [None if s is None else (s[0] ** 2 + s[1] ** 2 + s[2] ** 2) ** 0.5
                for s in self.samples]

    def axis_g(self, k: int) -> list[float | None]:
        """One axis (0 = x, 1 = y, 2 = z) of every sample, in g."""
        return [None if s is None else s[k] for s in self.samples]


def add_snippet(store: Store, snip: Snippet) -> int:
    """Store one snippet; returns its row id."""
    conn = store.connection
    cur = conn.execute(
        "INSERT INTO snippets (device, alert_id, alert_t, t, t_end, rate_hz, range_g,"
        " expected, complete, samples, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (snip.device, snip.alert_id, snip.alert_t, snip.t, snip.t_end, snip.rate_hz,
         snip.range_g, snip.expected, int(bool(snip.complete)), json.dumps(snip.samples),
         time.time()),
    )
    conn.commit()
    assert cur.lastrowid is not None
    return int(cur.lastrowid)


def snippets_in(store: Store, since: float, until: float) -> list[StoredSnippet]:
    """Snippets of alarms raised in ``[since, until)``, oldest first."""
    rows = store.connection.execute(
        "SELECT id, device, alert_id, alert_t, t, t_end, rate_hz, range_g, expected,"
        " complete, samples FROM snippets WHERE alert_t >= ? AND alert_t < ?"
        " ORDER BY alert_t, id", (since, until),
    ).fetchall()
    return [StoredSnippet(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], bool(r[9]),
                          json.loads(r[10])) for r in rows]


@dataclass
class _Collection:
    """One GET_SNIPPET under way (one part of an alarm's snippet)."""

    sent_at: float
    last_rx: float
    expected: int | None = None  # from the reply; None until it arrives
    samples: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)  # i -> t,x,y,z
    first_index: int | None = None  # index of the packet flagged SNIP_FIRST
    last_index: int | None = None  # index of the packet flagged SNIP_LAST

    @property
    def complete(self) -> bool:
        """First and last packets arrived and nothing in between was lost. The board may
        skip its oldest samples while it sends (new ones overwrite them), so fewer than
        announced can still be complete."""
        idx = sorted(self.samples)
        return (self.first_index is not None and self.last_index is not None
                and idx[0] == self.first_index and idx[-1] == self.last_index
                and len(idx) == self.last_index - self.first_index + 1)


@dataclass
class _Capture:
    """An alarm's snippet being gathered, part after part, while its cluster goes on."""

    alert: Alert
    parts: list[_Collection] = field(default_factory=list)
    cluster_open: bool = True
    cluster_end: float | None = None  # host s of the cluster's last movement, once closed
    newest_t: float | None = None  # data clock: the newest record's time (host s)
    asked_at: float | None = None  # data clock when the last part was asked for
    due: bool = True  # a part should be asked for now


class SnippetCollector:
    """Ask for each alarm's snippet, part by part, and turn the packets into an output.

    The daemon drives it: ``note(out)`` for each output, ``take_request(now)`` (a
    control payload to send, or None), ``on_packet(rec, index, now)`` for every
    out-of-band record, ``tick(now)`` about once a second, ``link_lost(now)``. Outputs
    come back from ``on_packet``, ``tick`` and ``link_lost`` once a snippet is over.
    """

    def __init__(
        self,
        to_host: Callable[[int], float],
        device: str = "",
        silence_s: float = 3.0,
        max_s: float = 60.0,
        max_queued: int = 8,
        follow_s: float = fwconfig.SNIPPET_S - 10.0,
        max_span_s: float = 600.0,
        tail_s: float = 10.0,
    ) -> None:
        self.to_host = to_host  # device ms -> host seconds (the engine's clock)
        self.device = device
        self.silence_s = silence_s
        self.max_s = max_s  # one part, at most
        self.max_queued = max_queued
        self.follow_s = follow_s  # data seconds between parts (< the board's 30 s)
        self.max_span_s = max_span_s  # a whole snippet, at most (bounded memory)
        self.tail_s = tail_s  # kept after the cluster's last movement
        self.rate_hz = fwconfig.RATE_HZ  # updated from status packets
        self.range_g = fwconfig.RANGE_G
        self.queue: list[Alert] = []  # alarms waiting for their first part
        self.capture: _Capture | None = None
        self.active: _Collection | None = None  # the part under way
        self.ready: list[Snippet] = []  # finished snippets not handed out yet
        self.done = 0
        self.partial = 0
        self.empty = 0

    def note(self, out: Output) -> None:
        """Every daemon output: alarms queue a snippet; statuses give rate and range; the
        data's clock and the alarm's cluster decide when the next part is due."""
        if isinstance(out, StatusOutput):
            self.rate_hz = int(out.status.rate_hz or self.rate_hz)
            self.range_g = int(out.status.range_g or self.range_g)
        cap = self.capture
        if isinstance(out, Alert) and out.level == "alarm":
            if cap is not None and out.cluster_id == cap.alert.cluster_id:
                return  # the same cluster again: its snippet is being gathered
            if cap is not None:  # another cluster: its first 30 s matter more
                self._stop_following(cap)
            if len(self.queue) < self.max_queued:  # bounded: a storm keeps the first ones
                self.queue.append(out)
            return
        if cap is None:
            return
        if (isinstance(out, Alert) and out.kind == "cluster_closed"
                and out.cluster_id == cap.alert.cluster_id):
            end = out.details.get("end")
            cap.cluster_end = float(end) if isinstance(end, int | float) else None
            # One last part only if the parts so far stop before the cluster's end (a
            # part under way holds what the board had when it was asked for).
            covered = [self.to_host(max(p.samples[i][0] for i in p.samples))
                       for p in cap.parts]
            if self.active is not None and cap.asked_at is not None:
                covered.append(cap.asked_at)
            missing_tail = cap.cluster_end is not None and (
                not covered or max(covered) < cap.cluster_end + self.tail_s)
            cap.cluster_open = False
            cap.due = missing_tail
            if not cap.due and self.active is None:
                self._close_capture()
            return
        if isinstance(out, DATA_OUTPUTS):
            t = out.t
            cap.newest_t = t if cap.newest_t is None else max(cap.newest_t, t)
            if (cap.cluster_open and cap.asked_at is not None
                    and t - cap.asked_at >= self.follow_s):
                cap.due = True

    def take_request(self, now: float) -> bytes | None:
        """The GET_SNIPPET payload to send now, if a part is due and none is under way."""
        if self.active is not None:
            return None
        if self.capture is None:
            if not self.queue:
                return None
            alert = self.queue.pop(0)
            # an alarm about no cluster has nothing to follow: one part
            self.capture = _Capture(alert, cluster_open=alert.cluster_id is not None)
        cap = self.capture
        if not cap.due:
            return None
        cap.due = False
        cap.asked_at = cap.newest_t if cap.newest_t is not None else cap.alert.t
        self.active = _Collection(now, now)
        return control.encode_get_snippet()

    def link_lost(self, now: float) -> list[Snippet]:
        """The link dropped (or the monitor stops): what arrived so far is all there is."""
        if self.active is not None:
            self._part_over()
        if self.capture is not None:
            self._close_capture()
        return self._take_ready()

    def on_packet(self, rec: tuple[Any, ...], index: int, now: float) -> list[Snippet]:
        """One decoded out-of-band record (reply or snippet sample); ``index`` its seq."""
        c = self.active
        if c is None:
            return []
        if rec[0] == wire.KIND_REPLY:
            _, _, opcode, result, value = rec
            if opcode != control.GET_SNIPPET:
                return []
            c.last_rx = now
            if result != control.RESULT_OK or value == 0:
                return self._part_over()  # nothing held (just booted) or refused
            c.expected = int(value)
            return []
        if rec[0] != wire.KIND_SNIPPET:
            return []
        _, t_ms, x, y, z, flags = rec
        c.last_rx = now
        if flags & wire.SNIP_FIRST:
            if c.first_index is not None:
                # A second part started: ours ended without its last packet.
                return self._part_over()
            c.first_index = index
        c.samples[index] = (t_ms, x, y, z)
        if flags & wire.SNIP_LAST:
            c.last_index = index
            return self._part_over()
        return []

    def tick(self, now: float) -> list[Snippet]:
        """Give up on a part whose packets stopped coming; hand out finished snippets."""
        c = self.active
        if c is not None and (now - c.last_rx >= self.silence_s
                              or now - c.sent_at >= self.max_s):
            return self._part_over()
        return self._take_ready()

    # -- internals ---------------------------------------------------------------------

    def _stop_following(self, cap: _Capture) -> None:
        """No more parts for this capture: close it now, or when the part under way ends."""
        cap.cluster_open = False
        cap.due = False
        if self.active is None:
            self._close_capture()

    def _take_ready(self) -> list[Snippet]:
        out, self.ready = self.ready, []
        return out

    def _part_over(self) -> list[Snippet]:
        """The part under way is over; close the snippet if nothing more is to come."""
        c, self.active = self.active, None
        cap = self.capture
        assert c is not None and cap is not None
        if c.samples:
            cap.parts.append(c)
        first_t = self._first_t(cap)
        too_long = (first_t is not None and cap.newest_t is not None
                    and cap.newest_t - first_t >= self.max_span_s)
        if not cap.parts or (not cap.cluster_open and not cap.due) or too_long:
            self._close_capture()
        return self._take_ready()

    def _first_t(self, cap: _Capture) -> float | None:
        if not cap.parts:
            return None
        return self.to_host(min(p.samples[min(p.samples)][0] for p in cap.parts))

    def _close_capture(self) -> None:
        cap, self.capture = self.capture, None
        assert cap is not None
        if not cap.parts:
            self.empty += 1
            log.warning("no snippet arrived for the alarm at %s", cap.alert.t)
            return
        out = self._joined(cap)
        self.done += 1
        if not out.complete:
            self.partial += 1
        self.ready.append(out)

    def _joined(self, cap: _Capture) -> Snippet:
        """The parts on one sample grid (the device's clock), trimmed after the cluster."""
        step_ms = 1000.0 / self.rate_hz
        base_ms = min(p.samples[min(p.samples)][0] for p in cap.parts)
        grid: dict[int, tuple[int, int, int]] = {}
        for part in cap.parts:
            for i in sorted(part.samples):
                t_ms, x, y, z = part.samples[i]
                grid.setdefault(round((t_ms - base_ms) / step_ms), (x, y, z))
        last = max(grid)
        if cap.cluster_end is not None:  # the cluster's last movement, and a little after
            end_ms = base_ms + (cap.cluster_end + self.tail_s - self.to_host(base_ms)) * 1000
            last = max(0, min(last, int((end_ms - base_ms) / step_ms)))
        lsb = fwconfig.lsb_per_g(self.range_g)
        samples: list[list[float] | None] = [
            [round(v / lsb, 5) for v in grid[k]] if k in grid else None
            for k in range(last + 1)
        ]
        received = sum(1 for s in samples if s is not None)
        complete = all(p.complete for p in cap.parts) and received == len(samples)
        alert = cap.alert
        return Snippet(
            t=round(self.to_host(base_ms), 3),
            t_end=round(self.to_host(round(base_ms + last * step_ms)), 3),
            alert_id=alert.id, alert_t=alert.t, device=self.device,
            rate_hz=self.rate_hz, range_g=self.range_g, expected=len(samples),
            received=received, parts=len(cap.parts), complete=bool(complete),
            samples=samples,
        )
