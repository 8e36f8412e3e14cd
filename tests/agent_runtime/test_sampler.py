"""The sampler: collectors' optional abilities are Protocols, and a bug is a figure."""

from pathlib import Path
from typing import List

import pytest

from agent.collectors.base import Accumulator, HealthReporter, PollingCollector, Rescannable
from agent.outbox import Outbox
from agent.reactor import Reactor
from agent.sampler import Sampler
from simpul_wire.config import PublishSection

pytestmark = pytest.mark.py39


class Plain(PollingCollector):
    name = "plain"

    def gather(self, acc: Accumulator) -> None:
        acc.add("plain_value", 1.0)


class Reporting(Plain):
    name = "port"

    def gather_health(self, acc: Accumulator) -> None:
        acc.add("port_frames_ok", 5.0)


class Broken(Plain):
    name = "broken"

    def gather_health(self, acc: Accumulator) -> None:
        raise RuntimeError("a bug")


class Scanner(Plain):
    def rescan(self) -> None:
        return None


def test_optional_abilities_are_protocols() -> None:
    assert isinstance(Reporting(), HealthReporter) and not isinstance(Plain(), HealthReporter)
    assert isinstance(Scanner(), Rescannable) and not isinstance(Plain(), Rescannable)


def test_health_sample_takes_every_health_reporter_and_counts_bugs(tmp_path: Path) -> None:
    outbox = Outbox(str(tmp_path / "outbox.sqlite"))
    stored: List[int] = []
    sampler = Sampler(PublishSection(), Reactor(), outbox, [Plain(), Reporting(), Broken()],
                      clock=lambda: 1_700_000_000.0, stored=lambda: stored.append(1),
                      agent_figures=lambda acc: acc.add("outbox_depth", 0))
    sampler.sample_health()
    sampler.sample_telemetry()
    health, telemetry = outbox.pending(10)
    assert health.stream == "health" and telemetry.stream == "telemetry"
    assert health.body["metrics"] == {"port_frames_ok": 5.0, "outbox_depth": 0.0}
    assert health.body["sources"]["broken"]["state"] == "unavailable"
    assert sampler.collector_errors == {"broken": 1}
    assert telemetry.body["metrics"] == {"plain_value": 1.0}
    assert stored == [1, 1]
    outbox.close()
