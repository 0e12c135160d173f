"""The monitor's outputs in their JSON form (the bus's edge: ``--json``, MQTT, the page).

Tests that pin what a person or a program downstream sees read the outputs this way;
``tests/test_outputs.py`` checks the typed records themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from spasmwatch.host.monitor.outputs import Output


def js(outs: Iterable[Output]) -> list[dict[str, Any]]:
    """Each output's ``to_json()``, in order."""
    return [o.to_json() for o in outs]
