"""The ``board`` fixture: the virtual board always, a real one with ``--hil-port``.

Each HIL test runs once per board. The real variant carries the ``hil`` marker, so
tests/conftest.py skips it (with the reason) unless ``--hil-port`` is given; the
virtual variant runs by default, so this suite is exercised in CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hil_boards import RealBoard, VirtualBoard


@pytest.fixture(
    params=[
        pytest.param("virtual", id="virtual"),
        pytest.param("real", id="real", marks=pytest.mark.hil),
    ]
)
def board(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[VirtualBoard | RealBoard]:
    """A freshly flashed, booted board."""
    b: VirtualBoard | RealBoard
    if request.param == "real":
        b = RealBoard(request.getfixturevalue("hil_port"))
    else:
        request.getfixturevalue("micropython_exe")  # skips (fails in CI) when missing
        b = VirtualBoard(tmp_path / "board-fs")
    try:
        b.flash()
        b.boot()
        yield b
    finally:
        b.close()
