"""How much of its tier the hotspot uses: bytes and Mbit/s through the interface.

Sample config:

    [[collectors]]
    type = "tier_usage"
    interface = "wlan0"

From psutil's per-interface counters. On the hotspot interface, bytes *sent* go to the
clients (download) and bytes *received* come from them (upload). Rates are averaged
over the time since the previous gather; the first gather has counters but no rate.
Metrics: `tier_down_bytes`, `tier_up_bytes`, `tier_down_mbps`, `tier_up_mbps`. The
applied tier itself is reported by the config twin (agent.shaper's AppliedTier).
"""

import time
from typing import Optional, Tuple

import psutil

from agent.collectors.base import Accumulator, PollingCollector
from simpul_wire.config.probes import TierUsageConfig


class TierUsageCollector(PollingCollector):
    stream = "health"

    def __init__(self, config: TierUsageConfig) -> None:
        self.name = config.name
        self._interface = config.interface
        self._last: Optional[Tuple[float, int, int]] = None

    def gather(self, acc: Accumulator) -> None:
        counters = psutil.net_io_counters(pernic=True).get(self._interface)
        if counters is None:
            self._last = None
            acc.status(self.name, "unavailable", f"interface {self._interface} does not exist")
            return
        now = time.monotonic()
        down, up = counters.bytes_sent, counters.bytes_recv
        acc.add("tier_down_bytes", down)
        acc.add("tier_up_bytes", up)
        last = self._last
        # A counter that went backwards means the interface was re-created: no rate.
        if last is not None and now > last[0] and down >= last[1] and up >= last[2]:
            span = now - last[0]
            acc.add("tier_down_mbps", (down - last[1]) * 8 / span / 1e6)
            acc.add("tier_up_mbps", (up - last[2]) * 8 / span / 1e6)
        self._last = (now, down, up)
        acc.status(self.name, "ok")
