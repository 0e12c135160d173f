#!/usr/bin/env python3
"""BLE chain throughput headroom and notification latency (simulated radio).

The chain measured is the one the e2e tests run: ``firmware/ble_link.py`` under the
real MicroPython interpreter -> ``simulator/board/bluetooth.py`` (loopback socket) ->
``simulator/ble_bridge.py`` (Bumble peripheral) -> virtual radio -> Bumble central ->
bleak (``host/links/bleak_bumble.py``) -> ``host/links/ble_link.py``.

Phase 1 (latency): the firmware sends one packet every 20 ms and notes the send time;
the host notes the arrival time (same machine clock): notification latency.
Phase 2 (throughput): the firmware sends as fast as ``send`` accepts (busy -> retry):
packets per second the chain sustains, against what the detector needs at most.

The virtual radio has no air time, so these are the software's limits (MicroPython,
sockets, two Bluetooth stacks), not the ESP32's radio; docs/ble.md gives the radio's.

    python benchmarks/bench_ble_throughput.py [--packets 3000] [--latency 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from spasmwatch.firmware import wire
from spasmwatch.host.links.ble_link import BleLink
from spasmwatch.host.links.bleak_bumble import BumbleCentral
from spasmwatch.simulator.ble_bridge import BleBridge

REPO = Path(__file__).resolve().parent.parent

SCRIPT = """
import sys, time
from firmware.ble_link import BleLink
from firmware import wire
N_LAT, N_BURST = int(sys.argv[1]), int(sys.argv[2])
link = BleLink()
while not link.connected():
    link.service()
    time.sleep_ms(2)
def pkt(seq):
    return wire.encode(seq, (wire.KIND_SUMMARY, seq, 60, 1, 2, 3, 100, 50, 1))
sent_at = []
for seq in range(N_LAT):
    while not link.send(pkt(seq)):
        time.sleep_ms(1)
    sent_at.append(time.time_ns())
    time.sleep_ms(20)
busy0 = link.busy
t0 = time.time_ns()
for seq in range(N_LAT, N_LAT + N_BURST):
    while not link.send(pkt(seq)):
        time.sleep_us(200)
t1 = time.time_ns()
print("BUSY", link.busy - busy0, "SENDNS", t1 - t0)
print("SENT", " ".join(str(t) for t in sent_at))
"""

# What the detector can need at most: events are >= 0.3 s apart in practice, plus a
# summary a minute and a status every 10 s; 5 packets/s is a generous ceiling.
NEEDED_PPS = 5.0


async def run(n_burst: int, n_lat: int) -> None:
    bridge = BleBridge()
    await bridge.start()
    central = BumbleCentral.on_link(bridge.link)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bench.py"
        script.write_text(SCRIPT)
        env = dict(os.environ, MICROPYPATH=os.pathsep.join(
            [str(REPO / "simulator" / "board"), str(REPO), ".frozen"]),
            SPASMWATCH_BLE_BRIDGE=f"127.0.0.1:{bridge.firmware_port}")
        proc = await asyncio.create_subprocess_exec(
            "micropython", str(script), str(n_lat), str(n_burst), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        ble = BleLink("spasmwatch", backend=central, scan_timeout=5)
        try:
            await ble.open()
            arrivals: dict[int, int] = {}
            total = n_lat + n_burst
            while len(arrivals) < total:
                data = await asyncio.wait_for(ble.recv(), 10)
                now = time.time_ns()
                seq, rec = wire.decode(data)
                if rec[0] != wire.KIND_REPLY:
                    arrivals[seq] = now
        finally:
            await ble.close()
            await central.close()
        out, _ = await proc.communicate()
        await bridge.close()
    lines = {ln.split(" ", 1)[0]: ln.split(" ", 1)[1] for ln in out.decode().splitlines()
             if " " in ln}
    sent = [int(x) for x in lines["SENT"].split()]
    lat_ms = [(arrivals[i] - sent[i]) / 1e6 for i in range(n_lat)]
    first, last = arrivals[n_lat], arrivals[total - 1]
    pps = (n_burst - 1) / ((last - first) / 1e9)
    busy = int(lines["BUSY"].split()[0])
    q = statistics.quantiles(lat_ms, n=20)
    print(f"notification latency over {n_lat} packets: median {statistics.median(lat_ms):.2f} ms, "
          f"p95 {q[18]:.2f} ms, max {max(lat_ms):.2f} ms")
    print(f"throughput: {pps:.0f} packets/s sustained over {n_burst} packets "
          f"({busy} sends refused busy and retried)")
    print(f"headroom: {pps / NEEDED_PPS:.0f}x the detector's worst case of "
          f"{NEEDED_PPS:g} packets/s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--packets", type=int, default=3000, help="burst length")
    ap.add_argument("--latency", type=int, default=200, help="paced packets for latency")
    args = ap.parse_args()
    asyncio.run(run(args.packets, args.latency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
