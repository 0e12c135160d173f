"""Load real accelerometer recordings made by others, as ``Trace`` objects.

Two sources, both optional (callers skip cleanly when absent):

* the small raw recordings shipped in PyPI wheels (``gaitpy``, ``sit2standpy``,
  ``aeon==1.6.0``), located with ``importlib.util.find_spec`` without importing them;
* the shared data folder (``../shared/data`` from the project root, or ``$SPASMWATCH_DATA``):
  SisFall (waist, 200 Hz), emlearn-har (wrist, 50 Hz, MPU6886), HMP ADL (wrist, 32 Hz).

They are adult recordings: real negatives (rolling over in bed, lying down, getting up,
gestures, stumbles) and real transients. None contains an infantile spasm.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from spasmwatch.simulator.traceio import Trace

G = 9.80665


@dataclass
class Recording:
    """One real recording: where it came from, what it shows, and the trace."""

    source: str  # data set
    name: str
    activity: str
    trace: Trace


def _uniform_trace(acc_g: np.ndarray, rate_hz: float, source: str, **meta: str) -> Trace:
    t = np.arange(len(acc_g), dtype=np.float64) / rate_hz
    return Trace(
        t=t, acc=np.asarray(acc_g, dtype=np.float64), meta={"rate_hz": f"{rate_hz:g}", **meta},
        source=source,
    )


def _package_file(package: str, rel: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / rel
    return path if path.exists() else None


def _load_gaitpy(path: Path) -> Trace:
    # GENEActiv export: ~100 header lines, then "YYYY-MM-DD HH:MM:SS:mmm,x,y,z,..." in g.
    ts: list[float] = []
    rows: list[tuple[float, float, float]] = []
    with path.open("rb") as fh:
        for raw in fh:
            line = raw.decode("latin-1").strip()
            parts = line.split(",")
            if len(parts) < 4 or not line[:2].isdigit() or line.count("-") < 2:
                continue
            stamp = datetime.strptime(parts[0], "%Y-%m-%d %H:%M:%S:%f")
            ts.append(stamp.timestamp())
            rows.append((float(parts[1]), float(parts[2]), float(parts[3])))
    t = np.asarray(ts) - ts[0]
    return Trace(t=t, acc=np.asarray(rows), meta={"rate_hz": "50"}, source=str(path))


def _load_sit2standpy(path: Path) -> Trace:
    # Columns: unix time in microseconds, then x, y, z in m/s^2 (lumbar, 128 Hz).
    data = np.loadtxt(path, delimiter=",")
    t = (data[:, 0] - data[0, 0]) / 1e6
    return Trace(t=t, acc=data[:, 1:4] / G, meta={"rate_hz": "128"}, source=str(path))


def _load_daphnet(path: Path) -> Trace:
    # Daphnet freezing-of-gait: 64 Hz, milli-g; columns 7-9 are the trunk sensor.
    data = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(7, 8, 9))
    return _uniform_trace(data / 1000.0, 64.0, str(path))


def wheel_recordings() -> Iterator[Recording]:
    """Recordings shipped in PyPI wheels that are installed here (none if not)."""
    p = _package_file("gaitpy", "demo/demo_data.csv")
    if p:
        yield Recording("gaitpy", "demo_data", "walking, handling spikes", _load_gaitpy(p))
    p = _package_file("sit2standpy", "data/sample.csv")
    if p:
        yield Recording("sit2standpy", "sample", "sit-to-stand, daily living",
                        _load_sit2standpy(p))
    p = _package_file("aeon", "datasets/data/Daphnet_S06R02E0/S06R02E0.csv")
    if p:
        yield Recording("aeon", "Daphnet_S06R02E0", "walking with freezing of gait",
                        _load_daphnet(p))


def shared_data_root() -> Path | None:
    """``$SPASMWATCH_DATA`` or ``../shared/data`` beside the project root, if present."""
    env = os.environ.get("SPASMWATCH_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    candidates.append(Path.cwd().parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None


def sisfall_recordings(root: Path, codes: tuple[str, ...] | None = None) -> Iterator[Recording]:
    """SisFall waist recordings (ADXL345 counts → g), optionally only some activity codes."""
    path = root / "sisfall" / "sisfall_adxl345_bed_and_transients.npz"
    if not path.exists():
        return
    z = np.load(path)
    fs = float(z["fs"])
    scale = float(z["g_per_lsb"])
    for key in sorted(z.files):
        if key in ("fs", "g_per_lsb"):
            continue
        code = key.split("_")[0]
        if codes and code not in codes:
            continue
        yield Recording("sisfall", key, code, _uniform_trace(z[key] * scale, fs, key))


def emlearn_recordings(root: Path) -> Iterator[Recording]:
    """emlearn-har wrist windows (MPU6886 at ±2 g, 50 Hz), ~8 s each."""
    base = root / "emlearn-har"
    for path in sorted(base.glob("*/*.npy")):
        acc = np.load(path).astype(np.float64) / 16384.0
        label = path.stem.rsplit("_", 1)[-1]
        yield Recording("emlearn-har", path.stem, label, _uniform_trace(acc, 50.0, str(path)))


def hmp_recordings(root: Path, activities: tuple[str, ...] | None = None) -> Iterator[Recording]:
    """HMP ADL wrist recordings (32 Hz, 6-bit), optionally only some activity folders."""
    base = root / "hmp-adl" / "Data" / "Dataset"
    if not base.is_dir():
        return
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        if activities and folder.name not in activities:
            continue
        for path in sorted(folder.glob("*.txt")):
            acc = -1.5 + 3.0 * np.loadtxt(path, ndmin=2) / 63.0
            if len(acc) < 32 * 3:
                continue  # shorter than the trace format's minimum
            yield Recording("hmp-adl", path.stem, folder.name, _uniform_trace(acc, 32.0, str(path)))


def concatenate(recordings: list[Recording], name: str, pause_s: float = 2.0) -> Trace:
    """Join recordings end to end (each resampled to the first one's rate), with still
    pauses between them: repeated real rolls within minutes, a hard negative."""
    rate = float(recordings[0].trace.meta.get("rate_hz", "50"))
    parts: list[np.ndarray] = []
    for rec in recordings:
        tr = rec.trace
        grid = np.arange(tr.t[0], tr.t[-1], 1.0 / rate)
        acc = np.stack([np.interp(grid, tr.t, tr.acc[:, i]) for i in range(3)], axis=1)
        parts.append(acc)
        parts.append(np.repeat(acc[-1:], int(pause_s * rate), axis=0))
    return _uniform_trace(np.concatenate(parts), rate, name)
