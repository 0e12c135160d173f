"""The HTML report, rendered by a real headless Chromium: DOM and screenshot pixels.

Chromium (Debian package ``chromium``) loads the file offline; the test asserts on the
DOM it built (cluster rows, shaded SVG rects carrying the cluster counts, the trend with
the caregiver's marker, the disclaimer) and on the pixels of its screenshot (the cluster
shading colour is painted for a night with spasm-like clusters, and not for a quiet one).
Under ``CI=true`` a missing chromium fails; elsewhere the browser tests skip.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from records_data import build_store
from tooling import require_tool

from spasmwatch.host.cli.main import main
from spasmwatch.host.monitor.store import Store
from spasmwatch.host.records.annotations import add_annotation, add_marker, markers
from spasmwatch.host.records.export import cluster_highest_alert
from spasmwatch.host.records.nights import find_nights
from spasmwatch.host.records.report import CLUSTER_RGB, SPASM_COLOUR, render_report, write_report

UTC = dt.UTC


def need(tool: str) -> str:
    return require_tool(tool, f"Debian: apt-get install {tool} (see .ci/run)")


def chromium(tmp: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = need("chromium")
    cmd = [
        exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp / 'chromium-profile'}", "--hide-scrollbars", *args, url,
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return res


# -- a tiny PNG decoder (stdlib): 8-bit RGB/RGBA, non-interlaced, as Chromium writes ----


def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """-> (width, height, channels, raw pixel rows without filter bytes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and ctype in (2, 6), (depth, ctype)
            channels = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * channels
    out = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        out += line
        prev = line
    return width, height, channels, bytes(out)


def count_colour(png: Path, rgb: tuple[int, int, int], tol: int = 4) -> int:
    w, h, ch, px = decode_png(png.read_bytes())
    n = 0
    r0, g0, b0 = rgb
    for i in range(0, w * h * ch, ch):
        if abs(px[i] - r0) <= tol and abs(px[i + 1] - g0) <= tol and abs(px[i + 2] - b0) <= tol:
            n += 1
    return n


class Dom(HTMLParser):
    """Elements of the dumped DOM as (tag, attrs) plus the page's text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.texts: list[str] = []
        self._stack: list[dict[str, str]] = []
        self._in_style = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        self._stack.append(self.elements[-1][1])
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if data.strip() and not self._in_style:
            cls = self._stack[-1].get("class", "") if self._stack else ""
            self.texts.append(f"{cls}\t{data.strip()}")

    def find(self, tag: str, cls: str) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag and cls in a.get("class", "").split()]

    @property
    def text(self) -> str:
        return "\n".join(t.split("\t", 1)[1] for t in self.texts)


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "monitor.db"
    build_store(path)
    with Store(path) as s:
        night = find_nights(s, tz=UTC)[0]
        cl = next(c for c in night.clusters if c.n_spasm_like >= 3)
        add_annotation(s, "cluster", cl.id, "real", "arms up, head down", "VID_7.mp4 0:42",
                       now=1.78e9)
        add_marker(s, "2026-03-02", "started treatment X", now=1.78e9)
    return path


def test_report_renders_in_chromium_with_clusters_shaded_and_counted(
    db: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rep"
    code = main(["report", "--db", str(db), "-o", str(out), "--tz", "UTC"], out=io.StringIO())
    assert code == 0
    page = out / "report.html"
    dom = Dom(chromium(tmp_path, page.as_uri(), "--dump-dom").stdout)
    with Store(db) as s:
        nights = find_nights(s, tz=UTC)
    assert [a["data-night"] for a in dom.find("section", "night")] == [n.key for n in nights]
    first = nights[0]
    spasm_clusters = [c for c in first.clusters if c.n_spasm_like >= 1]
    assert len(spasm_clusters) >= 2
    # each spasm-like cluster is shaded on the timeline with its count as a label,
    # and drawn again in a close-up with the intervals between its spasm-like movements
    shades = {int(a["data-cluster"]): int(a["data-count"]) for a in dom.find("rect",
                                                                          "cluster-shade")}
    for c in spasm_clusters:
        assert shades[c.id] == c.n_spasm_like
    label_texts = [t.split("\t")[1] for t in dom.texts if t.startswith("cluster-label\t")]
    for c in spasm_clusters:
        assert str(c.n_spasm_like) in label_texts
    intervals = [t.split("\t")[1] for t in dom.texts if t.startswith("interval\t")]
    assert intervals and all(re.fullmatch(r"\d+ s", t) for t in intervals)
    # one table row per cluster with more than one event or any spasm-like movement
    shown = sum(1 for n in nights for c in n.clusters if c.n_events >= 2 or c.n_spasm_like)
    assert len(dom.find("tr", "cluster-row")) == shown
    alarm_rows = [a for a in dom.find("tr", "cluster-row") if "alarm" in a["class"]]
    alarmed = sum(1 for n in nights for lvl in cluster_highest_alert(n).values()
                  if lvl == "alarm")
    assert len(alarm_rows) == alarmed >= 2
    # across nights: one bar per night, a no-record slot for the missing day, the marker
    bars = dom.find("rect", "trend-bar")
    assert [b["data-date"] for b in bars] == [n.date for n in nights]
    assert [int(b["data-spasm-like"]) for b in bars] == [n.stats()["spasm_like"] for n in nights]
    assert [a["data-date"] for a in dom.find("text", "no-record")] == ["2026-03-04"]
    assert [a["data-date"] for a in dom.find("line", "marker")] == ["2026-03-02"]
    text = dom.text
    assert "started treatment X" in text and "arms up, head down" in text
    assert "not a medical device" in text and "does not diagnose" in text
    # wall-clock times of the first night's first spasm-like cluster appear in its row
    c0 = spasm_clusters[0]
    assert dt.datetime.fromtimestamp(c0.start, UTC).strftime("%H:%M:%S") in text
    # the CSV tables are written next to the report
    assert (out / "clusters.csv").read_text().count("\n") == len(
        [c for n in nights for c in n.clusters]) + 1


def test_screenshot_shows_the_cluster_shading(db: Path, tmp_path: Path) -> None:
    with Store(db) as s:
        nights = {n.key: n for n in find_nights(s, tz=UTC)}
        marks = markers(s)
    counts = {}
    for key in ("2026-03-01", "2026-03-03"):
        folder = tmp_path / key
        write_report([nights[key]], marks, folder, tz=UTC)
        shot = folder / "shot.png"
        chromium(tmp_path, (folder / "report.html").as_uri(), "--window-size=1100,1300",
                 f"--screenshot={shot}")
        counts[key] = count_colour(shot, CLUSTER_RGB)
        if key == "2026-03-01":
            red = tuple(int(SPASM_COLOUR[i:i + 2], 16) for i in (1, 3, 5))
            assert count_colour(shot, red) > 200  # spasm-like ticks are painted
    # 2026-03-01 has spasm-like clusters: solid bands above the events lane. The quiet
    # night only shows the legend swatch (12 x 12 CSS px) in that colour.
    # (The legend swatch is ~130 px; one shaded cluster band adds several hundred.)
    assert counts["2026-03-01"] > 2 * counts["2026-03-03"] + 300, counts
    assert counts["2026-03-03"] < 400, counts


def test_report_is_self_contained_and_descriptive(db: Path) -> None:
    with Store(db) as s:
        page = render_report(find_nights(s, tz=UTC), markers(s), tz=UTC)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    urls = set(re.findall(r"https?://[^\s\"')]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    # movements are described, never diagnosed (visible text, not CSS class names)
    text = Dom(page).text
    assert not re.search(r"\bspasms?\b(?!-like)", text, re.I), re.findall(
        r".{30}\bspasms?\b(?!-like).{30}", text, re.I)
    for word in ("epilep", "west syndrome", "infantile spasm", "diagnosis:"):
        assert word not in text.lower()
    assert "monitoring aid, not a medical device" in text


def test_report_on_an_empty_selection_and_a_trace_clock_store(tmp_path: Path) -> None:
    page = render_report([], [], tz=UTC)
    assert "No nights with data" in page
    from records_data import replay_into

    with Store(tmp_path / "t.db") as s:
        replay_into(s, "small-cluster", 1, 0.0)
        nights = find_nights(s)
    page = render_report(nights, [], tz=UTC)
    assert "replayed recording" in page and 'data-night="trace"' in page


HOSTILE = '<script>alert("x")</script><img src=x onerror="alert(1)"> & "quotes"'


def test_hostile_caregiver_text_is_escaped_everywhere(db: Path, tmp_path: Path) -> None:
    """Notes, video references and markers are the caregiver's free text: the templates
    escape them (autoescape), in HTML and in the SVG trend alike."""
    copy = tmp_path / "hostile.db"
    with Store(db) as s:
        s.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    copy.write_bytes(db.read_bytes())
    with Store(copy) as s:
        night = find_nights(s, tz=UTC)[0]
        cl = next(c for c in night.clusters if c.n_spasm_like >= 3)
        add_annotation(s, "cluster", cl.id, "unsure", HOSTILE, HOSTILE, now=1.79e9)
        add_marker(s, "2026-03-01", HOSTILE, now=1.79e9)
        page = render_report(find_nights(s, tz=UTC), markers(s), tz=UTC)
    assert "<script" not in page and "<img" not in page and 'onerror="' not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "&amp; &#34;quotes&#34;" in page
    # the browser shows the text as typed, and builds no element from it
    out = tmp_path / "r"
    out.mkdir()
    (out / "report.html").write_text(page, encoding="utf-8")
    dom = Dom(chromium(tmp_path, (out / "report.html").as_uri(), "--dump-dom").stdout)
    assert not [t for t, _ in dom.elements if t in ("script", "img")]
    shown = dom.text
    assert shown.count('<script>alert("x")</script>') >= 3  # label note, video, marker list
    assert HOSTILE[:40] in [t.split("\t", 1)[1] for t in dom.texts
                            if t.startswith("marker-label\t")][0]


def test_trend_markers_sit_on_their_bars(db: Path) -> None:
    with Store(db) as s:
        page = render_report(find_nights(s, tz=UTC), markers(s), tz=UTC)
    dom = Dom(page)
    bars = {b["data-date"]: b for b in dom.find("rect", "trend-bar")}
    [marker] = dom.find("line", "marker")
    bar = bars[marker["data-date"]]
    centre = float(bar["x"]) + float(bar["width"]) / 2
    assert float(marker["x1"]) == pytest.approx(centre, abs=0.1)
    assert float(bar["x"]) < float(marker["x1"]) < float(bar["x"]) + float(bar["width"])


def test_each_alarm_shows_its_deliveries_and_acknowledgement(db: Path, tmp_path: Path) -> None:
    from spasmwatch.host.alerts.alarm_state import Notice, TransitionLog
    from spasmwatch.host.alerts.channels.base import DeliveryResult
    from spasmwatch.host.alerts.delivery import DeliveryLog
    from spasmwatch.host.records.export import build_tables

    copy = tmp_path / "acks.db"
    with Store(db) as s:
        s.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    copy.write_bytes(db.read_bytes())
    with Store(copy) as s:
        night = find_nights(s, tz=UTC)[0]
        first, second = [a for a in night.alerts if a.level == "alarm"][:2]
        log, transitions = DeliveryLog(s.connection), TransitionLog(s.connection)
        n = Notice(first.t, "alarm", first.kind, "ALARM", first.message)
        log.add(first.t + 0.4, n, DeliveryResult("audio", True, "played"))
        log.add(first.t + 0.9, n, DeliveryResult("apprise", False, "ntfy: HTTP 503"))
        log.add(first.t + 60.2, Notice(first.t, "alarm", first.kind, "ALARM", first.message,
                                       repeat=1), DeliveryResult("audio", True, "played"))
        transitions.add(first.t, "ok", "alarm", "alarm", "monitor", {})
        transitions.add(first.t + 75.0, "alarm", "ok", "acknowledged", "web", {})
        nights = find_nights(s, tz=UTC)
    page = render_report(nights, [], tz=UTC)
    dom = Dom(page)
    rows = dom.find("tr", "alarm-row")
    assert len(rows) == sum(st.stats()["alarms"] for st in nights) >= 2
    texts = [t.split("\t", 1) for t in dom.texts]
    ok = [v for c, v in texts if c == "delivery delivery-ok"]
    failed = [v for c, v in texts if c == "delivery delivery-failed"]
    clock = dt.datetime.fromtimestamp(first.t + 0.4, UTC).strftime("%H:%M:%S")
    assert ok[0] == f"{clock} audio: delivered" and "(repeat 1)" in ok[1]
    assert failed == [dt.datetime.fromtimestamp(first.t + 0.9, UTC).strftime("%H:%M:%S")
                      + " apprise: failed (ntfy: HTTP 503)"]
    acks = [v for c, v in texts if c == "ack"]
    ack_clock = dt.datetime.fromtimestamp(first.t + 75.0, UTC).strftime("%H:%M:%S")
    assert acks[0] == f"{ack_clock} (0:01:15 after the alarm, by web)"
    assert acks[1] == "not acknowledged"  # the second alarm: nobody answered
    assert [v for c, v in texts if c == "delivery delivery-none"]  # and nothing was sent
    alarms = build_tables(nights[:1], [], UTC)["alarms"]
    assert alarms[0]["acknowledged_after_s"] == 75.0 and alarms[0]["acknowledged_by"] == "web"
    assert alarms[0]["delivered"] == 2 and alarms[0]["failed"] == 1
    assert alarms[0]["deliveries"] == "audio delivered; apprise failed; audio delivered"
    assert second.t > first.t and alarms[1]["acknowledged"] == ""
