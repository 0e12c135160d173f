"""Finding the real tools the tests use (MicroPython, mosquitto, chromium, ffmpeg, aplay).

A missing tool skips the test locally with a reason that says how to get it, but fails
under CI, because ``.ci/run`` installs everything the tests need: a green CI run must
never hide a test that did not run.
"""

from __future__ import annotations

import os
import shutil

import pytest


def missing(reason: str) -> None:
    """Skip locally, fail under CI."""
    if os.environ.get("CI"):
        pytest.fail(reason + " (.ci/run must install it)")
    pytest.skip(reason)


def require_tool(name: str, hint: str, *also: str) -> str:
    """Path of ``name`` (searched on PATH, then in ``also``); skip/fail when absent."""
    path = shutil.which(name) or next((p for p in also if os.path.exists(p)), None)
    if path is None:
        missing(f"{name} not found: {hint}")
        raise AssertionError("unreachable")  # missing() always raises
    return path
