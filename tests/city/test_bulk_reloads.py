"""Registering 10,000 boxes must not mean 10,000 broker reloads: bulk registration in
chunks of 1,000 and the fleet's debounced account sync cost about one reload a chunk.
Counted in Mosquitto's log (the access plugin's "simpul_acl: loaded" notice), with the
city profile; the first and the last box registered can then log in."""

from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulator.fleet import BULK_CHUNK, device_specs, register_all
from testbed.harness import wait_until
from testbed.stack import Stack

BOXES = 10_000


def _can_log_in(port: int, device_id: str, password: str) -> bool:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id,
                         protocol=mqtt.MQTTv5)
    client.username_pw_set(device_id, password)
    got = {}
    client.on_connect = lambda _c, _u, _f, reason, _p: got.setdefault("reason", reason)
    client.connect("127.0.0.1", port)
    wait_until(lambda: client.loop(0.1) is not None and "reason" in got, 10, what="a CONNACK")
    client.disconnect()
    return not got["reason"].is_failure


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ten_thousand_registrations_cost_a_reload_per_chunk(city_dir: Path) -> None:
    import random

    stack = Stack(city_dir, f"sqlite:///{city_dir}/fleet.db")
    data = stack.broker_data
    broker = stack.start_mosquitto()
    try:
        stack.start_serve(1)
        # The plugin's own load at start, then the fleet's start-up sync.
        wait_until(lambda: stack.plugin_reloads() >= 2, 20, what="the start-up sync")
        before = stack.plugin_reloads()
        with httpx.Client(base_url=stack.url(), timeout=120,
                          headers={"Authorization": f"Bearer {stack.token}"}) as api:
            regs = register_all(api, device_specs("rl", BOXES, random.Random(1)))
        assert len(regs) == BOXES
        reloads = stack.plugin_reloads() - before
        chunks = BOXES // BULK_CHUNK
        assert 1 <= reloads <= chunks, f"{reloads} reloads for {chunks} chunks"
        passwd = (data / "passwd").read_text()
        assert passwd.count("\nrl-") == BOXES
        assert _can_log_in(stack.port, regs[0].device_id, regs[0].password)
        assert _can_log_in(stack.port, regs[-1].device_id, regs[-1].password)
        assert not _can_log_in(stack.port, regs[-1].device_id, regs[0].password)
    finally:
        stack.stop()
        broker.terminate()
        broker.wait(10)

