"""Authentication tags: HMAC-SHA256 truncated to 4 bytes (MicroPython/CPython).

API:
    hmac_sha256(key, msg) -> bytes     # 32 bytes, RFC 2104 over hashlib.sha256
    tag(key, msg) -> bytes             # first TAG_LEN (4) bytes of the HMAC
    verify(key, msg, tag) -> bool      # constant-time compare; False for an empty key
    load_key(path, default=b"") -> bytes   # key file contents (stripped), or default
    make_tagger(key) / make_verifier(key)  # callables for wire.encode / wire.decode

MicroPython has ``hashlib.sha256`` but no ``hmac`` module, so HMAC is built here from
its definition. Four bytes stop casual or accidental commands (a 1 in 4 billion guess
per try) on a link that is already paired or cabled; they are not meant to resist an
attacker with unlimited tries, and there is no replay protection beyond the nonce the
control point checks for trace injection (see firmware/control.py).
"""

import hashlib

TAG_LEN = 4
_BLOCK = 64


def hmac_sha256(key, msg):
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    k = bytearray(_BLOCK)
    k[: len(key)] = key
    ipad = bytearray(_BLOCK)
    opad = bytearray(_BLOCK)
    for i in range(_BLOCK):
        ipad[i] = k[i] ^ 0x36
        opad[i] = k[i] ^ 0x5C
    inner = hashlib.sha256(bytes(ipad))
    inner.update(bytes(msg))
    outer = hashlib.sha256(bytes(opad))
    outer.update(inner.digest())
    return outer.digest()


def tag(key, msg):
    return hmac_sha256(key, msg)[:TAG_LEN]


def verify(key, msg, got):
    """True when ``got`` is the tag of ``msg`` under ``key``; never True without a key."""
    if not key or len(got) != TAG_LEN:
        return False
    want = tag(key, msg)
    diff = 0
    for i in range(TAG_LEN):
        diff |= want[i] ^ got[i]
    return diff == 0


def load_key(path, default=b""):
    """The key stored in ``path`` (surrounding whitespace removed), else ``default``."""
    try:
        with open(path, "rb") as f:
            key = f.read().strip()
    except OSError:
        return default
    return key if key else default


def make_tagger(key):
    def tagger(body):
        return tag(key, body)

    return tagger


def make_verifier(key):
    def verifier(body, got):
        return verify(key, body, got)

    return verifier
