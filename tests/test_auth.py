"""firmware/auth.py and firmware/keystore.py: HMAC, tags and the boot counter.

The device's own HMAC-SHA256 (MicroPython has no ``hmac``) is checked against
CPython's ``hmac`` for many random keys and messages *under the real MicroPython
interpreter*, and the tag helpers give the same bytes there as on the host.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from spasmwatch.firmware import auth, keystore

N_RANDOM = 400


def _cases(seed: int = 9) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    lengths = [0, 1, 16, 32, 63, 64, 65, 100, 200]
    out = []
    for i in range(N_RANDOM):
        klen = lengths[i % len(lengths)] if i < 60 else rng.randrange(0, 160)
        mlen = rng.randrange(0, 300)
        out.append((rng.randbytes(klen), rng.randbytes(mlen)))
    return out


MPY_SCRIPT = """
import json, binascii
from firmware import auth
cases = json.loads(open("cases.json").read())
out = []
for k, m in cases:
    key = binascii.unhexlify(k)
    msg = binascii.unhexlify(m)
    out.append(binascii.hexlify(auth.hmac_sha256(key, msg)).decode())
k = b"0123456789abcdef"
out.append([binascii.hexlify(auth.packet_tag(k, 7, b"body")).decode(),
            binascii.hexlify(auth.hello_tag(k, 7, 0xFFFFFFFF, b"body")).decode(),
            binascii.hexlify(auth.command_tag(k, 7, 3, b"body")).decode(), auth.key_id(k)])
print(json.dumps(out))
"""


def test_micropython_hmac_matches_cpython_hmac(run_micropython, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cases = _cases()
    (tmp_path / "cases.json").write_text(json.dumps([[k.hex(), m.hex()] for k, m in cases]))
    proc = run_micropython(MPY_SCRIPT, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    want = [hmac.new(k, m, hashlib.sha256).hexdigest() for k, m in cases]
    assert out[:-1] == want
    k = b"0123456789abcdef"
    assert out[-1] == [auth.packet_tag(k, 7, b"body").hex(),
                       auth.hello_tag(k, 7, 0xFFFFFFFF, b"body").hex(),
                       auth.command_tag(k, 7, 3, b"body").hex(), auth.key_id(k)]


@given(st.binary(max_size=100), st.binary(max_size=300))
def test_hmac_matches_python_hmac_property(key: bytes, msg: bytes) -> None:
    assert auth.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


def test_tags_separate_kinds_and_nonces() -> None:
    k = b"k" * 16
    body = bytes(14)
    tags = {auth.packet_tag(k, 1, body), auth.packet_tag(k, 2, body),
            auth.hello_tag(k, 1, 0, body), auth.command_tag(k, 1, 0, body)}
    assert len(tags) == 4
    assert not auth.verify(b"", body, auth.tag(k, body))


def test_key_file_hex_and_legacy(tmp_path: Path) -> None:
    key = bytes(range(16)) + b" \n"[:0]
    keystore.save_key(key, str(tmp_path / "k"))
    assert (tmp_path / "k").read_text().strip() == key.hex()
    assert keystore.load_key(str(tmp_path / "k")) == key
    (tmp_path / "legacy").write_bytes(b"board-test-key\n")
    assert keystore.load_key(str(tmp_path / "legacy")) == b"board-test-key"
    keystore.save_key(b"", str(tmp_path / "k"))
    assert keystore.load_key(str(tmp_path / "k")) == b""


def test_boot_counter_only_grows(tmp_path: Path) -> None:
    path = str(tmp_path / "boot")
    assert [keystore.next_boot(path) for _ in range(3)] == [1, 2, 3]
    # A power cut after writing the temporary file but before the rename.
    Path(path + ".tmp").write_text("9")
    assert keystore.next_boot(path) == 10
    Path(path).write_text("garbage")
    Path(path + ".tmp").unlink(missing_ok=True)
    assert keystore.read_boot(path) == 0  # documented: a corrupt counter reads as 0
