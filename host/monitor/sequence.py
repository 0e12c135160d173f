"""Packet sequence tracking: duplicates, gaps, backfill and device restarts.

The device numbers every packet with a u16 that wraps. The host unwraps it into an
ever-growing integer so that "newer", "older" and "missing" are plain comparisons:
a step of less than half the u16 range forward is new, anything else is an older packet
(a resend from the device's ring buffer, a duplicate, or a sign the device restarted).

Memory is bounded by ``window``: sequence numbers further back than that are forgotten.
The firmware keeps ``RING_PACKETS`` (256) packets for resend, so a window of a few times
that covers every packet that can still be backfilled.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

SEQ_MOD = 1 << 16
_SEQ_HALF = SEQ_MOD >> 1
_MS_MOD = 1 << 32
_MS_HALF = _MS_MOD >> 1


class Verdict(StrEnum):
    NEW = "new"  # newest so far (possibly after a gap)
    DUPLICATE = "duplicate"  # same sequence number and device time as one already seen
    BACKFILL = "backfill"  # an older packet that fills a gap we recorded
    LATE = "late"  # an older packet we never saw and had not missed (e.g. before we joined)
    RESTART = "restart"  # the device has evidently restarted; tracking starts over
    STALE = "stale"  # authenticated link: an old packet of this boot replayed (dropped)


@dataclass(frozen=True, slots=True)
class SeqUpdate:
    verdict: Verdict
    useq: int  # unwrapped sequence number (continues across u16 wraps)
    gap: int = 0  # how many packets this one revealed as missing


class SequenceTracker:
    """Classify each (seq, t_ms) as new / duplicate / backfill / late / restart."""

    def __init__(self, window: int = 1024, restart_clock_step_ms: int = 600_000,
                 strict: bool = False) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        # A newer sequence number whose device clock is this far *behind* the newest one
        # cannot come from the same boot: events may be sent up to a minute after their
        # onset, never ten.
        self.restart_clock_step_ms = restart_clock_step_ms
        # Authenticated link: a restart is known from the boot counter (``new_boot``), so
        # a packet that merely looks like one (an old sequence number, a clock gone back)
        # is a replay of this boot's traffic: STALE, and the state stays as it is.
        self.strict = strict
        self._top: int | None = None  # highest unwrapped seq seen
        self._seen: dict[int, int] = {}  # unwrapped seq -> raw t_ms, for the window
        self._missing: set[int] = set()  # unwrapped seqs skipped and not yet backfilled
        self._may_restart = True

    @property
    def top(self) -> int | None:
        return self._top

    @property
    def missing_count(self) -> int:
        return len(self._missing)

    def reset(self) -> None:
        self._top = None
        self._seen.clear()
        self._missing.clear()

    def observe(self, seq: int, t_ms: int, new_boot: bool = False) -> SeqUpdate:
        """Classify one packet; ``new_boot``: the first of a new device boot (strict)."""
        self._may_restart = new_boot or not self.strict
        seq &= SEQ_MOD - 1
        top = self._top
        if top is None:
            return self._start(seq, t_ms, Verdict.NEW)
        step = (seq - top) % SEQ_MOD
        if step == 0:
            return self._same_seq(top, t_ms)
        if step < _SEQ_HALF:
            back_ms = (self._seen[top] - t_ms) % _MS_MOD
            if self.restart_clock_step_ms < back_ms < _MS_HALF:
                return self._restart(seq, t_ms)
            useq = top + step
            gap = step - 1
            # A huge gap is remembered only as far back as the window reaches.
            self._missing.update(range(max(top + 1, useq - self.window), useq))
            self._top = useq
            self._seen[useq] = t_ms
            self._prune()
            return SeqUpdate(Verdict.NEW, useq, gap)
        useq = top - (SEQ_MOD - step)
        if useq in self._missing:
            self._missing.discard(useq)
            self._seen[useq] = t_ms
            return SeqUpdate(Verdict.BACKFILL, useq)
        if useq in self._seen:
            return self._same_seq(useq, t_ms)
        if top - useq <= self.window:
            self._seen[useq] = t_ms
            return SeqUpdate(Verdict.LATE, useq)
        return self._restart(seq, t_ms)

    def missing_ranges(self) -> list[tuple[int, int]]:
        """Missing wire sequence numbers as inclusive (first, last) ranges, oldest first.

        Ranges are split at the u16 wrap so that ``first <= last`` always holds; this is
        what a backfill request to the device needs.
        """
        ranges: list[tuple[int, int]] = []
        start = prev = None
        for u in sorted(self._missing):
            if prev is not None and u == prev + 1 and u % SEQ_MOD != 0:
                prev = u
                continue
            if start is not None and prev is not None:
                ranges.append((start % SEQ_MOD, prev % SEQ_MOD))
            start = prev = u
        if start is not None and prev is not None:
            ranges.append((start % SEQ_MOD, prev % SEQ_MOD))
        return ranges

    def write_off(self, first: int, last: int) -> tuple[int, int | None, int | None]:
        """Stop counting wire seqs ``first..last`` as missing: they are gone for good
        (the device's buffer dropped them, or it never answered). Returns (how many were
        written off, raw t_ms of the newest record seen before them, raw t_ms of the
        oldest seen after them), so the caller can say which stretch has no data."""
        gone = sorted(u for u in self._missing
                      if first <= u % SEQ_MOD <= last)
        if not gone:
            return 0, None, None
        self._missing.difference_update(gone)
        before = [u for u in self._seen if u < gone[0]]
        after = [u for u in self._seen if u > gone[-1]]
        t_before = self._seen[max(before)] if before else None
        t_after = self._seen[min(after)] if after else None
        return len(gone), t_before, t_after

    def _same_seq(self, useq: int, t_ms: int) -> SeqUpdate:
        if self._seen[useq] == t_ms:
            return SeqUpdate(Verdict.DUPLICATE, useq)
        # Same number, different content: the device started counting again.
        return self._restart(useq % SEQ_MOD, t_ms)

    def _restart(self, seq: int, t_ms: int) -> SeqUpdate:
        if not self._may_restart:
            return SeqUpdate(Verdict.STALE, -1)
        return self._start(seq, t_ms, Verdict.RESTART)

    def _start(self, seq: int, t_ms: int, verdict: Verdict) -> SeqUpdate:
        self.reset()
        self._top = seq
        self._seen[seq] = t_ms
        return SeqUpdate(verdict, seq)

    def _prune(self) -> None:
        # Rebuilding once per ``window`` insertions keeps the cost amortised O(1).
        if len(self._seen) > 2 * self.window or len(self._missing) > 2 * self.window:
            floor = self._top - self.window if self._top is not None else 0
            self._seen = {u: t for u, t in self._seen.items() if u >= floor}
            self._missing = {u for u in self._missing if u >= floor}


class DeviceClock:
    """Map the device's u32 millisecond clock (wraps every ~49.7 days) to host seconds.

    ``t = t0 + unwrapped_ms / 1000``. Packets can arrive a little out of order (events are
    sent when they end, summaries at period end, resends later), so each time is unwrapped
    relative to the newest one seen: within half the u32 range either way.
    """

    def __init__(self, t0: float = 0.0) -> None:
        self.t0 = t0
        self._ref_raw: int | None = None  # raw t_ms of the newest packet
        self._ref_ms = 0  # its unwrapped value (including any restart epoch)
        self._epoch_ms = 0  # added to t_ms after a restart so time never runs backwards

    def to_host(self, t_ms: int) -> float:
        t_ms &= _MS_MOD - 1
        if self._ref_raw is None:
            self._ref_raw = t_ms
            self._ref_ms = self._epoch_ms + t_ms
            return self.t0 + self._ref_ms / 1000.0
        delta = ((t_ms - self._ref_raw + _MS_HALF) % _MS_MOD) - _MS_HALF
        ms = self._ref_ms + delta
        if delta > 0:
            self._ref_raw = t_ms
            self._ref_ms = ms
        return self.t0 + ms / 1000.0

    def restart(self, received_at: float | None = None, t_ms: int = 0) -> None:
        """The device rebooted: its clock starts again near zero.

        Without a host receive time the new boot is placed right after the newest packet
        of the old one; with ``received_at`` it is placed so the packet lands at that time
        (but never before the old boot's newest packet).
        """
        epoch = self._ref_ms
        if received_at is not None:
            epoch = max(epoch, round((received_at - self.t0) * 1000.0) - (t_ms & (_MS_MOD - 1)))
        self._epoch_ms = epoch
        self._ref_raw = None
