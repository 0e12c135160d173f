"""Build a monitor database with spasmwatch as of commit b00779b and print it as SQL.

How ``tests/data/monitor_b00779b.sql`` was made (kept so it can be made again): unpack
that commit (``git archive b00779b``) into ``old/repo``, make ``old/spasmwatch`` hold
the repo's ``spasmwatch/*.py`` and links ``firmware``, ``host``, ``simulator`` to the
old tree's folders (the installed package's layout), then

    cd old && PYTHONPATH=. python make_monitor_b00779b.py x.db > monitor_b00779b.sql

Only the old version's own code writes the tables (store, annotations, snippets, clips,
alarm transitions and deliveries), so the dump is what a real old database holds.
"""

import sqlite3
import sys

import spasmwatch
from spasmwatch.host.alerts.alarm_state import Notice, TransitionLog
from spasmwatch.host.alerts.channels.base import DeliveryResult
from spasmwatch.host.alerts.delivery import DeliveryLog
from spasmwatch.host.monitor.alerts import Alert
from spasmwatch.host.monitor.clustering import Cluster
from spasmwatch.host.monitor.records import Event, Status, Summary
from spasmwatch.host.monitor.store import Store
from spasmwatch.host.records.annotations import add_annotation, add_marker
from spasmwatch.host.records.snippets import add_snippet
from spasmwatch.host.records.video import add_clip

T0 = 1772391600.0  # 2026-03-01 19:00 UTC


def build(path: str) -> None:
    with Store(path) as s:
        # a short night: settling then asleep, a cluster of three spasm-like movements
        for i in range(12):
            s.add_summary("dev", Summary(
                seq=100 + i, t=T0 + 60 * (i + 1), period_s=60, active_s=5, events=1,
                spasm_like=0, peak_mg=300, mean_mg=20,
                state="settling" if i < 2 else "asleep", t_ms=60000 * (i + 1)))
        s.add_status("dev", Status(seq=200, t=T0 + 30, battery_mv=3900, flags=("charging",),
                                   flags_raw=1, buffer_pct=3, heap_kb=80, rate_hz=50,
                                   range_g=4, t_ms=30000))
        for k in range(3):
            t = T0 + 400 + 8 * k
            s.add_event("dev", Event(seq=300 + k, t=t, cls="spasm_like", state="asleep",
                                     peaks=2, duration_s=1.2, peak_mg=900, energy_mgs=400,
                                     tilt_mg=150, excursion_mg=500, still_s=3,
                                     t_ms=int((t - T0) * 1000)))
        s.upsert_cluster(Cluster(id=1, start=T0 + 400, end=T0 + 417.2, n_events=3,
                                 n_spasm_like=3, intervals_s=[8.0, 8.0],
                                 spasm_intervals_s=[8.0, 8.0], first_seq=300, last_seq=302,
                                 closed=True), "dev")
        aid = s.add_alert(Alert(T0 + 416.0, "alarm", "spasm_cluster", "3 spasm-like movements",
                                1, (300, 301, 302), {"n": 3}), "dev")
        s.add_counts("dev", {"lost": 2, "decode_error:crc": 1})
        add_annotation(s, "cluster", 1, "real", "arms up <b>twice</b>", "VID_1.mp4 0:10",
                       now=T0 + 9000)
        add_marker(s, "2026-03-01", "started treatment X", now=T0 + 9000)
        samples = [[0.0, 0.0, 1.0], [0.5, 0.1, 1.2], [0.0, 0.0, 1.0]]
        add_snippet(s, {"device": "dev", "alert_id": aid, "alert_t": T0 + 416.0,
                        "t": T0 + 386.0, "t_end": T0 + 416.0, "rate_hz": 50, "range_g": 4,
                        "expected": 3, "complete": True, "samples": samples})
        add_clip(s, T0 + 416.0, T0 + 386.0, T0 + 446.0, "clips/alarm.mp4", "/dev/video0")
        tl = TransitionLog(s.connection)
        tl.add(T0 + 416.0, "watching", "alarm", "spasm_cluster", "engine", {"cluster": 1})
        tl.add(T0 + 440.0, "alarm", "acknowledged", "ack", "web", {})
        dl = DeliveryLog(s.connection)
        n = Notice(T0 + 416.0, "alarm", "spasm_cluster", "Alarm", "3 spasm-like movements")
        dl.add(T0 + 416.5, n, DeliveryResult("audio", True, "played"))
        dl.add(T0 + 417.0, n, DeliveryResult("apprise", False, "timeout"))


if __name__ == "__main__":
    assert "/host/" not in spasmwatch.__file__  # the old tree, not an installed one
    build(sys.argv[1])
    con = sqlite3.connect(sys.argv[1])
    print("-- A monitor database as written by spasmwatch at commit b00779b (schema version 1,")
    print("-- with the tables other modules created on first use), made by running that")
    print("-- version's own code (tests/data/make_monitor_b00779b.py).")
    for line in con.iterdump():
        print(line)
