"""A collector with no hardware, for tests, the demo and the fleet simulator.

Fixed `values` plus a sample counter, so an end-to-end check knows exactly which
numbers must arrive; or `shape = "city"`: plausible readings for a point that move with
the hour (clients peak in the evening in parks and at rush hours at bus stops, PM2.5
follows traffic, and water levels rise with rain and drain away after it), reproducible
from `seed`. Rain falls in afternoon storms on some days, the same for every box sharing
a `rain_seed` (a district); `rain_mm_h` set from outside (the simulator's scenarios)
overrides it.

Sample config:

    [[collectors]]
    type = "synthetic"
    name = "demo"
    values = { pm2_5 = 12.5, noise_db = 48.0 }

    [[collectors]]
    type = "synthetic"
    name = "sim"
    shape = "city"             # or "box": CPU and SoC temperature, with stream = "health"
    seed = 7
    rain_seed = 3              # boxes of one district share their storms
"""

import math
import random
import time
from typing import Callable, Dict, Optional

from agent.collectors.base import Accumulator, PollingCollector
from simpul_wire.config.probes import SyntheticConfig

WATER_BASE_CM = 40.0
# How fast a channel fills per mm/h of rain, and drains (fraction of the excess per hour).
WATER_RISE_CM_PER_MM = 2.0
WATER_DRAIN_PER_H = 0.6


def rain_mm_h(rain_seed: int, now: float) -> float:
    """Afternoon storms of the wet season: on about one day in three a storm of 10-60
    mm/h starts between 13:00 and 18:00 WIB and lasts one to three hours."""
    day = int((now / 3600.0 + 7) // 24)
    rng = random.Random(rain_seed * 7919 + day)
    if rng.random() > 0.35:
        return 0.0
    start, length, peak = rng.uniform(13, 18), rng.uniform(1, 3), rng.uniform(10, 60)
    hour = (now / 3600.0 + 7) % 24
    if not start <= hour <= start + length:
        return 0.0
    return round(peak * math.sin((hour - start) / length * math.pi), 1)


def water_step(level: float, rain: float, dt_s: float) -> float:
    """One step of a leaky channel: rain fills it, it drains towards its base level."""
    dt_h = max(0.0, min(dt_s, 3600.0)) / 3600.0
    level += WATER_RISE_CM_PER_MM * rain * dt_h
    level -= (level - WATER_BASE_CM) * min(1.0, WATER_DRAIN_PER_H * dt_h)
    return max(WATER_BASE_CM - 5, level)


def city_readings(rng: random.Random, now: float) -> Dict[str, float]:
    hour = (now / 3600.0 + 7) % 24  # WIB, UTC+7
    evening = math.exp(-((hour - 19) ** 2) / 8)
    rush = math.exp(-((hour - 7.5) ** 2) / 2) + math.exp(-((hour - 17.5) ** 2) / 2)
    base = 5 + 40 * evening + 25 * rush
    return {
        "connected": max(0, round(base + rng.gauss(0, 3))),
        "nearby": max(0, round(base * 2.5 + rng.gauss(0, 5))),
        "pm2_5": round(12 + 30 * rush + rng.gauss(0, 2), 1),
        "pm10": round(20 + 45 * rush + rng.gauss(0, 3), 1),
        "noise_db": round(45 + 20 * rush + rng.gauss(0, 2), 1),
    }


def box_readings(rng: random.Random, now: float) -> Dict[str, float]:
    """A Pi in an enclosure: warmer and busier in the afternoon."""
    hour = (now / 3600.0 + 7) % 24
    sun = max(0.0, math.sin((hour - 6) / 12 * math.pi))
    return {
        "cpu_percent": round(max(0.5, 8 + 10 * sun + rng.gauss(0, 2)), 1),
        "soc_temp_c": round(45 + 15 * sun + rng.gauss(0, 0.5), 1),
        "disk_percent": 31.0,
        # Use of the tier through the hotspot, as the tier_usage collector reports it.
        "tier_down_mbps": round(max(0.0, 20 + 60 * sun + rng.gauss(0, 5)), 1),
        "tier_up_mbps": round(max(0.0, 5 + 15 * sun + rng.gauss(0, 2)), 1),
    }


class SyntheticCollector(PollingCollector):
    def __init__(self, config: SyntheticConfig, clock: Callable[[], float] = time.time) -> None:
        self.name = config.name
        self.stream = config.stream
        self._values = dict(config.values)
        self._shape = config.shape
        self._rng = random.Random(config.seed)
        self._clock = clock
        self._count = 0
        self._rain_seed = config.rain_seed if config.rain_seed is not None else config.seed
        self.rain_mm_h: Optional[float] = None  # set by a simulator scenario: overrides
        self._water = WATER_BASE_CM
        self._water_at: Optional[float] = None

    def gather(self, acc: Accumulator) -> None:
        self._count += 1
        if self._shape is not None:
            now = self._clock()
            readings = city_readings if self._shape == "city" else box_readings
            for key, value in readings(self._rng, now).items():
                acc.add(key, value)
            if self._shape == "city":
                rain = self.rain_mm_h if self.rain_mm_h is not None else rain_mm_h(
                    self._rain_seed, now)
                dt = 0.0 if self._water_at is None else now - self._water_at
                self._water = water_step(self._water, rain, dt)
                self._water_at = now
                acc.add("rain_mm_h", rain)
                acc.add("water_level_cm", round(self._water + self._rng.gauss(0, 0.5), 1))
        for key, value in self._values.items():
            acc.add(key, value)
        acc.add(f"{self.name}_samples", self._count)
        acc.status(self.name, "ok")
