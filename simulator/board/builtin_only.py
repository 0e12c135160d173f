"""Import MicroPython's built-in modules past this folder's shims of the same name.

The virtual board puts simulator/board first on MICROPYPATH, so ``import time`` there
finds the simulator's ``time.py``. The shims themselves need the built-in modules:
with an empty ``sys.path`` MicroPython finds only those. Written once, for every shim::

    with builtin_only.path():
        import time as _rt
"""

import sys


class path:
    """``sys.path`` is empty inside the block, as it was before after it."""

    def __enter__(self):
        self.saved = sys.path
        sys.path = []
        return self

    def __exit__(self, *exc):
        sys.path = self.saved
        return False
