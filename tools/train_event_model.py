"""Train the learned event scorer and export it as plain Python (no runtime dependency).

Data recipe (docs/evaluation.md, round 6): the rows of tools/event_dataset.py from the
tuning suites only (never a held-out suite) plus every event of the real adult
recordings as negatives. Model (scikit-learn, a dev-only dependency: ``pip install
scikit-learn``), exported to ``host/monitor/event_model.py`` as nested ``if`` statements
over ``event_evidence.FEATURES``: by default (round 6) gradient-boosted trees, whose
``predict`` is the logistic of the trees' sum; ``--kind forest`` is round 5's random
forest of shallow trees (the mean leaf probability). Deterministic (fixed
``random_state``, no early stopping).

``--check`` trains once per tuning suite on the others (plus the real recordings) and
prints the left-out suite's event recall and false positives at several thresholds:
how the model choice is made without looking at a held-out suite.

    python tools/event_dataset.py out/r3_tune37 out/r4_tune53 out/classic7 out/r6_tune* \
        --real --cache out/cache --out out/events6.tsv
    python tools/train_event_model.py out/events6.tsv [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_cluster_model import forest_module, module_text  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "host" / "monitor" / "event_model.py"


def load(path: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    rows = [line.split("\t") for line in path.read_text().strip().splitlines()]
    names = rows[0][5:]
    groups = np.array([r[0] for r in rows[1:]])
    y = np.array([int(r[4]) for r in rows[1:]])
    x = np.array([[float(v) for v in r[5:]] for r in rows[1:]])
    return names, groups, x, y


def with_unknown_state(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every event whose arousal state is known, once more with the state unknown.

    The sensor reports the state "unknown" for its first minute after power-on. In the
    suites almost no event falls there, while nearly every real recording (shorter than
    that minute) does: a model would learn "unknown state = not a spasm", set aside
    every spasm in the first minute of a sensor and pass the real recordings for the
    wrong reason. The copies make the unknown state uninformative.
    """
    from spasmwatch.host.monitor.event_evidence import FEATURES

    k = FEATURES.index("state")
    known = x[:, k] != 0.0
    copies = x[known].copy()
    copies[:, k] = 0.0
    return np.concatenate([x, copies]), np.concatenate([y, y[known]])


def fit(x: np.ndarray, y: np.ndarray, a: argparse.Namespace):  # type: ignore[no-untyped-def]
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    if a.kind == "boosted":
        x, y = with_unknown_state(x, y)
        # No early stopping: its validation split would make the model depend on it.
        return HistGradientBoostingClassifier(
            max_iter=a.iters, max_leaf_nodes=a.leaves, learning_rate=a.rate,
            early_stopping=False, random_state=0,
        ).fit(x, y)
    return RandomForestClassifier(
        n_estimators=a.trees, max_depth=a.depth, min_samples_leaf=a.leaf,
        random_state=0, n_jobs=2,
    ).fit(x, y)


def check(names: list[str], groups: np.ndarray, x: np.ndarray, y: np.ndarray,
          a: argparse.Namespace) -> None:
    from sklearn.metrics import average_precision_score

    suites = [g for g in dict.fromkeys(groups) if not g.startswith("real")]
    for left in suites:
        train = groups != left
        p = fit(x[train], y[train], a).predict_proba(x[~train])[:, 1]
        yt = y[~train]
        fw = x[~train, names.index("cls")] == 1
        print(f"{left}: firmware spasm_like recall {(fw & (yt == 1)).sum() / yt.sum():.3f}, "
              f"false {int((fw & (yt == 0)).sum())}; score average precision "
              f"{average_precision_score(yt, p):.3f}")
        for th in (0.4, 0.5, 0.6, 0.7, 0.8):
            s = p >= th
            print(f"   score >= {th}: recall {(s & (yt == 1)).sum() / yt.sum():.3f}, "
                  f"false {int((s & (yt == 0)).sum())}")


def _boosted_tree(nodes, names: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """One tree of a HistGradientBoostingClassifier as nested ``if``s (x <= threshold goes
    left, as scikit-learn's predictor does; the features are never NaN here)."""
    lines: list[str] = []

    def walk(i: int, depth: int) -> None:
        pad = "    " * depth
        n = nodes[i]
        if n["is_leaf"]:
            lines.append(f"{pad}return {float(n['value'])!r}")
            return
        k = int(n["feature_idx"])
        lines.append(f"{pad}if f[{k}] <= {float(n['num_threshold'])!r}:  # {names[k]}")
        walk(int(n["left"]), depth + 1)
        lines.append(f"{pad}else:")
        walk(int(n["right"]), depth + 1)

    walk(0, 1)
    return lines


def boosted_module(model, names: list[str], doc: list[str]) -> str:  # type: ignore[no-untyped-def]
    """The text of a generated module for a boosted model: one function per tree and
    ``predict`` (the logistic of the baseline plus the trees' sum, as ``predict_proba``)."""
    # scikit-learn keeps the fitted trees in private attributes (checked with 1.9: the
    # exported predict matched predict_proba to 1e-15); a newer release may move them.
    trees = [_boosted_tree(preds[0].nodes, names) for preds in model._predictors]
    base = float(np.ravel(model._baseline_prediction)[0])
    return module_text(doc, names, trees, [
        "def predict(f: list[float]) -> float:",
        '    """Probability that the event is a spasm (0..1)."""',
        "    raw = _BASE + sum(t(f) for t in _TREES)",
        "    if raw < -700.0:  # math.exp overflows past ~709",
        "        return 0.0",
        "    return 1.0 / (1.0 + math.exp(-raw))"],
        imports=("import math",), constants=(f"_BASE = {base!r}",))


def export(names: list[str], model, a: argparse.Namespace, n: int, n_pos: int) -> None:  # type: ignore[no-untyped-def]
    if a.kind == "boosted":
        what = [f"Gradient-boosted trees (scikit-learn's HistGradientBoostingClassifier), "
                f"{a.iters} trees", f"of <= {a.leaves} leaves, learning rate {a.rate}; every "
                "event with a known arousal state", "also once with the state unknown "
                "(with_unknown_state);"]
    else:
        what = [f"Random forest, {a.trees} trees, depth <= {a.depth}, leaves >= {a.leaf} "
                "samples,"]
    doc = [
        '"""Learned event scorer, GENERATED by tools/train_event_model.py: do not edit.',
        "",
        *what,
        f"trained on {n} events ({n_pos} spasms) from {Path(a.data).name}",
        "(see docs/evaluation.md for the data recipe). Input: the feature vector of",
        "host/monitor/event_evidence.py (FEATURES, in that order).",
        '"""',
    ]
    if a.kind == "boosted":
        Path(a.out).write_text(boosted_module(model, names, doc))
        return
    Path(a.out).write_text(forest_module(
        model, names, doc, "Mean leaf probability that the event is a spasm (0..1)."))


def add_model_args(ap: argparse.ArgumentParser) -> None:
    """The model's settings (shared with tools/cross_check_events.py)."""
    ap.add_argument("--kind", choices=("forest", "boosted"), default="boosted",
                    help="boosted (round 6, shipped) or forest (round 5)")
    ap.add_argument("--trees", type=int, default=20, help="forest: trees")
    ap.add_argument("--depth", type=int, default=7, help="forest: depth")
    ap.add_argument("--leaf", type=int, default=10, help="forest: samples per leaf")
    ap.add_argument("--iters", type=int, default=200, help="boosted: trees")
    ap.add_argument("--leaves", type=int, default=15, help="boosted: leaves per tree")
    ap.add_argument("--rate", type=float, default=0.1, help="boosted: learning rate")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="TSV from tools/event_dataset.py")
    add_model_args(ap)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--check", action="store_true", help="leave-one-suite-out figures only")
    a = ap.parse_args()
    names, groups, x, y = load(a.data)
    from spasmwatch.host.monitor.event_evidence import FEATURES

    if tuple(names) != FEATURES:
        raise SystemExit("the data's features are not event_evidence.FEATURES: remake it")
    if a.check:
        check(names, groups, x, y, a)
        return
    model = fit(x, y, a)
    export(names, model, a, len(y), int(y.sum()))
    print(f"{len(y)} events, {int(y.sum())} spasms -> {a.out}")
    if hasattr(model, "feature_importances_"):
        imp = sorted(zip(model.feature_importances_, names, strict=True), reverse=True)
        print("importance: " + ", ".join(f"{n} {v:.2f}" for v, n in imp[:12]))


if __name__ == "__main__":
    main()
