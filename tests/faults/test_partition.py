"""A 60-second network partition between box and broker: the agent runs in its own network
namespace and the veth link to the host goes down. The fleet shows the box offline during
the partition, online after, and every record made meanwhile arrives exactly once."""

import time
from pathlib import Path

import pytest

from testbed.harness import Broker, Fleet, device, telemetry, wait_port, wait_until
from tests.faults.helpers import assert_exactly_once, make_box, publish
from tests.faults.netns import BoxNet

pytestmark = pytest.mark.slow

PARTITION_S = 60


def broker_on(scratch: Path, address: str) -> Broker:
    broker = Broker(scratch)
    args = broker.process.args
    args[args.index("--bind") + 1] = address
    broker.process.start()
    wait_port(broker.fleet_port)
    wait_until(lambda: (broker.data / "broker.json").exists(), 10, what="broker.json")
    return broker


def test_partition_of_a_minute(scratch: Path) -> None:
    with BoxNet("p") as net:
        broker = broker_on(scratch, net.host_ip)
        fleet = Fleet(scratch, broker, heartbeat_timeout=3.0)
        try:
            fleet.start()
            box = make_box(scratch, fleet, "cut-off", publish(sample_s=0.5, health_s=2),
                           url=f"mqtt://{net.host_ip}:{broker.port}")
            box.start(argv_prefix=net.prefix())
            wait_until(lambda: device(fleet, box.device_id)["online"], 30, what="online")
            wait_until(lambda: len(telemetry(fleet, box.device_id)) >= 4, 20,
                       what="first records")
            net.down()
            cut_at = time.monotonic()
            stored_at_cut = len(telemetry(fleet, box.device_id))
            # Heartbeat timeout (3 s) and the broker's keepalive check (1.5 x 5 s).
            wait_until(lambda: device(fleet, box.device_id)["state"] == "offline", 20,
                       what="offline during the partition")
            time.sleep(max(0.0, PARTITION_S - (time.monotonic() - cut_at)))
            # Nothing crossed the cut: the fleet has no record sampled during it.
            during = len(telemetry(fleet, box.device_id))
            assert during <= stored_at_cut + 2, (stored_at_cut, during)
            assert not device(fleet, box.device_id)["online"]
            net.up()
            wait_until(lambda: device(fleet, box.device_id)["online"], 90,
                       what="online after the partition")
            # 60 s at one sample per 0.5 s: 120 records made offline arrive.
            wait_until(lambda: len(telemetry(fleet, box.device_id)) >= during + 120, 60,
                       what="the partition's records")
            assert box.process is not None and box.process.alive()
            box.stop()
            rows = assert_exactly_once(fleet, box)
            assert len(rows["telemetry"]) >= PARTITION_S * 2
        finally:
            if "box" in locals():
                box.stop()
            fleet.stop()
            broker.stop()
