"""A collector with no hardware: fixed values plus a sample counter.

Used by tests, the demo and the fleet simulator, so that an end-to-end check knows
exactly which numbers must arrive.

Sample config:

    [[collectors]]
    type = "synthetic"
    name = "demo"
    values = { pm2_5 = 12.5, noise_db = 48.0 }
"""

from typing import Dict, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.collectors.base import Accumulator, PollingCollector


class SyntheticConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["synthetic"]
    name: str = Field(default="synthetic", pattern=r"^[a-z][a-z0-9_]{0,31}$")
    stream: str = Field(default="telemetry", pattern=r"^[a-z][a-z0-9_]{0,31}$")
    values: Dict[str, float] = Field(default_factory=dict)


class SyntheticCollector(PollingCollector):
    def __init__(self, config: SyntheticConfig) -> None:
        self.name = config.name
        self.stream = config.stream
        self._values = dict(config.values)
        self._count = 0

    def gather(self, acc: Accumulator) -> None:
        self._count += 1
        for key, value in self._values.items():
            acc.add(key, value)
        acc.add(f"{self.name}_samples", self._count)
        acc.status(self.name, "ok")
