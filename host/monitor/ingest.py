"""Packet ingest: bytes from the link -> typed, de-duplicated records on the host clock.

``PacketIngest.feed`` never raises on bad input. A packet that does not decode is counted
under its ``WireError.reason`` (anything else the decoder throws counts as
``"malformed"``), logged once, and dropped. Good packets are checked against the
sequence tracker (duplicates dropped, gaps remembered for backfill, restarts noticed)
and their device time is converted to host seconds.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from spasmwatch.firmware import wire
from spasmwatch.host.monitor.records import (
    Event,
    Record,
    Status,
    Summary,
    invalid_field,
    record_from_tuple,
)
from spasmwatch.host.monitor.sequence import DeviceClock, SequenceTracker, Verdict

__all__ = [
    "Event", "IngestResult", "IngestStats", "PacketIngest", "Record", "Status", "Summary",
]

log = logging.getLogger("spasmwatch.ingest")

Verifier = Callable[[bytes, bytes], bool]


@dataclass
class IngestStats:
    """Running counts; ``errors`` maps a decode failure reason to how often it happened."""

    packets: int = 0  # everything fed, good or bad
    accepted: int = 0  # decoded, not a duplicate, handed on
    errors: Counter[str] = field(default_factory=Counter)
    error_run: int = 0  # consecutive undecodable packets right now
    duplicates: int = 0
    lost: int = 0  # packets found missing from the sequence (before any backfill)
    recovered: int = 0  # of those, how many arrived later (backfill)
    late: int = 0  # older packets that were never recorded as missing
    restarts: int = 0
    kinds: Counter[str] = field(default_factory=Counter)  # event / summary / status

    @property
    def decode_errors(self) -> int:
        return sum(self.errors.values())


@dataclass(frozen=True, slots=True)
class IngestResult:
    """One accepted packet: its record plus what the sequence check learned from it."""

    seq: int
    record: Record
    verdict: Verdict
    gap: int = 0  # packets this one revealed as missing

    @property
    def kind(self) -> str:
        return {Event: "event", Summary: "summary", Status: "status"}[type(self.record)]


class PacketIngest:
    """Decode, de-duplicate and time-stamp packets from one device."""

    def __init__(
        self,
        device: str = "sim",
        t0: float = 0.0,
        verifier: Verifier | None = None,
        window: int = 1024,
    ) -> None:
        self.device = device
        self.verifier = verifier
        self.stats = IngestStats()
        self.seq = SequenceTracker(window=window)
        self.clock = DeviceClock(t0)

    def feed(self, data: bytes, received_at: float | None = None) -> IngestResult | None:
        """Return the decoded record, or None for a bad or duplicate packet."""
        st = self.stats
        st.packets += 1
        try:
            seq, rec = wire.decode(data, self.verifier)
        except wire.WireError as exc:
            self._reject(exc.reason, str(exc), data)
            return None
        except Exception as exc:  # noqa: BLE001 - a decoder bug must not stop monitoring
            self._reject("malformed", f"{type(exc).__name__}: {exc}", data)
            return None
        bad = invalid_field(rec) if rec[0] not in wire.OUT_OF_BAND else None
        if bad is not None:  # every field from the wire is untrusted
            self._reject("invalid_field", bad, data)
            return None
        st.error_run = 0
        t_ms = rec[1]
        upd = self.seq.observe(seq, t_ms)
        verdict = upd.verdict
        if verdict is Verdict.DUPLICATE:
            st.duplicates += 1
            return None
        if verdict is Verdict.RESTART:
            st.restarts += 1
            self.clock.restart(received_at, t_ms)
            log.warning("%s: device restarted (seq %d, t_ms %d)", self.device, seq, t_ms)
        elif verdict is Verdict.BACKFILL:
            st.recovered += 1
        elif verdict is Verdict.LATE:
            st.late += 1
        if upd.gap:
            st.lost += upd.gap
            log.warning("%s: %d packet(s) missing before seq %d", self.device, upd.gap, seq)
        record = record_from_tuple(seq, rec, self.clock.to_host(t_ms), received_at)
        st.accepted += 1
        result = IngestResult(seq, record, verdict, upd.gap)
        st.kinds[result.kind] += 1
        return result

    def missing_ranges(self) -> list[tuple[int, int]]:
        """Sequence ranges still missing (inclusive, u16), for a backfill request."""
        return self.seq.missing_ranges()

    @property
    def missing(self) -> int:
        return self.seq.missing_count

    def _reject(self, reason: str, detail: str, data: bytes) -> None:
        st = self.stats
        st.errors[reason] += 1
        st.error_run += 1
        log.warning(
            "%s: dropped undecodable packet (%s): %s [%d bytes: %s]",
            self.device, reason, detail, len(data), bytes(data[:24]).hex(),
        )
