"""The ``spasmwatch`` command: the top-level parser; each command lives in its own module.

Errors a user can cause (a malformed trace, a missing file, an unknown scenario) end in
one line on stderr naming the file and problem, and exit code 2; never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from spasmwatch import __version__
from spasmwatch.host.cli.argtypes import OneLineParser
from spasmwatch.host.cli.output import DISCLAIMER
from spasmwatch.host.errors import UserError

EXIT_USAGE = 2


#: Modules that add their own subcommands: each has ``register(subparsers)`` and sets
#: ``func(args, out) -> int`` as the parser default. One line per module.
COMMAND_MODULES: tuple[str, ...] = (
    "spasmwatch.host.cli.demo",
    "spasmwatch.host.cli.simulate",
    "spasmwatch.host.cli.replay",
    "spasmwatch.host.cli.evaluate",
    "spasmwatch.host.cli.config",
    "spasmwatch.host.cli.alert",
    "spasmwatch.host.cli.setup",
    "spasmwatch.host.cli.run",
    "spasmwatch.host.cli.scan",
    "spasmwatch.host.cli.flash",
    "spasmwatch.host.cli.report",
    "spasmwatch.host.cli.export",
    "spasmwatch.host.cli.annotate",
    "spasmwatch.host.cli.pair",
    "spasmwatch.host.cli.doctor",
)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="spasmwatch",
        description="Local-first monitor for infant sleep-onset movements. " + DISCLAIMER,
    )
    p.add_argument("--version", action="version", version=f"spasmwatch {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return p


def _trace_errors() -> tuple[type[Exception], ...]:
    """``TraceFormatError`` once traces were read (its module imports numpy: not before)."""
    traceio = sys.modules.get("spasmwatch.simulator.traceio")
    return (traceio.TraceFormatError,) if traceio is not None else ()


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version (0); a usage error, already printed (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    func: Callable[[argparse.Namespace, TextIO], int] = args.func
    try:
        return func(args, out or sys.stdout)
    except (UserError, *_trace_errors()) as exc:
        print(f"spasmwatch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
