"""A collector with no hardware, for tests, the demo and the fleet simulator.

Fixed `values` plus a sample counter, so an end-to-end check knows exactly which
numbers must arrive; or `shape = "city"`: plausible readings for a point that move with
the hour (clients peak in the evening in parks and at rush hours at bus stops, PM2.5
follows traffic), reproducible from `seed`.

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
"""

import math
import random
import time
from typing import Callable, Dict, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from agent.collectors.base import Accumulator, PollingCollector


class SyntheticConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["synthetic"]
    name: str = Field(default="synthetic", pattern=r"^[a-z][a-z0-9_]{0,31}$")
    stream: str = Field(default="telemetry", pattern=r"^[a-z][a-z0-9_]{0,31}$")
    values: Dict[str, float] = Field(default_factory=dict)
    shape: Optional[Literal["city", "box"]] = None
    seed: int = 0


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
        "water_level_cm": round(40 + rng.gauss(0, 0.5), 1),
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

    def gather(self, acc: Accumulator) -> None:
        self._count += 1
        if self._shape is not None:
            readings = city_readings if self._shape == "city" else box_readings
            for key, value in readings(self._rng, self._clock()).items():
                acc.add(key, value)
        for key, value in self._values.items():
            acc.add(key, value)
        acc.add(f"{self.name}_samples", self._count)
        acc.status(self.name, "ok")
