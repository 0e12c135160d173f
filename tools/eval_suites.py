"""Score several generated suites in several host evidence modes: one line per suite x mode.

The figures of docs/evaluation.md ("Results, round 4" to "round 6") come from this
command. The detector runs once per trace (its packets are cached in ``--cache``, keyed
by the trace and the firmware code, see ``host/evaluate.py``); every mode replays only
the host. ``--set`` changes settings on top of every mode, ``--event-model`` scores with
another generated event model (an earlier round's, from git), so an earlier default can
be scored with today's code:

    python tools/eval_suites.py out/r3_tune37 out/classic7 --modes rules learned \
        --cache out/cache [--json out/scores.json]
    git show 9a4f3cd:host/monitor/event_model.py > out/event_model_round5.py
    python tools/eval_suites.py out/r6_final127 --modes rules+scored --cache out/cache \
        --event-model out/event_model_round5.py --set event_threshold=0.45,firmware_min=2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from types import ModuleType

from spasmwatch.host.evaluate import Summary, evaluate_folder
from spasmwatch.host.monitor import event_model
from spasmwatch.host.monitor.alerts import AlertConfig

#: "before" = round 2's host rule exactly (spasm-like count, jerk bursts as warnings).
MODES: dict[str, dict[str, object]] = {
    "rules": {"evidence": "rules", "event_class": "firmware"},
    "learned": {"evidence": "learned", "event_class": "firmware"},
    "count": {"evidence": "count", "event_class": "firmware"},
    "before": {"evidence": "count", "event_class": "firmware", "burst_level": "warning"},
    # Round 5: the host's event score decides which events count (event_evidence.py).
    "rules+scored": {"evidence": "rules", "event_class": "scored"},
    "learned+scored": {"evidence": "learned", "event_class": "scored"},
}


def line(name: str, mode: str, s: Summary) -> str:
    def f(x: float | None, fmt: str = ".3f") -> str:
        return "—" if x is None else format(x, fmt)

    return (
        f"{name:<16} {mode:<8} sens {s.detected}/{s.clusters} = {f(s.cluster_sensitivity)}"
        f"  FA {s.false_alarms} = {f(s.false_alarms_per_10h, '.2f')}/10h"
        f"  lat {f(s.median_latency_s, '.1f')} / onset {f(s.median_onset_latency_s, '.1f')} s"
        f"  recall {f(s.event_recall)} / host {f(s.host_event_recall)}"
        f"  benign warn {s.benign_warnings} = {f(s.benign_warnings_per_10h, '.2f')}/10h"
        f"  ({s.hours:.1f} h, benign {s.benign_hours:.1f} h)"
    )


def settings(text: str) -> dict[str, object]:
    """``K=V,K=V`` as AlertConfig keywords (numbers where they parse as numbers)."""
    out: dict[str, object] = {}
    for item in filter(None, text.split(",")):
        k, _, v = item.partition("=")
        value: object = v
        for kind in (int, float):
            try:
                value = kind(v)
                break
            except ValueError:
                pass
        out[k.strip()] = value
    return out


def scored(text: str) -> AlertConfig:
    """``K=V,K=V`` settings with the host's event score (``event_class=scored``) implied."""
    return AlertConfig(**{"event_class": "scored", **settings(text)})  # type: ignore[arg-type]


def load_event_model(path: Path) -> ModuleType:
    """A generated event model module from a file; refused unless over today's FEATURES."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not a Python module")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if tuple(mod.FEATURES) != tuple(event_model.FEATURES):
        raise SystemExit(f"{path}: its FEATURES are not today's event_evidence.FEATURES")
    return mod


def use_event_model(path: Path) -> None:
    """Score events with the generated model module at ``path`` (same FEATURES)."""
    event_model.predict = load_event_model(path).predict


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suites", nargs="+", type=Path)
    ap.add_argument("--modes", nargs="+", default=["rules", "learned"], choices=list(MODES))
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="write every summary here")
    ap.add_argument("--verbose", action="store_true", help="list missed / false-alarm traces")
    ap.add_argument("--set", default="", metavar="K=V,K=V",
                    help="AlertConfig settings on top of every mode")
    ap.add_argument("--event-model", type=Path, default=None,
                    help="a generated event model module to score with instead")
    args = ap.parse_args(argv)
    extra = settings(args.set)
    if args.event_model is not None:
        use_event_model(args.event_model)
    out: dict[str, dict[str, object]] = {}
    for suite in args.suites:
        for mode in args.modes:
            cfg = AlertConfig(**{**MODES[mode], **extra})  # type: ignore[arg-type]
            s, _ = evaluate_folder(suite, cfg, cache_dir=args.cache)
            print(line(suite.name, mode, s), flush=True)
            if args.verbose:
                print("   missed:", s.missed)
                print("   false alarms:", s.false_alarm_traces)
            out.setdefault(suite.name, {})[mode] = s.as_dict()
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
