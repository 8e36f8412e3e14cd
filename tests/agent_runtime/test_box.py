"""The box composes a sampler and a sender; a new managed config reaches both."""

from pathlib import Path

import pytest

from agent.box import Box
from agent.reactor import Reactor
from simpul_wire.config import AgentConfig

pytestmark = pytest.mark.py39


def test_a_new_config_reaches_the_sampler_and_the_sender(tmp_path: Path) -> None:
    config = AgentConfig.model_validate({
        "device": {"device_id": "park-01", "data_dir": str(tmp_path)}})
    box = Box(config, Reactor(), None, collectors=[])
    # The twin's restore sets box.config before start; a swap sets it too.
    box.config = config.model_copy(update={"publish": config.publish.model_copy(
        update={"sample_interval_s": 2.5, "replay_records_per_s": 7})})
    assert box.sampler.publish.sample_interval_s == 2.5
    assert box.sender.publish.replay_records_per_s == 7
    old, _ = box.swap(config, [])
    assert old.publish.sample_interval_s == 2.5
    assert box.sampler.publish is box.sender.publish is config.publish
    box.stop()
    box.outbox.close()
