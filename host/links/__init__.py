"""Links from the host to a sensor: serial (pyserial), BLE (bleak), all behind one interface."""
