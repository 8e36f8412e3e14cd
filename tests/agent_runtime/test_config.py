"""Agent config: TOML validated by pydantic; errors name the line and the field."""

import pytest

from simpul_wire.config import ManagedConfig, parse_config, parse_managed
from simpul_wire.errors import ConfigError

pytestmark = pytest.mark.py39

GOOD = """
[device]
device_id = "park-01"
data_dir = "/var/lib/simpul"

[broker]
url = "mqtts://broker.example:8883"
password_file = "/etc/simpul/mqtt.password"

[publish]
sample_interval_s = 5

[[collectors]]
type = "health"

[[collectors]]
type = "synthetic"
name = "air"
values = { pm2_5 = 12.5 }
"""


def test_good_config_parses() -> None:
    cfg = parse_config(GOOD)
    assert cfg.device.device_id == "park-01"
    assert cfg.broker.host_port() == ("broker.example", 8883)
    assert [c.type for c in cfg.collectors] == ["health", "synthetic"]


@pytest.mark.parametrize("text,needle", [
    (GOOD.replace('data_dir', 'dta_dir'), "line 4: device.dta_dir: unknown key 'dta_dir' (typo?)"),
    (GOOD.replace("sample_interval_s = 5", 'sample_interval_s = "fast"'),
     "line 11: publish.sample_interval_s"),
    (GOOD.replace('type = "health"', 'type = "thermometer"'), "collectors.0"),
    (GOOD.replace('"park-01"', '"Park 01"'), "line 3: device.device_id"),
    (GOOD.replace("mqtts://", "http://"), "broker.url"),
    (GOOD.replace("mqtts://broker", "mqtts://u:secret@broker"), "must not carry a password"),
    (GOOD + "\n[device\n", "not valid TOML"),
    (GOOD.replace('name = "air"', 'name = "health"'), "two collectors are named 'health'"),
])
def test_errors_name_line_and_field(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert needle in str(err.value)


def test_managed_part_never_touches_local_part() -> None:
    cfg = parse_config(GOOD)
    managed = cfg.managed()
    assert isinstance(managed, ManagedConfig)
    assert "device" not in managed.model_dump()
    with pytest.raises(ConfigError, match="unknown key 'broker'"):
        parse_managed({"broker": {"url": "mqtt://evil:1883"}})
    newer = parse_managed({"publish": {"sample_interval_s": 60}})
    merged = cfg.with_managed(newer)
    assert merged.publish.sample_interval_s == 60
    assert merged.broker.url == cfg.broker.url and merged.collectors == []
    assert newer.config_hash() != managed.config_hash()
