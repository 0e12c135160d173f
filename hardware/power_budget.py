#!/usr/bin/env python3
"""Power budget for the spasmwatch sensor (XIAO ESP32S3 + MPU6050 + LiPo).

Run ``python hardware/power_budget.py`` for a human-readable report or add
``--json`` for machine-readable output.  Standard library only.

The model is a duty-cycle average:

* The MCU wakes once per FIFO batch (``fifo_batch_s``, ~0.5 s at 50 Hz), reads
  the IMU FIFO over I2C, processes ``samples_per_batch`` samples at
  ``per_sample_cost_ms`` each, and goes back to its sleep floor.
* BLE adds a fixed charge per radio event (connection event or advertising
  event) plus a small charge per notification.
* Everything else (IMU, divider, board overhead, I2C pull-ups, module LED)
  is a continuous current.

Every current in ``CURRENTS`` carries a ``kind``: ``"datasheet"`` (a typical
value from the named datasheet section), ``"vendor-measurement"`` (a figure
published by the vendor for a specific setup), or ``"assumption"`` (an engineering
estimate that MUST be replaced by a bench measurement).  The default
``per_sample_cost_ms`` of 0.2 ms is an estimate to be replaced by the firmware
benchmark result on the real board.

This is a planning tool for a monitoring aid, not a medical device.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field, replace
from typing import Any

HOURS_PER_NIGHT_DEFAULT = 12.0
USABLE_FRACTION_DEFAULT = 0.8


@dataclass(frozen=True)
class CurrentSpec:
    """One documented (or assumed) current draw for a part in a given state."""

    key: str
    part: str
    state: str
    current_ua: float
    kind: str  # "datasheet" | "vendor-measurement" | "assumption"
    source: str


def _spec(key: str, part: str, state: str, ua: float, kind: str, source: str) -> CurrentSpec:
    return CurrentSpec(key=key, part=part, state=state, current_ua=ua, kind=kind, source=source)


CURRENTS: dict[str, CurrentSpec] = {
    s.key: s
    for s in (
        # --- ESP32-S3 -------------------------------------------------------------
        _spec(
            "esp32s3_light_sleep_32k", "ESP32-S3", "light sleep, BLE kept alive by 32 kHz XTAL",
            240.0, "datasheet",
            "ESP32-S3 Series Datasheet, current consumption: light-sleep 240 uA typ (also quoted "
            "in Espressif 'ESP Low Power Introduction'); Espressif NimBLE power_save example "
            "README measures 230 uA with BLE + external 32 kHz crystal",
        ),
        _spec(
            "esp32s3_light_sleep_main_xtal", "ESP32-S3",
            "light sleep with BLE, main 40 MHz XTAL kept on (no 32 kHz crystal)",
            2000.0, "assumption",
            "Bounded by Espressif NimBLE power_save example README: 3.3 mA AVERAGE for ESP32-S3 "
            "advertising with light sleep on main XTAL (that figure includes advertising); "
            "2.0 mA floor is our estimate of the non-radio part",
        ),
        _spec(
            "esp32s3_idle_no_sleep", "ESP32-S3",
            "CPU idle, no light sleep, BLE in modem sleep (stock MicroPython today)",
            17900.0, "vendor-measurement",
            "Espressif NimBLE power_save example README: ESP32-S3 'modem sleep' 17.9 mA with DFS. "
            "MicroPython has no auto light sleep (micropython#5459) and machine.lightsleep() "
            "breaks BLE (micropython#6396); without DFS the idle current may be higher",
        ),
        _spec(
            "esp32s3_idle_no_sleep_80mhz", "ESP32-S3",
            "CPU idle at machine.freq(80 MHz), no light sleep, BLE up",
            14700.0, "assumption",
            "17.9 mA (above) scaled by the 160 -> 80 MHz modem-sleep ratio of the ESP32-S2 "
            "(17 -> 14 mA, ESP32-S2-WROOM datasheet v1.1, table 8); no ESP32-S3 figure at "
            "80 MHz found: measure on the board",
        ),
        _spec(
            "esp32s3_cpu_active", "ESP32-S3", "CPU running MicroPython at 160 MHz, radio idle",
            40000.0, "assumption",
            "Estimate from the ESP32-S3 datasheet modem-sleep table (tens of mA depending on "
            "clock/cores); measure on the board",
        ),
        _spec(
            "ble_radio_active", "ESP32-S3", "BLE radio TX/RX at ~0 dBm (per-event charge basis)",
            90000.0, "assumption",
            "Order of magnitude of ESP32-class BT TX 0 dBm / RX currents (80-120 mA in ESP32 "
            "module manuals); the ESP32-S3 value must be measured",
        ),
        # --- IMUs -----------------------------------------------------------------
        _spec(
            "mpu6050_accel_only", "MPU-6050", "accelerometer only, gyro + DMP disabled",
            500.0, "datasheet",
            "InvenSense PS-MPU-6000A-00 rev 3.4, sec. 6.3: 'Accelerometer only' 500 uA",
        ),
        _spec(
            "mpu6050_accel_gyro", "MPU-6050", "accelerometer + gyroscope, DMP disabled",
            3800.0, "datasheet",
            "InvenSense PS-MPU-6000A-00 rev 3.4, sec. 6.3: 'Gyroscope + Accelerometer, DMP "
            "disabled' 3.8 mA",
        ),
        _spec(
            "mpu6050_lp_40hz", "MPU-6050", "accelerometer low-power cycle mode, 40 Hz",
            140.0, "datasheet",
            "InvenSense PS-MPU-6000A-00 rev 3.4, sec. 6.3: low power mode 40 Hz 140 uA "
            "(needs firmware at 40 Hz; 50 Hz is not an LP rate; FIFO use in cycle mode "
            "not verified)",
        ),
        _spec(
            "lis3dh_50hz_normal", "LIS3DH", "50 Hz ODR, normal mode (10-bit)",
            11.0, "datasheet",
            "ST LIS3DH DocID17530 Rev 2, Table 12: 50 Hz normal mode 11 uA",
        ),
        _spec(
            "bmi270_accel_50hz", "BMI270", "accelerometer only, ~50 Hz",
            30.0, "assumption",
            "NOT VERIFIED: placeholder; check Bosch BST-BMI270-DS000 'current consumption' table",
        ),
        _spec(
            "lsm6dso_accel_52hz_lp", "LSM6DSO", "accelerometer only, 52 Hz low-power",
            26.0, "assumption",
            "NOT VERIFIED: placeholder; check ST DS12140 electrical characteristics (LA_IDD)",
        ),
        _spec(
            "adxl362_100hz", "ADXL362", "measurement mode, 100 Hz ODR (SPI only)",
            1.8, "datasheet",
            "ADI ADXL362 data sheet, features: 1.8 uA at 100 Hz ODR, 2.0 V supply",
        ),
        # --- board parasitics -----------------------------------------------------
        _spec(
            "xiao_board_overhead", "XIAO ESP32S3 board",
            "3V3 regulator quiescent + charger standby + leakage, on battery",
            10.0, "assumption",
            "Seeed forum reports ~10 uA whole-board deep sleep from a 3.8 V battery, rising to "
            "~300 uA below ~3.3 V (regulator dropout); measure your board",
        ),
        _spec(
            "gy521_ldo_quiescent", "GY-521 module", "onboard 3.3 V LDO quiescent",
            1.0, "assumption",
            "Assumes an XC6206-class LDO (~1 uA); some clones use AMS1117 (mA!) - check the part",
        ),
        _spec(
            "gy521_power_led", "GY-521 module", "power LED (if not removed)",
            1500.0, "assumption",
            "(3.3 V - ~1.8 V) / ~1 kOhm; remove the LED or cut its trace",
        ),
    )
}

IMU_KEYS: dict[str, str] = {
    "mpu6050": "mpu6050_accel_only",
    "mpu6050_lp40": "mpu6050_lp_40hz",
    "lis3dh": "lis3dh_50hz_normal",
    "bmi270": "bmi270_accel_50hz",
    "lsm6dso": "lsm6dso_accel_52hz_lp",
    "adxl362": "adxl362_100hz",
}

SLEEP_KEYS: dict[str, str] = {
    "light_sleep_main_xtal": "esp32s3_light_sleep_main_xtal",
    "light_sleep_32k": "esp32s3_light_sleep_32k",
    "no_sleep": "esp32s3_idle_no_sleep",
    "no_sleep_80mhz": "esp32s3_idle_no_sleep_80mhz",
}

#: BlueZ's default connection interval (min 30 ms, max 50 ms, latency 0): the firmware
#: requests no parameters (MicroPython's bluetooth module has no call for it), so a
#: Linux host sets them.
BLUEZ_DEFAULT_CONN_INTERVAL_MS = 45.0


@dataclass(frozen=True)
class BuildConfig:
    """Hardware + firmware behaviour that determines the average current."""

    name: str = "Reference build"
    battery_mah: float = 500.0
    usable_fraction: float = USABLE_FRACTION_DEFAULT
    night_hours: float = HOURS_PER_NIGHT_DEFAULT
    battery_v: float = 3.7
    imu: str = "mpu6050"
    gyro_on: bool = False
    sample_rate_hz: float = 50.0
    fifo_batch_s: float = 0.5
    bytes_per_sample: int = 6  # accel XYZ, int16 each; 12 with gyro
    per_sample_cost_ms: float = 0.2  # ESTIMATE, replace with benchmark result
    wake_overhead_ms: float = 1.0  # assumption: light-sleep exit/entry + Python overhead
    i2c_freq_hz: float = 400_000.0
    i2c_pullup_ohms: float = 4700.0  # GY-521 onboard pull-ups
    mcu_sleep: str = "light_sleep_main_xtal"
    ble_mode: str = "connected"  # "connected" | "advertising" | "off"
    ble_conn_interval_ms: float = 500.0
    ble_adv_interval_ms: float = 1000.0
    ble_conn_event_ms: float = 1.0  # assumption: radio-on time per empty connection event
    ble_adv_event_ms: float = 2.0  # assumption: 3 channels, legacy advertising PDU
    ble_notify_ms: float = 0.3  # assumption: extra radio time per notification
    ble_notifications_per_s: float = 1.0  # heartbeat/status; events are rarer
    divider_total_ohms: float = 440_000.0  # 2 x 220 kOhm
    gy521_led_removed: bool = True
    notes: str = ""
    overrides_ua: dict[str, float] = field(default_factory=dict)


def current_ua(key: str, cfg: BuildConfig | None = None) -> float:
    """Current for ``key`` in uA, honouring per-config overrides."""
    if cfg is not None and key in cfg.overrides_ua:
        return cfg.overrides_ua[key]
    return CURRENTS[key].current_ua


def samples_per_batch(cfg: BuildConfig) -> float:
    """Samples accumulated in the FIFO between two wake-ups."""
    return cfg.sample_rate_hz * cfg.fifo_batch_s


def effective_bytes_per_sample(cfg: BuildConfig) -> int:
    """FIFO bytes per sample (accel 6 B, accel+gyro 12 B)."""
    return cfg.bytes_per_sample * (2 if cfg.gyro_on else 1)


def i2c_read_ms(cfg: BuildConfig) -> float:
    """Time to burst-read one FIFO batch (9 clocks per byte, ~8 bytes of framing)."""
    nbytes = samples_per_batch(cfg) * effective_bytes_per_sample(cfg) + 8
    return nbytes * 9.0 / cfg.i2c_freq_hz * 1000.0


def active_ms_per_batch(cfg: BuildConfig) -> float:
    """CPU-awake time per FIFO batch: wake overhead + I2C read + processing."""
    processing = samples_per_batch(cfg) * cfg.per_sample_cost_ms
    return cfg.wake_overhead_ms + i2c_read_ms(cfg) + processing


def cpu_duty(cfg: BuildConfig) -> float:
    """Fraction of time the CPU is awake."""
    return min(1.0, active_ms_per_batch(cfg) / (cfg.fifo_batch_s * 1000.0))


def imu_current_ua(cfg: BuildConfig) -> float:
    """Continuous IMU current."""
    if cfg.gyro_on:
        if cfg.imu != "mpu6050":
            raise ValueError("gyro_on is only modelled for the MPU-6050")
        return current_ua("mpu6050_accel_gyro", cfg)
    return current_ua(IMU_KEYS[cfg.imu], cfg)


def mcu_current_ua(cfg: BuildConfig) -> float:
    """Average MCU current (sleep floor + CPU bursts), radio excluded."""
    duty = cpu_duty(cfg)
    floor = current_ua(SLEEP_KEYS[cfg.mcu_sleep], cfg)
    active = current_ua("esp32s3_cpu_active", cfg)
    return duty * active + (1.0 - duty) * floor


def ble_current_ua(cfg: BuildConfig) -> float:
    """Average extra current for BLE radio events (charge per event x event rate)."""
    radio = current_ua("ble_radio_active", cfg)
    if cfg.ble_mode == "off":
        return 0.0
    if cfg.ble_mode == "connected":
        events_per_s = 1000.0 / cfg.ble_conn_interval_ms
        base = radio * cfg.ble_conn_event_ms / 1000.0 * events_per_s
        notify = radio * cfg.ble_notify_ms / 1000.0 * cfg.ble_notifications_per_s
        return base + notify
    if cfg.ble_mode == "advertising":
        events_per_s = 1000.0 / cfg.ble_adv_interval_ms
        return radio * cfg.ble_adv_event_ms / 1000.0 * events_per_s
    raise ValueError(f"unknown ble_mode {cfg.ble_mode!r}")


def divider_current_ua(cfg: BuildConfig) -> float:
    """Battery-sense divider drain (always connected after the power switch)."""
    return cfg.battery_v / cfg.divider_total_ohms * 1e6


def i2c_pullup_current_ua(cfg: BuildConfig) -> float:
    """Pull-up current: 2 lines, low ~50 % of the time while a transfer runs."""
    per_line_ua = 3.3 / cfg.i2c_pullup_ohms * 1e6
    bus_duty = i2c_read_ms(cfg) / (cfg.fifo_batch_s * 1000.0)
    return 2 * per_line_ua * 0.5 * bus_duty


def breakdown_ua(cfg: BuildConfig) -> dict[str, float]:
    """Average current per contributor in uA."""
    parts = {
        "mcu (sleep floor + CPU bursts)": mcu_current_ua(cfg),
        "ble radio events": ble_current_ua(cfg),
        f"imu ({cfg.imu}{' + gyro' if cfg.gyro_on else ''})": imu_current_ua(cfg),
        "battery divider": divider_current_ua(cfg),
        "i2c pull-ups": i2c_pullup_current_ua(cfg),
        "xiao regulator/charger/leakage": current_ua("xiao_board_overhead", cfg),
        "gy521 ldo quiescent": current_ua("gy521_ldo_quiescent", cfg),
    }
    if not cfg.gy521_led_removed:
        parts["gy521 power led"] = current_ua("gy521_power_led", cfg)
    return parts


def average_current_ma(cfg: BuildConfig) -> float:
    """Total average current in mA."""
    return sum(breakdown_ua(cfg).values()) / 1000.0


def runtime_hours(battery_mah: float, avg_ma: float, usable_fraction: float) -> float:
    """Hours of operation from one charge."""
    if avg_ma <= 0:
        raise ValueError("average current must be positive")
    return battery_mah * usable_fraction / avg_ma


def nights_per_charge(
    battery_mah: float,
    avg_ma: float,
    usable_fraction: float = USABLE_FRACTION_DEFAULT,
    night_hours: float = HOURS_PER_NIGHT_DEFAULT,
) -> float:
    """Number of ``night_hours`` nights one charge lasts."""
    return runtime_hours(battery_mah, avg_ma, usable_fraction) / night_hours


@dataclass(frozen=True)
class BudgetResult:
    """Result of evaluating one build."""

    name: str
    avg_current_ma: float
    runtime_h: float
    nights: float
    cpu_duty: float
    breakdown_ua: dict[str, float]
    config: dict[str, Any]


def evaluate(cfg: BuildConfig) -> BudgetResult:
    """Evaluate a build configuration."""
    avg = average_current_ma(cfg)
    return BudgetResult(
        name=cfg.name,
        avg_current_ma=avg,
        runtime_h=runtime_hours(cfg.battery_mah, avg, cfg.usable_fraction),
        nights=nights_per_charge(cfg.battery_mah, avg, cfg.usable_fraction, cfg.night_hours),
        cpu_duty=cpu_duty(cfg),
        breakdown_ua=breakdown_ua(cfg),
        config=asdict(cfg),
    )


REFERENCE = BuildConfig()

#: The headline: what the firmware does today. Stock MicroPython (no light sleep while
#: BLE is up), default CPU clock, 0.5 s FIFO batches, the host's default BLE interval.
TODAY = BuildConfig(
    name="Firmware today (stock MicroPython)",
    mcu_sleep="no_sleep",
    ble_conn_interval_ms=BLUEZ_DEFAULT_CONN_INTERVAL_MS,
)

#: Parts a parent can buy and settings the firmware can make, each on top of the last.
#: machine.freq(80 MHz) and larger FIFO batches are firmware settings (config.py);
#: a 600 mAh protected cell is 603035-sized like the reference 503035 one (check it
#: fits the case and the 30 g limit in enclosure-and-placement.md).
TWO_NIGHTS = [
    replace(TODAY, name="+ machine.freq(80 MHz)", mcu_sleep="no_sleep_80mhz"),
    replace(TODAY, name="+ 80 MHz, FIFO batch 1 s", mcu_sleep="no_sleep_80mhz",
            fifo_batch_s=1.0),
    replace(TODAY, name="+ 80 MHz, batch 1 s, 600 mAh protected cell",
            mcu_sleep="no_sleep_80mhz", fifo_batch_s=1.0, battery_mah=600.0),
    replace(TODAY, name="+ 80 MHz, batch 1 s, host sets BLE interval 500 ms (untested)",
            mcu_sleep="no_sleep_80mhz", fifo_batch_s=1.0, ble_conn_interval_ms=500.0),
]

#: The route to ~10 nights: a MicroPython build with ESP-IDF power management and
#: FreeRTOS tickless idle, so the chip light-sleeps between FIFO reads with BLE
#: connected (the reference build's assumption). Untested: no such build exists here.
TEN_NIGHTS = replace(REFERENCE, name="Light sleep with BLE (PM + tickless idle build, untested)")


def scenarios(per_sample_cost_ms: float = 0.2) -> list[BuildConfig]:
    """The firmware as it runs today first, the route to two nights, the route to ten,
    then alternatives that each change one thing against the light-sleep reference."""
    ref = replace(REFERENCE, per_sample_cost_ms=per_sample_cost_ms)
    return [
        replace(TODAY, per_sample_cost_ms=per_sample_cost_ms),
        *(replace(c, per_sample_cost_ms=per_sample_cost_ms) for c in TWO_NIGHTS),
        replace(TEN_NIGHTS, per_sample_cost_ms=per_sample_cost_ms),
        ref,
        replace(ref, name="Battery 250 mAh", battery_mah=250.0),
        replace(ref, name="Battery 1000 mAh", battery_mah=1000.0),
        replace(ref, name="Gyro on (MPU-6050 accel+gyro)", gyro_on=True),
        replace(ref, name="MPU-6050 LP cycle mode at 40 Hz", imu="mpu6050_lp40",
                sample_rate_hz=40.0),
        replace(ref, name="IMU LIS3DH (50 Hz normal)", imu="lis3dh"),
        replace(ref, name="IMU BMI270 (unverified current)", imu="bmi270"),
        replace(ref, name="IMU LSM6DSO (unverified current)", imu="lsm6dso"),
        replace(ref, name="IMU ADXL362 (SPI, 100 Hz)", imu="adxl362"),
        replace(ref, name="BLE conn interval 30 ms", ble_conn_interval_ms=30.0),
        replace(ref, name="Host gone: advertising every 1 s", ble_mode="advertising"),
        replace(ref, name="Host gone: advertising every 100 ms", ble_mode="advertising",
                ble_adv_interval_ms=100.0),
        replace(ref, name="GY-521 power LED left on", gy521_led_removed=False),
        replace(ref, name="Board with 32 kHz crystal (light sleep 240 uA)",
                mcu_sleep="light_sleep_32k"),
        replace(ref, name="Stock MicroPython: no light sleep while BLE is up",
                mcu_sleep="no_sleep"),
        replace(ref, name="Per-sample cost 1.0 ms (slow Python)", per_sample_cost_ms=1.0),
    ]


def _fmt_table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(out)


def render_text(results: list[BudgetResult], show_sources: bool = True) -> str:
    """Human-readable report."""
    ref = results[0]
    cfg = ref.config
    lines: list[str] = []
    lines.append("spasmwatch power budget (planning estimate, NOT a measurement)")
    lines.append("=" * 62)
    lines.append(
        f"Assumptions: {cfg['sample_rate_hz']:.0f} Hz, FIFO batch {cfg['fifo_batch_s']} s, "
        f"per-sample cost {cfg['per_sample_cost_ms']} ms (ESTIMATE - replace with benchmark), "
        f"night = {cfg['night_hours']:.0f} h, usable battery = {cfg['usable_fraction']:.0%}"
    )
    lines.append("")
    lines.append(f"{ref.name}: XIAO ESP32S3 + GY-521 (MPU-6050, accel only) + "
                 f"{cfg['battery_mah']:.0f} mAh LiPo, BLE connected @ "
                 f"{cfg['ble_conn_interval_ms']:.0f} ms, no light sleep (CPU idles awake)")
    lines.append(f"  CPU awake duty      : {ref.cpu_duty:.2%}")
    for k, v in ref.breakdown_ua.items():
        lines.append(f"  {k:<31}: {v:9.1f} uA")
    lines.append(f"  AVERAGE CURRENT     : {ref.avg_current_ma:.2f} mA")
    lines.append(f"  RUNTIME PER CHARGE  : {ref.runtime_h:.0f} h")
    lines.append(f"  NIGHTS PER CHARGE   : {ref.nights:.1f}")
    lines.append("")
    lines.append(f"Route to >= 2 nights: rows 2-{1 + len(TWO_NIGHTS)}; to ~10 nights: row "
                 f"{2 + len(TWO_NIGHTS)} (untested); then one change each vs. the light-sleep "
                 "reference:")
    rows = [
        [r.name, f"{r.avg_current_ma:.2f}", f"{r.runtime_h:.0f}", f"{r.nights:.1f}"]
        for r in results
    ]
    lines.append(_fmt_table(rows, ["build", "avg mA", "hours", "nights"]))
    lines.append("")
    lines.append("Stock MicroPython cannot light-sleep while BLE is active "
                 "(micropython#6396, #5459): the headline")
    lines.append("is the firmware as it runs today; every light-sleep row is untested. "
                 "All figures are a model, not a meter.")
    if show_sources:
        lines.append("")
        lines.append("Current table (kind: datasheet | vendor-measurement | assumption):")
        for s in CURRENTS.values():
            lines.append(f"  [{s.kind}] {s.part} - {s.state}: {s.current_ua:g} uA")
            lines.append(f"      source: {s.source}")
    return "\n".join(lines)


def to_json(results: list[BudgetResult]) -> str:
    """Machine-readable report."""
    payload = {
        "headline": asdict(results[0]),
        "alternatives": [asdict(r) for r in results[1:]],
        "currents": {k: asdict(v) for k, v in CURRENTS.items()},
        "disclaimer": "Planning estimate, not a measurement. Not a medical device.",
    }
    return json.dumps(payload, indent=2)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="emit JSON instead of text")
    parser.add_argument(
        "--per-sample-ms", type=float, default=0.2,
        help="processing cost per sample in ms (default 0.2, an estimate; use the benchmark)",
    )
    parser.add_argument("--no-sources", action="store_true", help="omit the source table")
    args = parser.parse_args(argv)
    results = [evaluate(c) for c in scenarios(args.per_sample_ms)]
    if args.json:
        sys.stdout.write(to_json(results) + "\n")
    else:
        sys.stdout.write(render_text(results, show_sources=not args.no_sources) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
