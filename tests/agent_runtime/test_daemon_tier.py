"""The daemon under systemd's notify protocol, and tiers applied through the config twin."""

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from fleet_api.broker.accounts import FLEET_USER
from simpul_wire import DesiredConfig, encode
from testbed.harness import Broker, Fleet, agent_process, wait_until, write_agent_config
from testbed.mqtt import Client

pytestmark = pytest.mark.slow


def test_daemon_tells_systemd_ready_and_pets_the_watchdog(scratch: Path) -> None:
    sock_path = scratch / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(10)
    config = write_agent_config(scratch, "box-sd", {"url": "mqtt://127.0.0.1:9",
                                                    "password": "x"})
    agent = agent_process(scratch, config, "box-sd", {"NOTIFY_SOCKET": str(sock_path),
                                                      "WATCHDOG_USEC": "1000000"}).start()
    try:
        seen = set()
        while not {"READY=1", "WATCHDOG=1"} <= seen:
            seen.update(sock.recv(1024).decode().splitlines())
    finally:
        agent.stop()
        sock.close()


@pytest.fixture
def veth(scratch: Path):  # type: ignore[no-untyped-def]
    name = f"st{os.getpid() % 100000}"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"],
                   check=True)
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    yield name
    subprocess.run(["ip", "link", "del", name], check=False)
    subprocess.run(["ip", "link", "del", f"ifb-{name}"], check=False, capture_output=True)


def test_tier_from_desired_config_is_applied_verified_and_reported(
        scratch: Path, broker: Broker, fleet: Fleet, veth: str) -> None:
    reg = fleet.register("box-t")
    config = write_agent_config(scratch, "box-t", reg["mqtt"],
                                f'[control]\ntier_interface = "{veth}"\n')
    agent = agent_process(scratch, config, "box-t").start()
    watcher = Client(broker.fleet_port, FLEET_USER, broker.fleet_password, "simpul_tier-watch")
    watcher.subscribe("simpul/v1/box-t/config/reported")

    def reported() -> dict:
        found = [json.loads(m) for _, m in watcher.messages if m]
        return found[-1] if found else {}

    try:
        wait_until(reported, 20, what="first report")
        for version, mbps in ((1, 100), (2, 300)):
            desired = DesiredConfig(device_id="box-t", version=version, config={
                "publish": {"sample_interval_s": 0.5, "health_interval_s": 2},
                "tier": {"down_mbps": mbps, "up_mbps": mbps}})
            watcher.c.publish("simpul/v1/box-t/config/desired", encode(desired), qos=1,
                              retain=True)
            rep = wait_until(lambda v=version: (lambda r: r.get("version") == v and r)(
                reported()), 20, what=f"tier {mbps} reported")
            assert rep["tier_applied"] == {"down_mbps": mbps, "up_mbps": mbps}
            classes = subprocess.run(["tc", "class", "show", "dev", veth], check=True,
                                     capture_output=True, text=True).stdout
            assert f"rate {mbps}Mbit" in classes
    finally:
        agent.stop()
        watcher.close()
