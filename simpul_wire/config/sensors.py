"""Config of the sensor collectors: serial sensors (Plantower PMS, SDS011, Simpul boards) and
register-mapped Modbus RTU sensors. Their drivers are agent.collectors.serial_sensors
and agent.collectors.modbus; sample configs are in those modules' docstrings."""

from typing import List, Literal, Optional

from pydantic import Field, model_validator

from simpul_wire.config.base import NAME, Strict
from simpul_wire.config.registers import Register


class SerialConfig(Strict):
    """What every serial-port collector has."""

    name: str = Field(default="sensor", pattern=NAME)
    stream: str = Field(default="telemetry", pattern=NAME)
    port: str = Field(min_length=1, description="device path or pyserial URL")
    poll_interval_s: float = Field(default=1.0, ge=0.1, le=3600)
    stale_after_s: float = Field(default=10.0, ge=0.5, le=86400)
    stuck_after_s: Optional[float] = Field(default=None, ge=1, le=7 * 86400)


PmsModel = Literal["pms5003", "pms7003", "pms5003t", "pms5003st", "pms3003"]


class Pms5003Config(SerialConfig):
    """A Plantower PMS sensor. `model` says which words its frames carry: a PMS5003T's
    frame is as long as a PMS5003's, so only the config tells them apart."""

    type: Literal["pms5003"]
    mode: Literal["active", "passive"] = "active"
    model: PmsModel = "pms5003"

    @model_validator(mode="after")
    def _passive_needs_commands(self) -> "Pms5003Config":
        if self.model == "pms3003" and self.mode == "passive":
            raise ValueError("a pms3003 takes no commands, so it has no passive mode")
        return self


class Sds011Config(SerialConfig):
    type: Literal["sds011"]
    mode: Literal["active", "query"] = "active"


class BridgeConfig(SerialConfig):
    type: Literal["bridge"]
    report_interval_ms: Optional[int] = Field(default=None, ge=100, le=3_600_000)


class ModbusConfig(SerialConfig):
    """Registers inline or a map file (read by the agent when the collector starts)."""

    type: Literal["modbus"]
    baud: int = Field(default=9600, ge=1200, le=115200)
    parity: Literal["N", "E", "O"] = "N"
    timeout_s: float = Field(default=0.5, ge=0.05, le=10)
    map_file: Optional[str] = None
    registers: Optional[List[Register]] = None

    @model_validator(mode="after")
    def _one_map(self) -> "ModbusConfig":
        if (self.map_file is None) == (self.registers is None):
            raise ValueError("give exactly one of map_file and registers")
        return self
