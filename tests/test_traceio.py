"""Tests for trace / label file reading and writing (spasmwatch.simulator.traceio)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spasmwatch.simulator import traceio
from spasmwatch.simulator.traceio import (
    Label,
    Trace,
    TraceFormatError,
    labels_path_for,
    load_labels_for,
    read_labels,
    read_trace,
    write_labels,
    write_trace,
)

RATE = 50.0
N = 151  # 3 s at 50 Hz: comfortably above the 2 s minimum


def make_trace(n: int = N, rate: float = RATE, gyro: bool = False, seed: int = 0) -> Trace:
    rng = np.random.default_rng(seed)
    t = 12.5 + np.arange(n) / rate  # traces need not start at 0
    acc = rng.normal(0.0, 0.3, (n, 3)) + [0.0, 0.0, 1.0]
    g = rng.normal(0.0, 50.0, (n, 3)) if gyro else None
    meta = {"rate_hz": f"{rate:g}", "range_g": "4", "posture": "supine", "source": "unit: test"}
    return Trace(t=t, acc=acc, gyro=g, meta=meta)


def data_rows(n: int = N, rate: float = RATE) -> list[str]:
    """CSV rows "t,ax,ay,az" for a simple valid trace."""
    return [f"{i / rate:.5f},0.01,-0.02,1.0" for i in range(n)]


def write_lines(path: Path, lines: list[str], eol: str = "\n") -> Path:
    path.write_bytes(eol.join(lines).encode("utf-8") + eol.encode())
    return path


def error_of(path: Path) -> TraceFormatError:
    with pytest.raises(TraceFormatError) as info:
        read_trace(path)
    return info.value


def assert_error_at(err: TraceFormatError, path: Path, line: int | None, pattern: str) -> None:
    msg = str(err)
    assert "\n" not in msg
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    assert msg.startswith(where), msg
    assert err.line == line
    assert re.search(pattern, err.problem), msg


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", ["rec.csv", "rec.csv.gz"])
@pytest.mark.parametrize("gyro", [False, True])
def test_round_trip(tmp_path: Path, name: str, gyro: bool) -> None:
    tr = make_trace(gyro=gyro)
    path = tmp_path / name
    write_trace(path, tr)
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    back = read_trace(path)
    np.testing.assert_allclose(back.t, tr.t, atol=1e-6)
    np.testing.assert_allclose(back.acc, tr.acc, atol=1e-5 + 1e-12)
    if gyro:
        assert back.gyro is not None and tr.gyro is not None
        np.testing.assert_allclose(back.gyro, tr.gyro, atol=1e-5 + 1e-12)
    else:
        assert back.gyro is None
    assert back.meta == tr.meta
    assert back.source == str(path)
    assert back.acc.shape == (N, 3) and back.t.dtype == np.float64
    assert back.duration == pytest.approx(3.0)


def test_write_decimals(tmp_path: Path) -> None:
    tr = make_trace()
    write_trace(tmp_path / "a.csv", tr, decimals=2)
    back = read_trace(tmp_path / "a.csv")
    np.testing.assert_allclose(back.acc, np.round(tr.acc, 2), atol=1e-12)
    # t keeps microsecond resolution whatever the data precision
    np.testing.assert_allclose(back.t, tr.t, atol=1e-6)


def test_write_rejects_unreadable_traces(tmp_path: Path) -> None:
    tr = make_trace()
    bad_t = Trace(t=tr.t[::-1].copy(), acc=tr.acc)
    with pytest.raises(ValueError, match="increasing"):
        write_trace(tmp_path / "a.csv", bad_t)
    nan_acc = tr.acc.copy()
    nan_acc[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_trace(tmp_path / "a.csv", Trace(t=tr.t, acc=nan_acc))
    with pytest.raises(ValueError, match="acc"):
        write_trace(tmp_path / "a.csv", Trace(t=tr.t, acc=tr.acc[:, :2]))
    with pytest.raises(ValueError, match="key"):
        write_trace(tmp_path / "a.csv", Trace(t=tr.t, acc=tr.acc, meta={"bad key": "x"}))
    with pytest.raises(ValueError, match="line break"):
        write_trace(tmp_path / "a.csv", Trace(t=tr.t, acc=tr.acc, meta={"k": "a\nb"}))


def test_gzip_detected_by_magic_not_suffix(tmp_path: Path) -> None:
    text = "\n".join(["t,ax,ay,az", *data_rows()]) + "\n"
    (tmp_path / "zipped.csv").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "plain.csv.gz").write_text(text)
    a = read_trace(tmp_path / "zipped.csv")
    b = read_trace(tmp_path / "plain.csv.gz")
    np.testing.assert_array_equal(a.acc, b.acc)
    assert len(a.t) == N


def test_outside_trace_conventions(tmp_path: Path) -> None:
    """Column order free, extra (even non-numeric) columns ignored, CRLF, BOM, blank
    lines, case-insensitive names, comments without a key, t not matching rate_hz."""
    lines = ["# rate_hz: 100", "# recorded at 12:30 in the lab", "#", ""]
    lines.append("AZ, note ,t,ay,ax,temp")
    for i in range(N):
        lines.append(f"1.0,free text {i},{i / RATE:.5f},{i * 0.001:.3f},-0.5,{20 + i}")
        if i == 40:
            lines.append("")  # a blank line inside the data
    path = tmp_path / "outside.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n").encode())
    tr = read_trace(path)
    assert tr.meta == {"rate_hz": "100"}  # the nominal rate is kept, t is authoritative
    assert len(tr.t) == N
    np.testing.assert_allclose(tr.acc[:, 0], -0.5)
    np.testing.assert_allclose(tr.acc[:, 1], np.arange(N) * 0.001)
    np.testing.assert_allclose(tr.acc[:, 2], 1.0)


def test_gaps_and_jitter_accepted(tmp_path: Path) -> None:
    t = np.arange(400) / 100.0
    t = np.delete(t, np.arange(100, 180))  # a 0.8 s dropout
    t += np.random.default_rng(1).uniform(-2e-4, 2e-4, len(t))
    tr = Trace(t=t, acc=np.zeros((len(t), 3)))
    write_trace(tmp_path / "g.csv", tr)
    np.testing.assert_allclose(read_trace(tmp_path / "g.csv").t, t, atol=1e-6)


@pytest.mark.parametrize("rate", [25.0, 100.0, 400.0])
def test_rate_limits_accepted(tmp_path: Path, rate: float) -> None:
    n = int(3 * rate) + 1
    write_trace(tmp_path / "r.csv", Trace(t=np.arange(n) / rate, acc=np.zeros((n, 3))))
    assert len(read_trace(tmp_path / "r.csv").t) == n


def test_400hz_with_millisecond_timestamps(tmp_path: Path) -> None:
    # Single steps alternate 2 ms / 3 ms here; the rate must still be judged as 400 Hz.
    rows = [f"{round(i / 400, 3):.3f},0,0,1" for i in range(1201)]
    tr = read_trace(write_lines(tmp_path / "ms.csv", ["t,ax,ay,az", *rows]))
    assert len(tr.t) == 1201


# --------------------------------------------------------------------------- malformed


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "e.csv"
    p.write_bytes(b"")
    assert_error_at(error_of(p), p, 1, "empty file")
    p.write_bytes(b"\n\n  \n")
    assert_error_at(error_of(p), p, 1, "empty file")


def test_only_metadata(tmp_path: Path) -> None:
    p = write_lines(tmp_path / "m.csv", ["# rate_hz: 50", "# posture: prone"])
    assert_error_at(error_of(p), p, 2, "missing header")


def test_missing_header(tmp_path: Path) -> None:
    p = write_lines(tmp_path / "h.csv", ["# rate_hz: 50", *data_rows()])
    assert_error_at(error_of(p), p, 2, "missing header row")


def test_missing_column(tmp_path: Path) -> None:
    rows = [r.rsplit(",", 1)[0] for r in data_rows()]
    p = write_lines(tmp_path / "c.csv", ["", "t,ax,ay", *rows])
    assert_error_at(error_of(p), p, 2, "missing required column.*az")


def test_duplicate_column(tmp_path: Path) -> None:
    p = write_lines(tmp_path / "d.csv", ["t,ax,ay,az,AX", *(r + ",0" for r in data_rows())])
    assert_error_at(error_of(p), p, 1, "duplicate column 'ax'")


def test_partial_gyro(tmp_path: Path) -> None:
    p = write_lines(tmp_path / "g.csv", ["t,ax,ay,az,gx,gy", *(r + ",0,0" for r in data_rows())])
    assert_error_at(error_of(p), p, 1, "gyro.*missing gz")


def test_duplicate_metadata_key(tmp_path: Path) -> None:
    lines = ["# rate_hz: 50", "# posture: prone", "# rate_hz: 100", "t,ax,ay,az", *data_rows()]
    p = write_lines(tmp_path / "k.csv", lines)
    assert_error_at(error_of(p), p, 3, "duplicate metadata key 'rate_hz'.*line 1")


# (row index into data_rows, replacement row, expected problem); header on line 3.
BAD_ROWS = [
    (10, "0.2,0.01,-0.02", "expected 4 fields, got 3"),
    (11, "0.22,0.01,-0.02,1.0,7", "expected 4 fields, got 5"),
    (12, "0.24,0.01,abc,1.0", "'ay'.*not a number.*'abc'"),
    (13, "0.26,0.01,,1.0", "'ay'.*not a number"),
    (14, "0.28,0.01,nan,1.0", "'ay'.*non-finite.*'nan'"),
    (15, "0.30,inf,0,1.0", "'ax'.*non-finite"),
    (16, "0.32,1_0,0,1.0", "'ax'.*not a number"),
    (17, "0.32,0,0,1.0", r"t not strictly increasing: 0\.32 after 0\.32 on line 20"),
    (18, "0.1,0,0,1.0", r"t not strictly increasing: 0\.1 after 0\.34 on line 21"),
    (19, "# reconnect", "comment line after the header"),
]


@pytest.mark.parametrize(("row", "replacement", "problem"), BAD_ROWS)
@pytest.mark.parametrize("gz", [False, True])
def test_bad_data_row(tmp_path: Path, row: int, replacement: str, problem: str, gz: bool) -> None:
    rows = data_rows()
    rows[row] = replacement
    lines = ["# rate_hz: 50", "", "t,ax,ay,az", *rows]
    p = tmp_path / ("bad.csv.gz" if gz else "bad.csv")
    data = ("\n".join(lines) + "\n").encode()
    p.write_bytes(gzip.compress(data) if gz else data)
    # data row i sits on file line i + 4 (two metadata/blank lines, header, 1-based)
    assert_error_at(error_of(p), p, row + 4, problem)


def test_bad_row_reported_with_crlf(tmp_path: Path) -> None:
    rows = data_rows()
    rows[100] = "2.0,0,x,1"
    p = write_lines(tmp_path / "w.csv", ["t,ax,ay,az", *rows], eol="\r\n")
    assert_error_at(error_of(p), p, 102, "'ay'.*not a number")


def test_garbage_in_ignored_column_is_fine(tmp_path: Path) -> None:
    rows = [r + (",nan" if i % 2 else ",n/a") for i, r in enumerate(data_rows())]
    tr = read_trace(write_lines(tmp_path / "x.csv", ["t,ax,ay,az,extra", *rows]))
    assert len(tr.t) == N


def test_no_data_rows(tmp_path: Path) -> None:
    p = write_lines(tmp_path / "n.csv", ["# a: b", "t,ax,ay,az", "", ""])
    assert_error_at(error_of(p), p, 2, "no data rows")


def test_too_short(tmp_path: Path) -> None:
    p = write_lines(tmp_path / "s.csv", ["t,ax,ay,az", *data_rows(n=100), ""])
    # 100 rows at 50 Hz span 1.98 s; the last data row is on line 101
    assert_error_at(error_of(p), p, 101, "too few samples.*1.98 s")
    p = write_lines(tmp_path / "one.csv", ["t,ax,ay,az", "0,0,0,1"])
    assert_error_at(error_of(p), p, 2, "too few samples: 1 row")


@pytest.mark.parametrize(("rate", "shown"), [(20.0, "20 Hz"), (500.0, "500 Hz"), (1.0, "1 Hz")])
def test_rate_out_of_range(tmp_path: Path, rate: float, shown: str) -> None:
    n = int(4 * rate) + 1
    rows = [f"{i / rate:.6f},0,0,1" for i in range(n)]
    p = write_lines(tmp_path / "r.csv", ["# rate_hz: 50", "t,ax,ay,az", "", *rows])
    # reported on the first data row
    assert_error_at(error_of(p), p, 4, f"sample rate {shown}.*outside 25-400 Hz")


def test_bad_gzip(tmp_path: Path) -> None:
    p = tmp_path / "b.csv.gz"
    p.write_bytes(b"\x1f\x8b\x08\x00garbage-not-deflate")
    assert_error_at(error_of(p), p, None, "bad gzip")
    good = gzip.compress(("\n".join(["t,ax,ay,az", *data_rows()]) + "\n").encode())
    p.write_bytes(good[: len(good) // 2])  # truncated download
    assert_error_at(error_of(p), p, None, "bad gzip")


def test_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "u.csv"
    text = "\n".join(["# posture: supine", "t,ax,ay,az", *data_rows()]) + "\n"
    raw = bytearray(text.encode())
    raw[raw.index(b"\n0.06000") + 3] = 0xFF  # inside data row 3 -> line 6
    p.write_bytes(bytes(raw))
    assert_error_at(error_of(p), p, 6, "not valid UTF-8")


def test_missing_file_is_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_trace(tmp_path / "nope.csv")


# The fast numpy path and the line-by-line parser must agree on every input: the fast
# path may only accept files the reference parser accepts, with the same numbers.
JUNK = ["", " ", "x", "nan", ",", "1_0", "#", "\t", "-", "e", "1e400", "\u0661", ".", "\n", "\r"]


@settings(max_examples=150, deadline=None)
@given(
    row=st.integers(0, 30),
    pos=st.integers(0, 40),
    junk=st.sampled_from(JUNK),
    extra=st.booleans(),
)
def test_fast_and_slow_parsers_agree(row: int, pos: int, junk: str, extra: bool) -> None:
    header = "t,ax,ay,az" + (",note" if extra else "")
    rows = [f"{i / 50:.5f},0.125,-1.5,1e-3" + (",ok" if extra else "") for i in range(30)]
    rows[row % 30] = rows[row % 30][:pos] + junk + rows[row % 30][pos:]
    body = "\n".join(rows) + "\n"
    names = header.split(",")
    cols = [0, 1, 2, 3]
    pre = traceio._Preamble(meta={}, names=names, header_line=1, body=body)
    fast = traceio._fast_parse(body, len(names), cols)
    try:
        slow = traceio._slow_parse(Path("x.csv"), pre, cols)
    except TraceFormatError:
        assert fast is None
        return
    if fast is not None:
        np.testing.assert_array_equal(fast, slow)


# --------------------------------------------------------------------------- labels


def test_labels_path_for() -> None:
    assert labels_path_for("/d/night1.csv") == Path("/d/night1.labels.csv")
    assert labels_path_for(Path("/d/night1.csv.gz")) == Path("/d/night1.labels.csv")
    assert labels_path_for("rel/a.b.CSV") == Path("rel/a.b.labels.csv")


def test_labels_round_trip(tmp_path: Path) -> None:
    labels = [
        Label(1.0, 2.5, "spasm"),
        Label(0.1 + 0.2, 1 / 3, "jerk"),
        Label(10.0, 14.25, "burst"),
        Label(20.0, 21.0, "handling, by parent"),  # free text with a comma
        Label(30.0, 90.0, "rocking"),
    ]
    trace_path = tmp_path / "night.csv.gz"
    write_trace(trace_path, make_trace())
    assert load_labels_for(trace_path) is None
    write_labels(labels_path_for(trace_path), labels)
    assert load_labels_for(trace_path) == labels  # exact floats, file order
    assert read_labels(tmp_path / "night.labels.csv") == labels


def test_labels_header_only_is_empty_list(tmp_path: Path) -> None:
    write_labels(tmp_path / "x.labels.csv", [])
    assert read_labels(tmp_path / "x.labels.csv") == []


def test_labels_conventions(tmp_path: Path) -> None:
    p = write_lines(
        tmp_path / "c.labels.csv",
        ["# annotator: ab", "label,end,start,comment", "roll,5,4,", "", ' spasm ,7.5,7,"a, b"'],
        eol="\r\n",
    )
    assert read_labels(p) == [Label(4.0, 5.0, "roll"), Label(7.0, 7.5, "spasm")]


@pytest.mark.parametrize(
    ("lines", "line", "problem"),
    [
        ([], 1, "empty file"),
        (["start,end"], 1, "missing required column.*label"),
        (["start,end,label,end"], 1, "duplicate column 'end'"),
        (["start,end,label", "1,2,spasm", "3,3,jerk"], 3, r"end \(3\) must be after start"),
        (["start,end,label", "5,2,jerk"], 2, "must be after start"),
        (["start,end,label", "", "1,x,roll"], 3, "end: not a finite number"),
        (["start,end,label", "nan,2,roll"], 2, "start: not a finite number"),
        (["start,end,label", "1,2"], 2, "expected 3 fields, got 2"),
        (["start,end,label", "1,2,  "], 2, "empty label"),
        (["1,2,spasm"], 1, "missing header row"),
    ],
)
def test_bad_labels(tmp_path: Path, lines: list[str], line: int, problem: str) -> None:
    p = tmp_path / "bad.labels.csv"
    p.write_text("\n".join(lines) + ("\n" if lines else ""))
    with pytest.raises(TraceFormatError) as info:
        read_labels(p)
    assert_error_at(info.value, p, line, problem)


def test_write_labels_validates(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_labels(tmp_path / "l.csv", [Label(2.0, 1.0, "spasm")])
    with pytest.raises(ValueError):
        write_labels(tmp_path / "l.csv", [Label(1.0, 2.0, "")])
    with pytest.raises(ValueError):
        write_labels(tmp_path / "l.csv", [Label(1.0, float("inf"), "roll")])


# --------------------------------------------------------------------------- streaming


def _stream_rows(path: Path, block_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    with traceio.TraceStream(path, block_bytes=block_bytes) as ts:
        parts = list(ts)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@pytest.mark.parametrize("name", ["s.csv", "s.csv.gz"])
def test_trace_stream_reads_what_read_trace_reads(tmp_path: Path, name: str) -> None:
    rng = np.random.default_rng(5)
    n = 3000
    trace = traceio.Trace(t=np.arange(n) / 100.0, acc=rng.normal(size=(n, 3)),
                          meta={"rate_hz": "100"})
    path = tmp_path / name
    traceio.write_trace(path, trace)
    whole = traceio.read_trace(path)
    t, acc = _stream_rows(path, 10_000)  # many small blocks
    assert np.array_equal(t, whole.t) and np.array_equal(acc, whole.acc)
    with traceio.TraceStream(path) as ts:
        assert ts.meta == whole.meta and ts.t_first == whole.t[0]


def test_trace_stream_names_the_line_across_blocks(tmp_path: Path) -> None:
    lines = ["t,ax,ay,az"] + [f"{i / 100:.2f},0,0,1" for i in range(3000)]
    lines[2501] = "24.00,0,0,1"  # goes back in time, far from the first block
    path = tmp_path / "back.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(traceio.TraceFormatError) as exc:
        _stream_rows(path, 10_000)
    with pytest.raises(traceio.TraceFormatError) as whole:
        traceio.read_trace(path)
    assert str(exc.value) == str(whole.value)
    assert f"{path}:2502:" in str(exc.value)


def test_trace_stream_too_short_and_folder(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text("t,ax,ay,az\n0,0,0,1\n0.01,0,0,1\n")
    with pytest.raises(traceio.TraceFormatError, match="too few samples"):
        _stream_rows(path, 10_000)
    with pytest.raises(traceio.TraceFormatError, match="is a folder"):
        traceio.TraceStream(tmp_path)
    with pytest.raises(traceio.TraceFormatError, match="is a folder"):
        traceio.read_trace(tmp_path)


def test_an_endless_line_in_gzip_is_refused_early(tmp_path: Path) -> None:
    path = tmp_path / "bomb.csv.gz"
    with gzip.open(path, "wb") as f:
        for _ in range(64):
            f.write(b"1" * (1 << 20))
    for read in (traceio.read_trace, traceio.TraceStream):
        with pytest.raises(traceio.TraceFormatError, match="line longer than"):
            read(path)
