"""Alert vocabulary: the ``Alert`` record, its levels, the thresholds, and time wording.

Alerts describe what the sensor saw and why it matters enough to look; they never name a
condition. "Spasm-like" is the detector's movement class, not a finding: an alarm means
"a pattern worth checking", and every alarm says how many movements, over what span, at
what times, so a parent (or a doctor shown the log) can judge it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

INFO = "info"
WARNING = "warning"
ALARM = "alarm"
FAULT = "fault"
LEVELS = (INFO, WARNING, ALARM, FAULT)

# Times at or beyond this are Unix epoch seconds (live use) and are shown as local
# wall-clock time; smaller ones are seconds on a replayed trace's clock.
_EPOCH_FROM = 1e9


class AlertConfig(BaseModel):
    """Every threshold the alerting uses: the ``[patterns]`` section of the settings.

    Validated on creation and on assignment (a CLI flag such as ``--gap`` sets a field):
    NaN, infinities and out-of-range values are refused with the field's name.
    """

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False,
                              validate_assignment=True)

    # events closer than this (next onset - previous end) cluster
    cluster_gap_s: float = Field(60.0, gt=0, le=3600)
    alarm_min_spasms: int = Field(3, ge=1, le=100)  # spasm-like events in one chain: alarm
    spasm_gap_s: float = Field(60.0, gt=0, le=3600)  # max gap between them in one chain
    warn_spasms: int = Field(2, ge=1, le=100)  # spasm-like events in one chain: warning
    burst_min_jerks: int = Field(8, ge=1, le=1000)  # jerks within burst_window_s: warning
    burst_window_s: float = Field(30.0, gt=0, le=3600)
    # A burst of jerks is shown and logged as "info" (never sounds): on benign nights it is
    # hiccups or benign sleep myoclonus (docs/alerts.md, "Quiet nights"). "warning" = round 2.
    burst_level: Literal["info", "warning"] = INFO
    decode_error_run: int = Field(3, ge=1, le=10000)  # undecodable packets in a row: fault
    max_listed: int = Field(12, ge=1, le=1000)  # event times spelled out in one message
    max_intervals: int = Field(1000, ge=0, le=100000)  # intervals kept per cluster
    # Round 3: how a spasm chain is judged (host/monitor/cluster_evidence.py).
    # "count" = spasm-like events only (rounds 1-2); "rules" = re-class matching events and
    # require the evidence score; "learned" = the same with the learned chain model.
    evidence: Literal["count", "rules", "learned"] = "rules"
    alarm_score: float = Field(0.5, ge=0, le=1)  # rule score an alarm/warning needs
    learned_threshold: float = Field(0.5, ge=0, le=1)  # learned score an alarm/warning needs
    # spasm-like members that alarm whatever the score (99: never)
    sure_spasms: int = Field(99, ge=1, le=1000)
    # Round 5: which events count as spasm-like for the chains. "scored" (default) = the
    # host's event score (event_evidence.py) >= event_threshold, from the event, its detail
    # record and the events before it; "firmware" = the detector's class (rounds 1-4).
    event_class: Literal["firmware", "scored"] = "scored"
    # 0.8 since round 6 (boosted model, 19 tuning suites): on them, each scored by a model
    # that had not seen it, as many clusters as round 5's 0.45 with a sixth of the false
    # alarms; 0.7 finds more clusters for three times the false alarms (evaluation.md).
    event_threshold: float = Field(0.8, ge=0, le=1)
    # "scored": the members' scores must add up to this before the chain alarms (0: off).
    event_sum_min: float = Field(0.0, ge=0, le=100)
    # "scored": members the firmware itself called spasm-like an alarm needs at least. The
    # event score may set a look-alike aside and count a spasm the detector missed, but
    # never makes an alarm out of events none of which passed the detector's own tests.
    # Round 5 needed 2 (with 0 or 1, adult SisFall recordings alarmed when left out of its
    # model's training); round 6's model, trained on more data, gives 0 real alarms with 1
    # or 0 when each source is left out, and 1 finds more clusters (evaluation.md, round 6).
    firmware_min: int = Field(1, ge=0, le=100)


@dataclass
class Alert:
    """Something worth telling a person. ``t`` is when the host could first know it."""

    t: float
    level: str
    kind: str
    message: str
    cluster_id: int | None = None
    event_seqs: tuple[int, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None  # its row in the alerts table, once stored
    # "engine": found in the sensor's data; "host": found by the alerting (delivery,
    # placement, clock, ...), recorded by the hub.
    source: str = "engine"

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"alert level must be one of {LEVELS}, not {self.level!r}")
        self.event_seqs = tuple(self.event_seqs)

    def to_json(self) -> dict[str, Any]:
        """The alert on the output bus's edges (``--json``, MQTT, the web page)."""
        d = {
            "type": "alert", "t": self.t, "level": self.level, "kind": self.kind,
            "message": self.message, "cluster_id": self.cluster_id,
            "event_seqs": list(self.event_seqs), "details": dict(self.details),
        }
        if self.source != "engine":
            d["source"] = self.source
        if self.id is not None:
            d["id"] = self.id
        return d


def fmt_time(t: float) -> str:
    """``HH:MM:SS``: local time for epoch seconds, elapsed time for a trace clock."""
    if t >= _EPOCH_FROM:
        return time.strftime("%H:%M:%S", time.localtime(t))
    t = max(t, 0.0)
    h, rem = divmod(int(t), 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"


def fmt_span(seconds: float) -> str:
    """A duration the way a person says it: ``17 s``, ``3.5 min``, ``1.2 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def fmt_range(values: list[float]) -> str:
    """``8`` when all values round alike, else ``5–12`` (whole seconds)."""
    lo, hi = f"{min(values):.0f}", f"{max(values):.0f}"
    return lo if lo == hi else f"{lo}–{hi}"


def fmt_times(times: list[float], limit: int) -> str:
    """Comma-separated clock times, the middle elided when there are more than ``limit``."""
    if len(times) <= limit:
        return ", ".join(fmt_time(t) for t in times)
    head = max(1, limit - 1)
    shown = [fmt_time(t) for t in times[:head]]
    return ", ".join(shown) + f", … ({len(times) - head} more) … {fmt_time(times[-1])}"
