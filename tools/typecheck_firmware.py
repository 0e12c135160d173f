#!/usr/bin/env python3
"""Type-check the firmware against MicroPython's ESP32 stubs, not CPython's typeshed.

Runs mypy with ``--custom-typeshed-dir .typings/esp32-typeshed`` (made by
``tools/setup_typings.py``), so ``import dataclasses`` or ``time.monotonic()`` in
``firmware/`` is an error, and ``machine``/``bluetooth``/``micropython`` resolve to the
board's stubs. ``--check-untyped-defs`` is on because the firmware is mostly unannotated.
Settings live in ``tools/mypy_firmware.ini`` (passed explicitly, so a host-side
``[tool.mypy]`` in pyproject.toml cannot change what the firmware is held to).

Usage: ``python tools/typecheck_firmware.py [PATH ...]`` (default: ``firmware``).
Exit status: mypy's (0 clean, 1 type errors), or 3 when the typings are not set up.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TYPESHED_DIR = REPO_ROOT / ".typings" / "esp32-typeshed"
CONFIG_FILE = Path(__file__).resolve().with_name("mypy_firmware.ini")
EXIT_NOT_SET_UP = 3


def typings_ready() -> bool:
    """True when tools/setup_typings.py has built the typeshed folder."""
    return (TYPESHED_DIR / "stdlib" / "VERSIONS").is_file() and (
        TYPESHED_DIR / "stdlib" / "machine.pyi"
    ).is_file()


def mypy_command(paths: list[str]) -> list[str]:
    """The mypy command line that checks ``paths`` against the MicroPython stubs."""
    return [
        sys.executable, "-m", "mypy",
        "--config-file", str(CONFIG_FILE),
        *paths,
    ]


def main(argv: list[str] | None = None) -> int:
    paths = list(sys.argv[1:] if argv is None else argv) or ["firmware"]
    if not typings_ready():
        print(
            "typecheck_firmware: MicroPython typings not set up; "
            "run: python tools/setup_typings.py",
            file=sys.stderr,
        )
        return EXIT_NOT_SET_UP
    proc = subprocess.run(mypy_command(paths), cwd=REPO_ROOT, check=False)
    if proc.returncode == 0:
        print(f"typecheck_firmware: OK ({' '.join(paths)} against micropython-esp32-stubs)")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
