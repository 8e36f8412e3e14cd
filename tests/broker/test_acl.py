"""The broker confines each device to its own topics (real Mosquitto from broker_config/)."""

import threading

import pytest

from fleet_api.broker.accounts import FLEET_USER
from testbed.harness import Broker, Fleet, wait_until
from testbed.mqtt import Client

pytestmark = pytest.mark.slow


def test_anonymous_and_wrong_password_are_refused(broker: Broker, fleet: Fleet) -> None:
    fleet.register("box-a")
    anon = Client(broker.port, None, None)
    assert anon.connack is not None and anon.connack.is_failure
    anon.c.loop_stop()
    wrong = Client(broker.port, "box-a", "not-the-password")
    assert wrong.connack is not None and wrong.connack.is_failure
    wrong.c.loop_stop()


def test_device_is_confined_to_its_own_tree(broker: Broker, fleet: Fleet) -> None:
    a = fleet.register("box-a")["mqtt"]
    fleet.register("box-b")
    watcher = Client(broker.fleet_port, FLEET_USER, broker.fleet_password, "simpul_acl-watcher")
    assert watcher.subscribe("simpul/v1/#").value < 128
    box_a = Client(broker.port, "box-a", a["password"])
    try:
        # Writing into another device's tree is refused by the broker (PUBACK 0x87).
        for leaf in ("telemetry", "health", "state", "config/reported", "cmd/c1/result"):
            rc = box_a.publish(f"simpul/v1/box-b/{leaf}", b"{}")
            assert rc.is_failure and rc.value == 0x87, (leaf, rc)
        # Writing fleet-to-box leaves of its own tree is refused too.
        for leaf in ("config/desired", "cmd/c1", "ack"):
            rc = box_a.publish(f"simpul/v1/box-a/{leaf}", b"{}")
            assert rc.is_failure, (leaf, rc)
        # Reading another device's desired config or commands: Mosquitto grants the
        # SUBSCRIBE but delivers nothing the ACL does not allow. Prove both sides.
        b_pw = fleet.register("box-c")["mqtt"]["password"]
        box_c = Client(broker.port, "box-c", b_pw)
        for topic in ("simpul/v1/box-c/config/desired", "simpul/v1/box-c/cmd/+",
                      "simpul/v1/+/telemetry", "#"):
            box_a.subscribe(topic)
        box_c.subscribe("simpul/v1/box-c/config/desired")
        box_c.subscribe("simpul/v1/box-c/cmd/+")
        watcher.publish("simpul/v1/box-c/config/desired", b'{"secret": 1}')
        watcher.publish("simpul/v1/box-c/cmd/c9", b'{"reboot": 1}')
        box_c.publish("simpul/v1/box-c/telemetry", b"{}")
        wait_until(lambda: len(box_c.messages) >= 2, 5, what="box-c gets its own messages")
        assert not any("box-c" in t for t, _ in box_a.messages), box_a.messages
        box_c.close()
        # Its own leaves work.
        assert not box_a.publish("simpul/v1/box-a/telemetry", b"{}").is_failure
        assert not box_a.subscribe("simpul/v1/box-a/cmd/+").is_failure
        wait_until(lambda: any(t == "simpul/v1/box-a/telemetry" for t, _ in watcher.messages),
                   5, what="own publish delivered")
        assert not any(t.startswith("simpul/v1/box-b/") for t, _ in watcher.messages)
    finally:
        box_a.close()
        watcher.close()


def test_client_id_is_forced_to_the_username(broker: Broker, fleet: Fleet) -> None:
    """A box that connects with another box's client id cannot take that session."""
    a = fleet.register("box-a")["mqtt"]
    b = fleet.register("box-b")["mqtt"]
    box_b = Client(broker.port, "box-b", b["password"], client_id="box-b")
    kicked = threading.Event()
    box_b.c.on_disconnect = lambda *args: kicked.set()
    imposter = Client(broker.port, "box-a", a["password"], client_id="box-b")
    try:
        assert imposter.connack is not None and not imposter.connack.is_failure
        assert not kicked.wait(1.0), "box-b's session was taken over"
    finally:
        imposter.close()
        box_b.close()
