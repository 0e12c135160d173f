"""The host's layering holds: no import cycles, no layer importing one above it, at most
ten modules at the top of host/ (tools/check_imports.py, docs/architecture.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _checker():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("check_imports",
                                                  REPO / "tools" / "check_imports.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_no_cycles_and_no_layer_climbs_up() -> None:
    assert _checker().problems(REPO) == []


def test_the_checker_sees_a_cycle_and_a_climb(tmp_path: Path) -> None:
    # A tree of its own: monitor importing alerts (a climb) that imports monitor (a cycle).
    for folder in ("host/monitor", "host/alerts", "firmware", "simulator"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "host/monitor/engine.py").write_text(
        "from spasmwatch.host.alerts.hub import Hub\n")
    (tmp_path / "host/alerts/hub.py").write_text(
        "from spasmwatch.host.monitor.engine import Engine\n")
    found = _checker().problems(tmp_path)
    assert any(p.startswith("import cycle") for p in found)
    assert any("host/monitor may not import host/alerts" in p for p in found)
