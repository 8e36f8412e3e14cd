"""Agent config: one pydantic model for the local TOML file and the fleet's desired state.

The file has a local part ([device], [broker], [claim]) that only the box and the technician set,
and a managed part ([publish], [outbox], [[collectors]], [tier]) that the fleet may
replace through desired config. `ManagedConfig` is the managed part alone: desired
config that names a local key is refused. Validation does no I/O.
"""

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.collectors.registry import CollectorConfig
from agent.errors import ConfigError
from agent.segmentation import SegmentationSection
from simpul_wire.topics import valid_device_id

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.9 boxes
    import tomli as tomllib


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceSection(_Strict):
    device_id: str
    data_dir: str = "/var/lib/simpul"

    @field_validator("device_id")
    @classmethod
    def _device_id(cls, value: str) -> str:
        if not valid_device_id(value):
            raise ValueError("must be 2-63 characters of a-z, 0-9 and '-'")
        return value


class BrokerSection(_Strict):
    url: str = "mqtt://127.0.0.1:1883"
    username: Optional[str] = None
    password_file: Optional[str] = None
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("must look like mqtt://host:port or mqtts://host:port")
        if parts.password:
            raise ValueError("must not carry a password; use password_file")
        return value

    def host_port(self) -> Tuple[str, int]:
        parts = urlsplit(self.url)
        default = 8883 if parts.scheme == "mqtts" else 1883
        return parts.hostname or "127.0.0.1", parts.port or default


class ClaimSection(_Strict):
    """An offline-provisioned box's claim (agent/claim.py): written by
    `simpul-field provision install`, published once on the first connection."""

    code: str = Field(min_length=6, max_length=64)
    site: Optional[str] = Field(default=None, min_length=1, max_length=200)
    district: Optional[str] = Field(default=None, min_length=1, max_length=100)
    lat: Optional[float] = Field(default=None, ge=-90, le=90)
    lon: Optional[float] = Field(default=None, ge=-180, le=180)


class ControlSection(_Strict):
    """How this box carries out privileged commands (local: only the technician sets it)."""

    # None: ask root through /run/simpul/reboot-request (agent/reboot.py, the systemd
    # path unit). A command here replaces that, e.g. for a box without the unit.
    reboot_command: Optional[List[str]] = Field(default=None, min_length=1)
    # The hotspot interface the bandwidth tier shapes.
    tier_interface: Optional[str] = None


class UpdateSection(_Strict):
    """Agent updates (local: set at provisioning; docs/updates.md)."""

    # Holds slot-a, slot-b, the `current` symlink and guard.py.
    root: str = "/opt/simpul"
    # The interpreter each slot's virtualenv is made from.
    python: str = "/usr/bin/python3"
    # ed25519 public keys (base64 of the raw 32 bytes) whose bundles this box accepts.
    public_keys: List[str] = Field(default_factory=list)
    # A new version commits itself after this long connected and healthy.
    commit_after_s: float = Field(default=600.0, ge=1)
    # ... and rolls back if it has not managed that by this deadline.
    trial_deadline_s: float = Field(default=1800.0, ge=2)
    max_bundle_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)


class PublishSection(_Strict):
    sample_interval_s: float = Field(default=10.0, ge=0.05, le=3600)
    health_interval_s: float = Field(default=30.0, ge=0.05, le=3600)
    batch_max_records: int = Field(default=200, ge=1, le=2000)
    max_inflight: int = Field(default=20, ge=1, le=1000)
    # Pace of sending after an outage: an hour of backlog drains in seconds, not at once.
    replay_records_per_s: int = Field(default=1000, ge=1, le=100000)


class OutboxSection(_Strict):
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=64 * 1024)
    max_age_s: float = Field(default=7 * 24 * 3600.0, ge=60)
    # Sent but not confirmed by the fleet: send again after this long (doubling).
    resend_after_s: float = Field(default=30.0, ge=1, le=3600)


class TierSection(_Strict):
    down_mbps: float = Field(gt=0, le=10000)
    up_mbps: float = Field(gt=0, le=10000)
    per_client_mbps: Optional[float] = Field(default=None, gt=0, le=10000)
    interface: Optional[str] = None


class ManagedConfig(_Strict):
    """What the fleet may change. Desired config is validated with this model."""

    publish: PublishSection = Field(default_factory=PublishSection)
    outbox: OutboxSection = Field(default_factory=OutboxSection)
    collectors: List[CollectorConfig] = Field(default_factory=list)
    tier: Optional[TierSection] = None

    @field_validator("collectors")
    @classmethod
    def _unique_names(cls, value: List[Any]) -> List[Any]:
        seen = set()
        for item in value:
            if item.name in seen:
                raise ValueError(f"two collectors are named {item.name!r}; names must differ")
            seen.add(item.name)
        return value

    def config_hash(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class AgentConfig(ManagedConfig):
    """The whole local file: local sections plus the managed ones."""

    device: DeviceSection
    broker: BrokerSection = Field(default_factory=BrokerSection)
    claim: Optional[ClaimSection] = None
    control: ControlSection = Field(default_factory=ControlSection)
    update: UpdateSection = Field(default_factory=UpdateSection)
    segmentation: Optional[SegmentationSection] = None

    def managed(self) -> ManagedConfig:
        return ManagedConfig.model_validate(
            self.model_dump(include=set(ManagedConfig.model_fields))
        )

    def with_managed(self, managed: ManagedConfig) -> "AgentConfig":
        merged = self.model_dump(exclude=set(ManagedConfig.model_fields))
        merged.update(managed.model_dump())
        return AgentConfig.model_validate(merged)


def _line_of(text: str, key: str) -> Optional[int]:
    at_start = re.compile(rf"^\s*(\[+\s*)?{re.escape(key)}\b")
    anywhere = re.compile(rf"\b{re.escape(key)}\s*=")
    lines = text.splitlines()
    for pattern in (at_start, anywhere):
        for number, line in enumerate(lines, start=1):
            if pattern.search(line):
                return number
    return None


def explain(exc: ValidationError, text: str = "") -> str:
    """One line per error, naming the field, and the line when the text is known."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "config"
        keys = [p for p in err["loc"] if isinstance(p, str)]
        where = ""
        if text and keys:
            number = _line_of(text, keys[-1])
            if number:
                where = f"line {number}: "
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {keys[-1]!r} (typo?)" if keys else "unknown key"
        else:
            msg = err["msg"]
        lines.append(f"{where}{path}: {msg}")
    return "; ".join(lines)


def parse_config(text: str, source: str = "config") -> AgentConfig:
    """Parse TOML text into AgentConfig; ConfigError names the line and field."""
    try:
        raw: Dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return AgentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {explain(exc, text)}") from exc


def load_config(path: str) -> AgentConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text") from exc
    return parse_config(text, path)


def parse_managed(raw: Dict[str, Any]) -> ManagedConfig:
    """Validate desired config from the fleet; ConfigError names the field."""
    try:
        return ManagedConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"desired config: {explain(exc)}") from exc
