"""Checked numbers for command-line options, and a parser whose errors are one line.

``float("nan")``, ``float("inf")`` and negative values all parse as floats; used as
``type=`` they would switch checks off silently (``--gap nan`` never alarms,
``--heartbeat nan`` never faults). Every numeric option takes its type from here:
finite, in range, or argparse rejects it with one line and exit code 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NoReturn

__all__ = ["OneLineParser", "integer", "number"]


class OneLineParser(argparse.ArgumentParser):
    """``ArgumentParser`` whose usage errors are one line, exit 2, in the same form as
    every other user error: ``spasmwatch: error: ... (see: spasmwatch run --help)``.

    Subparsers made with ``add_subparsers().add_parser`` inherit the class.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"spasmwatch: error: {message} (see: {self.prog} --help)\n")


def _range_text(lo: float | None, hi: float | None, lo_open: bool) -> str:
    def g(v: float) -> str:  # 4294967295, not 4.29497e+09; 0.5 stays 0.5
        return str(int(v)) if float(v).is_integer() else f"{v:g}"

    if lo is not None and hi is not None:
        return f"from {g(lo)} to {g(hi)}" if not lo_open else f"above {g(lo)} and at most {g(hi)}"
    if lo is not None:
        return f"above {g(lo)}" if lo_open else f"{g(lo)} or more"
    if hi is not None:
        return f"at most {g(hi)}"
    return "a finite number"


def number(lo: float | None = None, hi: float | None = None, *,
           lo_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite float in [lo, hi] (``lo_open``: lo excluded)."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        bad = (not math.isfinite(v) or (lo is not None and (v <= lo if lo_open else v < lo))
               or (hi is not None and v > hi))
        if bad:
            raise argparse.ArgumentTypeError(
                f"{text!r}: must be {_range_text(lo, hi, lo_open)}")
        return v

    parse.__name__ = "number"  # what argparse names in "invalid number value"
    return parse


def integer(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an int in [lo, hi]."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"{text!r}: must be {_range_text(lo, hi, False)}")
        return v

    parse.__name__ = "integer"
    return parse


# Limits shared by several commands.
SPEED = number(0, 1e6)  # times real time; 0: as fast as possible
SEED = integer(0, 2**32 - 1)  # numpy's seeds
MIN_SPASMS = integer(1, 1000)
GAP_S = number(0, 24 * 3600, lo_open=True)
HEARTBEAT_S = number(0, 24 * 3600, lo_open=True)
RATE_HZ = number(1, 10_000)
SPASM_G = number(0, 16, lo_open=True)
TIMEOUT_S = number(0, 3600, lo_open=True)
MINUTES = number(0, 24 * 60)
