""".ci/run against the README and the tests: what a fresh Debian CI machine gets.

CI runs ``bash .ci/run`` on a fresh Debian with Python 3.11, pip and apt, as root. It
must run the README's test command as written, stop at the first failure, and install
every Debian package a test asks for (``require_tool`` hints name them) — a tool that is
present only on a developer's machine would otherwise fail CI, or worse, be skipped.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CI = REPO / ".ci" / "run"


def readme_test_command() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Run the tests", 1)[1]
    block = re.search(r"```sh\n(.*?)\n```", section, re.S)
    assert block is not None, "README's 'Run the tests' has no sh block"
    [command] = block.group(1).strip().splitlines()
    return command


def test_ci_runs_the_readme_test_command_as_written() -> None:
    command = readme_test_command()
    assert "python -m pytest" in command
    lines = [ln.strip() for ln in CI.read_text().splitlines()]
    assert command in lines


def test_ci_stops_at_the_first_failure() -> None:
    text = CI.read_text()
    assert "set -euo pipefail" in text
    assert subprocess.run(["bash", "-n", str(CI)], check=False).returncode == 0
    # ruff after the tests; the venv the README makes is activated before anything runs.
    body = text.split("set -euo pipefail", 1)[1]
    assert body.index(". .venv/bin/activate") < body.index(readme_test_command())
    assert body.rstrip().endswith("python -m ruff check .")


def test_ci_installs_every_debian_package_a_test_names() -> None:
    named: set[str] = set()
    for path in (REPO / "tests").rglob("*.py"):
        named |= set(re.findall(r"apt-get install ([a-z0-9][a-z0-9.+-]+)", path.read_text()))
    installed = set(re.findall(r"[a-z0-9]+:([a-z0-9][a-z0-9.+-]+)", CI.read_text()))
    assert named, "no apt-get hint found in the tests"
    assert named <= installed, f"tests need {sorted(named - installed)}, .ci/run lacks them"
