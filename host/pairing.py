"""Pairing with one sensor: the shared key beside the settings, and the link session.

API:
    settings_folder(config_path=None) -> Path     # the folder of the settings file
    new_key() -> bytes                             # 16 random bytes (128 bits)
    Pairing(key, name, paired_at, port="", address="")   .key_id
    load_pairing(folder) -> Pairing | None         # PairingError when unreadable/unsafe
    save_pairing(folder, pairing) / forget_pairing(folder) -> bool
    web_token(folder) -> str                       # the web page's token (made once)
    Session(key)                                   # the host half of one paired link:
        .hello() -> payload, .accept_hello(packet) -> bool, .sign(payload) -> payload,
        __call__(body, tag) -> bool  (the wire verifier), .boot, .stats
    session_for_run(insecure, config_path=None) -> Session | None
        # the paired session, None with --insecure; UserError when unpaired

Files (mode 0600, folder 0700, written atomically), in the settings file's folder
(``$XDG_CONFIG_HOME/spasmwatch`` by default): ``pairing.json`` (key as hex, key id,
device name, USB port and time of pairing, BLE address once seen) and ``web.token``.
A file that others can read is refused with one line, not used.

``Session`` mirrors the device (firmware/app.py): packets carry a tag over the device's
boot counter, which the host learns from the signed answer to a random HELLO
challenge; a packet from a newer boot (the device restarted, or its sequence number
wrapped) is recognised by trying the next few counters, an older one never verifies.
Commands are signed with the boot counter and a counter that only grows.
"""

from __future__ import annotations

import json
import os
import secrets
import struct
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass
from pathlib import Path

from spasmwatch.firmware import auth, control, wire
from spasmwatch.host.errors import UserError

__all__ = [
    "PAIRING_FILE", "WEB_TOKEN_FILE", "Pairing", "PairingError", "Session", "forget_pairing",
    "load_pairing", "new_key", "save_pairing", "session_for_run", "settings_folder",
    "web_token",
]

PAIRING_FILE = "pairing.json"
WEB_TOKEN_FILE = "web.token"
BOOT_LOOKAHEAD = 16  # reboots (or sequence wraps) the host may miss and still follow


class PairingError(UserError):
    """The pairing file is missing, unreadable or unsafe (one line a person can act on)."""


def settings_folder(config_path: str | os.PathLike[str] | None = None) -> Path:
    """The folder the settings file lives in (``spasmwatch config`` decides where)."""
    from spasmwatch.host.settings import default_path

    return (Path(config_path) if config_path else default_path()).parent


def new_key() -> bytes:
    return secrets.token_bytes(auth.KEY_LEN)


@dataclass
class Pairing:
    key: bytes
    name: str
    paired_at: float
    port: str = ""
    address: str = ""  # BLE address of the sensor, once it proved the key over BLE

    @property
    def key_id(self) -> str:
        return str(auth.key_id(self.key))

    def to_json(self) -> str:
        d = asdict(self)
        d["key"] = self.key.hex()
        d["key_id"] = self.key_id
        return json.dumps(d, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> Pairing:
        try:
            d = json.loads(text)
            key = bytes.fromhex(d["key"])
            p = cls(key=key, name=str(d.get("name", "")), paired_at=float(d["paired_at"]),
                    port=str(d.get("port", "")), address=str(d.get("address", "")))
        except (ValueError, KeyError, TypeError) as exc:
            raise PairingError(f"{where}: not a valid pairing file ({exc}); pair again with "
                               "`spasmwatch pair --port PORT`") from None
        if len(key) < auth.KEY_LEN:
            raise PairingError(f"{where}: key shorter than {auth.KEY_LEN} bytes; pair again")
        return p


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # also when the file was left behind with other bits
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read_private(path: Path) -> str | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    if st.st_mode & 0o077:
        raise PairingError(f"{path}: readable by other users (mode {st.st_mode & 0o777:o}); "
                           f"run `chmod 600 {path}` or pair again")
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PairingError(f"{path}: cannot read: {exc}") from None


def load_pairing(folder: str | os.PathLike[str]) -> Pairing | None:
    path = Path(folder) / PAIRING_FILE
    text = _read_private(path)
    return None if text is None else Pairing.from_json(text, str(path))


def save_pairing(folder: str | os.PathLike[str], pairing: Pairing) -> Path:
    path = Path(folder) / PAIRING_FILE
    _write_private(path, pairing.to_json())
    return path


def forget_pairing(folder: str | os.PathLike[str]) -> bool:
    try:
        (Path(folder) / PAIRING_FILE).unlink()
        return True
    except FileNotFoundError:
        return False


def web_token(folder: str | os.PathLike[str]) -> str:
    """The token the web page's acknowledge/mute/unmute need (made on first use)."""
    path = Path(folder) / WEB_TOKEN_FILE
    text = _read_private(path)
    if text and text.strip():
        return text.strip()
    token = secrets.token_urlsafe(24)
    _write_private(path, token + "\n")
    return token


class Session:
    """The host side of an authenticated link to one paired sensor (see module doc)."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("a session needs the pairing key")
        self.key = bytes(key)
        self.boot: int | None = None  # the device's boot counter, from HELLO
        self.cnt = 0  # last command counter used (the device wants it increasing)
        self.token = 0  # the challenge of the latest HELLO
        self.answered = 0  # the challenge the device answered last (its reply verifies)
        self.hello_seq = -1  # stream seq the device had reached when it answered
        self.boot_changes = 0
        self.stats: Counter[str] = Counter()  # hello_ok, hello_bad, verified, refused...
        # (wall time, address) of devices that took our name but not the challenge
        # (host/links/ble_link.py); the engine reports them as the foreign-device fault.
        self.rejected: deque[tuple[float, str]] = deque(maxlen=16)

    # -- challenge -----------------------------------------------------------------------
    def hello(self) -> bytes:
        self.token = secrets.randbits(32) or 1
        return control.encode_hello(self.token)

    def _hello_ok(self, body: bytes, tag: bytes) -> bool:
        if len(body) != wire.HEADER_LEN + wire.PAYLOAD_LEN or body[7] != control.HELLO:
            return False
        (boot,) = struct.unpack_from("<I", body, 9)
        return auth.same(auth.hello_tag(self.key, boot, self.token, body), tag)

    def accept_hello(self, data: bytes) -> bool:
        """True when ``data`` is the device's signed answer to our latest challenge."""
        if not self.token or wire.peek_kind(data) != wire.KIND_REPLY:
            return False
        try:
            seq, rec = wire.decode(data, self._hello_ok)
        except wire.WireError:
            self.stats["hello_bad"] += 1
            return False
        _, t_ms, opcode, result, boot = rec
        if opcode != control.HELLO or result != control.RESULT_OK:
            return False
        if self.boot is not None and boot != self.boot:
            self.boot_changes += 1
        if boot != self.boot:
            self.cnt = 0
        self.boot = boot
        self.cnt = max(self.cnt, t_ms)
        self.hello_seq = seq
        self.answered = self.token
        self.token = 0  # answered: the same reply never counts twice
        self.stats["hello_ok"] += 1
        return True

    # -- packets from the device -------------------------------------------------------------
    def __call__(self, body: bytes, tag: bytes) -> bool:
        """The wire verifier: ``body`` is authentic for the device's current boot."""
        boot = self.boot
        if boot is None:
            return False
        if len(body) > 9 and body[0] & 0x0F == wire.KIND_REPLY and body[7] == control.HELLO:
            # The answer to our latest challenge (handed on to the daemon as a reply).
            return self.answered != 0 and body[9:13] == struct.pack("<I", boot) and \
                auth.same(auth.hello_tag(self.key, boot, self.answered, body), tag)
        if auth.same(auth.packet_tag(self.key, boot, body), tag):
            self.stats["verified"] += 1
            return True
        for b in range(boot + 1, boot + 1 + BOOT_LOOKAHEAD):
            if auth.same(auth.packet_tag(self.key, b & 0xFFFFFFFF, body), tag):
                # The device restarted or wrapped its sequence number: new nonce half,
                # and its command counter started over.
                self.boot = b & 0xFFFFFFFF
                self.cnt = 0
                self.boot_changes += 1
                self.stats["verified"] += 1
                return True
        return False

    def note_reply(self, rec: tuple) -> None:
        """A verified reply: a refused command tells the device's last counter."""
        if rec[0] == wire.KIND_REPLY and rec[3] == control.RESULT_AUTH:
            self.stats["refused"] += 1
            self.cnt = max(self.cnt, rec[4])

    # -- commands to the device -------------------------------------------------------
    def sign(self, payload: bytes) -> bytes:
        if not payload or payload[0] in control.UNSIGNED:
            return bytes(payload)
        if self.boot is None:
            raise control.ControlError("auth", "the device has not answered HELLO yet")
        self.cnt += 1
        return control.sign(payload, self.key, self.boot, self.cnt)


def session_for_run(insecure: bool, config_path: str | os.PathLike[str] | None = None,
                    ) -> Session | None:
    """The session ``run`` uses: from the pairing file; None only with ``--insecure``."""
    folder = settings_folder(config_path)
    pairing = load_pairing(folder)
    if pairing is not None:
        return Session(pairing.key)
    if insecure:
        return None
    raise UserError(f"this computer is not paired with a sensor (no {folder / PAIRING_FILE}): "
                    "connect it by USB and run `spasmwatch pair --port PORT`, "
                    "or add --insecure to monitor without authentication")


def pairing_summary(p: Pairing) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(p.paired_at))
    where = f" on {p.port}" if p.port else ""
    return f"sensor {p.name!r}, key id {p.key_id}, paired {when}{where}"
