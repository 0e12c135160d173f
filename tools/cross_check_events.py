"""Leave-one-suite-out check of the learned event scorer, end to end (alarms, not events).

For each tuning suite: the event model is trained on the other tuning suites plus the
real recordings (tools/train_event_model.py's recipe), exported to code in ``--work``,
and the left-out suite is scored through the whole host with ``event_class = "scored"``
at each threshold and evidence mode, beside the firmware's classes. This is how the
threshold and mode are chosen without a held-out suite.

    python tools/cross_check_events.py out/events6.tsv --cache out/cache \
        --suites out/r3_tune37 out/r4_tune53 out/classic7 out/r6_tune*
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_event_model as tem  # noqa: E402
from eval_suites import line, load_event_model, scored  # noqa: E402

from spasmwatch.host.evaluate import evaluate_folder  # noqa: E402
from spasmwatch.host.monitor import event_model  # noqa: E402
from spasmwatch.host.monitor.alerts import AlertConfig  # noqa: E402


def _model(a: argparse.Namespace, names: list[str], x, y, train, tag: str):  # type: ignore[no-untyped-def]
    model = tem.fit(x[train], y[train], a)
    path = a.work / f"event_model_without_{tag.replace(':', '_')}.py"
    tem.export(names, model, argparse.Namespace(**{**vars(a), "out": str(path)}),
               int(train.sum()), int(y[train].sum()))
    return load_event_model(path)


def real_check(a: argparse.Namespace, names: list[str], groups, x, y) -> None:  # type: ignore[no-untyped-def]
    from eval_real import with_still_warmup

    from spasmwatch.host.evaluate import trace_packets
    from spasmwatch.host.monitor.alerts import Alert
    from spasmwatch.host.monitor.engine import Engine
    from spasmwatch.simulator import real_data as rd

    root = rd.shared_data_root()
    recs = list(rd.wheel_recordings())
    if root is not None:
        for fn in (rd.sisfall_recordings, rd.emlearn_recordings, rd.hmp_recordings):
            recs += list(fn(root))
    packets = {id(r): trace_packets(with_still_warmup(r.trace)) for r in recs}
    configs = a.real or ["evidence=rules,event_threshold=0.5"]
    for source in sorted({r.source for r in recs}):
        mod = _model(a, names, x, y, groups != f"real:{source}", f"real:{source}")
        event_model.predict = mod.predict
        mine = [r for r in recs if r.source == source]
        for c in configs:
            alarms = warnings = 0
            for r in mine:
                eng = Engine(scored(c), t0=0.0)
                outs = [o for p in packets[id(r)] for o in eng.feed_packet(p)] + eng.finish()
                alarms += sum(isinstance(o, Alert) and o.level == "alarm" for o in outs)
                warnings += sum(isinstance(o, Alert) and o.level == "warning" for o in outs)
            print(f"{source} ({len(mine)} recordings) left out, {c}: {alarms} alarms, "
                  f"{warnings} warnings", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--suites", nargs="+", type=Path, default=[])
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=Path("out/loso_models"))
    ap.add_argument("--thresholds", nargs="+", type=float, default=[0.4, 0.5, 0.6])
    ap.add_argument("--modes", nargs="+", default=["rules", "learned"])
    ap.add_argument("--configs", nargs="*", default=[], metavar="K=V,K=V",
                    help="AlertConfig settings to try instead of the thresholds x modes "
                         "(event_class=scored is implied)")
    ap.add_argument("--real", nargs="*", default=None, metavar="K=V,K=V",
                    help="instead: leave each real source out of training in turn and "
                         "count the alarms and warnings its recordings raise with these "
                         "settings (event_class=scored implied)")
    tem.add_model_args(ap)
    a = ap.parse_args()
    names, groups, x, y = tem.load(a.data)
    a.work.mkdir(parents=True, exist_ok=True)
    original = event_model.predict
    if a.real is not None:
        real_check(a, names, groups, x, y)
        event_model.predict = original
        return
    for suite in a.suites:
        train = groups != suite.name
        mod = _model(a, names, x, y, train, suite.name)
        event_model.predict = mod.predict
        for c in a.configs:
            s, _ = evaluate_folder(suite, scored(c), cache_dir=a.cache)
            print(line(suite.name, c, s), flush=True)
        for mode in a.modes if not a.configs else []:
            event_model.predict = original
            s, _ = evaluate_folder(suite, AlertConfig(evidence=mode, event_class="firmware"),
                                   cache_dir=a.cache)
            print(line(suite.name, f"{mode}/fw", s), flush=True)
            event_model.predict = mod.predict
            for th in a.thresholds:
                cfg = AlertConfig(evidence=mode, event_class="scored", event_threshold=th)
                s, _ = evaluate_folder(suite, cfg, cache_dir=a.cache)
                print(line(suite.name, f"{mode}/{th}", s), flush=True)
        event_model.predict = original


if __name__ == "__main__":
    main()
