"""Fuzz every decoder of outside input: random and mutated inputs, count crashes and hangs.

    python benchmarks/fuzz_decoders.py [--inputs 100000] [--seed 1] [--only NAME ...]

Targets (each gets ``--inputs`` inputs; half mutations of valid seeds, half random):
    wire        firmware/wire.decode, without and with a verifier (paired host)
    deframer    firmware/framing.Deframer.feed with the host's CRC validator
    ingest      host PacketIngest.feed (paired: verifier + strict sequence tracking)
    engine      the daemon's receive path: MonitorEngine.feed_packet (+ tick)
    control     firmware/control.split and the firmware App.handle (device side)
    trace       simulator/traceio.read_trace (trace files)
    labels      simulator/traceio.read_labels (label files)
    settings    host/settings: TOML text -> load_settings' parse + validate steps

A *crash* is any exception other than the documented error of that entry point
(WireError, FramingError-free output, ControlError, TraceFormatError, SettingsError,
and nothing at all from ingest/engine/deframer/App.handle). A *hang* is an input that
takes longer than ``--hang-s`` (interrupted by SIGALRM). The last line is
``inputs=N crashes=K hangs=H``; exit status 1 when K or H is not 0. The settings
target also counts non-finite numbers it accepted (``nonfinite_accepted``), a known
gap of the current loader, reported separately from crashes.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import sys
import tempfile
import time
import tomllib
import traceback
from collections.abc import Callable
from pathlib import Path

from spasmwatch.firmware import auth, control, framing, wire
from spasmwatch.host.daemon import MonitorEngine
from spasmwatch.host.links.serial_link import crc_ok
from spasmwatch.host.monitor.ingest import PacketIngest
from spasmwatch.host.pairing import Session

KEY = bytes(range(16))
BOOT = 5


class Hang(Exception):
    pass


def _alarm(_sig: int, _frame: object) -> None:
    raise Hang()


# -- input generation ---------------------------------------------------------------------


def mutate(rng: random.Random, seed: bytes, max_len: int = 64) -> bytes:
    b = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        if op == 0 and b:  # flip bits
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:  # random byte
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 2:  # insert
            b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
        elif op == 3 and b:  # delete
            del b[rng.randrange(len(b))]
        elif op == 4 and b:  # truncate
            del b[rng.randrange(len(b)):]
        elif op == 5:  # interesting values
            if b:
                i = rng.randrange(len(b))
                b[i] = rng.choice((0, 1, 0x7F, 0x80, 0xFF))
        else:  # splice a copy of a piece
            if b:
                i = rng.randrange(len(b))
                b[i:i] = b[i:i + rng.randint(1, 8)]
    return bytes(b[:max_len])


def fix_crc(data: bytes) -> bytes:
    """Make the last two bytes a valid CRC: reaches the parser behind the checksum."""
    if len(data) < 3:
        return data
    body = data[:-2]
    return body + wire.crc16(body, len(body)).to_bytes(2, "little")


def wire_seeds() -> list[bytes]:
    s = Session(KEY)
    s.boot = BOOT
    tagger = auth_tagger()
    recs = [
        (wire.KIND_EVENT, 1000, 1, 1, 3, 400, 900, 120, 50, 300, 12),
        (wire.KIND_SUMMARY, 60000, 60, 5, 2, 1, 800, 40, 1),
        (wire.KIND_STATUS, 10000, 3900, 1, 5, 141, 50, 4),
        (wire.KIND_SNIPPET, 5000, -32768, 17, 32767, wire.SNIP_FIRST),
        (wire.KIND_REPLY, 9, control.RESEND, control.RESULT_GONE, 7),
        (wire.KIND_DETAIL, 1000, 127, -40, 3, 18, 35, 0x0041),
    ]
    out = []
    for i, r in enumerate(recs):
        out.append(wire.encode(i, r))
        out.append(wire.encode(i, r, tagger))
    return out


def auth_tagger() -> Callable[[bytes], bytes]:
    return lambda body: auth.packet_tag(KEY, BOOT, body)


def packet_input(rng: random.Random, seeds: list[bytes]) -> bytes:
    r = rng.random()
    if r < 0.45:
        return mutate(rng, rng.choice(seeds), 24)
    if r < 0.8:
        return fix_crc(mutate(rng, rng.choice(seeds), 24))
    n = rng.choice((0, 1, 15, 16, 17, 19, 20, 21, rng.randrange(40)))
    data = rng.randbytes(n)
    return fix_crc(data) if rng.random() < 0.7 else data


# -- targets: each returns a callable(input) that raises only on a crash ---------------------


def target_wire(rng: random.Random) -> tuple[Callable[[], bytes], Callable[[bytes], None]]:
    seeds = wire_seeds()
    s = Session(KEY)
    s.boot = BOOT

    def run(data: bytes) -> None:
        for verifier in (None, s):
            try:
                wire.decode(data, verifier)
            except wire.WireError:
                pass

    return (lambda: packet_input(rng, seeds)), run


def target_deframer(rng: random.Random) -> tuple[Callable[[], bytes], Callable[[bytes], None]]:
    frames = [framing.encode(p) for p in wire_seeds()]
    d = framing.Deframer(validate=crc_ok)

    def gen() -> bytes:
        parts = [rng.choice(frames) for _ in range(rng.randint(0, 4))]
        junk = rng.randbytes(rng.randrange(60))
        stream = b"".join(parts) + junk
        return mutate(rng, stream, 300) if rng.random() < 0.7 else stream

    def run(data: bytes) -> None:
        for p in d.feed(data):
            if not 0 < len(p) <= framing.MAX_PAYLOAD:
                raise AssertionError(f"deframer produced {len(p)} bytes")

    return gen, run


def target_ingest(rng: random.Random) -> tuple[Callable[[], bytes], Callable[[bytes], None]]:
    seeds = wire_seeds()
    s = Session(KEY)
    s.boot = BOOT
    ingests = [PacketIngest("fuzz"), PacketIngest("fuzz-paired", verifier=s)]
    t = [0.0]

    def run(data: bytes) -> None:
        t[0] += 0.01
        for ing in ingests:
            ing.feed(data, received_at=t[0])
            ing.missing_ranges()

    return (lambda: packet_input(rng, seeds)), run


def target_engine(rng: random.Random) -> tuple[Callable[[], bytes], Callable[[bytes], None]]:
    seeds = wire_seeds()
    s = Session(KEY)
    s.boot = BOOT
    engines = [MonitorEngine(device="fuzz"), MonitorEngine(device="fuzz-paired", verifier=s)]
    t = [1.7e9]
    n = [0]

    def run(data: bytes) -> None:
        t[0] += 0.05
        n[0] += 1
        for eng in engines:
            eng.feed_packet(data, received_at=t[0])
            if n[0] % 50 == 0:
                eng.tick(t[0])

    return (lambda: packet_input(rng, seeds)), run


class _FakeLink:
    """A device link for App.handle: takes every packet (checks it is a valid packet)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.connects = 1

    def send(self, packet: bytes) -> bool:
        if not 0 < len(packet) <= wire.MAX_PACKET:
            raise AssertionError(f"device sent {len(packet)} bytes")
        return True

    def poll(self) -> list[bytes]:
        return []

    def connected(self) -> bool:
        return True

    def service(self) -> None:
        return None


def target_control(rng: random.Random) -> tuple[Callable[[], bytes], Callable[[bytes], None]]:
    # The firmware's App on CPython: hal.py imports ``machine`` (only the board and the
    # virtual board have one); handle() never touches it, so an empty stand-in will do.
    import types

    sys.modules.setdefault("machine", types.ModuleType("machine"))
    from spasmwatch.firmware.app import App

    class Clock:
        ms = 0

        def now_ms(self) -> int:
            self.ms += 7
            return self.ms

    seeds = [
        control.encode_ping(7), control.encode_resend(65530, 4), control.encode_set_time(17),
        control.encode_get_snippet(), control.encode_inject_stop(), control.encode_hello(3),
        control.sign(control.encode_set_param(1, 120), KEY, BOOT, 1),
        control.sign(control.encode_inject_start(9), KEY, BOOT, 2),
        control.sign(control.encode_resend(1, 2), KEY, BOOT, 3),
        control.encode_samples([1, -2, 3] * 4),
    ]
    links = [_FakeLink("serial"), _FakeLink("ble")]
    app = App(None, links, key=KEY, boot=BOOT, clock=Clock())

    def gen() -> bytes:
        if rng.random() < 0.75:
            return mutate(rng, rng.choice(seeds), 260)
        return rng.randbytes(rng.randrange(30))

    def run(data: bytes) -> None:
        try:
            control.split(data)
        except control.ControlError:
            pass
        cwd = os.getcwd()
        try:
            os.chdir(_scratch())  # PAIR writes its key file here, not in the repo
            link = links[rng.randrange(2)]
            if data:
                app.handle(link, data)
            app.pump_resend()
            app.pump_snippet()
            if app.key != KEY:  # a fuzzed PAIR over serial: back to the fuzz key
                app.set_key(KEY)
                app.boot = BOOT
        finally:
            os.chdir(cwd)

    return gen, run


_SCRATCH: list[str] = []


def _scratch() -> str:
    if not _SCRATCH:
        _SCRATCH.append(tempfile.mkdtemp(prefix="spasmwatch-fuzz-"))
    return _SCRATCH[0]


def _text_target(rng: random.Random, seed_texts: list[str], read: Callable[[Path], object],
                 ) -> tuple[Callable[[], bytes], Callable[[bytes], None]]:
    from spasmwatch.simulator.traceio import TraceFormatError

    path = Path(_scratch()) / "input.csv"
    seeds = [t.encode() for t in seed_texts]
    tokens = [b",", b"\n", b"#", b"nan", b"inf", b"-1e400", b"1e400", b'"', b"\r\n",
              b"\xef\xbb\xbf", b"\x1f\x8b", b"t,ax,ay,az", b"start,end,label", b"0", b"-0",
              b"9" * 40]

    def gen() -> bytes:
        s = bytearray(rng.choice(seeds))
        if rng.random() < 0.5:
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(s) + 1)
                s[i:i + rng.randrange(4)] = rng.choice(tokens)
            return bytes(s)
        return mutate(rng, bytes(s), 2000)

    def run(data: bytes) -> None:
        path.write_bytes(data)
        try:
            read(path)
        except TraceFormatError:
            pass

    return gen, run


def target_trace(rng: random.Random) -> tuple[Callable[[], bytes], Callable[[bytes], None]]:
    from spasmwatch.simulator.traceio import read_trace

    # Valid traces need >= 2 s of samples: 2.2 s at 50 Hz, with and without gyro columns.
    rows = "".join(f"{i / 50:.2f},{(i % 7) / 10},0,1\n" for i in range(110))
    grows = "".join(f"{i / 50:.2f},0,{(i % 5) / 10},1,0,1,2\n" for i in range(110))
    texts = ["# spasmwatch trace\nt,ax,ay,az\n" + rows, "t,ax,ay,az,gx,gy,gz\n" + grows]
    return _text_target(rng, texts, read_trace)


def target_labels(rng: random.Random) -> tuple[Callable[[], bytes], Callable[[bytes], None]]:
    from spasmwatch.simulator.traceio import read_labels

    texts = ["start,end,label\n1.0,1.5,spasm\n3,4,jerk\n", "# x\nstart,end,label\n0,1,\"roll\"\n"]
    return _text_target(rng, texts, read_labels)


def target_settings(rng: random.Random,
                    counts: dict[str, int]) -> tuple[Callable[[], bytes], Callable[[bytes], None]]:
    from spasmwatch.host import settings as hs

    template = hs.template_text()
    # Every section of the template, one seed each (short inputs: more of them per second).
    sections = ["[" + part for part in template.split("\n[")[1:]]
    seeds = [sec.encode() for sec in sections] + [template.encode()]
    values = [b"nan", b"inf", b"-inf", b"1e999", b"-1", b"0", b"true", b'"x"', b"[]", b"{}",
              b"99999999999999999999", b"1.5", b'"\\u0000"']

    def gen() -> bytes:
        s = bytearray(rng.choice(seeds))
        if rng.random() < 0.6:
            # Replace the value of a random "key = value" line.
            lines = bytes(s).split(b"\n")
            idx = [i for i, ln in enumerate(lines) if b"=" in ln]
            for _ in range(rng.randint(1, 3)):
                if idx:
                    i = rng.choice(idx)
                    k = lines[i].split(b"=", 1)[0].lstrip(b"# ")
                    lines[i] = k + b"= " + rng.choice(values)
            return b"\n".join(lines)
        return mutate(rng, bytes(s), 5000)

    def run(data: bytes) -> None:
        # load_settings(path) is: read text, tomllib.loads, settings_from_dict, then
        # apply_environment; done here without the file (same functions, same order).
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return  # load_settings reports it as SettingsError("cannot read")
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return
        try:
            s = hs.apply_environment(hs.settings_from_dict(doc, "fuzz.toml"), {})
        except hs.SettingsError:
            return
        if _has_nonfinite(s):
            counts["nonfinite_accepted"] += 1

    return gen, run


def _has_nonfinite(obj: object, depth: int = 0) -> bool:
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if depth > 3:
        return False
    d = getattr(obj, "__dict__", None)
    if isinstance(d, dict):
        return any(_has_nonfinite(v, depth + 1) for v in d.values())
    return False


TARGETS = ("wire", "deframer", "ingest", "engine", "control", "trace", "labels", "settings")


def run_target(name: str, n: int, seed: int, hang_s: float, verbose: bool) -> dict[str, int]:
    rng = random.Random(f"{name}:{seed}")
    counts = {"inputs": 0, "crashes": 0, "hangs": 0, "nonfinite_accepted": 0}
    if name == "settings":
        gen, run = target_settings(rng, counts)
    else:
        gen, run = globals()[f"target_{name}"](rng)
    first_crash = ""
    t0 = time.perf_counter()
    for _ in range(n):
        data = gen()
        counts["inputs"] += 1
        signal.setitimer(signal.ITIMER_REAL, hang_s)
        try:
            run(data)
        except Hang:
            counts["hangs"] += 1
        except Exception:  # noqa: BLE001 - that is what we count
            counts["crashes"] += 1
            if not first_crash:
                first_crash = f"{data!r}\n{traceback.format_exc()}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    dt = time.perf_counter() - t0
    extra = (f" nonfinite_accepted={counts['nonfinite_accepted']}"
             if name == "settings" else "")
    print(f"target={name} inputs={counts['inputs']} crashes={counts['crashes']} "
          f"hangs={counts['hangs']}{extra} ({dt:.1f} s)", flush=True)
    if first_crash and verbose:
        print(f"  first crash: {first_crash}", file=sys.stderr)
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=100_000, help="inputs per target")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hang-s", type=float, default=2.0, help="an input slower than this hangs")
    ap.add_argument("--only", nargs="*", choices=TARGETS, help="only these targets")
    ap.add_argument("-q", "--quiet", action="store_true", help="no crash tracebacks")
    args = ap.parse_args(argv)
    import logging

    logging.disable(logging.CRITICAL)  # the ingest logs every dropped packet
    signal.signal(signal.SIGALRM, _alarm)
    total = {"inputs": 0, "crashes": 0, "hangs": 0}
    for name in args.only or TARGETS:
        c = run_target(name, args.inputs, args.seed, args.hang_s, not args.quiet)
        for k in total:
            total[k] += c[k]
    print(f"inputs={total['inputs']} crashes={total['crashes']} hangs={total['hangs']}")
    return 0 if total["crashes"] == 0 and total["hangs"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
