"""What MicroPython has and CPython lacks, written once (MicroPython/CPython).

``const``: MicroPython's parser folds ``NAME = const(value)`` by the name ``const``
itself, so modules keep that speed-up when they import it from here; under CPython it
is the identity.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x
