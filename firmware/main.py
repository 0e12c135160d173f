"""Board entry point: copied to /main.py on the board (and run by the simulator).

Before the monitor starts, a short window (``BOOT_BREAK_MS``) leaves Ctrl-C working:
``app.run()`` then disables it (``micropython.kbd_intr(-1)``, frames may contain
0x03), so this window is how ``mpremote`` / ``spasmwatch flash`` reach the REPL of a
board running spasmwatch: reset it, send Ctrl-C repeatedly, and the
KeyboardInterrupt raised in the sleep below ends main.py at the REPL.

Importing it starts the monitor and never returns, so the toolchain's import test
skips it (it is still compiled by mpy-cross and type-checked).
"""

import time

BOOT_BREAK_MS = 2000  # Ctrl-C within this long after reset drops to the REPL

time.sleep_ms(BOOT_BREAK_MS)

from firmware import app  # noqa: E402 - after the window: a Ctrl-C must not cost imports

app.run()
