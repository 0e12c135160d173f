"""The host pipeline: packet -> ingest -> store -> clusters and patterns -> alerts.

``Engine.feed_packet`` returns typed output records (``host/monitor/outputs.py``: event,
summary, status, cluster, alert, gap) in the order a person would read them. Ordering
guarantees:

* a record is written (and committed) to the store before any alert it causes is
  computed, stored or returned, so every alert can be traced back to stored evidence;
* event-driven alerts carry ``t`` = the end of the event that completed the pattern,
  the earliest moment the host could have known;
* a cluster is reported closed at ``end + cluster_gap_s`` (or at the end of the data),
  whether that is noticed by the next event, by a status packet, by ``tick`` or by
  ``finish``.

Per-event work is O(1) amortised: bounded deques and counters, no rescans.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from spasmwatch.firmware import wire
from spasmwatch.host.monitor.alerts import INFO, Alert, AlertConfig, fmt_time
from spasmwatch.host.monitor.clustering import Cluster, ClusterTracker
from spasmwatch.host.monitor.faults import FaultTracker
from spasmwatch.host.monitor.ingest import (
    IngestResult,
    Packet,
    PacketIngest,
    Verifier,
    foreign_fault,
)
from spasmwatch.host.monitor.outputs import (
    EventOutput,
    Gap,
    Output,
    StatusOutput,
    SummaryOutput,
)
from spasmwatch.host.monitor.patterns import JerkBurstDetector, SpasmChainDetector
from spasmwatch.host.monitor.records import Detail, Event, Status, Summary
from spasmwatch.host.monitor.sequence import Verdict
from spasmwatch.host.monitor.store import Store

__all__ = ["AlertConfig", "Engine"]

log = logging.getLogger("spasmwatch.engine")

#: What a failing store raises: a full disk, a read-only file, a vanished folder.
STORE_ERRORS = (sqlite3.Error, OSError)


class Engine:
    """Turn one device's packets into stored records, clusters and alerts."""

    def __init__(
        self,
        config: AlertConfig | None = None,
        store: Store | None = None,
        device: str = "sim",
        t0: float = 0.0,
        verifier: Verifier | None = None,
    ) -> None:
        self.config = config if config is not None else AlertConfig()
        self.store = store
        self.device = device
        self.ingest = PacketIngest(device, t0, verifier)
        first_id = store.next_cluster_id() if store is not None else 1
        self.clusters = ClusterTracker(
            self.config.cluster_gap_s, self.config.max_intervals, first_id
        )
        self.spasms = SpasmChainDetector(self.config)
        self.jerks = JerkBurstDetector(self.config)
        # Public so the daemon can add conditions (heartbeat timeout) through ``tick``.
        self.faults = FaultTracker()
        self.now: float = t0  # latest host time known from the data or from tick()
        self._clean_run = 0  # gap-free packets since the last loss
        # A monitor that asks the device to resend (the daemon) sets ``defer_lost``: a gap
        # is then only a *pending* loss, raised as the ``packets_lost`` fault by
        # ``confirm_lost`` once a resend failed to fill it. A gap the first resend fills
        # (e.g. the link was busy with an alarm's snippet for a moment) is no fault to
        # wake a parent for; it is still counted (``stats``: lost, recovered).
        self.defer_lost = False
        self._lost_pending: tuple[str, dict[str, Any]] | None = None
        self._events_by_class: Counter[str] = Counter()
        self._alerts_by_level: Counter[str] = Counter()
        self._n_clusters = 0
        self._late_events = 0
        self._saved_counts: dict[str, int] = {}  # counters already added to the store
        self._store_failures = 0  # writes that failed since the storage fault was raised

    # -- what the daemon needs (it does not reach into ingest) --------------------------

    @property
    def missing(self) -> int:
        """Stream packets known to be missing (not yet resent)."""
        return self.ingest.missing

    def missing_ranges(self) -> list[tuple[int, int]]:
        return self.ingest.missing_ranges()

    @property
    def seq_top(self) -> int | None:
        """The newest stream sequence number seen (None before any packet)."""
        return self.ingest.seq.top

    @property
    def accepted(self) -> int:
        return self.ingest.stats.accepted

    @property
    def decode_errors(self) -> int:
        return self.ingest.stats.decode_errors

    @property
    def verifier(self) -> Verifier | None:
        return self.ingest.verifier

    @property
    def to_host_time(self) -> Callable[[int], float]:
        """Device milliseconds -> host (wall-clock) seconds."""
        return self.ingest.clock.to_host

    @property
    def t0(self) -> float:
        """Host time of device time zero."""
        return self.ingest.clock.t0

    def set_t0(self, t0: float) -> None:
        self.ingest.clock.t0 = t0

    def set_fault(self, kind: str, active: bool, t: float, message: str,
                  details: dict[str, Any] | None = None) -> list[Output]:
        """Report a condition found outside the engine (the daemon's timer, its heartbeat)
        to the fault owner; an edge is stored and returned like the engine's own faults
        (and returned even if storing it broke: a fault is never swallowed)."""
        out: list[Output] = []
        a = self.faults.update(kind, active, t, message, details)
        if a is not None:
            try:
                self._emit([a], out)
            except Exception:  # noqa: BLE001 - say it on the channels all the same
                log.exception("recording the %s fault failed", kind)
                out = [a]
        return out

    def summary_line(self) -> str:
        st = self.ingest.stats
        return (f"{st.accepted} packets accepted, {self.ingest.missing} missing, "
                f"{st.duplicates} duplicates")

    # -- inputs --------------------------------------------------------------------------

    def decode(self, data: bytes, received_at: float | None = None) -> Packet | None:
        """Verify and decode a packet from the link (once); None when it is rejected
        (counted: hand it on with ``rejected``)."""
        return self.ingest.decode(data, received_at)

    def rejected(self) -> list[Output]:
        """What a packet that did not decode causes (the ``decode_errors`` fault)."""
        out: list[Output] = []
        self._after_rejection(out)
        return out

    def feed_packet(self, data: bytes, received_at: float | None = None) -> list[Output]:
        """Process one packet as received from the link."""
        pkt = self.decode(data, received_at)
        if pkt is None:
            return self.rejected()
        return self.feed_decoded(pkt, received_at)

    def feed_decoded(self, pkt: Packet, received_at: float | None = None) -> list[Output]:
        """Process one packet ``decode`` returned (the stream checks, store, alerts)."""
        res = self.ingest.accept(pkt, received_at)
        out: list[Output] = []
        if res is None:
            self._after_rejection(out)
            return out
        if self.store is not None:
            with self._storing(out):
                self._persist(res)  # before anything that could alert on it
        rec = res.record
        if isinstance(rec, Event):
            self._on_event(rec, res, out)
        elif isinstance(rec, Detail):
            # Round 4: what the next event carries beyond its own packet; kept by the chain
            # detector for that event.
            self.spasms.add_detail(rec)
        else:
            self._on_periodic(rec, out)
        self._link_health(res, out)
        return out

    def feed_record(self, rec: tuple, seq: int, received_at: float | None = None) -> list[Output]:
        """Process a detector record tuple in-process (replay).

        It is encoded and decoded exactly as on the radio link, so replay sees the same
        quantised values as a live monitor.
        """
        return self.feed_packet(wire.encode(seq, rec), received_at)

    def tick(self, now: float) -> list[Output]:
        """Let time pass without data: closes clusters whose gap has elapsed.

        This is the place for time-based checks (the daemon's heartbeat timeout goes here,
        via ``self.faults.update(...)``).
        """
        out: list[Output] = []
        self.now = max(self.now, now)
        self._expire(now, out)
        self._emit([a for a in [foreign_fault(self.ingest, self.faults, now)] if a], out)  # sec
        if self.store is not None:
            with self._storing(out):
                self._save_counters()
        return out

    def finish(self) -> list[Output]:
        """End of data: close the open cluster and flush the store (a gap still
        waiting for its resend is a fault now: nothing more will come)."""
        out: list[Output] = self.confirm_lost()
        closed = self.clusters.finish()
        if closed is not None:
            self._report_closed(closed, min(closed.end + self.config.cluster_gap_s,
                                            max(self.now, closed.end)), out)
        if self.store is not None:
            with self._storing(out):
                self._save_counters()
                self.store.commit()
        return out

    # -- stats ---------------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, Any]:
        """Counts so far: flat numbers, then breakdowns as dicts."""
        ist = self.ingest.stats
        return {
            "packets": ist.packets,
            "accepted": ist.accepted,
            "events": sum(self._events_by_class.values()),
            "summaries": ist.kinds["summary"],
            "statuses": ist.kinds["status"],
            "clusters": self._n_clusters,
            "alerts": sum(self._alerts_by_level.values()),
            "decode_errors": ist.decode_errors,
            "lost": ist.lost,
            "recovered": ist.recovered,
            "missing": self.ingest.missing,
            "duplicates": ist.duplicates,
            "late": ist.late,
            "late_events_unclustered": self._late_events,
            "restarts": ist.restarts,
            "events_by_class": dict(self._events_by_class),
            "alerts_by_level": dict(self._alerts_by_level),
            "decode_errors_by_reason": dict(ist.errors),
        }

    # -- internals -----------------------------------------------------------------------

    def _persist(self, res: IngestResult) -> None:
        assert self.store is not None
        rec = res.record
        if isinstance(rec, Event):
            self.store.add_event(self.device, rec)
        elif isinstance(rec, Summary):
            self.store.add_summary(self.device, rec)
        elif isinstance(rec, Detail):
            self.store.add_detail(self.device, rec)
        else:
            self.store.add_status(self.device, rec)

    def _on_event(self, ev: Event, res: IngestResult, out: list[Output]) -> None:
        cfg = self.config
        known_at = max(ev.end, self.now)  # a backfilled event is known only on arrival
        closed, joined = self.clusters.add(ev)
        if closed is not None:
            self._report_closed(closed, min(closed.end + cfg.cluster_gap_s, ev.t), out)
        self.now = known_at
        self._events_by_class[ev.cls] += 1
        out.append(EventOutput(ev, self.device, joined.id if joined else None,
                               res.verdict.value if res.verdict is not Verdict.NEW else None))
        alerts: list[Alert] = []
        cid = joined.id if joined is not None else None
        # Every class goes to the chain: it may re-class a movement that matches its
        # spasm-like members, and counts the others as context (cluster_evidence.py).
        alerts += self.spasms.add(ev, known_at, cid)
        if ev.cls == "jerk":
            alerts += self.jerks.add(ev, known_at, cid)
        if joined is None:
            self._late_events += 1
            alerts.append(Alert(
                known_at, INFO, "late_event",
                f"A {ev.cls.replace('_', '-')} event from {fmt_time(ev.t)} arrived after its "
                f"cluster had been reported (resent after a link drop); it is stored but "
                f"not added to a cluster.",
                event_seqs=(ev.seq,),
            ))
        if alerts and joined is not None and self.store is not None:
            with self._storing(out):
                self.store.upsert_cluster(joined, self.device)  # so alerts can refer to it
        self._emit(alerts, out)

    def _on_periodic(self, rec: Summary | Status, out: list[Output]) -> None:
        # A periodic record proves the device clock reached rec.t: clusters can close.
        self._expire(rec.t, out)
        self.now = max(self.now, rec.t)
        if isinstance(rec, Status):
            out.append(StatusOutput(rec, self.device))
            self._emit(self.faults.from_status(rec), out)
        else:
            out.append(SummaryOutput(rec, self.device))

    def _expire(self, now: float, out: list[Output]) -> None:
        closed = self.clusters.expire(now)
        if closed is not None:
            self._report_closed(closed, closed.end + self.config.cluster_gap_s, out)
        self.jerks.expire(now)

    def _report_closed(self, cl: Cluster, t: float, out: list[Output]) -> None:
        self._n_clusters += 1
        if self.store is not None:
            with self._storing(out):
                self.store.upsert_cluster(cl, self.device)
        out.append(cl)
        details = cl.to_dict()
        del details["type"]
        self._emit([Alert(t, INFO, "cluster_closed", cl.describe(), cl.id, (), details)], out)

    def _link_health(self, res: IngestResult, out: list[Output]) -> None:
        """Link faults: lost packets (cleared once nothing is missing), decode errors."""
        t = self.now
        alerts: list[Alert] = []
        a = self.faults.update("decode_errors", False, t, "Packets decode correctly again.")
        if a is not None:
            alerts.append(a)
        if res.verdict is Verdict.RESTART:
            alerts.append(Alert(
                t, INFO, "device_restart",
                "The sensor restarted (its packet numbers and clock started over); "
                "monitoring resumed, a short stretch before this may be missing.",
                details={"seq": res.seq},
            ))
        if res.gap:
            self._clean_run = 0
            missing = [list(r) for r in self.ingest.missing_ranges()]
            message = (f"{res.gap} packet(s) from the sensor did not arrive (before packet "
                       f"{res.seq}): movements in that stretch may be missing from the "
                       "record.")
            details: dict[str, Any] = {"lost": res.gap, "missing_ranges": missing}
            if self.defer_lost and "packets_lost" not in self.faults.active:
                if self._lost_pending is None:
                    log.info("%d packet(s) missing before %d: asking again before it is "
                             "a fault", res.gap, res.seq)
                    self._lost_pending = (message, details)
            else:
                a = self.faults.update("packets_lost", True, t, message, details)
                if a is not None:
                    alerts.append(a)
        else:
            self._clean_run += 1
            if self._lost_pending is not None and self.ingest.missing == 0:
                log.info("the missing packets were resent before it became a fault")
                self._lost_pending = None
            # Cleared only when nothing is missing any more: resent, or written off as a
            # recorded gap (``write_off``). A steady link alone leaves a hole behind.
            if "packets_lost" in self.faults.active and self.ingest.missing == 0:
                a = self._clear_lost(t)
                if a is not None:
                    alerts.append(a)
        self._emit(alerts, out)

    def _clear_lost(self, t: float) -> Alert | None:
        gaps = self._gaps_since_lost
        self._gaps_since_lost = 0
        return self.faults.update(
            "packets_lost", False, t,
            "The missing packets were resent; the record is complete again." if not gaps
            else f"The link works again; {gaps} stretch(es) of data could not be recovered "
            "and are marked as gaps in the record.",
            {"gaps": gaps},
        )

    _gaps_since_lost = 0

    @property
    def lost_pending(self) -> bool:
        """A gap is waiting for its resend (``defer_lost``), not yet a fault."""
        return self._lost_pending is not None

    def confirm_lost(self, now: float | None = None) -> list[Output]:
        """The resend did not fill a pending gap in time: raise ``packets_lost`` (with
        what is missing now). Nothing happens if the gap was filled meanwhile."""
        out: list[Output] = []
        pending, self._lost_pending = self._lost_pending, None
        if pending is None or self.ingest.missing == 0:
            return out
        message, details = pending
        details = dict(details, missing_ranges=[list(r) for r in self.ingest.missing_ranges()])
        t = self.now if now is None else max(self.now, now)
        self._emit([a for a in [self.faults.update("packets_lost", True, t, message, details)]
                    if a is not None], out)
        return out

    def write_off(self, ranges: list[tuple[int, int]], reason: str,
                  now: float | None = None) -> list[Output]:
        """Missing packets that will never come (``reason``: the device's buffer dropped
        them, or it stopped answering): each stretch becomes a recorded ``data_gap``
        ("no data 01:10–01:55") and the packets-lost fault clears once nothing else is
        missing."""
        # Written off without a fault yet (the device said GONE at once): the fault is
        # raised first, so that its clearing below names the gaps, as it always has.
        out: list[Output] = self.confirm_lost(now)
        alerts: list[Alert] = []
        t = self.now if now is None else max(self.now, now)
        for first, last in ranges:
            n, ms_before, ms_after = self.ingest.seq.write_off(first, last)
            if n == 0:
                continue
            to_host = self.ingest.clock.to_host
            start = to_host(ms_before) if ms_before is not None else None
            end = to_host(ms_after) if ms_after is not None else t
            span = (f"from {fmt_time(start)} to {fmt_time(end)}" if start is not None
                    else f"before {fmt_time(end)}")
            self._gaps_since_lost += 1
            alerts.append(Alert(
                t, INFO, "data_gap",
                f"No data {span}: {n} packet(s) from the sensor were lost for good "
                f"({reason}). Movements in that stretch are not in the record.",
                details={"start": start, "end": end, "lost": n, "first_seq": first,
                         "last_seq": last, "reason": reason},
            ))
            if self.store is not None:
                with self._storing(out):
                    self.store.add_gap(self.device, start, end, "packets_lost")
            out.append(Gap(t, start, end, f"no data {span} ({n} packets lost: {reason})",
                           lost=n, device=self.device))
        if alerts and "packets_lost" in self.faults.active and self.ingest.missing == 0:
            a = self._clear_lost(t)
            if a is not None:
                alerts.append(a)
        self._emit(alerts, out)
        return out

    def trace_gap(self, start: float, end: float) -> Gap:
        """A replayed trace has no samples from ``start`` to ``end`` (the replay says so;
        nothing is stored)."""
        return Gap(start, start, end,
                   f"trace has no samples for {end - start:.1f} s (held still)")

    def _after_rejection(self, out: list[Output]) -> None:
        ist = self.ingest.stats
        if ist.foreign and self.ingest.foreign_times:  # security (issue 9): foreign packets
            t = max(self.now, self.ingest.foreign_times[-1])
            self._emit([a for a in [foreign_fault(self.ingest, self.faults, t)] if a], out)
        if ist.error_run >= self.config.decode_error_run:
            a = self.faults.update(
                "decode_errors", True, self.now,
                f"{ist.error_run} packets in a row could not be decoded (radio "
                "interference, a firmware mismatch or a wrong key): monitoring data is not "
                "getting through.",
                {"errors": dict(ist.errors)},
            )
            if a is not None:
                self._emit([a], out)

    def _emit(self, alerts: list[Alert], out: list[Output]) -> None:
        """Store the alerts, then add them to ``out``. A store that fails never loses an
        alert: it is still returned (and so delivered), and a storage fault follows."""
        if not alerts:
            return
        ids: list[int | None] = [None] * len(alerts)
        store = self.store
        if store is not None:
            with self._storing(out, emit_fault=False) as ok:
                with store.batch():
                    for i, a in enumerate(alerts):
                        ids[i] = store.add_alert(a, self.device)
            if not ok:
                ids = [None] * len(alerts)
        for a, rid in zip(alerts, ids, strict=True):
            self._alerts_by_level[a.level] += 1
            a.id = rid
            out.append(a)
        if store is not None and self._pending_storage_alert is not None:
            pending, self._pending_storage_alert = self._pending_storage_alert, None
            self._emit([pending], out)

    _pending_storage_alert: Alert | None = None

    @contextmanager
    def _storing(self, out: list[Output], emit_fault: bool = True) -> Iterator[list[bool]]:
        """Run a store write; a failure becomes the ``storage_failed`` fault (once) and
        the monitoring goes on without that write. The first good write clears it.

        Yields a one-item list that is truthy while the write has not failed."""
        ok = [True]
        try:
            yield ok
        except STORE_ERRORS as exc:
            ok.clear()
            self._store_failures += 1
            if self._store_failures == 1:  # once per episode: a full disk fills no log
                log.error("the record could not be saved: %s", exc)
            a = self.faults.update(
                "storage_failed", True, self.now,
                f"This night's record cannot be saved ({exc}): the disk may be full or "
                "read-only. Alarms still work; free some space or fix the disk so the "
                "record is complete.",
                {"error": str(exc)},
            )
            if a is not None:
                if emit_fault:
                    self._emit([a], out)
                else:
                    self._pending_storage_alert = a
            return
        if "storage_failed" in self.faults.active:
            lost, self._store_failures = self._store_failures, 0
            a = self.faults.update(
                "storage_failed", False, self.now,
                f"The record is being saved again ({lost} write(s) were lost).",
                {"writes_lost": lost})
            if a is not None:
                self._emit([a], out)

    def _save_counters(self) -> None:
        assert self.store is not None
        ist = self.ingest.stats
        counts = {f"decode_error:{r}": n for r, n in ist.errors.items()}
        counts.update(lost=ist.lost, recovered=ist.recovered, duplicates=ist.duplicates,
                      restarts=ist.restarts)
        # Counters accumulate across runs; only what is new since the last save is added.
        prev = self._saved_counts
        delta = {k: v - prev.get(k, 0) for k, v in counts.items()}
        self.store.add_counts(self.device, delta)
        self._saved_counts = counts
