"""Bad command-line input: one line on stderr, exit code 2, never a traceback.

Every numeric option of demo/simulate/replay/evaluate/run/report takes its type from
``host/cli/argtypes.py``: NaN, infinities, negative or out-of-range values are refused
before anything starts (``--gap nan`` would otherwise switch alarms off, ``--heartbeat
nan`` the heartbeat fault). Unknown choices and ``simulate -o`` onto a file or an
unwritable path get one line too. The installed command is run as a user runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spasmwatch.host.cli import argtypes

EXE = shutil.which("spasmwatch", path=str(Path(sys.executable).parent)) or shutil.which(
    "spasmwatch")

# (command and its required arguments, option); each gets nan, inf, -inf and -1 or 0.
NUMERIC = [
    (["demo"], "--speed"), (["demo"], "--seed"),
    (["simulate", "hypnic-jerks", "-o", "OUT"], "--seed"),
    (["simulate", "hypnic-jerks", "-o", "OUT"], "--rate"),
    (["simulate", "hypnic-jerks", "-o", "OUT"], "--spasm-g"),
    (["replay", "TRACE"], "--gap"), (["replay", "TRACE"], "--min-spasms"),
    (["evaluate", "OUT"], "--gap"), (["evaluate", "OUT"], "--min-spasms"),
    (["run", "--simulate", "spasm-cluster"], "--speed"),
    (["run", "--simulate", "spasm-cluster"], "--seed"),
    (["run", "--simulate", "spasm-cluster"], "--heartbeat"),
    (["run", "--simulate", "spasm-cluster"], "--gap"),
    (["run", "--simulate", "spasm-cluster"], "--min-spasms"),
    (["report", "-o", "OUT"], "--min-spasms"),
]
# Values no option accepts. ("0" is fine for --speed and --seed, "-1" for none.)
BAD = ["nan", "NaN", "inf", "-inf", "-1", "1e999", "ten"]


def spasmwatch(*argv: str, cwd: Path) -> tuple[int, str]:
    assert EXE is not None, "the spasmwatch command is not installed"
    env = {**os.environ, "HOME": str(cwd), "XDG_DATA_HOME": str(cwd / "data"),
           "XDG_CONFIG_HOME": str(cwd / "config")}
    proc = subprocess.run([EXE, *argv], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stderr


def test_every_numeric_option_refuses_nan_inf_and_negatives(tmp_path: Path) -> None:
    # One process per case would take minutes: the parser is the same in-process.
    import contextlib
    import io

    from spasmwatch.host.cli.main import main

    failures = []
    for cmd, option in NUMERIC:
        argv = [a.replace("OUT", str(tmp_path / "o")).replace("TRACE", "t.csv") for a in cmd]
        for value in BAD:
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = main([*argv, option, value])
            text = err.getvalue()
            if code != 2 or text.count("\n") != 1 or option not in text:
                failures.append((cmd[0], option, value, code, text))
    assert not failures, failures
    assert not (tmp_path / "o").exists()  # nothing was started


@pytest.mark.parametrize(("value", "ok"), [("0", True), ("2.5", True), ("1e6", True),
                                           ("-0.1", False), ("1e7", False)])
def test_speed_range(value: str, ok: bool) -> None:
    import argparse

    if ok:
        assert argtypes.SPEED(value) == float(value)
    else:
        with pytest.raises(argparse.ArgumentTypeError, match="must be from 0 to 1000000"):
            argtypes.SPEED(value)


@pytest.mark.parametrize("argv", [
    ["demo", "--link", "carrier-pigeon"],
    ["run", "--simulate", "spasm-cluster", "--link", "wifi"],
    ["simulate", "hypnic-jerks", "-o", "OUT", "--range", "3"],
    ["export", "--format", "xls", "-o", "OUT"],
    ["annotate", "bogus"],
])
def test_unknown_choices_are_one_line(argv: list[str], tmp_path: Path) -> None:
    code, err = spasmwatch(*[a.replace("OUT", str(tmp_path / "o")) for a in argv],
                           cwd=tmp_path)
    assert code == 2 and err.count("\n") == 1 and "invalid choice" in err, err


@pytest.mark.parametrize("argv", [
    ["simulate", "no-such-scenario", "-o", "OUT"],
    ["simulate", "hypnic-jerks", "-o", "OUT", "--posture", "upside-down"],
    ["run", "--simulate", "no-such-scenario"],
    ["demo", "--scenario", "no-such-scenario"],
])
def test_unknown_names_are_one_line(argv: list[str], tmp_path: Path) -> None:
    code, err = spasmwatch(*[a.replace("OUT", str(tmp_path / "o")) for a in argv],
                           cwd=tmp_path)
    assert code == 2 and err.count("\n") == 1 and "unknown" in err, err


def test_simulate_onto_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "night.csv"
    target.write_text("keep me\n")
    code, err = spasmwatch("simulate", "hypnic-jerks", "-o", str(target), cwd=tmp_path)
    assert code == 2 and err.count("\n") == 1 and "not a folder" in err
    assert target.read_text() == "keep me\n"


def test_simulate_never_overwrites_a_trace_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "traces"
    assert spasmwatch("simulate", "hypnic-jerks", "-o", str(out), cwd=tmp_path)[0] == 0
    trace = out / "hypnic-jerks.csv"
    trace.write_text("a recording someone cares about\n")
    code, err = spasmwatch("simulate", "hypnic-jerks", "-o", str(out), cwd=tmp_path)
    assert code == 2 and err.count("\n") == 1 and "already exists" in err
    assert trace.read_text() == "a recording someone cares about\n"
    assert spasmwatch("simulate", "hypnic-jerks", "-o", str(out), "--force",
                      cwd=tmp_path)[0] == 0
    assert trace.read_text().startswith("#")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_simulate_into_an_unwritable_folder_as_a_user(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, err = spasmwatch("simulate", "hypnic-jerks", "-o", str(ro / "x"), cwd=tmp_path)
    finally:
        ro.chmod(0o700)
    assert code == 2 and err.count("\n") == 1 and "cannot write" in err


def test_simulate_onto_an_unwritable_path(tmp_path: Path) -> None:
    # /proc refuses new folders even to root: the same as a read-only card or no rights.
    code, err = spasmwatch("simulate", "hypnic-jerks", "-o", "/proc/spasmwatch-test",
                           cwd=tmp_path)
    assert code == 2 and err.count("\n") == 1 and "cannot write" in err
