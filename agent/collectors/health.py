"""Box health from psutil: CPU, load, memory, disk, temperature, uptime, network.

Sample config:

    [[collectors]]
    type = "health"
    disk_path = "/"
"""

import os
import time
from typing import Optional

import psutil

from agent.collectors.base import Accumulator, PollingCollector
from simpul_wire.config.probes import HealthConfig


def _soc_temperature() -> Optional[float]:
    reader = getattr(psutil, "sensors_temperatures", None)
    if reader is None:
        return None
    try:
        temps = reader()
    except OSError:
        return None
    for key in ("cpu_thermal", "coretemp", "k10temp", "soc_thermal"):
        if temps.get(key):
            return float(temps[key][0].current)
    return None


class HealthCollector(PollingCollector):
    stream = "health"

    def __init__(self, config: HealthConfig) -> None:
        self.name = config.name
        self._disk_path = config.disk_path
        # The first cpu_percent call only sets a baseline.
        psutil.cpu_percent(interval=None)

    def gather(self, acc: Accumulator) -> None:
        acc.add("cpu_percent", psutil.cpu_percent(interval=None))
        acc.add("load_1m", os.getloadavg()[0])
        mem = psutil.virtual_memory()
        acc.add("mem_percent", mem.percent)
        try:
            disk = psutil.disk_usage(self._disk_path)
            acc.add("disk_percent", disk.percent)
            acc.add("disk_free_mb", disk.free / 1e6)
        except OSError as exc:
            acc.status("disk", "unavailable", f"{self._disk_path}: {exc.strerror}")
        acc.add("uptime_s", time.time() - psutil.boot_time())
        temp = _soc_temperature()
        if temp is None:
            acc.status("soc_temp", "unavailable", "no thermal sensor exposed")
        else:
            acc.add("soc_temp_c", temp)
        net = psutil.net_io_counters()
        acc.add("net_bytes_sent", net.bytes_sent)
        acc.add("net_bytes_recv", net.bytes_recv)
        acc.status(self.name, "ok")
