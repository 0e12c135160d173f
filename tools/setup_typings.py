#!/usr/bin/env python3
"""Install the MicroPython ESP32 stubs into a private typings folder, idempotently.

The stubs (``micropython-esp32-stubs`` and its ``micropython-stdlib-stubs``) ship
``time.pyi``, ``math.pyi``, ``builtins.pyi``... that would shadow CPython's own if they
went into site-packages, so they are installed with ``pip install --target`` into:

``.typings/esp32/``
    the stubs exactly as pip lays them out (point an IDE / pyright ``stubPath`` here),
    with the local patches below applied;
``.typings/esp32-typeshed/``
    the same files rearranged as a typeshed (``stdlib/`` + ``VERSIONS``), which is what
    ``mypy --custom-typeshed-dir`` needs so that ``firmware/`` is checked against
    MicroPython's modules only (``tools/typecheck_firmware.py`` uses it).

Local patches (each applied only if the quirk is present in the installed copy, so a
fixed upstream release is left alone):

* ``bluetooth.pyi``: ``BLE.gatts_notify``/``gatts_indicate`` lack their ``conn_handle``
  / ``data`` arguments, handles are typed ``memoryview`` instead of ``int``, and buffers
  are ``bytes`` only; correct code would fail without this.
* ``micropython.pyi``: ``const`` becomes a callable-protocol variable so the usual
  CPython fallback ``try: from micropython import const`` / ``except ImportError:
  def const(x): return x`` type-checks while ``const(1)`` stays an ``int``.

Run ``python tools/setup_typings.py`` (add ``--force`` to reinstall). A stamp file
records what was installed; a second run with the same pins does nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TYPINGS_DIR = REPO_ROOT / ".typings"
STUBS_DIR = TYPINGS_DIR / "esp32"
TYPESHED_DIR = TYPINGS_DIR / "esp32-typeshed"
STAMP_NAME = ".spasmwatch-stamp.json"

REQUIREMENTS = (
    "micropython-esp32-stubs==1.29.0.post1",
    "micropython-stdlib-stubs==1.29.0.post2",
)
# Bump when a patch below changes, so existing folders are rebuilt.
PATCH_VERSION = 1

# (file, description, quirk regex, replacement). A regex that no longer matches means
# the quirk is absent (already patched, or fixed upstream): nothing is done.
_BLE_PATCHES: tuple[tuple[str, str, str], ...] = (
    (
        "gatts_notify without conn_handle",
        r"def gatts_notify\(self, value_handle: memoryview, data: bytes, /\) -> None:",
        "def gatts_notify(self, conn_handle: int, value_handle: int, "
        "data: AnyReadableBuf | None = None, /) -> None:",
    ),
    (
        "gatts_indicate without data",
        r"def gatts_indicate\(self, conn_handle: memoryview, value_handle: memoryview, /\)"
        r" -> None:",
        "def gatts_indicate(self, conn_handle: int, value_handle: int, "
        "data: AnyReadableBuf | None = None, /) -> None:",
    ),
    (
        "gatts_set_buffer takes a value handle",
        r"def gatts_set_buffer\(self, conn_handle: memoryview,",
        "def gatts_set_buffer(self, value_handle: int,",
    ),
    (
        "gatts_write data is any buffer",
        r"def gatts_write\(self, value_handle: memoryview, data: bytes,",
        "def gatts_write(self, value_handle: int, data: AnyReadableBuf,",
    ),
    (
        "gattc_write data is any buffer",
        r"(def gattc_write\(\s*self,\s*conn_handle: memoryview,\s*value_handle: memoryview,"
        r"\s*)data: bytes,",
        r"\1data: AnyReadableBuf,",
    ),
    (
        "gatts_register_services returns int handles",
        r"-> tuple\[tuple\[memoryview, \.\.\.\], \.\.\.\]:",
        "-> tuple[tuple[int, ...], ...]:",
    ),
    (
        "irq data tuples mix ints and memoryviews",
        r"handler: Callable\[\[int, tuple\[memoryview, \.\.\.\]\], Any\]",
        "handler: Callable[[int, tuple[Any, ...]], Any]",
    ),
    (
        "connection and value handles are ints",
        r"\b(conn_handle|value_handle): memoryview\b",
        r"\1: int",
    ),
)

_CONST_PATCHES: tuple[tuple[str, str, str], ...] = (
    (
        "const as a callable protocol (allows the CPython fallback def)",
        r"\ndef const\(expr: Const_T, /\) -> Const_T:",
        "\nclass _ConstFn(Protocol):\n"
        "    def __call__(self, expr: Const_T, /) -> Const_T: ...\n\n"
        "const: _ConstFn\n\n"
        "def _const_doc(expr: Const_T, /) -> Const_T:",
    ),
    (
        "import Protocol for the const protocol",
        r"from typing import Any, Callable, Optional, Tuple, overload\n",
        "from typing import Any, Callable, Optional, Protocol, Tuple, overload\n",
    ),
)

PATCHES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "bluetooth.pyi": _BLE_PATCHES,
    "micropython.pyi": _CONST_PATCHES,
}


def _log(msg: str) -> None:
    print(f"setup_typings: {msg}", flush=True)


def _stamp() -> dict[str, object]:
    return {"requirements": list(REQUIREMENTS), "patch_version": PATCH_VERSION}


def _read_stamp(folder: Path) -> object:
    try:
        return json.loads((folder / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None


def is_ready() -> bool:
    """True when both folders exist and match the pinned versions and patches."""
    want = _stamp()
    return _read_stamp(STUBS_DIR) == want and _read_stamp(TYPESHED_DIR) == want


def apply_patches(stubs_dir: Path) -> list[str]:
    """Patch the local stub copy where the known quirks are present; return what changed."""
    applied: list[str] = []
    for name, patches in PATCHES.items():
        path = stubs_dir / name
        text = path.read_text()
        for desc, pattern, repl in patches:
            new, count = re.subn(pattern, repl, text)
            if count:
                applied.append(f"{name}: {desc} ({count}x)")
                text = new
        path.write_text(text)
    ble = (stubs_dir / "bluetooth.pyi").read_text()
    if "def gatts_notify(self, conn_handle: int, value_handle: int" not in ble:
        raise SystemExit(
            "setup_typings: bluetooth.pyi has an unexpected gatts_notify signature; "
            "review PATCHES in tools/setup_typings.py"
        )
    return applied


def build_typeshed(stubs_dir: Path, typeshed_dir: Path) -> None:
    """Lay the pip-target stubs out as a typeshed: ``stdlib/`` holds every module."""
    stdlib = typeshed_dir / "stdlib"
    shutil.copytree(stubs_dir / "stdlib", stdlib)
    if (stubs_dir / "stubs").is_dir():
        shutil.copytree(stubs_dir / "stubs", typeshed_dir / "stubs")
    versions = stdlib / "VERSIONS"
    listed = {
        line.split(":", 1)[0].strip()
        for line in versions.read_text().splitlines()
        if ":" in line and not line.lstrip().startswith("#")
    }
    extra: list[str] = []
    for entry in sorted(stubs_dir.iterdir()):
        if entry.name in ("stdlib", "stubs") or entry.name.endswith(".dist-info"):
            continue
        if entry.is_file() and entry.suffix == ".pyi":
            module = entry.stem
            shutil.copy2(entry, stdlib / entry.name)
        elif entry.is_dir() and any(entry.rglob("*.pyi")):
            module = entry.name
            shutil.copytree(entry, stdlib / entry.name, dirs_exist_ok=True)
        else:
            continue
        if module not in listed:
            extra.append(f"{module}: 3.0-")
    with versions.open("a") as fh:
        fh.write("\n# MicroPython modules (added by tools/setup_typings.py)\n")
        fh.write("".join(line + "\n" for line in extra))


def setup(force: bool = False) -> None:
    """Install, patch and lay out the stubs unless already done with the same pins."""
    if is_ready() and not force:
        _log(f"up to date ({', '.join(REQUIREMENTS)}) in {STUBS_DIR.relative_to(REPO_ROOT)}")
        return
    TYPINGS_DIR.mkdir(exist_ok=True)
    tmp = TYPINGS_DIR / "esp32.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-input",
        "--disable-pip-version-check", "--no-compile", "--target", str(tmp), *REQUIREMENTS,
    ]
    _log("running: " + " ".join(cmd))
    subprocess.run(cmd, check=True)
    for change in apply_patches(tmp):
        _log(f"patched {change}")
    (tmp / STAMP_NAME).write_text(json.dumps(_stamp()))

    shutil.rmtree(STUBS_DIR, ignore_errors=True)
    tmp.rename(STUBS_DIR)
    tmp_ts = TYPINGS_DIR / "esp32-typeshed.tmp"
    shutil.rmtree(tmp_ts, ignore_errors=True)
    build_typeshed(STUBS_DIR, tmp_ts)
    (tmp_ts / STAMP_NAME).write_text(json.dumps(_stamp()))
    shutil.rmtree(TYPESHED_DIR, ignore_errors=True)
    tmp_ts.rename(TYPESHED_DIR)
    _log(f"installed {', '.join(REQUIREMENTS)}")
    _log(f"stubs: {STUBS_DIR.relative_to(REPO_ROOT)}  typeshed: "
         f"{TYPESHED_DIR.relative_to(REPO_ROOT)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="reinstall even if up to date")
    parser.add_argument(
        "--check", action="store_true", help="only report whether the folders are ready"
    )
    args = parser.parse_args(argv)
    if args.check:
        ready = is_ready()
        _log("ready" if ready else "not set up (run: python tools/setup_typings.py)")
        return 0 if ready else 1
    setup(force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
