"""Config of the collectors that watch the box and its reach: health (psutil), Pi
throttling, tier usage, WAN latency, CCTV reachability (RTSP), and the synthetic one of
tests and the demo. Their code is in agent.collectors.<type>."""

from typing import Dict, List, Literal, Optional
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from simpul_wire.config.base import NAME, Strict


class HealthConfig(Strict):
    type: Literal["health"]
    name: str = Field(default="health", pattern=NAME)
    disk_path: str = "/"


class PiThrottleConfig(Strict):
    type: Literal["pi_throttle"]
    name: str = Field(default="pi_power", pattern=NAME)
    command: str = "vcgencmd"
    timeout_s: float = Field(default=2.0, gt=0, le=30)


class TierUsageConfig(Strict):
    type: Literal["tier_usage"]
    name: str = Field(default="tier_usage", pattern=NAME)
    interface: str = Field(min_length=1, max_length=15)


class WanConfig(Strict):
    type: Literal["wan"]
    name: str = Field(default="wan", pattern=NAME)
    target: str = Field(min_length=1, max_length=253)
    method: Literal["tcp", "icmp"] = "tcp"
    port: int = Field(default=443, ge=1, le=65535)
    count: int = Field(default=3, ge=1, le=20)
    timeout_s: float = Field(default=1.0, gt=0, le=10)
    interval_s: float = Field(default=30.0, ge=1, le=3600)


class Camera(Strict):
    name: str = Field(pattern=NAME)
    url: str

    @field_validator("url")
    @classmethod
    def _rtsp(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "rtsp" or not parts.hostname:
            raise ValueError("must look like rtsp://host[:port]/path")
        return value


class RtspConfig(Strict):
    type: Literal["rtsp"]
    name: str = Field(default="cctv", pattern=NAME)
    cameras: List[Camera] = Field(min_length=1, max_length=64)
    timeout_s: float = Field(default=2.0, gt=0, le=30)
    interval_s: float = Field(default=30.0, ge=1, le=3600)


class SyntheticConfig(Strict):
    type: Literal["synthetic"]
    name: str = Field(default="synthetic", pattern=NAME)
    stream: str = Field(default="telemetry", pattern=NAME)
    values: Dict[str, float] = Field(default_factory=dict)
    shape: Optional[Literal["city", "box"]] = None
    seed: int = 0
    rain_seed: Optional[int] = None
