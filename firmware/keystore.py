"""The device's pairing key and boot counter, kept in files on the board's flash.

API (MicroPython/CPython):
    next_boot(path=config.BOOT_FILE) -> int    # read the counter, add 1, write it back
    read_boot(path=config.BOOT_FILE) -> int    # 0 when there is none yet
    save_key(key, path=config.AUTH_KEY_FILE)   # hex text; an empty key removes the file
    load_key(path=config.AUTH_KEY_FILE) -> bytes   # b"" when unpaired

The boot counter is the half of every authentication nonce that survives a reboot
(firmware/auth.py): it must never go back. It is written to a temporary file which is
then renamed over the old one (atomic on littlefs and POSIX), and read as the larger of
the two files, so a power cut half-way through a write never returns an older value.
Files live in the working directory: the board's root ("/" on littlefs); on the
virtual board the unix port's current directory (simulator/board_runner.py's workdir).
"""

import binascii
import os

from . import auth, config


def _read_int(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or "0")
    except (OSError, ValueError):
        return 0


def _write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    try:
        os.rename(tmp, path)
    except OSError:
        # Some filesystems refuse to rename onto an existing file.
        os.remove(path)
        os.rename(tmp, path)


def read_boot(path=config.BOOT_FILE):
    return max(_read_int(path), _read_int(path + ".tmp"))


def next_boot(path=config.BOOT_FILE):
    """The new boot counter, already persisted (raises OSError when it cannot be)."""
    n = (read_boot(path) + 1) & 0xFFFFFFFF
    _write_atomic(path, str(n).encode())
    return n


def save_key(key, path=config.AUTH_KEY_FILE):
    if not key:
        for p in (path, path + ".tmp"):
            try:
                os.remove(p)
            except OSError:
                pass
        return
    _write_atomic(path, binascii.hexlify(key) + b"\n")


def load_key(path=config.AUTH_KEY_FILE):
    return auth.load_key(path, b"")
