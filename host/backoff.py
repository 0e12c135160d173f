"""Capped exponential backoff with jitter, for anything that reconnects.

Used by the daemon's sensor link (``host/daemon.py``) and the MQTT channel
(``host/alerts/channels/mqtt_ha.py``): one rule for how long to wait before the next try.
"""

from __future__ import annotations

import random


class Backoff:
    """Capped exponential backoff with "equal jitter": uniform in [d/2, d], d doubling.

    Jitter keeps several hosts (or a host and a device resetting in step) from retrying
    in lock-step; the lower half-bound keeps a floor so a dead port is not hammered.
    """

    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None):
        self.initial_s = initial_s
        self.max_s = max_s
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        d = min(self.max_s, self.initial_s * (2.0 ** min(self.failures, 30)))
        self.failures += 1
        return d / 2.0 + self._rng.uniform(0.0, d / 2.0)

    def reset(self) -> None:
        self.failures = 0
