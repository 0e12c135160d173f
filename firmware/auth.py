"""Authentication tags: HMAC-SHA256 truncated to 4 bytes, with per-use nonces.

API (MicroPython/CPython common subset):
    hmac_sha256(key, msg) -> bytes     # 32 bytes, RFC 2104 over hashlib.sha256
    tag(key, msg) -> bytes             # first TAG_LEN (4) bytes of the HMAC
    verify(key, msg, tag) -> bool      # constant-time compare; False for an empty key
    same(a, b) -> bool                 # constant-time equality of two tags
    packet_tag(key, boot, body)        # device -> host stream packets and replies
    hello_tag(key, boot, token, body)  # the reply to a HELLO challenge (token: host's)
    command_tag(key, boot, cnt, body)  # host -> device commands (cnt: command counter)
    key_id(key) -> str                 # 8 hex digits naming a key (not secret)
    load_key(path, default=b"") -> bytes   # key file (hex, see keystore.py), or default

Every tag covers a nonce that never repeats for one key: the device's boot counter,
persisted in flash (firmware/keystore.py) and incremented at each start-up and each
wrap of the u16 packet sequence number, plus the sequence number inside the packet
(packets), the host's random challenge (HELLO replies) or a command counter the device
only accepts increasing within one boot (commands). A one-byte domain prefix keeps the
three kinds apart. Four bytes are a 1 in 4 billion guess per try; the host counts and
reports failed packets and the device answers a bad command with RESULT_AUTH, so a
guessing attacker is seen long before he is lucky (docs/security.md).

MicroPython has ``hashlib.sha256`` but no ``hmac`` module, so HMAC is built here from
its definition; tests/test_auth.py checks it against CPython's ``hmac`` for many random
keys and messages under the real MicroPython interpreter.
"""

import binascii
import hashlib
import struct

TAG_LEN = 4
KEY_LEN = 16  # bytes of a key made by `spasmwatch pair` (128 bits)
_BLOCK = 64
_DOM_PACKET = b"P"
_DOM_HELLO = b"H"
_DOM_COMMAND = b"C"

# One-entry cache of the padded key: a board has one key, so the 2 x 64 XORs are done
# once, not per packet.
_pads_key = None
_pads = (b"", b"")


def _padded(key):
    global _pads_key, _pads
    if key is not _pads_key and key != _pads_key:
        k = key
        if len(k) > _BLOCK:
            k = hashlib.sha256(k).digest()
        ipad = bytearray(_BLOCK)
        opad = bytearray(_BLOCK)
        for i in range(_BLOCK):
            b = k[i] if i < len(k) else 0
            ipad[i] = b ^ 0x36
            opad[i] = b ^ 0x5C
        _pads = (bytes(ipad), bytes(opad))
        _pads_key = key
    return _pads


def hmac_sha256(key, msg):
    ipad, opad = _padded(bytes(key))
    inner = hashlib.sha256(ipad)
    inner.update(bytes(msg))
    outer = hashlib.sha256(opad)
    outer.update(inner.digest())
    return outer.digest()


def tag(key, msg):
    return hmac_sha256(key, msg)[:TAG_LEN]


def same(a, b):
    """Constant-time equality of two tags."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


def verify(key, msg, got):
    """True when ``got`` is the tag of ``msg`` under ``key``; never True without a key."""
    if not key or len(got) != TAG_LEN:
        return False
    return same(tag(key, msg), got)


def packet_tag(key, boot, body):
    return tag(key, _DOM_PACKET + struct.pack("<I", boot & 0xFFFFFFFF) + bytes(body))


def hello_tag(key, boot, token, body):
    return tag(key, _DOM_HELLO + struct.pack("<II", boot & 0xFFFFFFFF, token & 0xFFFFFFFF)
               + bytes(body))


def command_tag(key, boot, cnt, body):
    return tag(key, _DOM_COMMAND + struct.pack("<II", boot & 0xFFFFFFFF, cnt & 0xFFFFFFFF)
               + bytes(body))


def key_id(key):
    """A short public name for a key: 8 hex digits of HMAC(key, "spasmwatch key id")."""
    return binascii.hexlify(hmac_sha256(key, b"spasmwatch key id")[:4]).decode()


def parse_key(text):
    """Key file contents -> key bytes: hex digits (what `pair` writes), else raw bytes."""
    s = bytes(text).strip()
    if s and len(s) % 2 == 0:
        try:
            return binascii.unhexlify(s)
        except ValueError:
            pass
    return s


def load_key(path, default=b""):
    """The key stored in ``path``, else ``default``."""
    try:
        with open(path, "rb") as f:
            key = parse_key(f.read())
    except OSError:
        return default
    return key if key else default
