"""WAN latency and loss: ping's summary, and real probes on this machine."""

import time

import pytest

from agent.collectors import wan
from agent.collectors.base import Accumulator
from agent.collectors.wan import WanCollector, WanSample, parse_ping, tcp_probe
from agent.errors import CollectorError
from simpul_wire.config.probes import WanConfig
from tests.box_health.conftest import parse_sample

pytestmark = pytest.mark.py39

IPUTILS_OK = """PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.

--- 127.0.0.1 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 407ms
rtt min/avg/max/mdev = 0.032/0.036/0.042/0.004 ms
"""
IPUTILS_LOST = """PING 10.255.255.1 (10.255.255.1) 56(84) bytes of data.

--- 10.255.255.1 ping statistics ---
2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 201ms

"""
BUSYBOX_PARTIAL = """PING 8.8.8.8 (8.8.8.8): 56 data bytes

--- 8.8.8.8 ping statistics ---
4 packets transmitted, 3 packets received, 25% packet loss
round-trip min/avg/max = 11.210/14.473/19.901 ms
"""


def test_sample_config_parses():
    config = parse_sample(wan)
    assert isinstance(config, WanConfig)
    assert (config.target, config.method, config.port, config.count) == ("1.1.1.1", "tcp", 443, 3)


@pytest.mark.parametrize(
    ("text", "sample"),
    [
        (IPUTILS_OK, WanSample(3, 3, 0.036, 0.042)),
        (IPUTILS_LOST, WanSample(2, 0)),
        (BUSYBOX_PARTIAL, WanSample(4, 3, 14.473, 19.901)),
    ],
)
def test_parse_ping(text, sample):
    assert parse_ping(text) == sample


def test_loss_percent():
    assert WanSample(4, 3).loss_percent == 25.0
    assert WanSample(0, 0).loss_percent == 100.0


def test_parse_ping_refuses_garbage():
    with pytest.raises(CollectorError, match="cannot read ping output"):
        parse_ping("ping: unknown host nowhere.invalid\n")


def _collector(**kw):
    cfg = {"type": "wan", "target": "127.0.0.1", "count": 3, "timeout_s": 0.5, **kw}
    return WanCollector(WanConfig(**cfg))


def _gather_once(collector):
    acc = Accumulator()
    collector.refresh()  # what the probe thread does every interval
    collector.gather(acc)
    return acc


def test_tcp_to_a_listening_port(full_backlog, closed_port):
    # A refused connection is a reply: the RST crossed the path.
    acc = _gather_once(_collector(port=closed_port))
    assert acc.sources["wan"].state == "ok"
    assert acc.metrics["wan_loss_percent"] == 0.0
    assert 0 < acc.metrics["wan_rtt_ms"] <= acc.metrics["wan_rtt_max_ms"] < 500


def test_tcp_with_no_reply_is_full_loss_and_unavailable(full_backlog):
    acc = _gather_once(_collector(port=full_backlog, count=2, timeout_s=0.3))
    assert acc.metrics == {"wan_loss_percent": 100.0}
    assert acc.sources["wan"].state == "unavailable"
    assert acc.sources["wan"].reason == f"no reply from 127.0.0.1:{full_backlog} within 0.3 s"


def test_tcp_probe_timeout_takes_the_timeout_not_longer(full_backlog):
    start = time.monotonic()
    with pytest.raises(CollectorError, match="no reply"):
        tcp_probe("127.0.0.1", full_backlog, 0.3)
    assert time.monotonic() - start < 1.0


def test_unresolvable_target_is_unavailable_with_the_reason():
    acc = _gather_once(_collector(target="nowhere.invalid"))
    assert acc.sources["wan"].state == "unavailable"
    assert acc.sources["wan"].reason.startswith("cannot resolve nowhere.invalid")
    assert acc.metrics == {}


def test_icmp_with_the_real_ping():
    acc = _gather_once(_collector(method="icmp", count=2))
    assert acc.sources["wan"].state == "ok", acc.sources["wan"]
    assert acc.metrics["wan_loss_percent"] == 0.0
    assert acc.metrics["wan_rtt_ms"] > 0


def _peek(collector):
    acc = Accumulator()
    collector.gather(acc)
    return acc.metrics


@pytest.mark.slow
def test_background_thread_feeds_gather_and_never_blocks_it(full_backlog):
    collector = _collector(port=full_backlog, count=1, timeout_s=1.0, interval_s=1)
    acc = Accumulator()
    collector.gather(acc)  # before the first probe finishes
    assert acc.sources["wan"].reason == "no probe has finished yet"
    collector.start()
    try:
        start = time.monotonic()
        acc = Accumulator()
        collector.gather(acc)
        assert time.monotonic() - start < 0.1  # the 1 s probe runs elsewhere
        deadline = time.monotonic() + 5
        while "wan_loss_percent" not in _peek(collector) and time.monotonic() < deadline:
            time.sleep(0.05)
        acc = Accumulator()
        collector.gather(acc)
        assert acc.sources["wan"].state == "unavailable"
        assert "no reply" in acc.sources["wan"].reason
    finally:
        collector.close()
