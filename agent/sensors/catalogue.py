"""The metric catalogue of serial sensors: metric suffix -> unit.

A sensor collector named NAME publishes `NAME_<suffix>`: e.g. collector `air` with a
PMS5003 publishes `air_pm2_5` in ug/m3. A PMS collector's metrics depend on its
`model` (`PMS_MODEL_UNITS`: a PMS5003T adds `temperature` in degC and `humidity` in %,
and has four particle counts; a PMS5003ST adds `formaldehyde` in ug/m3 to those; a
PMS3003 has no counts); `DRIVER_UNITS["pms5003"]` has every model's. Register-mapped
(Modbus) and board (bridge) values take their unit from the register map or the
board's hello.
"""

from typing import Dict, Optional

from firmware_bridge import pms, sds011

# Per-port counters, published with every sample of a serial collector.
COUNTER_UNITS: Dict[str, str] = {
    "frames_ok": "count",
    "checksum_errors": "count",
    "resyncs": "count",
    "bytes_dropped": "bytes",
    "last_reading_age_s": "s",
}

# Per PMS model: metric suffix -> unit.
PMS_MODEL_UNITS: Dict[str, Dict[str, str]] = {
    name: m.units() for name, m in pms.MODELS.items()
}

DRIVER_UNITS: Dict[str, Dict[str, str]] = {
    "pms5003": {k: v for units in PMS_MODEL_UNITS.values() for k, v in units.items()},
    "sds011": dict(sds011.UNITS),
    "modbus": {"request_errors": "count"},
    "bridge": {"frames_lost": "count", "board_uptime_s": "s", "board_rx_crc_errors": "count"},
}


def metric_units(collector: str, driver: str, extra: Dict[str, str],
                 model: Optional[str] = None) -> Dict[str, str]:
    """Full metric name -> unit for one collector (of a PMS `model`, if given)."""
    units = dict(COUNTER_UNITS)
    if driver == "pms5003" and model is not None:
        units.update(PMS_MODEL_UNITS[model])
    else:
        units.update(DRIVER_UNITS.get(driver, {}))
    units.update(extra)
    return {f"{collector}_{suffix}": unit for suffix, unit in units.items()}
