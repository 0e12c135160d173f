"""Battery voltage through the resistor divider, and the charger's status pin.

API:
    Battery(adc, divider=config.BATTERY_DIVIDER, charge_pin=None)
    .read_mv() -> int          # battery mV (average of config.BATTERY_SAMPLES readings);
                               # 0 when the ADC fails (reported, never raised)
    .charging() -> bool        # charger STAT pin low (False when not wired)
    .low(mv) -> bool           # below config.BATTERY_LOW_MV (0 = unknown: not low)

``adc`` is a ``machine.ADC`` (made by hal.make_adc, 11 dB attenuation) and is read with
``read_uv()``, which MicroPython calibrates per chip on the ESP32; the divider halves
the cell voltage (4.2 V max) into the ADC's range.
"""

from . import config


class Battery:
    def __init__(self, adc, divider=config.BATTERY_DIVIDER, charge_pin=None):
        self.adc = adc
        self.divider = divider
        self.charge_pin = charge_pin
        self.errors = 0

    def read_mv(self):
        if self.adc is None:
            return 0
        total = 0
        try:
            for _ in range(config.BATTERY_SAMPLES):
                total += self.adc.read_uv()
        except OSError:
            self.errors += 1
            return 0
        return int(total * self.divider) // (config.BATTERY_SAMPLES * 1000)

    def charging(self):
        pin = self.charge_pin
        return pin is not None and pin.value() == 0

    def low(self, mv):
        return 0 < mv < config.BATTERY_LOW_MV
