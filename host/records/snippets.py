"""Raw sensor snippets of alarms: ask the device for them, collect them, keep them.

When an alarm fires the daemon sends ``GET_SNIPPET`` (firmware/control.py). The board
answers with a ``KIND_REPLY`` whose value is the number of samples it holds (its last
``SNIPPET_S`` seconds), then one ``KIND_SNIPPET`` packet per sample (header seq = the
sample's index in the snippet, flags ``SNIP_FIRST`` / ``SNIP_LAST``). ``SnippetCollector``
gathers them without ever holding up alerting (the alarm has been emitted and stored
before the request is even sent) and tolerates loss: a snippet whose packets did not all
arrive, or whose last packet never came (``silence_s`` without a packet, or ``max_s`` in
all), is emitted with ``complete: false``.

The output, given to the daemon's outputs (JSON lines, ``AlertHub``, which attaches it
to the latched alarm's ``why``) and stored in the ``snippets`` table::

    {"type": "snippet", "t": first sample (host s), "t_end": last sample,
     "alert_id": ..., "alert_t": ..., "device": ..., "rate_hz": 50, "range_g": 4,
     "samples": [[x, y, z], ...] in g, "expected": samples announced by the reply,
     "received": samples that arrived, "complete": bool}

``complete`` means the first and last packets arrived and none in between was lost; the
board may skip a few of its oldest samples while it sends (firmware/snippet.py), so
``received`` can be a little below ``expected`` in a complete snippet.

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
from spasmwatch.host.monitor.store import Store

__all__ = [
    "SnippetCollector", "StoredSnippet", "add_snippet", "snippets_in",
]

log = logging.getLogger("spasmwatch.snippets")

Output = dict[str, Any]

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
    samples: list[list[float]]

    def magnitudes_g(self) -> list[float]:
        """|a| of every sample in g (gravity included: about 1 g at rest)."""
        return [(x * x + y * y + z * z) ** 0.5 for x, y, z in self.samples]


def add_snippet(store: Store, out: Output) -> int:
    """Store one ``{"type": "snippet"}`` output; returns its row id."""
    conn = store.connection
    cur = conn.execute(
        "INSERT INTO snippets (device, alert_id, alert_t, t, t_end, rate_hz, range_g,"
        " expected, complete, samples, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (out.get("device", ""), out.get("alert_id"), out["alert_t"], out["t"], out["t_end"],
         out["rate_hz"], out["range_g"], out.get("expected"), int(bool(out["complete"])),
         json.dumps(out["samples"]), time.time()),
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
    """One GET_SNIPPET under way."""

    alert: Output
    sent_at: float
    last_rx: float
    expected: int | None = None  # from the reply; None until it arrives
    samples: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)  # i -> t,x,y,z
    first_index: int | None = None  # index of the packet flagged SNIP_FIRST
    last_index: int | None = None  # index of the packet flagged SNIP_LAST


class SnippetCollector:
    """Ask for a snippet per alarm, one at a time, and turn the packets into an output.

    The daemon drives it: ``want(alert)`` for each alarm output, ``take_request(now)``
    (a control payload to send, or None), ``on_packet(rec, now)`` for every out-of-band
    record, ``tick(now)`` about once a second. Outputs come back from ``on_packet`` and
    ``tick`` once a snippet is over (complete, or given up).
    """

    def __init__(
        self,
        to_host: Callable[[int], float],
        device: str = "",
        silence_s: float = 3.0,
        max_s: float = 60.0,
        max_queued: int = 8,
    ) -> None:
        self.to_host = to_host  # device ms -> host seconds (the engine's clock)
        self.device = device
        self.silence_s = silence_s
        self.max_s = max_s
        self.max_queued = max_queued
        self.rate_hz = fwconfig.RATE_HZ  # updated from status packets
        self.range_g = fwconfig.RANGE_G
        self.queue: list[Output] = []
        self.active: _Collection | None = None
        self.done = 0
        self.partial = 0
        self.empty = 0

    def note(self, out: Output) -> None:
        """Every daemon output: alarms queue a request; statuses give rate and range."""
        if out.get("type") == "status":
            self.rate_hz = int(out.get("rate_hz") or self.rate_hz)
            self.range_g = int(out.get("range_g") or self.range_g)
        elif out.get("type") == "alert" and out.get("level") == "alarm":
            if len(self.queue) < self.max_queued:  # bounded: a storm keeps the first ones
                self.queue.append(out)

    def take_request(self, now: float) -> bytes | None:
        """The GET_SNIPPET payload to send now, if an alarm waits and none is under way."""
        if self.active is not None or not self.queue:
            return None
        self.active = _Collection(self.queue.pop(0), now, now)
        return control.encode_get_snippet()

    def link_lost(self, now: float) -> list[Output]:
        """The link dropped: what arrived so far is all there will be."""
        return self._finish(now) if self.active is not None else []

    def on_packet(self, rec: tuple[Any, ...], index: int, now: float) -> list[Output]:
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
                return self._finish(now)  # nothing held (just booted) or refused
            c.expected = int(value)
            return []
        if rec[0] != wire.KIND_SNIPPET:
            return []
        _, t_ms, x, y, z, flags = rec
        c.last_rx = now
        if flags & wire.SNIP_FIRST:
            if c.first_index is not None:
                # A second snippet started: ours ended without its last packet.
                return self._finish(now)
            c.first_index = index
        c.samples[index] = (t_ms, x, y, z)
        if flags & wire.SNIP_LAST:
            c.last_index = index
            return self._finish(now)
        return []

    def tick(self, now: float) -> list[Output]:
        """Give up on a snippet whose packets stopped coming."""
        c = self.active
        if c is None:
            return []
        if now - c.last_rx >= self.silence_s or now - c.sent_at >= self.max_s:
            return self._finish(now)
        return []

    def _finish(self, now: float) -> list[Output]:
        c = self.active
        self.active = None
        assert c is not None
        alert = c.alert
        if not c.samples:
            self.empty += 1
            log.warning("no snippet arrived for the alarm at %s", alert.get("t"))
            return []
        idx = sorted(c.samples)
        n_expected = c.expected if c.expected is not None else (
            c.last_index + 1 if c.last_index is not None else None)
        # Complete: the first and the last packet arrived and nothing in between was
        # lost. The board may skip its oldest samples while it sends (new ones overwrite
        # them; firmware/snippet.py), so fewer than announced can still be complete.
        complete = (c.first_index is not None and c.last_index is not None
                    and idx[0] == c.first_index and idx[-1] == c.last_index
                    and len(idx) == c.last_index - c.first_index + 1)
        lsb = fwconfig.lsb_per_g(self.range_g)
        samples = [[round(c.samples[i][k] / lsb, 5) for k in (1, 2, 3)] for i in idx]
        self.done += 1
        if not complete:
            self.partial += 1
        return [{
            "type": "snippet", "t": round(self.to_host(c.samples[idx[0]][0]), 3),
            "t_end": round(self.to_host(c.samples[idx[-1]][0]), 3),
            "alert_id": alert.get("id"), "alert_t": alert["t"], "device": self.device,
            "rate_hz": self.rate_hz, "range_g": self.range_g, "expected": n_expected,
            "received": len(idx), "complete": bool(complete), "samples": samples,
        }]
