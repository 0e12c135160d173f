"""``spasmwatch doctor``: check a connected sensor, in plain PASS/WARN/FAIL lines.

Over the link the monitor uses (USB serial ``--port``, Bluetooth LE ``--ble NAME``, or
a virtual board with ``--simulate``), without stopping the monitor on the board:

    link          the port opens and a PING comes back (round trip)
    firmware      version and hash (INFO); the hash is compared with this host's copy
                  of firmware/ (equal for a board flashed with .py files from it)
    sensor        WHO_AM_I: an MPU-6050, or a clone with a 512-byte FIFO
    sample rate   the sensor's sample clock against the board's clock (INFO_CLOCK_PPM,
                  from the firmware's re-anchoring) and the board's clock against this
                  host's (device time in two replies ``--seconds`` apart): ppm
    FIFO / I2C    overflows and bus errors since start
    board         free heap (status packet), main loop errors, BLE failed connections
                  and IRQ handler errors since start
    battery       mV and the low flag, from the status packets
    link quality  status packets received against expected, RESEND gaps

Exit status 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from spasmwatch.firmware import config as fwconfig
from spasmwatch.firmware import control, wire
from spasmwatch.host.errors import UserError
from spasmwatch.host.links.base import Link, LinkError, LinkLost

__all__ = ["Check", "diagnose", "local_firmware_hash", "register"]

FIRMWARE_DIR = Path(fwconfig.__file__).resolve().parent
SENSOR_PPM_LIMIT = 20_000  # the MPU-6050's oscillator: +-1 % typical, 2 % is a fault
BOARD_PPM_LIMIT = 2_000  # an ESP32 crystal is +-20 ppm; this is the measurement's noise
REPLY_TIMEOUT_S = 3.0


@dataclass
class Check:
    name: str
    status: str  # PASS, WARN, FAIL
    detail: str
    value: Any = None

    def line(self) -> str:
        return f"{self.status:4}  {self.name:13} {self.detail}"


@dataclass
class _Session:
    link: Link
    verifier: Any = None  # the pairing session: a paired sensor tags every packet
    replies: list[tuple[float, tuple[Any, ...]]] = field(default_factory=list)
    statuses: list[tuple[float, int, tuple[Any, ...]]] = field(default_factory=list)
    stream_seqs: set[int] = field(default_factory=set)
    bad: int = 0


def local_firmware_hash(folder: Path = FIRMWARE_DIR) -> int:
    """firmware/app.py's ``firmware_hash`` over this host's copy of the firmware."""
    h = hashlib.sha256()
    for p in sorted(folder.iterdir(), key=lambda p: p.name):
        if p.suffix in (".py", ".mpy") and p.is_file():
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    return int.from_bytes(h.digest()[:4], "big")


async def _pump(s: _Session) -> None:
    while True:
        data = await s.link.recv()
        now = time.monotonic()
        try:
            seq, rec = wire.decode(data, s.verifier)
        except wire.WireError:
            s.bad += 1
            continue
        if rec[0] == wire.KIND_REPLY:
            s.replies.append((now, rec))
        elif rec[0] in (wire.KIND_EVENT, wire.KIND_SUMMARY, wire.KIND_STATUS, wire.KIND_DETAIL):
            s.stream_seqs.add(seq)
            if rec[0] == wire.KIND_STATUS:
                s.statuses.append((now, seq, rec))


async def _ask(s: _Session, payload: bytes) -> tuple[float, float, tuple[Any, ...]] | None:
    """Send a command; (sent, received, reply record) or None without an answer."""
    op = payload[0]
    start = len(s.replies)
    sent = time.monotonic()
    for _ in range(2):  # a reply can be lost (busy BLE): ask once more
        await s.link.send_control(payload)
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while time.monotonic() < deadline:
            for t, rec in s.replies[start:]:
                if rec[2] == op:
                    return sent, t, rec
            await asyncio.sleep(0.02)
    return None


async def _info(s: _Session, item: int) -> int | None:
    got = await _ask(s, control.encode_info(item))
    if got is None or got[2][3] != control.RESULT_OK:
        return None
    return int(got[2][4])


def _signed(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


async def diagnose(link: Link, seconds: float = 20.0, verifier: Any = None) -> list[Check]:
    """Run every check over ``link`` (opened and closed here); ``verifier``: the pairing
    session when the sensor is paired (packets tagged, commands signed)."""
    checks: list[Check] = []
    try:
        await link.open()
    except (LinkError, LinkLost, OSError) as exc:
        return [Check("link", "FAIL", f"cannot open: {exc}")]
    s = _Session(link, verifier)
    reader = asyncio.create_task(_pump(s))
    try:
        await _checks(s, checks, seconds)
    except LinkLost as exc:
        checks.append(Check("link", "FAIL", f"link lost during the checks: {exc}"))
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await link.close()
    return checks


async def _checks(s: _Session, checks: list[Check], seconds: float) -> None:
    first = await _ask(s, control.encode_ping(1))
    if first is None:
        checks.append(Check("link", "FAIL", "no reply to PING (is the firmware running?)"))
        return
    # The first PING may wait out a boot; the clock baseline is a second one.
    base = await _ask(s, control.encode_ping(3)) or first
    rtt = (base[1] - base[0]) * 1000
    checks.append(Check("link", "PASS", f"{s.link.name}: PING answered in {rtt:.0f} ms",
                        round(rtt, 1)))
    version = await _info(s, control.INFO_VERSION)
    if version is None:
        checks.append(Check("firmware", "FAIL",
                            "no INFO reply: firmware older than this host (re-flash)"))
        return
    v = f"{version >> 16}.{version >> 8 & 0xFF}.{version & 0xFF}"
    fw_hash = await _info(s, control.INFO_HASH)
    mine = local_firmware_hash()
    same = fw_hash == mine
    checks.append(Check(
        "firmware", "PASS" if same else "WARN",
        f"version {v}, hash {fw_hash or 0:08x}"
        + (" (same as this host's firmware/)" if same else
           f" (this host's firmware/ is {mine:08x}: compiled .mpy, or re-flash)"),
        {"version": v, "hash": f"{fw_hash or 0:08x}"}))
    who = await _info(s, control.INFO_WHOAMI)
    if who is None or who == 0xFFFFFFFF:
        checks.append(Check("sensor", "FAIL", "the MPU-6050 never answered on I2C (wiring?)"))
    elif who in fwconfig.MPU_WHOAMI_FIFO512:
        checks.append(Check("sensor", "PASS", f"WHO_AM_I 0x{who:02x}: MPU-6500/9250 class "
                            "clone, 512-byte FIFO", who))
    elif who in fwconfig.MPU_WHOAMI_OK:
        checks.append(Check("sensor", "PASS", f"WHO_AM_I 0x{who:02x}: MPU-6050", who))
    else:
        checks.append(Check("sensor", "FAIL", f"WHO_AM_I 0x{who:02x}: not a supported chip",
                            who))
    await _rates(s, checks, base, seconds)
    overflows = await _info(s, control.INFO_OVERFLOWS)
    i2c = await _info(s, control.INFO_I2C_ERRORS)
    checks.append(Check("FIFO", "PASS" if overflows == 0 else "WARN",
                        f"{overflows} overflow(s) since start", overflows))
    checks.append(Check("I2C", "PASS" if i2c == 0 else "WARN",
                        f"{i2c} bus error(s) since start", i2c))
    errors = await _info(s, control.INFO_ERRORS) or 0
    ble = await _info(s, control.INFO_BLE) or 0
    heap = f"{s.statuses[-1][2][5]} kB free heap, " if s.statuses else ""
    checks.append(Check(
        "board", "PASS" if errors == 0 and ble & 0xFFFF == 0 else "WARN",
        f"{heap}{errors} loop error(s), {ble >> 16} failed BLE connection(s), "
        f"{ble & 0xFFFF} BLE IRQ error(s) since start",
        {"loop_errors": errors, "ble_failed": ble >> 16, "ble_irq_errors": ble & 0xFFFF}))
    _battery(s, checks)
    _link_quality(s, checks, seconds)


async def _rates(s: _Session, checks: list[Check], first: tuple[float, float, tuple[Any, ...]],
                 seconds: float) -> None:
    await asyncio.sleep(seconds)
    last = await _ask(s, control.encode_ping(2))
    ppm_raw = await _info(s, control.INFO_CLOCK_PPM)
    if last is None or ppm_raw is None:
        checks.append(Check("sample rate", "FAIL", "no reply while measuring"))
        return
    # Device time of each reply against the middle of its round trip on this host.
    host_s = (last[0] + last[1]) / 2 - (first[0] + first[1]) / 2
    dev_ms = (last[2][1] - first[2][1]) & 0xFFFFFFFF
    board_ppm = (dev_ms / 1000 / host_s - 1) * 1e6 if host_s > 0 else 0.0
    noise_ppm = ((first[1] - first[0]) + (last[1] - last[0])) / 2 / host_s * 1e6
    sensor_ppm = _signed(ppm_raw)
    total = sensor_ppm + board_ppm
    ok = abs(sensor_ppm) <= SENSOR_PPM_LIMIT and abs(board_ppm) <= BOARD_PPM_LIMIT + noise_ppm
    checks.append(Check(
        "sample rate", "PASS" if ok else "FAIL",
        f"sensor clock {sensor_ppm:+.0f} ppm vs the board, board {board_ppm:+.0f} ppm "
        f"(+-{noise_ppm:.0f}) vs this host over {host_s:.0f} s: {total:+.0f} ppm, "
        f"{fwconfig.RATE_HZ * (1 + total / 1e6):.3f} Hz "
        "(event times are re-anchored to the board's clock)",
        {"sensor_ppm": sensor_ppm, "board_ppm": round(board_ppm), "total_ppm": round(total)}))


def _battery(s: _Session, checks: list[Check]) -> None:
    if not s.statuses:
        checks.append(Check("battery", "FAIL", "no status packet received"))
        return
    rec = s.statuses[-1][2]
    mv, flags = rec[2], rec[3]
    if mv == 0:
        checks.append(Check("battery", "WARN", "not measured (ADC not wired or failing)"))
    elif flags & wire.ST_BATTERY_LOW:
        checks.append(Check("battery", "FAIL", f"{mv} mV: low, charge it", mv))
    else:
        charging = ", charging" if flags & wire.ST_CHARGING else ""
        checks.append(Check("battery", "PASS", f"{mv} mV{charging}", mv))


def _link_quality(s: _Session, checks: list[Check], seconds: float) -> None:
    got = len(s.statuses)
    expected = max(1, int(seconds // fwconfig.STATUS_S))
    seqs = sorted(s.stream_seqs)
    holes = sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b != a + 1)
    status = "PASS" if got >= expected and not s.bad and not holes else "WARN"
    checks.append(Check(
        "link quality", status,
        f"{got} status packet(s) in {seconds:.0f} s (expected >= {expected}), "
        f"{holes} gap(s) in the stream, {s.bad} undecodable", {"statuses": got,
                                                               "gaps": holes, "bad": s.bad}))


def cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    if args.seconds < 5:
        raise UserError("--seconds must be at least 5")
    board = None
    if args.simulate:
        from spasmwatch.host.links.serial_link import SerialLink
        from spasmwatch.host.links.sim_link import SimulatedBoard

        board = SimulatedBoard("quiet", speed=1.0, link="ble" if args.ble else "serial")
        board.start()
        session = board.session()  # the virtual board pairs itself
        link: Link = board.connect()
    elif args.port:
        from spasmwatch.host.links.serial_link import SerialLink

        link = SerialLink(args.port)
    elif args.ble:
        from spasmwatch.host.links.ble_link import BleLink

        kwargs: dict[str, Any] = {}
        if args.ble_backend:
            kwargs["backend"] = args.ble_backend
        link = BleLink(args.ble, **kwargs)
    else:
        raise UserError("say which sensor: --port PORT, --ble NAME or --simulate")
    if board is None:
        # A paired sensor tags its packets and wants signed commands (host/pairing.py);
        # an unpaired one is checked as it is.
        from spasmwatch.host.pairing import session_for_run

        session = session_for_run(True, getattr(args, "config", None))
        if session is not None:
            from spasmwatch.host.links.auth_link import AuthLink

            link = AuthLink(link, session)
    try:
        checks = asyncio.run(diagnose(link, args.seconds, session))
    finally:
        if board is not None:
            board.stop()
    for c in checks:
        if args.json:
            out.write(json.dumps({"check": c.name, "status": c.status, "detail": c.detail,
                                  "value": c.value}) + "\n")
        else:
            out.write(c.line() + "\n")
    failed = [c for c in checks if c.status == "FAIL"]
    if not args.json:
        out.write(f"{'FAIL' if failed else 'PASS'}  {len(checks)} checks, "
                  f"{len(failed)} failed\n")
    return 1 if failed else 0


def register(subparsers: Any) -> None:
    d = subparsers.add_parser("doctor", help="check a connected sensor (PASS/FAIL lines)")
    d.add_argument("--port", help="USB serial port of the sensor (e.g. /dev/ttyACM0)")
    d.add_argument("--ble", nargs="?", const=fwconfig.DEVICE_NAME, default=None,
                   help="reach it over Bluetooth LE (name or address; default "
                        f"{fwconfig.DEVICE_NAME})")
    d.add_argument("--ble-backend", help="bleak backend, e.g. bumble:TRANSPORT (testing)")
    d.add_argument("--simulate", action="store_true",
                   help="check a virtual board instead (the firmware under MicroPython)")
    d.add_argument("--seconds", type=float, default=20.0,
                   help="how long to measure the sample rate and link (20)")
    d.add_argument("--json", action="store_true", help="one JSON object per check")
    d.set_defaults(func=cmd_doctor)
