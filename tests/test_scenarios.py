"""Scenario generator: determinism, labels, clinical statistics, posture, sensor effects, I/O."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from spasmwatch.simulator import movements as mv
from spasmwatch.simulator import traceio
from spasmwatch.simulator.body_model import specific_force
from spasmwatch.simulator.planner import Planner
from spasmwatch.simulator.scenarios import (
    SCENARIOS,
    generate,
    generate_suite,
    simulate_to_dir,
)
from spasmwatch.simulator.traceio import Label


def _of(labels: list[Label], name: str) -> list[Label]:
    return [lb for lb in labels if lb.label == name]


def _inside(lb: Label, outer: list[Label]) -> bool:
    return any(o.start <= lb.start and lb.end <= o.end for o in outer)


def test_required_scenarios_exist() -> None:
    for name in (
        "quiet",
        "hypnic-jerks",
        "benign-myoclonus",
        "active-sleep",
        "rolling",
        "handling",
        "rocking",
        "spasm-cluster",
        "mixed-night",
        "benign-night",
        "spasm-night",
    ):
        assert name in SCENARIOS


def test_deterministic_per_seed() -> None:
    a, la = generate("mixed-night", 3, duration_s=600)
    b, lb = generate("mixed-night", 3, duration_s=600)
    c, lc = generate("mixed-night", 4, duration_s=600)
    assert np.array_equal(a.acc, b.acc) and np.array_equal(a.t, b.t)
    assert la == lb and a.meta == b.meta
    assert not np.array_equal(a.acc, c.acc)
    assert la != lc


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_labels_valid_and_inside_trace(name: str) -> None:
    trace, labels = generate(name, 1, rate_hz=50.0)
    assert trace.t[0] == 0.0
    dt = np.diff(trace.t)
    assert np.allclose(dt, 1 / 50.0)
    assert abs(trace.duration - SCENARIOS[name].duration_s) <= 1 / 50.0
    for lb in labels:
        assert 0.0 <= lb.start < lb.end <= SCENARIOS[name].duration_s + 1e-9
    # Events of one kind never overlap; body-moving events exclude each other.
    for kind in ("spasm", "cluster", "jerk", "burst", "twitch", "wake"):
        ev = sorted(_of(labels, kind), key=lambda x: x.start)
        assert all(p.end <= q.start for p, q in zip(ev, ev[1:], strict=False)), kind
    assert all(1.0 <= r.end - r.start <= 4.0 for r in _of(labels, "roll"))
    assert all(5.0 <= h.end - h.start <= 60.0 for h in _of(labels, "handling"))
    posture = sorted(_of(labels, "roll") + _of(labels, "handling"), key=lambda x: x.start)
    assert all(p.end <= q.start for p, q in zip(posture, posture[1:], strict=False))
    # Spasms sit in clusters; benign myoclonus only in sleep (never inside a wake period).
    assert all(_inside(s, _of(labels, "cluster")) for s in _of(labels, "spasm"))
    assert not any(_inside(b, _of(labels, "wake")) for b in _of(labels, "burst"))
    assert (len(_of(labels, "spasm")) > 0) == SCENARIOS[name].has_spasms
    assert trace.meta["scenario"] == name and trace.meta["seed"] == "1"
    for key in ("rate_hz", "range_g", "posture", "generator_version"):
        assert key in trace.meta


def test_spasm_cluster_on_waking() -> None:
    for seed in range(4):
        _, labels = generate("spasm-cluster", seed)
        spasms = _of(labels, "spasm")
        assert 8 <= len(spasms) <= 30
        assert all(_inside(s, _of(labels, "wake")) for s in spasms)


def test_cluster_statistics_match_clinical_ranges() -> None:
    rng = np.random.default_rng(0)
    plans = [mv.plan_cluster(rng) for _ in range(300)]
    sizes = np.array([len(p.spasms) for p in plans])
    assert sizes.min() >= 5 and sizes.max() <= 120
    assert 0.85 <= np.mean((sizes >= 5) & (sizes <= 50)) <= 0.99
    durs = np.concatenate([[s.dur_s for s in p.spasms] for p in plans])
    assert durs.min() >= 0.4 and durs.max() <= 7.0
    assert 0.82 <= np.mean(durs <= 3.0) <= 0.90  # 86 % within 0.4-3 s
    gaps = np.concatenate([np.diff(p.onsets) for p in plans])
    assert gaps.min() >= 2.0 and gaps.max() <= 30.0
    assert 4.5 <= np.median(gaps) <= 8.5  # "one every ~5-10 s"
    kinds = [s.kind for p in plans for s in p.spasms]
    frac = {k: kinds.count(k) / len(kinds) for k in ("flexor", "extensor", "mixed")}
    assert abs(frac["flexor"] - 0.34) < 0.03 and abs(frac["extensor"] - 0.23) < 0.03
    # Crescendo-decrescendo: the middle of a cluster is stronger than its start and end.
    big = [p for p in plans if len(p.spasms) >= 12]
    thirds = np.array(
        [
            [
                np.mean([s.peak_g for s in part])
                for part in np.array_split(np.array(p.spasms, dtype=object), 3)
            ]
            for p in big
        ]
    )
    assert np.mean(thirds[:, 1] > thirds[:, 0]) > 0.8
    assert np.mean(thirds[:, 1] > thirds[:, 2]) > 0.8


def test_spasm_amplitude_is_sweepable() -> None:
    def mean_peak_dev(spasm_g: float) -> float:
        trace, labels = generate("spasm-cluster", 2, spasm_g=spasm_g, noise_scale=0.5)
        devs = []
        for s in _of(labels, "spasm"):
            base = trace.acc[(trace.t >= s.start - 1.0) & (trace.t < s.start - 0.2)].mean(0)
            w = (trace.t >= s.start) & (trace.t < s.end)
            devs.append(np.abs(trace.acc[w] - base).max())
        return float(np.mean(devs))

    weak, strong = mean_peak_dev(0.5), mean_peak_dev(1.5)
    assert strong > 1.8 * weak
    assert weak > 0.05  # even weak spasms stand well above the ~3 mg noise


def test_myoclonus_runs_are_1_to_5_hz() -> None:
    rng = np.random.default_rng(5)
    for _ in range(50):
        plan = mv.plan_myoclonus_run(rng, 10.0)
        rate = 1.0 / np.mean(np.diff(plan.onsets))
        assert 0.8 <= rate <= 5.5
        assert plan.peaks.max() <= 0.4 * 1.3 + 1e-9


@pytest.mark.parametrize(
    ("posture", "axis", "sign"),
    [("supine", 2, 1), ("prone", 2, -1), ("left", 1, 1), ("right", 1, -1)],
)
def test_rest_orientation_matches_posture(posture: str, axis: int, sign: int) -> None:
    trace, _ = generate("quiet", 0, posture=posture, duration_s=60)
    mean = trace.acc.mean(axis=0)
    assert abs(np.linalg.norm(mean) - 1.0) < 0.1
    assert sign * mean[axis] > 0.9
    assert np.all(np.abs(np.delete(mean, axis)) < 0.1)


def test_specific_force_frame_conventions() -> None:
    z = np.zeros(1)
    r30 = np.radians([30.0])
    # Supine flexion (head and chest curl up) tilts +X up; extension tilts it down.
    assert np.allclose(specific_force(z, r30, z)[0], [0.5, 0.0, np.sqrt(3) / 2])
    assert np.allclose(specific_force(z, -r30, z)[0], [-0.5, 0.0, np.sqrt(3) / 2])
    # Prone flexion moves the reading the other way on X, as the chest faces down.
    assert np.allclose(specific_force(np.array([np.pi]), r30, z)[0], [-0.5, 0.0, -np.sqrt(3) / 2])
    # Right side down (roll -90 deg): "up" is the baby's left, i.e. -Y.
    assert np.allclose(specific_force(np.array([-np.pi / 2]), z, z)[0], [0.0, -1.0, 0.0])
    # Left side down (roll +90 deg): "up" is the baby's right, +Y.
    assert np.allclose(specific_force(np.array([np.pi / 2]), z, z)[0], [0.0, 1.0, 0.0])
    assert np.allclose(
        specific_force(z, z, z, incline=np.radians(20.0))[0],
        [np.sin(np.radians(20.0)), 0.0, np.cos(np.radians(20.0))],
    )


def test_flexor_spasm_pitches_supine_sensor_toward_x() -> None:
    rng = np.random.default_rng(0)
    tau = np.arange(0, 2.0, 0.01)
    for kind, sign in (("flexor", 1), ("extensor", -1)):
        p = mv.SpasmParams(kind, dur_s=1.5, rise_s=0.2, angle_deg=sign * 30.0, peak_g=0.5)
        m = mv.spasm(tau, rng, p)
        acc = specific_force(m.roll, m.flex, m.yaw) + m.lin
        assert sign * acc[20:40, 0].mean() > 0.3  # held posture right after the phasic part
        assert abs(acc[-1, 0]) < 0.05  # relaxed back by the end
        assert 0.35 < np.abs(m.lin[:40]).max() < 0.8


def test_myoclonus_stops_at_end_of_sleep() -> None:
    p = Planner(120.0, 50.0, np.random.default_rng(0), roll0=0.0, incline=0.0)
    p.state("quiet-sleep", 30.0)
    p.state("wake", 90.0)
    p.myoclonus(5.0, 100.0)
    _, labels = p.finish()
    bursts = _of(labels, "burst")
    assert bursts and all(b.end <= 30.0 for b in bursts)
    with pytest.raises(ValueError):
        p.myoclonus(40.0, 10.0)


def test_inclined_posture_shifts_gravity_into_x() -> None:
    trace, _ = generate("quiet", 0, posture="inclined", duration_s=60)
    incline = float(trace.meta["incline_deg"])
    assert 10.0 <= incline <= 30.0
    mean = trace.acc.mean(axis=0)
    assert abs(mean[0] - np.sin(np.radians(incline))) < 0.07
    assert abs(np.linalg.norm(mean) - 1.0) < 0.1


def test_roll_changes_posture_permanently() -> None:
    trace, labels = generate("rolling", 0)
    assert len(_of(labels, "roll")) == 3
    for r in _of(labels, "roll"):
        before = trace.acc[(trace.t > r.start - 4) & (trace.t < r.start - 1)].mean(0)
        after = trace.acc[(trace.t > r.end + 2) & (trace.t < r.end + 5)].mean(0)
        angle = np.degrees(
            np.arccos(
                np.clip(
                    np.dot(before, after) / np.linalg.norm(before) / np.linalg.norm(after), -1, 1
                )
            )
        )
        assert angle > 45.0


def test_quantisation_and_clipping_on_violent_handling() -> None:
    trace, labels = generate("handling", 0, range_g=2)
    counts = trace.acc * 16384
    assert np.allclose(counts, np.round(counts), atol=1e-9)
    assert counts.max() <= 32767 and counts.min() >= -32768
    clipped = (counts >= 32767) | (counts <= -32768)
    assert clipped.any()
    # Saturation happens only during handling.
    rows = np.nonzero(clipped.any(axis=1))[0]
    assert all(
        _inside(Label(trace.t[i], trace.t[i] + 1e-6, "x"), _of(labels, "handling")) for i in rows
    )


@pytest.mark.parametrize("rate", [25.0, 50.0, 100.0, 200.0, 400.0])
def test_rates_supported_and_layout_rate_independent(rate: float) -> None:
    trace, labels = generate("mixed-night", 7, rate_hz=rate, duration_s=300)
    assert len(trace.t) == int(round(300 * rate))
    assert np.allclose(np.diff(trace.t), 1.0 / rate)
    assert trace.meta["rate_hz"] == f"{rate:g}"
    _, ref = generate("mixed-night", 7, rate_hz=100.0, duration_s=300)
    assert labels == ref
    assert np.isfinite(trace.acc).all()


def test_benign_night_has_no_spasms_but_has_confounders() -> None:
    for seed in range(3):
        _, labels = generate("benign-night", seed)
        kinds = {lb.label for lb in labels}
        assert "spasm" not in kinds and "cluster" not in kinds
        assert {"burst", "roll", "handling", "rocking"} <= kinds


def test_spasm_night_has_two_clusters() -> None:
    trace, labels = generate("spasm-night", 0)
    assert len(_of(labels, "cluster")) == 2
    assert trace.meta["n_clusters"] == "2"
    assert int(trace.meta["n_spasms"]) == len(_of(labels, "spasm"))


def test_dropouts_leave_gaps() -> None:
    trace, _ = generate("quiet", 0, duration_s=120, dropout_fraction=0.01)
    assert trace.t[0] == 0.0
    assert 0.005 * 12000 < 12000 - len(trace.t) < 0.03 * 12000
    assert np.diff(trace.t).max() > 1.5 / 100.0
    assert int(trace.meta["dropped_samples"]) == 12000 - len(trace.t)


def test_one_hour_generates_quickly() -> None:
    t0 = time.perf_counter()
    generate("spasm-night", 0, rate_hz=100.0)
    assert time.perf_counter() - t0 < 3.0


@pytest.mark.parametrize("gz", [False, True])
def test_simulate_to_dir_round_trip(tmp_path: Path, gz: bool) -> None:
    path = simulate_to_dir("spasm-cluster", tmp_path, seed=2, gz=gz, rate_hz=50.0, duration_s=240)
    assert path.name == ("spasm-cluster.csv.gz" if gz else "spasm-cluster.csv")
    back = traceio.read_trace(path)
    trace, labels = generate("spasm-cluster", 2, rate_hz=50.0, duration_s=240)
    assert np.allclose(back.t, trace.t, atol=1e-6)
    assert np.allclose(back.acc, trace.acc, atol=1e-5)
    assert back.meta.get("scenario") == "spasm-cluster"
    assert traceio.read_labels(tmp_path / "spasm-cluster.labels.csv") == labels


def test_generate_suite(tmp_path: Path) -> None:
    paths = generate_suite(tmp_path, n_spasm=3, n_benign=2, hours=0.4, seed=1)
    assert len(paths) == 5 and all(p.is_file() for p in paths)
    manifest = (tmp_path / "suite_manifest.tsv").read_text().splitlines()
    assert len(manifest) == 6
    for p in paths:
        labels = traceio.load_labels_for(p)
        assert labels is not None
        n_sp = len(_of(labels, "spasm"))
        assert (n_sp >= 3) if "_pos_" in p.name else (n_sp == 0)
    rates = {traceio.read_trace(p).meta["rate_hz"] for p in paths}
    assert len(rates) == 5


# ---- round 3: mimics, hard positives, fitting ---------------------------------------------


def test_classic_scenarios_unchanged_by_round3() -> None:
    # The round-1/2 suites must stay reproducible: the new scenarios, variants and fitting
    # options draw from their own streams. Fingerprint taken before round 3's changes.
    import hashlib

    tr, lb = generate("spasm-night", 5, rate_hz=50.0, duration_s=600)
    assert hashlib.sha256(tr.acc.tobytes()).hexdigest()[:16] == "b8496fb7305beef6"
    assert len(lb) == 42


def test_hiccups_are_periodic_brief_and_alike() -> None:
    p = Planner(300.0, 100.0, np.random.default_rng(2), roll0=0.0, incline=0.0)
    p.state("quiet-sleep", 300.0)
    p.hiccups(20.0, 120.0)
    acc, labels = p.finish()
    [bout] = _of(labels, "hiccups")
    assert bout.start == 20.0 and bout.end <= 140.0
    hp = np.abs(acc - np.median(acc, axis=0))[:, 2]
    peaks = np.flatnonzero((hp > 0.5 * hp.max()) & (hp >= np.roll(hp, 1)) & (hp >= np.roll(hp, -1)))
    onsets = peaks[np.insert(np.diff(peaks) > 50, 0, True)] / 100.0
    gaps = np.diff(onsets)
    assert len(onsets) >= 20 and 0.9 <= np.median(gaps) <= 5.5
    assert np.median(np.abs(gaps - np.median(gaps))) / np.median(gaps) < 0.1  # periodic


def test_round3_positive_variants() -> None:
    rng = np.random.default_rng(3)
    short = mv.plan_cluster_variant(rng, "short")
    gaps = np.diff(short.onsets)
    durs = np.array([s.dur_s for s in short.spasms[:-1]])
    assert np.all((gaps <= 5.0 + 1e-9) | np.isclose(gaps, durs + 0.5))
    long = mv.plan_cluster_variant(rng, "long")
    assert 20 <= len(long.spasms) <= 40
    pk = np.array([s.peak_g for s in long.spasms])
    third = len(pk) // 3
    assert pk[:third].mean() > 1.3 * pk[-third:].mean()  # decreasing amplitude
    assert np.corrcoef(np.arange(len(pk)), pk)[0, 1] < -0.4
    weak = mv.plan_cluster_variant(rng, "weak", n=30)
    normal = mv.plan_cluster(np.random.default_rng(3), n=30)
    assert np.mean([s.peak_g for s in weak.spasms]) < 0.6 * np.mean(
        [s.peak_g for s in normal.spasms])
    asym = mv.plan_cluster_variant(rng, "asymmetric", n=10)
    rolls = np.array([s.roll_deg for s in asym.spasms])
    assert np.all(np.abs(rolls) >= 1.5) and len(set(np.sign(rolls))) == 1  # one side


@pytest.mark.parametrize("name,label", [
    ("spasm-cry", "spasm"), ("crying-cluster", "crying"), ("shuddering", "shudder"),
    ("startles", "startle"), ("benign-myoclonus-infancy", "bmei"), ("sandifer", "sandifer"),
    ("feeding", "feeding"),
])
def test_round3_scenarios_carry_their_labels(name: str, label: str) -> None:
    _, labels = generate(name, 4, rate_hz=50.0)
    assert _of(labels, label)
    if name == "crying-cluster":  # the crying starts before the first spasm
        first = min(s.start for s in _of(labels, "spasm"))
        assert min(c.start for c in _of(labels, "crying")) < first
    if name == "shuddering":
        assert all(2.0 <= s.end - s.start <= 15.0 for s in _of(labels, "shudder"))


def test_spasm_cry_moves_right_after_every_spasm() -> None:
    tr, labels = generate("spasm-cry", 6, rate_hz=100.0, noise_scale=0.5)
    hp = np.abs(np.diff(tr.acc, axis=0)).sum(axis=1)
    spasms = _of(labels, "spasm")
    busy = 0
    for s in spasms:
        i = int((s.end + 0.3) * 100)
        busy += hp[i : i + 100].max() > 0.02
    assert busy >= 0.8 * len(spasms)


def test_loose_and_sliding_fit() -> None:
    from spasmwatch.simulator.sensor_model import loose_fit, slide

    rate = 100.0
    n = 3000
    acc = np.tile([0.0, 0.0, 1.0], (n, 1))
    acc[1000, 2] += 1.0  # an impulse
    loose = loose_fit(acc, rate, 8.0, 0.15)
    assert np.allclose(loose[:900], acc[:900]) and np.allclose(loose[-200:], acc[-200:], atol=1e-3)
    ring = loose[1000:1100, 2] - 1.0
    assert (np.diff(np.sign(ring)) != 0).sum() >= 6  # it rings at ~8 Hz after the impulse
    turned = slide(acc, rate, angle_deg=30.0, axis=np.array([0.0, 1.0, 0.0]), start_s=5.0,
                   dur_s=10.0)
    assert np.allclose(np.linalg.norm(turned, axis=1)[:900], 1.0)
    assert np.degrees(np.arccos(turned[-1, 2])) == pytest.approx(30.0, abs=0.01)
    assert np.allclose(turned[:400], acc[:400])


def test_round3_suite_mix(tmp_path: Path) -> None:
    paths = generate_suite(tmp_path, n_spasm=2, n_benign=3, seed=9, hours=0.5, mix="round3")
    rows = (tmp_path / "suite_manifest.tsv").read_text().splitlines()
    assert rows[0].endswith("loose_hz\tloose_zeta\tslide_deg") and len(rows) == 6
    assert len(paths) == 5
    with pytest.raises(ValueError):
        generate_suite(tmp_path, mix="other")
