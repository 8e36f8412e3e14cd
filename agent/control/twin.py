"""The config twin: retained, versioned desired config applied as a transaction.

stage (validate, build collectors) -> apply (swap them in, apply the tier) -> self-test
(broker reachable, collectors gather without error) -> commit (persist, report). Any
failure rolls back to the last good config, and the failed version is remembered and
not retried until a newer one comes. The last good config survives restarts in
DATA_DIR/twin.json, written atomically.
"""

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from agent.box import Box
from agent.collectors.base import Accumulator, Collector
from agent.collectors.registry import build
from agent.errors import AgentError, CollectorError
from agent.sampler import close_collectors, start_collectors
from simpul_wire.config import ManagedConfig, parse_managed
from simpul_wire.errors import ConfigError
from simpul_wire.models import DesiredConfig, ReportedConfig, WireError, decode, encode
from simpul_wire.topics import topic

log = logging.getLogger("simpul.twin")

# Applies a tier and returns what was verified as applied ({"down_mbps": ...}), or raises.
TierApplier = Callable[[Optional[Dict[str, Any]]], Optional[Dict[str, float]]]


class TwinError(AgentError):
    """A desired config that could not be applied; the message is the reported reason."""


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class Twin:
    def __init__(self, box: Box, tier_applier: Optional[TierApplier] = None,
                 self_test_timeout_s: float = 10.0) -> None:
        self.box = box
        self.path = Path(box.config.device.data_dir) / "twin.json"
        self.tier_applier = tier_applier
        self.self_test_timeout_s = self_test_timeout_s
        self.state: Dict[str, Any] = {"version": 0, "config_hash": box.config.managed()
                                      .config_hash(), "applied_at": None, "error": None,
                                      "failed_version": None, "tier_applied": None}
        self._desired_topic = topic(box.device_id, "config/desired")
        # The local file's managed part: what a desired config is laid over.
        self._base = box.config.managed().model_dump(mode="json")
        box.router.route("config/desired", self._on_message)
        box.router.when_online(self.report)

    # -- start-up ---------------------------------------------------------------------
    def restore(self) -> None:
        """Run the last good desired config from disk, before the box starts."""
        try:
            saved = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.error("twin state %s unreadable (%s); running the local file", self.path, exc)
            return
        self.state.update({k: saved.get(k) for k in self.state})
        managed = saved.get("managed")
        if managed is None:
            return
        try:
            self.box.config = self.box.config.with_managed(parse_managed(managed))
            self.box.collectors = [build(c) for c in self.box.config.collectors]
        except (ConfigError, CollectorError) as exc:
            log.error("saved desired config no longer valid (%s); running the local file", exc)

    # -- receiving --------------------------------------------------------------------
    def _on_message(self, name: str, payload: bytes) -> None:
        if name != self._desired_topic or not payload:
            return
        try:
            desired = decode(DesiredConfig, payload)
        except WireError as exc:
            log.error("ignoring malformed desired config: %s", exc)
            return
        self.handle(desired)

    def handle(self, desired: DesiredConfig) -> bool:
        """Apply one desired config; True when it is now running."""
        if desired.device_id != self.box.device_id:
            log.error("desired config for %s arrived at %s", desired.device_id, self.box.device_id)
            return False
        if desired.version <= int(self.state["version"] or 0):
            return False  # already running it, or older
        if desired.version == self.state["failed_version"]:
            return False  # remembered as failed; wait for a newer one
        try:
            managed = parse_managed(self.merged(desired.config))
            self._transaction(desired.version, managed)
        except (AgentError, ConfigError, OSError) as exc:
            self.state["failed_version"] = desired.version
            self.state["error"] = str(exc)
            log.error("desired config v%s rolled back: %s", desired.version, exc)
            self._persist(None)
            self.report()
            return False
        return True

    def merged(self, desired: Dict[str, Any]) -> Dict[str, Any]:
        """Sections the fleet names replace the local file's; the others stay as the
        technician set them (a tier change must not wipe the box's sensors)."""
        merged = dict(self._base)
        merged.update(desired)
        return merged

    # -- the transaction --------------------------------------------------------------------
    def _transaction(self, version: int, managed: ManagedConfig) -> None:
        box = self.box
        new_config = box.config.with_managed(managed)
        staged: List[Collector] = [build(c) for c in new_config.collectors]  # stage
        start_collectors(staged)
        old_config, old_collectors = box.swap(new_config, staged)           # apply
        tier_applied = self.state["tier_applied"]
        try:
            if self.tier_applier is not None and managed.tier != old_config.tier:
                tier = managed.tier.model_dump() if managed.tier else None
                tier_applied = self.tier_applier(tier)
            self._self_test(staged)                                          # self-test
        except (AgentError, OSError) as exc:
            box.swap(old_config, old_collectors)                             # roll back
            close_collectors(staged)
            if self.tier_applier is not None and managed.tier != old_config.tier:
                old_tier = old_config.tier.model_dump() if old_config.tier else None
                try:
                    self.tier_applier(old_tier)
                except (AgentError, OSError) as tier_exc:
                    log.error("restoring the old tier failed too: %s", tier_exc)
            raise TwinError(str(exc)) from exc
        close_collectors(old_collectors)                                     # commit
        self.state.update(version=version, config_hash=managed.config_hash(),
                          applied_at=datetime.now(timezone.utc).isoformat(), error=None,
                          failed_version=None, tier_applied=tier_applied)
        self._persist(managed)
        log.info("desired config v%s applied (%s)", version, self.state["config_hash"])
        self.report()

    def _self_test(self, collectors: List[Collector]) -> None:
        if not self.box.link.connected:
            raise TwinError("self-test: the broker is not reachable with the new config")
        for collector in collectors:
            try:
                collector.gather(Accumulator())
            except CollectorError:
                pass  # a source may be unplugged; that is a status, not a bad config
            except Exception as exc:  # a collector that crashes on the new config fails it
                raise TwinError(f"self-test: collector {collector.name} failed: {exc!r}") from exc

    def _persist(self, managed: Optional[ManagedConfig]) -> None:
        data = dict(self.state)
        if managed is not None:
            data["managed"] = managed.model_dump(mode="json")
        else:
            try:
                data["managed"] = json.loads(self.path.read_text()).get("managed")
            except (OSError, ValueError):
                data["managed"] = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(data, indent=1, default=str))

    # -- reporting --------------------------------------------------------------------
    def report(self) -> None:
        """Publish what the box runs (retained). Called after each change and on connect."""
        applied = self.state["applied_at"]
        reported = ReportedConfig(
            device_id=self.box.device_id, version=int(self.state["version"] or 0),
            config_hash=str(self.state["config_hash"]),
            applied_at=datetime.fromisoformat(applied) if applied else None,
            error=self.state["error"], failed_version=self.state["failed_version"],
            tier_applied=self.state["tier_applied"],
        )
        self.box.link.publish(topic(self.box.device_id, "config/reported"), encode(reported),
                              retain=True)
