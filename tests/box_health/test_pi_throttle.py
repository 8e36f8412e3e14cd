"""vcgencmd get_throttled: bit decoding, and the collector with a stand-in vcgencmd.

A Raspberry Pi's VideoCore cannot exist here, so the one fake is a vcgencmd script on
PATH printing what the firmware prints.
"""

import pytest

from agent.collectors import pi_throttle
from agent.collectors.base import Accumulator
from agent.collectors.pi_throttle import (
    PiThrottleCollector,
    PiThrottleConfig,
    decode,
    parse_throttled,
)
from agent.errors import CollectorError
from tests.box_health.conftest import parse_sample

pytestmark = pytest.mark.py39


def test_sample_config_parses():
    config = parse_sample(pi_throttle)
    assert isinstance(config, PiThrottleConfig)
    assert (config.name, config.command, config.timeout_s) == ("pi_power", "vcgencmd", 2.0)


@pytest.mark.parametrize(
    ("text", "word"),
    [("throttled=0x0\n", 0), ("throttled=0x50005\n", 0x50005), ("throttled=0x80000", 0x80000),
     ("throttled=0xe0000\n", 0xE0000), ("throttled=0\n", 0)],
)  # fmt: skip
def test_parse(text, word):
    assert parse_throttled(text) == word


@pytest.mark.parametrize("text", ["", "VCHI initialization failed", "throttled=zz", "temp=47.2'C"])
def test_parse_refuses_other_output(text):
    with pytest.raises(CollectorError, match="not throttled=0x"):
        parse_throttled(text)


def test_decode_bits():
    # 0x50005: under-voltage now and throttled now, both also "has occurred".
    assert decode(0x50005) == {
        "undervoltage_now": 1, "freq_capped_now": 0, "throttled_now": 1,
        "soft_temp_limit_now": 0, "undervoltage_occurred": 1, "freq_capped_occurred": 0,
        "throttled_occurred": 1, "soft_temp_limit_occurred": 0,
    }  # fmt: skip
    assert set(decode(0xF000F).values()) == {1}
    assert set(decode(0).values()) == {0}


def _fake_vcgencmd(tmp_path, body):
    script = tmp_path / "vcgencmd"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def _gather(command):
    acc = Accumulator()
    PiThrottleCollector(PiThrottleConfig(type="pi_throttle", command=command)).gather(acc)
    return acc


def test_collector_with_vcgencmd_on_path(tmp_path, monkeypatch):
    _fake_vcgencmd(tmp_path, '[ "$1" = get_throttled ] && echo throttled=0x50005')
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    acc = _gather("vcgencmd")
    assert acc.sources["pi_power"].state == "ok"
    assert acc.metrics["pi_throttled_raw"] == 0x50005
    assert acc.metrics["pi_undervoltage_now"] == 1
    assert acc.metrics["pi_soft_temp_limit_occurred"] == 0


def test_without_vcgencmd_the_source_is_unavailable_and_no_number_is_invented(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    acc = _gather("vcgencmd")
    assert acc.metrics == {}
    assert acc.sources["pi_power"].state == "unavailable"
    assert acc.sources["pi_power"].reason == "vcgencmd not found (not a Raspberry Pi?)"


def test_vcgencmd_failing_is_unavailable_with_its_message(tmp_path):
    cmd = _fake_vcgencmd(tmp_path, 'echo "VCHI initialization failed" >&2; exit 255')
    acc = _gather(cmd)
    assert acc.metrics == {}
    assert acc.sources["pi_power"].reason == "vcgencmd failed: VCHI initialization failed"


def test_vcgencmd_hanging_times_out(tmp_path):
    cmd = _fake_vcgencmd(tmp_path, "exec sleep 5")
    acc = Accumulator()
    cfg = PiThrottleConfig(type="pi_throttle", command=cmd, timeout_s=0.3)
    PiThrottleCollector(cfg).gather(acc)
    assert acc.sources["pi_power"].reason == "vcgencmd gave no answer within 0.3 s"
