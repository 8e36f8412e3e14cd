"""A scripted box for fleet tests: the device's own MQTT account, speaking simpul_wire."""

import json
from typing import Any, Dict, List, Optional

from simpul_wire import encode
from simpul_wire.models import CommandResult, ReportedConfig
from simpul_wire.topics import topic
from testbed.harness import Fleet, wait_until
from testbed.mqtt import Client


class FakeBox:
    def __init__(self, fleet: Fleet, device_id: str, registered: Dict[str, Any]) -> None:
        self.device_id = device_id
        self.client = Client(fleet.broker.port, device_id, registered["mqtt"]["password"])
        assert not self.client.subscribe(topic(device_id, "config/desired")).is_failure
        assert not self.client.subscribe(f"simpul/v1/{device_id}/cmd/+").is_failure

    def desired(self, version: int, timeout: float = 10) -> Dict[str, Any]:
        """The newest retained desired config, once it reaches `version`."""
        def newest() -> Optional[Dict[str, Any]]:
            got = [json.loads(p) for t, p in self.client.messages
                   if t.endswith("/config/desired")]
            return got[-1] if got and got[-1]["version"] >= version else None
        return wait_until(newest, timeout, what=f"desired v{version} at {self.device_id}")  # type: ignore[no-any-return]

    def commands(self) -> List[Dict[str, Any]]:
        return [json.loads(p) for t, p in self.client.messages if "/cmd/" in t]

    def report(self, version: int, failed: Optional[int] = None, error: Optional[str] = None,
               tier: Optional[Dict[str, float]] = None) -> None:
        body = ReportedConfig(device_id=self.device_id, version=version, config_hash="abc",
                              failed_version=failed, error=error, tier_applied=tier)
        assert not self.client.publish(topic(self.device_id, "config/reported"),
                                       encode(body)).is_failure

    def result(self, command_id: str, status: str, result: Optional[Dict[str, Any]] = None,
               error: Optional[str] = None) -> None:
        body = CommandResult(device_id=self.device_id, command_id=command_id, status=status,  # type: ignore[arg-type]
                             result=result or {}, error=error)
        assert not self.client.publish(topic(self.device_id, "cmd/result", command_id),
                                       encode(body)).is_failure

    def close(self) -> None:
        self.client.close()
