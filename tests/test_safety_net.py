"""The per-test safety net: a hung test fails with a traceback, it never holds CI.

Runs pytest in a subprocess on a scratch directory holding this suite's conftest.py and
a test that hangs: once where SIGALRM can break the hang (pytest-timeout fails that test
and the run goes on), once where it cannot (signals blocked: the conftest's backstop
prints every thread's stack and ends the run with exit code 1).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

HANGS = '''
import signal
import time


def test_hangs_in_python():
    time.sleep(600)


def test_after_the_hang_still_runs():
    assert True
'''

HANGS_WITH_SIGNALS_BLOCKED = '''
import signal
import time


def test_hangs_where_no_signal_reaches():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(600)
'''


def run_pytest(tmp_path: Path, source: str, grace_s: str = "60") -> subprocess.CompletedProcess:
    for name in ("conftest.py", "tooling.py"):
        shutil.copy(TESTS / name, tmp_path / name)
    (tmp_path / "test_hang.py").write_text(source)
    (tmp_path / "pytest.ini").write_text("[pytest]\ntimeout = 2\ntimeout_method = signal\n")
    env = dict(os.environ, SPASMWATCH_TEST_BACKSTOP_GRACE_S=grace_s)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_a_hung_test_fails_with_a_traceback_and_the_run_goes_on(tmp_path: Path) -> None:
    proc = run_pytest(tmp_path, HANGS)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Timeout (>2.0s) from pytest-timeout" in out, out
    assert "time.sleep(600)" in out, out  # where it hung
    assert "1 failed, 1 passed" in out, out


def test_a_hang_no_signal_breaks_ends_the_run_with_every_stack(tmp_path: Path) -> None:
    proc = run_pytest(tmp_path, HANGS_WITH_SIGNALS_BLOCKED, grace_s="2")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "most recent call first" in out, out  # faulthandler's dump of the threads
    assert "test_hangs_where_no_signal_reaches" in out, out
