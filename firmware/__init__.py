"""Firmware modules (MicroPython/CPython common subset): detector, wire format, drivers."""
