"""Nights from a real store: simulated nights replayed through detector, wire format and
engine into SQLite at wall-clock anchors, then grouped by ``host/nights.py``."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from records_data import NIGHT_PLAN, build_store, epoch, replay_into

from spasmwatch.host.monitor.outputs import Alert
from spasmwatch.host.monitor.records import Summary
from spasmwatch.host.monitor.store import Store
from spasmwatch.host.records.nights import (
    NightConfig,
    find_nights,
    fmt_clock,
    night_date,
    open_existing,
    select_nights,
)

UTC = dt.UTC


@pytest.fixture(scope="module")
def night_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[dict]]]:
    path = tmp_path_factory.mktemp("nights") / "monitor.db"
    outs = build_store(path)
    return path, outs


def test_nights_are_grouped_by_evening_with_gaps_inside(night_db) -> None:
    path, _ = night_db
    with Store(path) as store:
        nights = find_nights(store, tz=UTC)
    assert [n.key for n in nights] == ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-05"]
    second = nights[1]
    # two pieces 20 minutes apart are one night with a recorded data gap between them
    assert second.start == epoch("2026-03-02T20:00:00")
    assert second.end == pytest.approx(epoch("2026-03-02T21:40:00"), abs=61)
    assert len(second.gaps) == 1
    a, b = second.gaps[0].start, second.gaps[0].end
    assert second.gaps[0].reason == "no_summaries"
    assert a == pytest.approx(epoch("2026-03-02T20:20:00"), abs=61)
    assert b == pytest.approx(epoch("2026-03-02T20:40:00"), abs=61)
    assert second.stats()["data_gap_s"] == pytest.approx(b - a)
    assert nights[0].gaps == []


def test_sleep_onset_and_wake_come_from_the_arousal_state(night_db) -> None:
    path, _ = night_db
    with Store(path) as store:
        nights = find_nights(store, tz=UTC)
    for n in nights:
        asleep = [s for s in n.summaries if s.state == "asleep"]
        assert asleep, n.key
        assert n.sleep_onset == min(s.start for s in asleep)
        assert n.wake == max(s.t for s in asleep)
        assert n.start <= n.sleep_onset < n.wake <= n.end
        assert n.origin == n.sleep_onset
        st = n.stats()
        assert st["asleep_s"] == sum(s.period_s for s in asleep)
        assert st["monitored_s"] == sum(s.period_s for s in n.summaries)


def test_every_record_belongs_to_exactly_one_night(night_db) -> None:
    path, outs = night_db
    with Store(path) as store:
        nights = find_nights(store, tz=UTC)
        n_events, n_clusters = store.count("events"), store.count("clusters")
        n_alerts, n_summaries = store.count("alerts"), store.count("summaries")
    assert sum(len(n.events) for n in nights) == n_events
    assert sum(len(n.clusters) for n in nights) == n_clusters
    assert sum(len(n.alerts) for n in nights) == n_alerts
    assert sum(len(n.summaries) for n in nights) == n_summaries
    ids = [se.id for n in nights for se in n.events]
    assert len(set(ids)) == len(ids)
    for n in nights:
        for se in n.events:
            assert n.start <= se.event.t <= n.end
    # alarms per night are what the engine raised while replaying that night's pieces
    starts = [n.start for n in nights] + [float("inf")]
    raised: Counter[int] = Counter()
    for local, _, _ in NIGHT_PLAN:
        t0 = epoch(local)
        k = max(i for i, s in enumerate(starts) if s <= t0)
        raised[k] += sum(1 for o in outs[local] if isinstance(o, Alert)
                         and o.level == "alarm")
    assert [n.stats()["alarms"] for n in nights] == [raised[i] for i in range(len(nights))]
    assert raised[0] >= 1  # the spasm night did raise alarms: the test is not vacuous


def test_events_are_tagged_with_their_cluster(night_db) -> None:
    path, _ = night_db
    with Store(path) as store:
        nights = find_nights(store, tz=UTC)
    checked = 0
    for n in nights:
        tagged = Counter(se.cluster_id for se in n.events if se.cluster_id is not None)
        for c in n.clusters:
            assert tagged[c.id] == c.n_events, (n.key, c.id)
            spasm = sum(1 for se in n.events
                        if se.cluster_id == c.id and se.event.cls == "spasm_like")
            assert spasm == c.n_spasm_like
            checked += 1
    assert checked >= 10


def test_night_dates_follow_the_evening_and_the_time_zone(tmp_path: Path) -> None:
    plan = (
        ("2026-03-09T20:00:00", "quiet", 1),
        ("2026-03-10T01:30:00", "quiet", 2),  # after midnight, > 2 h later: same date, #2
        ("2026-03-10T11:30:00", "quiet", 3),  # 11:30 UTC is 12:30 in Berlin
    )
    build_store(tmp_path / "m.db", plan)
    with Store(tmp_path / "m.db") as store:
        utc = [n.key for n in find_nights(store, tz=UTC)]
        berlin = [n.key for n in find_nights(store, tz=ZoneInfo("Europe/Berlin"))]
    assert utc == ["2026-03-09", "2026-03-09#2", "2026-03-09#3"]
    assert berlin == ["2026-03-09", "2026-03-09#2", "2026-03-10"]
    assert night_date(epoch("2026-03-10T11:59:00"), UTC) == "2026-03-09"
    assert night_date(epoch("2026-03-10T12:00:00"), UTC) == "2026-03-10"
    assert fmt_clock(epoch("2026-03-10T01:30:05"), UTC) == "01:30:05"


def test_a_long_awake_stretch_ends_the_night(tmp_path: Path) -> None:
    t0 = epoch("2026-04-01T19:00:00")
    with Store(tmp_path / "a.db") as store:
        seq = 0
        # 3 h asleep, 2.5 h awake (baby up, sensor still on), 2 h asleep
        for hours, state in ((3, "asleep"), (2.5, "awake"), (2, "asleep")):
            for _ in range(int(hours * 60)):
                t0 += 60.0
                store.add_summary("dev", Summary(seq, t0, 60, 0, 0, 0, 0, 0, state))
                seq += 1
        nights = find_nights(store, tz=UTC)
        # a shorter threshold than the awake run splits, a longer one does not
        assert len(find_nights(store, NightConfig(awake_split_s=4 * 3600), tz=UTC)) == 1
    assert [n.key for n in nights] == ["2026-04-01", "2026-04-01#2"]
    first, second = nights
    assert first.end == pytest.approx(epoch("2026-04-01T22:00:00"))
    assert first.wake == pytest.approx(epoch("2026-04-01T22:00:00"))
    # the awake run opens the next night (nothing is left out); sleep onset after it
    assert second.start == pytest.approx(epoch("2026-04-01T22:00:00"))
    assert second.sleep_onset == pytest.approx(epoch("2026-04-02T00:30:00"))
    assert second.seconds_in_state() == {"awake": 9000, "asleep": 7200}
    assert first.seconds_in_state() == {"asleep": 3 * 3600}


def test_selection_by_night_and_date_range(night_db) -> None:
    path, _ = night_db
    with Store(path) as store:
        nights = find_nights(store, tz=UTC)
    assert [n.key for n in select_nights(nights, night="2026-03-02")] == ["2026-03-02"]
    assert [n.key for n in select_nights(nights, date_from="2026-03-02",
                                         date_to="2026-03-03")] == ["2026-03-02", "2026-03-03"]
    assert select_nights(nights, night="2026-02-01") == []


def test_a_replay_on_the_trace_clock_has_no_dates(tmp_path: Path) -> None:
    with Store(tmp_path / "t.db") as store:
        replay_into(store, "small-cluster", 1, 0.0)
        nights = find_nights(store)
    assert [n.key for n in nights] == ["trace"]
    assert fmt_clock(75.0) == "+0:01:15"


def test_opening_something_that_is_not_a_store_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not a database at all, just some text " * 20)
    with pytest.raises(ValueError, match="not a spasmwatch database"):
        open_existing(str(bad))
    with pytest.raises(FileNotFoundError):
        open_existing(str(tmp_path / "missing.db"))
