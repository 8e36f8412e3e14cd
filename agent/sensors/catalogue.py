"""The metric catalogue of serial sensors: metric suffix -> unit.

A sensor collector named NAME publishes `NAME_<suffix>`: e.g. collector `air` with a
PMS5003 publishes `air_pm2_5` in ug/m3. Register-mapped (Modbus) and board (bridge)
values take their unit from the register map or the board's hello.
"""

from typing import Dict

from firmware_bridge import pms, sds011

# Per-port counters, published with every sample of a serial collector.
COUNTER_UNITS: Dict[str, str] = {
    "frames_ok": "count",
    "checksum_errors": "count",
    "resyncs": "count",
    "bytes_dropped": "bytes",
    "last_reading_age_s": "s",
}

DRIVER_UNITS: Dict[str, Dict[str, str]] = {
    "pms5003": dict(pms.UNITS),
    "sds011": dict(sds011.UNITS),
    "modbus": {"request_errors": "count"},
    "bridge": {"frames_lost": "count", "board_uptime_s": "s", "board_rx_crc_errors": "count"},
}


def metric_units(collector: str, driver: str, extra: Dict[str, str]) -> Dict[str, str]:
    """Full metric name -> unit for one collector."""
    units = dict(COUNTER_UNITS)
    units.update(DRIVER_UNITS.get(driver, {}))
    units.update(extra)
    return {f"{collector}_{suffix}": unit for suffix, unit in units.items()}
