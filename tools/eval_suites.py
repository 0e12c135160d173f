"""Score several generated suites in several host evidence modes: one line per suite x mode.

The figures of docs/evaluation.md ("Results, round 4" and "round 5") come from this
command. The
detector runs once per trace (its packets are cached in ``--cache``, keyed by the trace
and the firmware code, see ``host/evaluate.py``); every mode replays only the host.

    python tools/eval_suites.py out/r3_tune37 out/classic7 --modes rules learned \
        --cache out/cache [--json out/scores.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spasmwatch.host.evaluate import Summary, evaluate_folder
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suites", nargs="+", type=Path)
    ap.add_argument("--modes", nargs="+", default=["rules", "learned"], choices=list(MODES))
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="write every summary here")
    ap.add_argument("--verbose", action="store_true", help="list missed / false-alarm traces")
    args = ap.parse_args(argv)
    out: dict[str, dict[str, object]] = {}
    for suite in args.suites:
        for mode in args.modes:
            cfg = AlertConfig(**MODES[mode])  # type: ignore[arg-type]
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
