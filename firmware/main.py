"""Board entry point: copied to /main.py on the board (and run by the simulator).

Importing it starts the monitor and never returns, so the toolchain's import test
skips it (it is still compiled by mpy-cross and type-checked).
"""

from firmware import app

app.run()
