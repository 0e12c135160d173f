"""Leave-one-suite-out check of the learned chain model against the rules (tuning suites).

For each tuning suite: train the model (tools/train_cluster_model.py recipe) on the chain
snapshots of the other suites, score the left-out suite with it, and with the rules. This
is how the default evidence mode was chosen before the held-out suite was scored
(docs/evaluation.md, "Results, round 4"). Snapshots first:

    python tools/cluster_dataset.py out/r3_tune37 --out out/chains_r3_tune37.tsv --cache out/cache
    (same for out/classic7, out/r4_tune53)
    python tools/cross_check_learned.py out/r3_tune37 out/classic7 out/r4_tune53 --cache out/cache
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

from spasmwatch.host.evaluate import Summary, evaluate_folder
from spasmwatch.host.monitor import cluster_model
from spasmwatch.host.monitor.alerts import AlertConfig

HERE = Path(__file__).resolve().parent


def _fmt(s: Summary) -> str:
    return (f"{s.detected}/{s.clusters}, FA {s.false_alarms} = {s.false_alarms_per_10h:.2f}/10h, "
            f"host recall {s.host_event_recall}, benign warnings {s.benign_warnings}, "
            f"onset {s.median_onset_latency_s} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suites", nargs="+", type=Path)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=Path("out"), help="snapshots and models")
    a = ap.parse_args()
    for held in a.suites:
        train = [s for s in a.suites if s != held]
        lines: list[str] = []
        for s in train:
            rows = (a.work / f"chains_{s.name}.tsv").read_text().strip().splitlines()
            lines += rows if not lines else rows[1:]
        data = a.work / f"chains_without_{held.name}.tsv"
        data.write_text("\n".join(lines) + "\n")
        model = a.work / f"cluster_model_without_{held.name}.py"
        subprocess.run([sys.executable, str(HERE / "train_cluster_model.py"), str(data),
                        "--out", str(model)], check=True, capture_output=True)
        spec = importlib.util.spec_from_file_location("left_out_model", model)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        own = cluster_model.predict
        cluster_model.predict = mod.predict  # type: ignore[assignment]
        try:
            s, _ = evaluate_folder(held, AlertConfig(evidence="learned", event_class="firmware"),
                                  cache_dir=a.cache)
        finally:
            cluster_model.predict = own  # type: ignore[assignment]
        print(f"{held.name}: learned (trained on {', '.join(t.name for t in train)}): "
              f"{_fmt(s)}", flush=True)
        s, _ = evaluate_folder(held, AlertConfig(evidence="rules", event_class="firmware"),
                              cache_dir=a.cache)
        print(f"{held.name}: rules: {_fmt(s)}", flush=True)


if __name__ == "__main__":
    main()
