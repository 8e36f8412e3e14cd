"""Tier usage from psutil's per-interface counters, with real traffic on loopback."""

import socket
import threading
import time

import pytest

from agent.collectors import tier_usage
from agent.collectors.base import Accumulator
from agent.collectors.tier_usage import TierUsageCollector
from simpul_wire.config.probes import TierUsageConfig
from tests.box_health.conftest import parse_sample

pytestmark = pytest.mark.py39


def test_sample_config_parses():
    config = parse_sample(tier_usage)
    assert isinstance(config, TierUsageConfig)
    assert config.interface == "wlan0"


def _send_over_loopback(nbytes):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname())
    conn, _ = server.accept()
    sender = threading.Thread(target=lambda: (client.sendall(b"x" * nbytes), client.close()))
    sender.start()
    while conn.recv(1 << 20):
        pass
    sender.join()
    conn.close()
    server.close()


def test_counters_and_rate_follow_real_traffic():
    collector = TierUsageCollector(TierUsageConfig(type="tier_usage", interface="lo"))
    first = Accumulator()
    collector.gather(first)
    assert first.sources["tier_usage"].state == "ok"
    assert "tier_down_mbps" not in first.metrics  # no rate without a previous sample
    time.sleep(0.05)
    _send_over_loopback(8 * 1024 * 1024)
    second = Accumulator()
    collector.gather(second)
    grown = second.metrics["tier_down_bytes"] - first.metrics["tier_down_bytes"]
    assert grown >= 8 * 1024 * 1024
    assert second.metrics["tier_down_mbps"] > 0
    assert second.metrics["tier_up_mbps"] > 0  # loopback: what is sent is received


def test_missing_interface_is_unavailable_without_numbers():
    collector = TierUsageCollector(TierUsageConfig(type="tier_usage", interface="nope0"))
    acc = Accumulator()
    collector.gather(acc)
    assert acc.metrics == {}
    assert acc.sources["tier_usage"].reason == "interface nope0 does not exist"
