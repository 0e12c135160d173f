"""Hypothesis versions of benchmarks/fuzz_decoders.py's targets (fewer examples, in CI).

Each decoder of outside input either returns or raises its documented error: the wire
decoder, the serial deframer, the host's receive path (ingest, engine), the control
parser, the trace and label readers and the settings loader.
"""

from __future__ import annotations

import tempfile
import tomllib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from spasmwatch.firmware import auth, control, framing, wire
from spasmwatch.host import settings as hs
from spasmwatch.host.daemon import MonitorEngine
from spasmwatch.host.links.serial_link import crc_ok
from spasmwatch.host.monitor.ingest import PacketIngest
from spasmwatch.host.pairing import Session
from spasmwatch.simulator.traceio import TraceFormatError, read_labels, read_trace

KEY = bytes(range(16))


def _session() -> Session:
    s = Session(KEY)
    s.boot = 4
    return s


def _crc(data: bytes) -> bytes:
    return data + wire.crc16(data, len(data)).to_bytes(2, "little") if data else data


# Packets: random bytes, and random bodies with a valid CRC (and sometimes a valid tag),
# so the parsers behind the checksum are reached.
packets = st.one_of(
    st.binary(max_size=24),
    st.binary(min_size=14, max_size=14).map(_crc),
    st.binary(min_size=14, max_size=14).map(
        lambda b: _crc(bytes([b[0] | wire.FLAG_AUTH]) + b[1:] + auth.packet_tag(
            KEY, 4, bytes([b[0] | wire.FLAG_AUTH]) + b[1:]))),
)


@settings(max_examples=300)
@given(packets)
def test_wire_decode_raises_only_wire_error(data: bytes) -> None:
    for verifier in (None, _session()):
        try:
            seq, rec = wire.decode(data, verifier)
        except wire.WireError:
            continue
        assert 0 <= seq <= 0xFFFF and rec[0] in wire.FIELDS


@settings(max_examples=200)
@given(st.lists(st.one_of(st.binary(max_size=40), packets.filter(len).map(framing.encode)),
                max_size=6))
def test_deframer_never_raises_and_bounds_payloads(chunks: list[bytes]) -> None:
    d = framing.Deframer(validate=crc_ok)
    for c in chunks:
        for p in d.feed(c):
            assert 0 < len(p) <= framing.MAX_PAYLOAD


@settings(max_examples=200)
@given(st.lists(packets, max_size=20))
def test_ingest_and_engine_never_raise(stream: list[bytes]) -> None:
    ing = PacketIngest(verifier=_session())
    eng = MonitorEngine(verifier=_session())
    for i, p in enumerate(stream):
        ing.feed(p, received_at=float(i))
        eng.feed_packet(p, received_at=1.7e9 + i)
    eng.tick(1.7e9 + 1000)


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=30),
                 st.sampled_from([control.encode_ping(1), control.encode_hello(2),
                                  control.sign(control.encode_set_param(1, 9), KEY, 4, 1)])
                 .flatmap(lambda p: st.binary(max_size=3).map(lambda x: p[:-1] + x))))
def test_control_split_raises_only_control_error(data: bytes) -> None:
    try:
        op, _args, _body, cnt, tag = control.split(data)
    except control.ControlError as exc:
        assert exc.reason in ("short", "long", "opcode", "length")
        return
    assert op in control.NAMES and (tag is None) == (cnt == -1)


text_lines = st.lists(st.sampled_from(
    ["t,ax,ay,az", "start,end,label", "0,0,0,1", "1,2,spasm", "nan,inf,1,2", "# c", '"', "",
     "0.02,1e400,0,1", "3,1,jerk", "\ufeff", "x,y", "1,,2,3"]), max_size=12)


@settings(max_examples=100, deadline=None)
@given(text_lines)
def test_trace_and_label_readers_raise_only_format_errors(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.csv"
        path.write_text("\n".join(lines))
        for read in (read_trace, read_labels):
            try:
                read(path)
            except TraceFormatError:
                pass


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["alarm", "webui", "monitor", "video", "mqtt"]),
                          st.sampled_from(["port", "repeat_s", "pre_s", "url", "host", "x"]),
                          st.sampled_from(["1", "-1", "nan", "inf", '"a"', "true", "[]"])),
                max_size=5))
def test_settings_loader_raises_only_settings_error(items: list[tuple[str, str, str]]) -> None:
    text = "".join(f"[{s}]\n{k} = {v}\n" for s, k, v in items)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    try:
        hs.apply_environment(hs.settings_from_dict(doc, "t.toml"), {})
    except hs.SettingsError:
        pass
