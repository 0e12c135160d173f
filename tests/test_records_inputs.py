"""Records as a user meets them: files that are not databases, an empty database, and
stretches without sensor data (the ``gaps`` table the daemon writes) in the night's
record, the report and the export."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from tooling import missing

from spasmwatch.host.cli.main import main
from spasmwatch.host.monitor.records import Summary
from spasmwatch.host.monitor.store import Store
from spasmwatch.host.records.export import build_tables
from spasmwatch.host.records.nights import find_nights
from spasmwatch.host.records.report import render_report

UTC = dt.UTC
SPASMWATCH = Path(sys.executable).with_name("spasmwatch")  # the installed command


def at(hhmm: str, day: str = "2026-03-02") -> float:
    return dt.datetime.fromisoformat(f"{day}T{hhmm}:00+00:00").timestamp()


def run(*argv: str) -> int:
    return main(list(argv), out=io.StringIO())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def other_programs_db(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE recipes (name TEXT)")
    con.execute("INSERT INTO recipes VALUES ('bread')")
    con.commit()
    con.close()


@pytest.mark.parametrize("kind", ["empty file", "text file", "other sqlite", "folder"])
@pytest.mark.parametrize("command", ["report", "export"])
def test_a_file_that_is_not_a_spasmwatch_database_is_one_line_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, command: str
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    target = folder / "monitor.db"
    if kind == "empty file":
        target.write_bytes(b"")
    elif kind == "text file":
        target.write_text("night of the 3rd: slept well\n" * 40)
    elif kind == "other sqlite":
        other_programs_db(target)
    else:
        target.mkdir()
    before = snapshot(folder) if kind != "folder" else {}
    code = run(command, "--db", str(target), "-o", str(tmp_path / "out"))
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("spasmwatch: error: ") and str(target) in err
    assert "Traceback" not in err
    if kind != "folder":
        assert snapshot(folder) == before  # same files, same bytes: no -wal, no schema
    assert not (tmp_path / "out" / "report.html").exists()


def test_an_empty_database_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "monitor.db"
    Store(db).close()  # what 'run' leaves when no packet ever arrived
    for command in ("report", "export"):
        assert run(command, "--db", str(db), "-o", str(tmp_path / "out")) == 2
        err = capsys.readouterr().err
        assert err == (f"spasmwatch: error: {db}: the database holds no records yet: "
                       "nothing to report\n")


def test_the_installed_command_on_a_text_file(tmp_path: Path) -> None:
    if not SPASMWATCH.exists():
        missing("spasmwatch is not installed next to this Python")  # fails under CI
    bad = tmp_path / "notes.db"
    bad.write_text("not a database")
    env = {**os.environ, "HOME": str(tmp_path)}
    res = subprocess.run([str(SPASMWATCH), "report", "--db", str(bad), "-o", str(tmp_path / "r")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr == (f"spasmwatch: error: {bad}: not a spasmwatch database "
                          "(not an SQLite file)\n")
    assert bad.read_text() == "not a database"


# -- gaps ------------------------------------------------------------------------------


@pytest.fixture
def gap_db(tmp_path: Path) -> Path:
    """A night 23:00-03:00 with summaries every minute except 01:10-01:55, where the
    daemon recorded a lost link, and an open gap (no end yet) from 02:58."""
    db = tmp_path / "gaps.db"
    t, seq = at("23:00", "2026-03-01"), 0
    with Store(db) as s:
        while t < at("03:00"):
            t += 60.0
            if at("01:10") < t <= at("01:55"):
                continue
            seq += 1
            s.add_summary("dev", Summary(seq=seq, t=t, period_s=60, active_s=2, events=0,
                                         spasm_like=0, peak_mg=0, mean_mg=5, state="asleep"))
        s.connection.executemany(
            "INSERT INTO gaps (device, start_t, end_t, reason) VALUES (?, ?, ?, ?)",
            [("dev", at("01:10"), at("01:55"), "link_lost"),
             ("dev", at("02:58"), None, "packets_lost")])
        s.commit()
    return db


def test_recorded_gaps_are_in_the_night_the_report_and_the_export(gap_db: Path) -> None:
    with Store(gap_db) as s:
        [night] = find_nights(s, tz=UTC)
    # the recorded reason replaces the hole the summaries show; the open gap ends with
    # the night
    assert [(g.start, g.end, g.reason) for g in night.gaps] == [
        (at("01:10"), at("01:55"), "link_lost"), (at("02:58"), night.end, "packets_lost")]
    assert night.stats()["data_gap_s"] == pytest.approx(45 * 60 + (night.end - at("02:58")))
    page = render_report([night], [], tz=UTC)
    assert "no data 01:10–01:55 (45 min; link to the sensor lost)" in page
    assert 'class="gap-row"' in page and 'data-reason="link_lost"' in page
    tables = build_tables([night], [], UTC)
    rows = tables["gaps"]
    assert [r["reason"] for r in rows] == ["link_lost", "packets_lost"]
    assert rows[0]["start"] == "2026-03-02T01:10:00.000+00:00" and rows[0]["duration_s"] == 2700


def test_a_hole_nothing_recorded_is_still_shown(gap_db: Path, tmp_path: Path) -> None:
    with Store(gap_db) as s:
        s.connection.execute("DELETE FROM gaps")
        s.commit()
    assert run("export", "--db", str(gap_db), "-o", str(tmp_path / "x"), "--tz", "UTC") == 0
    with (tmp_path / "x" / "gaps.csv").open(newline="") as f:
        [row] = list(csv.DictReader(f))
    assert row["reason"] == "no_summaries"
    assert row["text"] == "no data 01:10–01:55 (45 min; no activity summaries arrived)"
