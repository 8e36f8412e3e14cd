"""The config file's sections: one pydantic model for the box's local TOML file and the
fleet's desired state.

The file has a local part ([device], [broker], [claim], [control], [update],
[segmentation]) that only the box and the technician set, and a managed part
([publish], [outbox], [[collectors]], [tier]) that the fleet may replace through
desired config. `ManagedConfig` is the managed part alone: desired config that names a
local key is refused. The field tool writes the file and the agent reads it, so both
are part of the contract. Validation does no I/O.
"""

import hashlib
import ipaddress
import json
import re
from typing import Any, List, Optional, Tuple
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from simpul_wire.config.base import Strict
from simpul_wire.config.collectors import CollectorConfig
from simpul_wire.ids import DeviceId


class DeviceSection(Strict):
    device_id: DeviceId
    data_dir: str = "/var/lib/simpul"


class BrokerSection(Strict):
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


class ClaimSection(Strict):
    """An offline-provisioned box's claim (agent/claim.py): written by
    `simpul-field provision install`, published once on the first connection."""

    code: str = Field(min_length=6, max_length=64)
    site: Optional[str] = Field(default=None, min_length=1, max_length=200)
    district: Optional[str] = Field(default=None, min_length=1, max_length=100)
    lat: Optional[float] = Field(default=None, ge=-90, le=90)
    lon: Optional[float] = Field(default=None, ge=-180, le=180)


class ControlSection(Strict):
    """How this box carries out privileged commands (local: only the technician sets it)."""

    # None: ask root through /run/simpul/reboot-request (agent/reboot.py, the systemd
    # path unit). A command here replaces that, e.g. for a box without the unit.
    reboot_command: Optional[List[str]] = Field(default=None, min_length=1)
    # The hotspot interface the bandwidth tier shapes.
    tier_interface: Optional[str] = None


class UpdateSection(Strict):
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


class PublishSection(Strict):
    sample_interval_s: float = Field(default=10.0, ge=0.05, le=3600)
    health_interval_s: float = Field(default=30.0, ge=0.05, le=3600)
    batch_max_records: int = Field(default=200, ge=1, le=2000)
    max_inflight: int = Field(default=20, ge=1, le=1000)
    # Pace of sending after an outage: an hour of backlog drains in seconds, not at once.
    replay_records_per_s: int = Field(default=1000, ge=1, le=100000)


class OutboxSection(Strict):
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=64 * 1024)
    max_age_s: float = Field(default=7 * 24 * 3600.0, ge=60)
    # Sent but not confirmed by the fleet: send again after this long (doubling).
    resend_after_s: float = Field(default=30.0, ge=1, le=3600)


class TierSection(Strict):
    down_mbps: float = Field(gt=0, le=10000)
    up_mbps: float = Field(gt=0, le=10000)
    per_client_mbps: Optional[float] = Field(default=None, gt=0, le=10000)
    interface: Optional[str] = None


_IFNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,15}$")


class SegmentationSection(Strict):
    """[segmentation]: the hotspot kept apart from cameras and management networks, and
    the uplink's priority queue (agent.segmentation applies it; docs there)."""

    hotspot_interface: str
    uplink_interface: str
    camera_networks: List[str] = Field(default_factory=list)
    management_networks: List[str] = Field(default_factory=list)
    hotspot_udp_ports: List[int] = Field(default_factory=lambda: [53, 67])
    hotspot_tcp_ports: List[int] = Field(default_factory=lambda: [53])
    # The uplink's real capacity or a little under it, so the queue forms in our HTB.
    uplink_mbps: Optional[float] = Field(default=None, gt=0, le=10000)
    priority_share: float = Field(default=0.5, gt=0, lt=1)

    @field_validator("hotspot_interface", "uplink_interface")
    @classmethod
    def _ifname(cls, value: str) -> str:
        if not _IFNAME.match(value):
            raise ValueError("must be an interface name (1-15 of A-Z a-z 0-9 _ . @ -)")
        return value

    @field_validator("camera_networks", "management_networks")
    @classmethod
    def _networks(cls, value: List[str]) -> List[str]:
        return [str(ipaddress.ip_network(v, strict=False)) for v in value]

    @field_validator("hotspot_udp_ports", "hotspot_tcp_ports")
    @classmethod
    def _ports(cls, value: List[int]) -> List[int]:
        if any(not 0 < p < 65536 for p in value):
            raise ValueError("ports must be 1-65535")
        return sorted(set(value))

    def protected(self, version: int) -> List[str]:
        nets = self.camera_networks + self.management_networks
        return [n for n in nets if ipaddress.ip_network(n).version == version]

    def cameras(self, version: int) -> List[str]:
        return [n for n in self.camera_networks if ipaddress.ip_network(n).version == version]


class ManagedConfig(Strict):
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
