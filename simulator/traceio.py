"""Read and write accelerometer trace files and their ground-truth label sidecars.

Format (see docs/trace-format.md): CSV or .csv.gz, optional ``# key: value`` metadata
lines, a header row, then ``t`` (s), ``ax,ay,az`` (g) and optionally ``gx,gy,gz`` (deg/s).

Reading has two paths: a fast one (``np.loadtxt`` plus a few vectorised checks) that
handles well-formed files, and a line-by-line reference parser that is only run when
the fast path rejects something. The reference parser is the authority on what is
valid; its job is to name the first bad line in the error message.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

#: Accepted sample-rate range (Hz), judged from the timestamps, not the metadata.
MIN_RATE_HZ = 25.0
MAX_RATE_HZ = 400.0
#: Slack on the rate limits so that timestamps rounded to a few decimals still pass.
RATE_TOLERANCE = 0.01
#: A trace shorter than this (t[-1] - t[0], seconds) is rejected as "too few samples".
MIN_DURATION_S = 2.0
#: Bounds on what a file may make us read (a gzip bomb, a line that never ends):
#: ``read_trace`` holds the whole text in memory; ``TraceStream`` holds one block.
MAX_LINE_CHARS = 4096
MAX_TEXT_BYTES = 512 * 1024 * 1024  # whole-file readers (read_trace, read_labels)
MAX_STREAM_BYTES = 8 * 1024**3  # streamed (replay): ~9 days at 100 Hz, bounded in time
STREAM_BLOCK_BYTES = 1024 * 1024

ACC_COLUMNS = ("ax", "ay", "az")
GYRO_COLUMNS = ("gx", "gy", "gz")
LABEL_COLUMNS = ("start", "end", "label")
#: Labels with a meaning to the tools; anything else is kept as free text.
KNOWN_LABELS = ("spasm", "jerk", "burst", "roll", "handling", "rocking")

_GZIP_MAGIC = b"\x1f\x8b"
# A metadata key looks like an identifier, so "# recorded at 12:30" stays a comment.
_META_RE = re.compile(r"^#\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*:(.*)$")
_BLANK_LINES_RE = re.compile(r"(?:[ \t\f\v]*\n)*")


class TraceFormatError(ValueError):
    """A trace or label file is malformed. ``str()`` is one line: ``PATH:LINE: problem``."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


@dataclass
class Trace:
    """One recording: ``t`` (n,) seconds strictly increasing, ``acc`` (n, 3) in g."""

    t: np.ndarray
    acc: np.ndarray
    gyro: np.ndarray | None = None
    meta: dict[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def duration(self) -> float:
        return float(self.t[-1] - self.t[0]) if len(self.t) else 0.0


@dataclass(frozen=True)
class Label:
    """Ground truth interval on the trace clock."""

    start: float
    end: float
    label: str


# --------------------------------------------------------------------------- helpers


def median_interval(t: np.ndarray) -> float:
    """Robust typical sample interval of strictly increasing timestamps ``t`` (seconds).

    This is the median of ``(t[i+k] - t[i]) / k`` with k up to 8 rather than of single
    steps: with timestamps rounded to a few decimals (e.g. 400 Hz written in ms) single
    steps alternate between two quantised values and their median would be off by 20 %,
    while the k-step spans average the rounding out. Gaps only affect a few spans, so the
    median ignores them just as it would for single steps.
    """
    t = np.asarray(t, dtype=np.float64)
    if len(t) < 2:
        raise ValueError("need at least two timestamps")
    k = min(8, len(t) - 1)
    return float(np.median((t[k:] - t[:-k]) / k))


def _open_bytes(path: Path) -> BinaryIO:
    """The file's bytes, gunzipped on the fly if it starts with the gzip magic."""
    if path.is_dir():
        raise TraceFormatError(path, None, "is a folder, not a trace file")
    f: BinaryIO = open(path, "rb")  # noqa: SIM115 - returned to the caller (OSError: theirs)
    # Decide on the magic bytes, not the suffix: renamed or mislabelled files happen.
    if f.read(2) == _GZIP_MAGIC:
        f.seek(0)
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    f.seek(0)
    return f


def _read_block(path: Path, f: BinaryIO, size: int) -> bytes:
    try:
        return f.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise TraceFormatError(path, None, f"bad gzip data ({exc})") from None


def _check_line_lengths(path: Path, raw: bytes, first_line: int) -> None:
    """One line longer than MAX_LINE_CHARS bytes: an error naming it (no trace has one)."""
    pos = 0
    line = first_line
    while True:
        end = raw.find(b"\n", pos)
        stop = len(raw) if end < 0 else end
        if stop - pos > MAX_LINE_CHARS:
            raise TraceFormatError(
                path, line, f"line longer than {MAX_LINE_CHARS} characters (not a trace file?)"
            )
        if end < 0:
            return
        pos = end + 1
        line += 1


def _read_text(path: Path) -> str:
    """File contents as text: gunzipped if gzip magic, strict UTF-8, LF line endings.

    Reads at most MAX_TEXT_BYTES (after decompression) and no line over MAX_LINE_CHARS:
    a small gzip bomb gets a one-line error, not gigabytes of memory.
    """
    parts: list[bytes] = []
    size = 0
    since_break = 0  # bytes since the last line break: a line that never ends fails early
    with _open_bytes(path) as f:
        while size <= MAX_TEXT_BYTES:
            data = _read_block(path, f, STREAM_BLOCK_BYTES)
            if not data:
                break
            parts.append(data)
            size += len(data)
            nl = data.rfind(b"\n")
            since_break = since_break + len(data) if nl < 0 else len(data) - nl - 1
            if since_break > MAX_LINE_CHARS:
                _check_line_lengths(path, b"".join(parts), 1)
    raw = b"".join(parts)
    del parts
    if len(raw) > MAX_TEXT_BYTES:
        raise TraceFormatError(
            path, None, f"more than {MAX_TEXT_BYTES // 2**20} MiB of text: too large to load "
            "whole (`spasmwatch replay` streams traces of any length)"
        )
    _check_line_lengths(path, raw, 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise TraceFormatError(
            path, line, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})"
        ) from None
    if text.startswith("\ufeff"):  # spreadsheet programs like to add a BOM
        text = text[1:]
    return text.replace("\r\n", "\n")


def _parse_number(field_text: str) -> float | None:
    """``float(field_text)`` restricted to what ``np.loadtxt`` accepts; None if not numeric."""
    s = field_text.strip()
    # Python's float() also takes "1_000" and non-ASCII digits; loadtxt does not, and the
    # two parsers must agree on what is valid.
    if not s or "_" in s or not s.isascii():
        return None
    try:
        return float(s)
    except ValueError:
        return None


def _split_header(line: str) -> list[str]:
    return [c.strip().strip('"').strip().lower() for c in line.split(",")]


@dataclass
class _Preamble:
    """Metadata and header of a file, and where its data rows start."""

    meta: dict[str, str]
    names: list[str]
    header_line: int  # 1-based line number of the header row
    body: str  # everything after the header row


def _read_preamble(path: Path, text: str) -> _Preamble:
    """Parse the leading blank / ``#`` lines and the header row."""
    if not text.strip():
        raise TraceFormatError(path, 1, "empty file")
    meta: dict[str, str] = {}
    meta_lines: dict[str, int] = {}
    pos = 0
    lineno = 0
    while pos < len(text):
        end = text.find("\n", pos)
        if end < 0:
            end = len(text)
        line = text[pos:end]
        lineno += 1
        pos = end + 1
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            m = _META_RE.match(stripped)
            if m is None:
                continue  # a free comment ("# recorded in Oslo"), not metadata
            key, value = m.group(1), m.group(2).strip()
            if key in meta:
                raise TraceFormatError(
                    path,
                    lineno,
                    f"duplicate metadata key {key!r} (first on line {meta_lines[key]})",
                )
            meta[key] = value
            meta_lines[key] = lineno
            continue
        return _Preamble(meta, _split_header(line), lineno, text[pos:])
    raise TraceFormatError(path, lineno, "missing header row (file has only comments)")


def _check_names(path: Path, pre: _Preamble, required: Sequence[str]) -> dict[str, int]:
    """Column index by name; errors for duplicate or missing columns."""
    missing = [c for c in required if c not in pre.names]
    if missing and _parse_number(pre.names[0]) is not None:
        raise TraceFormatError(
            path, pre.header_line, "missing header row (first row looks like data)"
        )
    index: dict[str, int] = {}
    for i, name in enumerate(pre.names):
        if not name:
            continue  # unnamed column, ignored like any other unknown column
        if name in index:
            raise TraceFormatError(path, pre.header_line, f"duplicate column {name!r}")
        index[name] = i
    if missing:
        raise TraceFormatError(
            path, pre.header_line, f"missing required column(s) {', '.join(missing)}"
        )
    return index


# --------------------------------------------------------------------------- traces


def read_trace(path: str | Path) -> Trace:
    """Read a trace file (``.csv`` or gzip-compressed), validating it fully.

    Raises ``TraceFormatError`` naming the first offending line for any malformed
    content, and ``OSError`` if the file cannot be read at all.
    """
    path = Path(path)
    text = _read_text(path)
    pre = _read_preamble(path, text)
    index = _check_names(path, pre, ("t", *ACC_COLUMNS))
    gyro_present = [c for c in GYRO_COLUMNS if c in index]
    if gyro_present and len(gyro_present) != 3:
        missing = [c for c in GYRO_COLUMNS if c not in index]
        raise TraceFormatError(
            path,
            pre.header_line,
            f"gyro columns must be all of gx,gy,gz or none (missing {','.join(missing)})",
        )
    wanted = ["t", *ACC_COLUMNS, *(GYRO_COLUMNS if gyro_present else ())]
    cols = [index[c] for c in wanted]

    data = _fast_parse(pre.body, len(pre.names), cols)
    if data is None:
        data = _slow_parse(path, pre, cols)
    t = data[:, 0]
    if len(t) == 0:
        raise TraceFormatError(path, pre.header_line, "no data rows after the header")
    duration = float(t[-1] - t[0])
    if duration < MIN_DURATION_S:
        raise TraceFormatError(
            path,
            _last_data_line(pre),
            f"too few samples: {len(t)} row(s) spanning {duration:.3g} s "
            f"(need at least {MIN_DURATION_S:g} s)",
        )
    dt = median_interval(t)
    rate = 1.0 / dt
    if not (MIN_RATE_HZ * (1 - RATE_TOLERANCE) <= rate <= MAX_RATE_HZ * (1 + RATE_TOLERANCE)):
        raise TraceFormatError(
            path,
            pre.header_line + 1 + _leading_blank_lines(pre.body),
            f"sample rate {rate:.4g} Hz (median interval {dt:.4g} s) is outside "
            f"{MIN_RATE_HZ:g}-{MAX_RATE_HZ:g} Hz",
        )
    # Copies, so the arrays own contiguous memory instead of viewing the parse buffer.
    acc = np.ascontiguousarray(data[:, 1:4])
    gyro = np.ascontiguousarray(data[:, 4:7]) if gyro_present else None
    return Trace(t=t.copy(), acc=acc, gyro=gyro, meta=pre.meta, source=str(path))


def _fast_parse(body: str, n_fields: int, cols: list[int]) -> np.ndarray | None:
    """Parse the data rows with numpy; None if anything is off (the slow path then
    finds and reports the first bad line, or accepts what loadtxt was too strict for)."""
    if not body.strip():
        return np.empty((0, len(cols)))
    if body.startswith("#") or "\n#" in body:
        return None  # comment lines are only allowed before the header
    # loadtxt with usecols does not check the field count of each row, so count commas
    # per line ourselves; completely empty lines are allowed (loadtxt skips them too).
    raw = np.frombuffer(body.encode("utf-8"), dtype=np.uint8)
    newlines = np.flatnonzero(raw == 10)
    n_lines = len(newlines) + (0 if body.endswith("\n") else 1)
    commas = np.bincount(np.searchsorted(newlines, np.flatnonzero(raw == 44)), minlength=n_lines)[
        :n_lines
    ]
    starts = np.concatenate(([0], newlines + 1))[:n_lines]
    ends = np.concatenate((newlines, [len(raw)]))[:n_lines]
    empty = ends == starts
    if np.any(commas[~empty] != n_fields - 1):
        return None
    try:
        data = np.loadtxt(
            io.StringIO(body),
            delimiter=",",
            comments=None,
            usecols=cols,
            ndmin=2,
            dtype=np.float64,
        )
    except ValueError:
        return None
    if data.shape[0] != int(np.count_nonzero(~empty)):
        return None
    if not np.isfinite(data).all() or not np.all(np.diff(data[:, 0]) > 0):
        return None
    return data


def _body_lines(path: Path, pre: _Preamble) -> Iterator[tuple[int, str]]:
    """(line number in the file, text) of each non-blank line after the header."""
    for offset, line in enumerate(pre.body.split("\n")):
        if not line.strip():
            continue
        lineno = pre.header_line + 1 + offset
        if line.startswith("#"):
            raise TraceFormatError(
                path, lineno, "comment line after the header (only allowed before it)"
            )
        yield lineno, line


def _slow_parse(path: Path, pre: _Preamble, cols: list[int]) -> np.ndarray:
    """Line-by-line reference parser: returns the data or raises for the first bad line."""
    names = pre.names
    rows: list[list[float]] = []
    prev_t = -math.inf
    prev_line = 0
    for lineno, line in _body_lines(path, pre):
        fields = line.split(",")
        if len(fields) != len(names):
            raise TraceFormatError(path, lineno, f"expected {len(names)} fields, got {len(fields)}")
        row: list[float] = []
        for c in cols:
            value = _parse_number(fields[c])
            if value is None:
                raise TraceFormatError(
                    path, lineno, f"column {names[c]!r}: not a number: {fields[c].strip()!r}"
                )
            if not math.isfinite(value):
                raise TraceFormatError(
                    path, lineno, f"column {names[c]!r}: non-finite value {fields[c].strip()!r}"
                )
            row.append(value)
        if row[0] <= prev_t:
            raise TraceFormatError(
                path,
                lineno,
                f"t not strictly increasing: {row[0]!r} after {prev_t!r} on line {prev_line}",
            )
        prev_t, prev_line = row[0], lineno
        rows.append(row)
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(cols))


def _leading_blank_lines(body: str) -> int:
    m = _BLANK_LINES_RE.match(body)
    return m.group(0).count("\n") if m else 0


def _last_data_line(pre: _Preamble) -> int:
    """Line number of the last non-blank line (only used for error messages)."""
    lines = pre.body.split("\n")
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip():
            return pre.header_line + 1 + i
    return pre.header_line


class TraceStream:
    """A trace file read block by block: constant memory for any length.

    Validates what ``read_trace`` validates, with the same one-line errors naming the
    line: fields, numbers, finite values, ``t`` strictly increasing (across blocks too),
    the sample rate (judged on the first block) and the minimum duration. Iterating
    yields ``(t, acc)`` arrays of up to ``block_bytes`` of text each. ``meta`` and
    ``t_first`` are known once the object exists (the first block is read at once).
    """

    def __init__(self, path: str | Path, block_bytes: int = STREAM_BLOCK_BYTES) -> None:
        self.path = Path(path)
        self.source = str(self.path)
        self.block_bytes = max(block_bytes, 2 * MAX_LINE_CHARS)
        self._f = _open_bytes(self.path)
        self._read = 0
        self._rest = b""
        self._line = 1  # file line number of the first line in self._rest
        self._eof = False
        try:
            self._start()
        except BaseException:
            self._f.close()
            raise

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> TraceStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _more(self) -> bool:
        """Append the next block of bytes to ``_rest``; False at the end of the file."""
        if self._eof:
            return False
        data = _read_block(self.path, self._f, self.block_bytes)
        self._read += len(data)
        if self._read > MAX_STREAM_BYTES:
            raise TraceFormatError(
                self.path, None, f"more than {MAX_STREAM_BYTES // 2**30} GiB of text"
            )
        if not data:
            self._eof = True
            return False
        self._rest += data
        return True

    def _text(self, raw: bytes, first_line: int) -> str:
        _check_line_lengths(self.path, raw, first_line)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = first_line + raw.count(b"\n", 0, exc.start)
            raise TraceFormatError(
                self.path, line, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})"
            ) from None
        return text.replace("\r\n", "\n")

    def _next_lines(self) -> tuple[str, int] | None:
        """Whole lines of the next block as text and the file line of the first one."""
        while len(self._rest) < self.block_bytes and self._more():
            # A line that never ends (a gzip bomb of one character) fails here, early.
            if len(self._rest) - (self._rest.rfind(b"\n") + 1) > MAX_LINE_CHARS:
                _check_line_lengths(self.path, self._rest, self._line)
        if not self._rest:
            return None
        # Up to the last line break (at the end of the file: everything).
        cut = len(self._rest) if self._eof else self._rest.rfind(b"\n") + 1
        raw, self._rest = self._rest[:cut], self._rest[cut:]
        first = self._line
        self._line += raw.count(b"\n")
        return self._text(raw, first), first

    def _start(self) -> None:
        # The preamble (metadata, header) must fit in the first block.
        got = self._next_lines()
        text = "" if got is None else got[0]
        if text.startswith("\ufeff"):
            text = text[1:]
        pre = _read_preamble(self.path, text)
        index = _check_names(self.path, pre, ("t", *ACC_COLUMNS))
        gyro = [c for c in GYRO_COLUMNS if c in index]
        if gyro and len(gyro) != 3:
            missing = [c for c in GYRO_COLUMNS if c not in index]
            raise TraceFormatError(
                self.path, pre.header_line,
                f"gyro columns must be all of gx,gy,gz or none (missing {','.join(missing)})",
            )
        self.meta = pre.meta
        self._names = pre.names
        self._cols = [index[c] for c in ("t", *ACC_COLUMNS, *(GYRO_COLUMNS if gyro else ()))]
        self._header_line = pre.header_line
        self._prev_t = -math.inf
        self._prev_line = 0
        self._t_first: float | None = None
        self._checked_rate = False
        self._pending = self._parse(pre.body, pre.header_line + 1)
        if self._pending is None or not len(self._pending):
            raise TraceFormatError(self.path, pre.header_line, "no data rows after the header")
        self.t_first = float(self._pending[0, 0])

    def _parse(self, body: str, first_line: int) -> np.ndarray | None:
        """Rows of one block (validated), or None if it holds no data rows."""
        pre = _Preamble(self.meta, self._names, first_line - 1, body)
        data = _fast_parse(body, len(self._names), self._cols)
        if data is None:
            data = _slow_parse(self.path, pre, self._cols)
        if not len(data):
            return None
        if data[0, 0] <= self._prev_t:
            line = first_line + _leading_blank_lines(body)
            raise TraceFormatError(
                self.path, line, f"t not strictly increasing: {float(data[0, 0])!r} after "
                f"{self._prev_t!r} on line {self._prev_line}",
            )
        self._prev_t = float(data[-1, 0])
        self._prev_line = _last_data_line(pre)
        if not self._checked_rate and len(data) >= 2:
            self._checked_rate = True
            dt = median_interval(data[:, 0])
            rate = 1.0 / dt
            if not (MIN_RATE_HZ * (1 - RATE_TOLERANCE) <= rate
                    <= MAX_RATE_HZ * (1 + RATE_TOLERANCE)):
                raise TraceFormatError(
                    self.path, self._header_line + 1 + _leading_blank_lines(body),
                    f"sample rate {rate:.4g} Hz (median interval {dt:.4g} s) is outside "
                    f"{MIN_RATE_HZ:g}-{MAX_RATE_HZ:g} Hz",
                )
        return data

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        # One block of look-ahead: the last block is known to be last, so the duration
        # check (like read_trace's) comes before it is handed out.
        while self._pending is not None:
            nxt = None
            while nxt is None:
                got = self._next_lines()
                if got is None:
                    break
                nxt = self._parse(*got)
            block = self._pending
            if nxt is None:
                duration = float(block[-1, 0]) - float(self.t_first)
                if duration < MIN_DURATION_S or not self._checked_rate:
                    raise TraceFormatError(
                        self.path, self._prev_line,
                        f"too few samples: spanning {duration:.3g} s "
                        f"(need at least {MIN_DURATION_S:g} s)",
                    )
            self._pending = nxt
            yield np.ascontiguousarray(block[:, 0]), np.ascontiguousarray(block[:, 1:4])


def _format_meta(meta: dict[str, str]) -> list[str]:
    out = []
    for key, value in meta.items():
        value = str(value)
        if not _META_RE.match(f"#{key}:"):
            raise ValueError(f"metadata key {key!r} is not identifier-like")
        if "\n" in value or "\r" in value:
            raise ValueError(f"metadata value for {key!r} contains a line break")
        out.append(f"# {key}: {value}\n")
    return out


def _write_text(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    if path.name.lower().endswith(".gz"):
        # mtime=0 keeps the output byte-identical across runs (reproducible fixtures).
        data = gzip.compress(data, compresslevel=6, mtime=0)
    path.write_bytes(data)


def write_trace(path: str | Path, trace: Trace, *, decimals: int = 5) -> None:
    """Write ``trace`` as CSV (gzip-compressed if ``path`` ends in ``.gz``).

    Metadata comes from ``trace.meta``. ``acc``/``gyro`` are written with ``decimals``
    decimals; ``t`` always with at least 6 (microseconds) so that rounding can never
    make it non-increasing. Raises ``ValueError`` for a trace that could not be read back
    (shape mismatch, non-finite values, t not strictly increasing).
    """
    path = Path(path)
    t = np.asarray(trace.t, dtype=np.float64)
    acc = np.asarray(trace.acc, dtype=np.float64)
    n = len(t)
    if t.ndim != 1 or acc.shape != (n, 3):
        raise ValueError(f"t must be (n,) and acc (n, 3); got {t.shape} and {acc.shape}")
    parts = [t[:, None], acc]
    header = ["t", *ACC_COLUMNS]
    if trace.gyro is not None:
        gyro = np.asarray(trace.gyro, dtype=np.float64)
        if gyro.shape != (n, 3):
            raise ValueError(f"gyro must be (n, 3); got {gyro.shape}")
        parts.append(gyro)
        header += GYRO_COLUMNS
    data = np.hstack(parts)
    if not np.isfinite(data).all():
        raise ValueError("trace contains NaN or infinite values")
    if n > 1 and not np.all(np.diff(t) > 0):
        raise ValueError("t must be strictly increasing")
    t_decimals = max(decimals, 6)
    if n > 1 and np.any(np.diff(np.round(t, t_decimals)) <= 0):
        raise ValueError(f"t is not strictly increasing once rounded to {t_decimals} decimals")
    row_fmt = ",".join([f"%.{t_decimals}f"] + [f"%.{decimals}f"] * (data.shape[1] - 1))
    # "%"-formatting tuples is ~2x faster than np.savetxt, which does the same per row.
    lines = "\n".join(map(row_fmt.__mod__, map(tuple, data.tolist())))
    text = "".join(_format_meta(trace.meta)) + ",".join(header) + "\n"
    if n:
        text += lines + "\n"
    _write_text(path, text)


# --------------------------------------------------------------------------- labels


def labels_path_for(trace_path: str | Path) -> Path:
    """Sidecar path: ``NAME.csv`` / ``NAME.csv.gz`` -> ``NAME.labels.csv`` (same folder)."""
    p = Path(trace_path)
    name = p.name
    for suffix in (".csv.gz", ".csv", ".gz"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return p.with_name(name + ".labels.csv")


def read_labels(path: str | Path) -> list[Label]:
    """Read a ground-truth label file (``start,end,label``), in file order."""
    path = Path(path)
    text = _read_text(path)
    pre = _read_preamble(path, text)
    index = _check_names(path, pre, LABEL_COLUMNS)
    labels: list[Label] = []
    for lineno, line in _body_lines(path, pre):
        try:
            fields = next(csv.reader([line], strict=True))
        except csv.Error as exc:
            raise TraceFormatError(path, lineno, f"bad CSV quoting ({exc})") from None
        if len(fields) != len(pre.names):
            raise TraceFormatError(
                path, lineno, f"expected {len(pre.names)} fields, got {len(fields)}"
            )
        bounds = []
        for name in ("start", "end"):
            raw = fields[index[name]]
            value = _parse_number(raw)
            if value is None or not math.isfinite(value):
                raise TraceFormatError(
                    path, lineno, f"{name}: not a finite number: {raw.strip()!r}"
                )
            bounds.append(value)
        start, end = bounds
        if end <= start:
            raise TraceFormatError(path, lineno, f"end ({end:g}) must be after start ({start:g})")
        label = fields[index["label"]].strip()
        if not label:
            raise TraceFormatError(path, lineno, "empty label")
        labels.append(Label(start, end, label))
    return labels


def write_labels(path: str | Path, labels: Iterable[Label]) -> None:
    """Write labels as ``start,end,label`` CSV (exact float round trip)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(LABEL_COLUMNS)
    for lab in labels:
        start, end = float(lab.start), float(lab.end)
        if not (math.isfinite(start) and math.isfinite(end)) or end <= start:
            raise ValueError(f"bad label interval {lab!r}: need finite start < end")
        text = lab.label.strip()
        if not text or "\n" in text or "\r" in text or text.startswith("#"):
            raise ValueError(f"bad label text {lab.label!r}")
        # repr() of a float is the shortest string that reads back to the same float.
        writer.writerow([repr(start), repr(end), text])
    _write_text(Path(path), buf.getvalue())


def load_labels_for(trace_path: str | Path) -> list[Label] | None:
    """Labels from the sidecar of ``trace_path``, or None if there is no sidecar."""
    sidecar = labels_path_for(trace_path)
    if not sidecar.is_file():
        return None
    return read_labels(sidecar)
