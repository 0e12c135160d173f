"""Packet ingest: bytes from the link -> typed, de-duplicated records on the host clock.

``PacketIngest.feed`` never raises on bad input. A packet that does not decode is counted
under its ``WireError.reason`` (anything else the decoder throws counts as
``"malformed"``), logged once, and dropped. Good packets are checked against the
sequence tracker (duplicates dropped, gaps remembered for backfill, restarts noticed)
and their device time is converted to host seconds.

With a verifier (a paired link, ``host/pairing.py`` ``Session``) every packet must carry
a valid tag: untagged packets (``unsigned``), bad tags (``auth``: forged, another key,
or an older boot of the device) and authentic packets of this boot replayed out of
their place (``replay``: ``Verdict.STALE``) are dropped and counted; the times of the
latest ones feed the "another device is sending" fault (``foreign_active``). Command
replies and snippets (``wire.OUT_OF_BAND``) are not stream records: counted and left
to the daemon, never an exception.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from spasmwatch.firmware import wire
from spasmwatch.host.monitor.alerts import Alert
from spasmwatch.host.monitor.faults import FaultTracker
from spasmwatch.host.monitor.records import (
    Detail,
    Event,
    Record,
    Status,
    Summary,
    invalid_field,
    record_from_tuple,
)
from spasmwatch.host.monitor.sequence import DeviceClock, SequenceTracker, Verdict

__all__ = [
    "Event", "IngestResult", "IngestStats", "Packet", "PacketIngest", "Record", "Status", "Summary",
]

log = logging.getLogger("spasmwatch.ingest")

Verifier = Callable[[bytes, bytes], bool]

#: Rejection reasons that mean "not from our sensor" rather than a bad radio.
FOREIGN_REASONS = ("auth", "unsigned", "replay")
FOREIGN_FAULT_COUNT = 3  # this many foreign packets ...
FOREIGN_FAULT_WINDOW_S = 600.0  # ... within this long raise the fault; it clears after


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
    out_of_band: int = 0  # replies and snippets handed to feed (not stream records)
    foreign: int = 0  # rejected as not from the paired sensor (FOREIGN_REASONS)
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
        return {Event: "event", Summary: "summary", Status: "status",
                Detail: "detail"}[type(self.record)]


@dataclass(frozen=True, slots=True)
class Packet:
    """One verified, decoded packet (``wire.decode``'s ``seq`` and record tuple), before
    the stream checks. Decoded once at the entry and passed on from there."""

    seq: int
    rec: tuple
    data: bytes = b""  # the bytes as received (for the log line of a later rejection)

    @property
    def kind(self) -> int:
        return int(self.rec[0])

    @property
    def out_of_band(self) -> bool:
        """A command reply or snippet: not a stream record (``wire.OUT_OF_BAND``)."""
        return self.rec[0] in wire.OUT_OF_BAND


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
        self.seq = SequenceTracker(window=window, strict=verifier is not None)
        self.clock = DeviceClock(t0)
        self._boot: object = None  # the verifier's device boot of the newest stream packet
        self.foreign_times: deque[float] = deque(maxlen=FOREIGN_FAULT_COUNT)

    def feed(self, data: bytes, received_at: float | None = None) -> IngestResult | None:
        """Return the decoded record, or None for a bad or duplicate packet."""
        pkt = self.decode(data, received_at)
        if pkt is None:
            return None
        return self.accept(pkt, received_at)

    def decode(self, data: bytes, received_at: float | None = None) -> Packet | None:
        """Verify and decode one packet: the monitor's one call of ``wire.decode``.

        A packet that does not decode is counted (under its reason, in ``packets`` too)
        and logged; None is returned. A good packet is counted by ``accept``."""
        try:
            seq, rec = wire.decode(data, self.verifier)
        except wire.WireError as exc:
            self.stats.packets += 1
            self._reject(exc.reason, str(exc), data, received_at)
            return None
        except Exception as exc:  # noqa: BLE001 - a decoder bug must not stop monitoring
            self.stats.packets += 1
            self._reject("malformed", f"{type(exc).__name__}: {exc}", data, received_at)
            return None
        return Packet(seq, rec, data)

    def accept(self, pkt: Packet, received_at: float | None = None) -> IngestResult | None:
        """Check a decoded packet against the stream: the record on the host clock, or
        None (out of band, an impossible field, a duplicate, a replay)."""
        st = self.stats
        st.packets += 1
        seq, rec, data = pkt.seq, pkt.rec, pkt.data
        if pkt.out_of_band:
            st.out_of_band += 1
            return None
        bad = invalid_field(rec)
        if bad is not None:  # every field from the wire is untrusted
            self._reject("invalid_field", bad, data, received_at)
            return None
        st.error_run = 0
        t_ms = rec[1]
        boot = getattr(self.verifier, "boot", None)
        new_boot = boot != self._boot
        upd = self.seq.observe(seq, t_ms, new_boot)
        verdict = upd.verdict
        if verdict is Verdict.STALE:
            self._reject("replay", f"seq {seq} t_ms {t_ms} is an old packet of this boot",
                         data, received_at)
            return None
        self._boot = boot
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

    def foreign_active(self, now: float) -> bool:
        """True while FOREIGN_FAULT_COUNT foreign packets came within the window."""
        ts = self.foreign_times
        return len(ts) == ts.maxlen and now - ts[0] <= FOREIGN_FAULT_WINDOW_S \
            and now - ts[-1] <= FOREIGN_FAULT_WINDOW_S

    def _reject(self, reason: str, detail: str, data: bytes,
                received_at: float | None = None) -> None:
        st = self.stats
        st.errors[reason] += 1
        st.error_run += 1
        if reason in FOREIGN_REASONS:
            st.foreign += 1
            if received_at is not None:
                self.foreign_times.append(received_at)
        log.warning(
            "%s: dropped undecodable packet (%s): %s [%d bytes: %s]",
            self.device, reason, detail, len(data), bytes(data[:24]).hex(),
        )


def foreign_fault(ingest: PacketIngest, faults: FaultTracker, now: float) -> Alert | None:
    """Raise or clear the "another device is sending" fault (engine hook, issue 9)."""
    # Devices that advertised as our sensor but failed the challenge (BLE link).
    squatters = [a for t, a in getattr(ingest.verifier, "rejected", ())
                 if 0 <= now - t <= FOREIGN_FAULT_WINDOW_S]
    if ingest.foreign_active(now) or squatters:
        what = (f"Another device is sending packets that do not carry this sensor's key "
                f"({ingest.stats.foreign} dropped so far)" if ingest.stats.foreign else
                f"Another device ({', '.join(sorted(set(squatters)))}) advertises as this "
                "sensor but could not prove its key (a neighbour's sensor, or someone "
                "imitating yours); it was ignored")
        return faults.update(
            "foreign_packets", True, now,
            f"{what}: it cannot raise or hide an alarm, but someone nearby may be trying "
            "to. Check the sensor and its surroundings.",
            {"dropped": ingest.stats.foreign, "devices": sorted(set(squatters)), "reasons": {
                r: ingest.stats.errors[r] for r in FOREIGN_REASONS if ingest.stats.errors[r]}},
        )
    last = ingest.foreign_times[-1] if ingest.foreign_times else None
    if "foreign_packets" in faults.active and (last is None or
                                                now - last > FOREIGN_FAULT_WINDOW_S):
        return faults.update("foreign_packets", False, now,
                             "No more packets from another device for "
                             f"{FOREIGN_FAULT_WINDOW_S / 60:.0f} minutes.")
    return None
