"""``spasmwatch annotate`` / ``marker`` / ``export`` on a real store, through the CLI."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from records_data import build_store

from spasmwatch.firmware import wire
from spasmwatch.host.cli.main import main
from spasmwatch.host.monitor.store import Store
from spasmwatch.host.records.export import COLUMNS
from spasmwatch.host.records.nights import find_nights

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def base_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "base.db"
    build_store(path)
    return path


@pytest.fixture
def db(base_db: Path, tmp_path: Path) -> str:
    """A private copy of the store (annotation tests write to it)."""
    dst = tmp_path / "monitor.db"
    with Store(base_db) as s:  # checkpoint the WAL so one file is the whole database
        s.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(base_db, dst)
    return str(dst)


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        r = csv.DictReader(f)
        return list(r.fieldnames or []), list(r)


def test_csv_export_has_the_documented_columns_and_every_record(db: str, tmp_path: Path) -> None:
    code, text = run("export", "--db", db, "--format", "csv", "-o", str(tmp_path / "x"),
                     "--tz", "UTC")
    assert code == 0 and f"{len(COLUMNS)} CSV files" in text
    tables = {}
    for name, cols in COLUMNS.items():
        head, rows = read_csv(tmp_path / "x" / f"{name}.csv")
        assert head == list(cols), name
        tables[name] = rows
    with Store(db) as s:
        assert len(tables["events"]) == s.count("events")
        assert len(tables["clusters"]) == s.count("clusters")
        assert len(tables["alerts"]) == s.count("alerts")
        assert len(tables["activity"]) == s.count("summaries")
        stored_ids = {r[0] for r in s.connection.execute("SELECT id FROM events")}
    assert {int(r["event_id"]) for r in tables["events"]} == stored_ids
    assert [r["night"] for r in tables["nights"]] == [
        "2026-03-01", "2026-03-02", "2026-03-03", "2026-03-05"]
    for r in tables["events"]:
        assert r["class"] in wire.CLASS_NAMES
        onset = dt.datetime.fromisoformat(r["onset"])
        assert onset.timestamp() == pytest.approx(float(r["onset_t"]), abs=1e-3)
        assert onset.utcoffset() == dt.timedelta(0)
    spasm = [r for r in tables["clusters"] if int(r["n_spasm_like"]) >= 3]
    assert spasm and all(r["highest_alert"] == "alarm" for r in spasm)
    for r in spasm:
        gaps = [float(g) for g in r["spasm_intervals_s"].split()]
        assert len(gaps) == int(r["n_spasm_like"]) - 1
        assert float(r["spasm_interval_min_s"]) == pytest.approx(min(gaps), abs=0.05)


def test_json_export_of_one_night(db: str, tmp_path: Path) -> None:
    code, text = run("export", "--db", db, "--format", "json", "--night", "2026-03-05")
    assert code == 0
    doc = json.loads(text)
    assert doc["format"] == "spasmwatch-export" and "not a medical device" in doc["disclaimer"]
    assert [n["night"] for n in doc["nights"]] == ["2026-03-05"]
    assert doc["events"] and {e["night"] for e in doc["events"]} == {"2026-03-05"}
    for name, cols in COLUMNS.items():
        assert all(list(row) == list(cols) for row in doc[name]), name
    out = tmp_path / "one.json"
    assert run("export", "--db", db, "--format", "json", "-o", str(out))[0] == 0
    assert len(json.loads(out.read_text())["nights"]) == 4


def test_annotations_reach_the_export_and_the_latest_label_wins(db: str, tmp_path: Path) -> None:
    with Store(db) as s:
        night = find_nights(s, tz=dt.UTC)[0]
    cluster = next(c for c in night.clusters if c.n_spasm_like >= 3)
    event = next(se for se in night.events if se.event.cls == "jerk")
    assert run("annotate", "--db", db, "cluster", str(cluster.id), "unsure")[0] == 0
    code, text = run("annotate", "--db", db, "cluster", str(cluster.id), "real",
                     "--note", "stiffened, arms up, 8 times", "--video", "VID_0042.mp4 00:01:12")
    assert code == 0 and "real_episode" in text
    assert run("annotate", "--db", db, "event", str(event.id), "false-alarm",
               "--note", "I moved the sack")[0] == 0
    assert run("export", "--db", db, "-o", str(tmp_path / "e"), "--tz", "UTC")[0] == 0
    _, clusters = read_csv(tmp_path / "e" / "clusters.csv")
    row = next(r for r in clusters if int(r["cluster_id"]) == cluster.id)
    assert (row["label"], row["note"], row["video"]) == (
        "real_episode", "stiffened, arms up, 8 times", "VID_0042.mp4 00:01:12")
    _, events = read_csv(tmp_path / "e" / "events.csv")
    erow = next(r for r in events if int(r["event_id"]) == event.id)
    assert erow["label"] == "false_alarm"
    _, nights = read_csv(tmp_path / "e" / "nights.csv")
    assert (nights[0]["marked_real"], nights[0]["marked_false_alarm"],
            nights[0]["marked_unsure"]) == ("1", "1", "1")
    _, ann = read_csv(tmp_path / "e" / "annotations.csv")
    assert [a["label"] for a in ann] == ["unsure", "real_episode", "false_alarm"]
    code, listing = run("annotate", "--db", db, "list")
    assert code == 0 and listing.count("\n") == 3


def test_markers_add_list_remove(db: str) -> None:
    code, text = run("marker", "--db", db, "add", "2026-03-02", "started", "treatment", "X")
    assert code == 0 and "2026-03-02 started treatment X" in text
    mid = re.match(r"marker (\d+):", text).group(1)
    assert "started treatment X" in run("marker", "--db", db, "list")[1]
    assert run("marker", "--db", db, "remove", mid)[0] == 0
    assert run("marker", "--db", db, "list")[1] == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["annotate", "cluster", "999", "real"], "no cluster with id 999"),
        (["annotate", "event", "1", "maybe"], "unknown label 'maybe'"),
        (["annotate", "event", "1"], "usage: spasmwatch annotate event ID LABEL"),
        (["marker", "add", "2026-02-30", "x"], "is not a date"),
        (["marker", "remove", "77"], "no marker with id 77"),
        (["export", "--night", "2027-01-01", "-o", "OUT"], "no nights in the chosen period"),
        (["export", "--format", "csv"], "pass -o FOLDER"),
        (["report", "--night", "2026-03-01", "--from", "2026-03-01", "-o", "OUT"],
         "either --night or --from"),
        (["report", "--tz", "Mars/Olympus", "-o", "OUT"], "unknown time zone"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in argv]
    code, _ = run(argv[0], "--db", db, *argv[1:])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_missing_database_is_a_user_error(tmp_path: Path, capsys) -> None:
    code, _ = run("export", "--db", str(tmp_path / "none.db"), "-o", str(tmp_path))
    assert code == 2 and "no such database" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()  # never created as a side effect


def test_every_exported_column_is_documented() -> None:
    doc = (REPO / "docs" / "records.md").read_text(encoding="utf-8")
    for name, cols in COLUMNS.items():
        section = re.search(rf"^### `{name}\.csv`$(.*?)(?=^### |\Z)", doc, re.M | re.S)
        assert section, f"docs/records.md has no section for {name}.csv"
        documented = re.findall(r"^\| `([a-z_]+)` \|", section.group(1), re.M)
        assert documented == list(cols), name
