"""A box in a public place, tried as an attacker would: a real Mosquitto from
broker_config/ with Simpul's access plugin, and a real fleet (docs/security.md)."""

import os
import random
import secrets
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import httpx
import pytest

from fleet_api.broker.accounts import BRIDGE_PREFIX, FLEET_USER
from simpul_wire import encode
from simpul_wire.models import Record, TelemetryBatch
from simpul_wire.topics import topic
from testbed.harness import Broker, Fleet, wait_until
from testbed.mqtt import Client

pytestmark = pytest.mark.slow

NOT_AUTHORIZED = 0x87


@pytest.fixture
def fleet(scratch: Path, broker: Broker) -> Iterator[Fleet]:
    """On SQLite only: what is tried here is the broker's, whatever the fleet stores in."""
    f = Fleet(scratch, broker).start()
    yield f
    f.stop()


def _box(broker: Broker, reg: Dict[str, Any]) -> Client:
    mqtt = reg["mqtt"]
    return Client(broker.port, mqtt["username"], mqtt["password"])


def _batch(device_id: str, epoch: str, seqs: List[int]) -> bytes:
    now = time.time()
    records = [Record(seq=s, ts=now, metrics={"pm2_5": float(s % 50)}) for s in seqs]
    return encode(TelemetryBatch(device_id=device_id, epoch=epoch, records=records))


def _stored(fleet: Fleet, device_id: str) -> int:
    with fleet.api() as api:
        resp = api.get(f"/api/v1/devices/{device_id}/telemetry", params={"limit": 5000})
    assert resp.status_code == 200, resp.text
    return int(resp.json()["count"])


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_no_device_can_take_a_fleet_name(broker: Broker, fleet: Fleet) -> None:
    technician = fleet.create_token("technician")
    headers = {"Authorization": f"Bearer {technician}"}
    body = {"site": "x", "kind": "wifi", "district": "Kota Barat", "lat": 0, "lon": 0}
    with httpx.Client(base_url=fleet.url, headers=headers, timeout=30) as api:
        for name in ("simpul-fleet", "simpul-bridge", "simpul-ingest-1", "simpul_fleet",
                     f"{BRIDGE_PREFIX}kota-barat", FLEET_USER, "simpul"):
            resp = api.post("/api/v1/devices", json={"device_id": name, **body})
            assert resp.status_code == 422, (name, resp.text)
            assert "reserved" in resp.text or "a-z, 0-9" in resp.text, resp.text
        resp = api.post("/api/v1/devices/bulk", json={"devices": [
            {"device_id": "ok-box-1", **body}, {"device_id": "simpul-fleet", **body}]})
        assert resp.status_code == 422 and "reserved" in resp.text, resp.text
        resp = api.post("/api/v1/claims/batch", json={"count": 1, "kind": "wifi",
                                                      "prefix": "simpul"})
        assert resp.status_code == 422 and "reserved" in resp.text, resp.text
    # The password file holds each user once, and the fleet's account stays the fleet's.
    fleet.register("box-a")
    wait_until(lambda: "box-a:" in (broker.data / "passwd").read_text(), 10, what="sync")
    users = [ln.split(":")[0] for ln in (broker.data / "passwd").read_text().splitlines()]
    assert len(users) == len(set(users)) and users.count(FLEET_USER) == 1, users
    watcher = Client(broker.fleet_port, FLEET_USER, broker.fleet_password, "simpul_t_watch")
    assert watcher.connack is not None and not watcher.connack.is_failure
    watcher.close()


def test_the_fleet_listener_takes_only_the_fleets_accounts(broker: Broker, fleet: Fleet) -> None:
    reg = fleet.register("box-a")["mqtt"]
    # A box's credentials on the fleet's listener, whatever client id it picks.
    for client_id in ("box-a", "simpul_ingest_1", ""):
        c = Client(broker.fleet_port, "box-a", reg["password"], client_id)
        assert c.connack is not None and c.connack.is_failure, client_id
        c.c.loop_stop()
    # The fleet's own account with a client id a device could have (a device could then
    # take the session over on its own listener) is refused too.
    c = Client(broker.fleet_port, FLEET_USER, broker.fleet_password, "box-a")
    assert c.connack is not None and c.connack.is_failure
    c.c.loop_stop()
    # And the fleet's account on the device listener.
    c = Client(broker.port, FLEET_USER, broker.fleet_password, "simpul_x")
    assert c.connack is not None and c.connack.is_failure
    c.c.loop_stop()


def test_a_box_subscribes_only_inside_its_own_tree(broker: Broker, fleet: Fleet) -> None:
    box = _box(broker, fleet.register("box-a"))
    fleet.register("box-b")
    try:
        for refused in ("$share/simpul-ingest/simpul/v1/+/telemetry",
                        "$share/g1/simpul/v1/box-a/config/desired", "#", "simpul/v1/#",
                        "simpul/v1/+/telemetry", "simpul/v1/box-b/config/desired",
                        "simpul/v1/box-b/cmd/+", "simpul/v1/box-a/#", "simpul/v1/box-a/+",
                        "simpul/v1/box-a/telemetry", "$SYS/#", "$CONTROL/#"):
            rc = box.subscribe(refused)
            assert rc.value == NOT_AUTHORIZED, (refused, rc)
        for granted in ("simpul/v1/box-a/config/desired", "simpul/v1/box-a/cmd/+",
                        "simpul/v1/box-a/ack"):
            assert not box.subscribe(granted).is_failure, granted
    finally:
        box.close()


def test_a_hostile_box_in_every_share_group_starves_nothing(broker: Broker,
                                                            fleet: Fleet) -> None:
    hostile = _box(broker, fleet.register("evil-box"))
    sender = _box(broker, fleet.register("good-box"))
    rng = random.Random(16)
    groups = ["simpul-ingest", *(f"g{rng.randrange(10**6)}" for _ in range(20))]
    leaves = ("telemetry", "health", "state", "config/reported", "cmd/+/result", "claim")
    try:
        for group in groups:
            for leaf in leaves:
                rc = hostile.subscribe(f"$share/{group}/simpul/v1/+/{leaf}")
                assert rc.value == NOT_AUTHORIZED, (group, leaf, rc)
        epoch = secrets.token_hex(8)
        for start in range(0, 1000, 100):
            rc = sender.publish(topic("good-box", "telemetry"),
                                _batch("good-box", epoch, list(range(start, start + 100))))
            assert not rc.is_failure, rc
        wait_until(lambda: _stored(fleet, "good-box") == 1000, 30, what="all 1,000 stored")
        assert not any(t.endswith("/telemetry") for t, _ in hostile.messages)
    finally:
        hostile.close()
        sender.close()


def test_retain_and_size_are_bounded_per_leaf(broker: Broker, fleet: Fleet) -> None:
    box = _box(broker, fleet.register("box-a"))
    pid = int((broker.data / "mosquitto.pid").read_text())
    before = _rss_kb(pid)
    big = b"x" * (200 * 1024)
    try:
        for i in range(150):
            leaf = ("telemetry", "health", f"cmd/c{i}/result")[i % 3]
            info = box.c.publish(f"simpul/v1/box-a/{leaf}", big, qos=1, retain=True)
            rc = wait_until(lambda info=info: box.acks.get(info.mid), 10, what="PUBACK")
            assert rc.value == NOT_AUTHORIZED, (leaf, rc)
        for i in range(1000):
            leaf = ("telemetry", "health", "claim", f"cmd/c{i}/result")[i % 4]
            box.c.publish(f"simpul/v1/box-a/{leaf}", b"y" * 100, qos=1, retain=True)
        wait_until(lambda: len(box.acks) >= 1150, 20, what="every PUBACK")
        # Over the leaf's bound, even where retain is allowed.
        assert box.publish("simpul/v1/box-a/state", b"z" * 5000).value == NOT_AUTHORIZED
        # Within it, the retained leaves work.
        info = box.c.publish("simpul/v1/box-a/config/reported", b"{}", qos=1, retain=True)
        wait_until(lambda: box.acks.get(info.mid), 5, what="PUBACK")
        assert not box.acks[info.mid].is_failure
        grown_kb = _rss_kb(pid) - before
        newcomer = Client(broker.fleet_port, FLEET_USER, broker.fleet_password,
                          "simpul_t_newcomer")
        newcomer.subscribe("simpul/v1/#")
        time.sleep(1.0)
        got = [t for t, _ in newcomer.messages]
        newcomer.close()
        assert got == ["simpul/v1/box-a/config/reported"], got[:10]
        assert grown_kb < 5 * 1024, f"broker RSS grew {grown_kb} kB"
    finally:
        box.close()


def _bridge_client(broker: Broker, made: Dict[str, Any]) -> Client:
    # A district broker's bridge speaks MQTT 3.1.1; the rules are the same on v5.
    return Client(broker.port, made["username"], made["password"])


def test_bridges_exist_only_when_an_admin_makes_them(broker: Broker, fleet: Fleet) -> None:
    fleet.register("kb-1", district="Kota Barat")
    fleet.register("kt-1", district="Kota Timur")
    operator = fleet.create_token("operator")
    resp = httpx.post(f"{fleet.url}/api/v1/bridges", timeout=30,
                      headers={"Authorization": f"Bearer {operator}"},
                      json={"name": "kota-barat", "districts": ["Kota Barat"]})
    assert resp.status_code == 403, resp.text
    # No bridge account exists before an admin creates one, whatever name is tried.
    for user in (f"{BRIDGE_PREFIX}kota-barat", "simpul-bridge"):
        c = Client(broker.port, user, "guess")
        assert c.connack is not None and c.connack.is_failure
        c.c.loop_stop()
    with fleet.api() as api:
        resp = api.post("/api/v1/bridges", json={"name": "kota-barat",
                                                 "districts": ["Kota Barat"]})
        assert resp.status_code == 201, resp.text
        made = resp.json()
        assert made["username"] == f"{BRIDGE_PREFIX}kota-barat"
        assert api.post("/api/v1/bridges", json={"name": "kota-barat",
                                                 "districts": ["x"]}).status_code == 409
        assert "password" not in api.get("/api/v1/bridges").json()[0]
    bridge = _bridge_client(broker, made)
    try:
        assert bridge.connack is not None and not bridge.connack.is_failure
        # Its own district's box: up and down.
        epoch = secrets.token_hex(8)
        assert not bridge.publish(topic("kb-1", "telemetry"),
                                  _batch("kb-1", epoch, [0, 1])).is_failure
        wait_until(lambda: _stored(fleet, "kb-1") == 2, 15, what="kb-1 over the bridge")
        assert not bridge.subscribe("simpul/v1/+/config/desired").is_failure
        # Another district's box: a fake flood alert is refused, its config not delivered.
        rc = bridge.publish(topic("kt-1", "telemetry"), _batch("kt-1", epoch, [0]))
        assert rc.value == NOT_AUTHORIZED, rc
        assert bridge.subscribe("$share/simpul-ingest/simpul/v1/+/telemetry").value == \
            NOT_AUTHORIZED
        assert bridge.subscribe("simpul/v1/#").value == NOT_AUTHORIZED
        with fleet.api() as api:
            for device in ("kb-1", "kt-1"):
                resp = api.put(f"/api/v1/devices/{device}/tier", json={"mbps": 300})
                assert resp.status_code == 200, resp.text
        wait_until(lambda: any(t == "simpul/v1/kb-1/config/desired"
                               for t, _ in bridge.messages), 10, what="kb-1's desired")
        time.sleep(0.5)
        assert not any("/kt-1/" in t for t, _ in bridge.messages), bridge.messages
        # Deleted: the reload drops the live session (Mosquitto re-checks every client
        # against the new password file), and no new login is taken.
        with fleet.api() as api:
            assert api.delete("/api/v1/bridges/kota-barat").status_code == 204
        wait_until(lambda: not bridge.c.is_connected(), 10, what="the live session dropped")
        again = _bridge_client(broker, made)
        assert again.connack is not None and again.connack.is_failure
        again.c.loop_stop()
    finally:
        bridge.close()


def test_a_legacy_broker_dir_is_migrated(scratch: Path) -> None:
    """Data dirs made before the fleet's names changed: the old accounts lose their
    lines, the acl_file goes, and device lines stay."""
    from fleet_api.broker.process import prepare

    data = scratch / "old"
    data.mkdir()
    (data / "passwd").write_text("simpul-fleet:$7$101$a$b\nsimpul-bridge:$7$101$c$d\n"
                                 "box-a:$7$101$e$f\nbox-a:$7$101$g$h\nbad user:$7$x\n")
    (data / "acl").write_text("user simpul-fleet\ntopic readwrite #\n")
    (data / "bridge.hash").write_text("$7$101$c$d\n")
    prepare(str(data), 1, 2, "127.0.0.1")
    lines = (data / "passwd").read_text().splitlines()
    assert [ln.split(":")[0] for ln in lines] == [FLEET_USER, "box-a"], lines
    assert lines[1] == "box-a:$7$101$e$f"
    assert not (data / "acl").exists() and not (data / "bridge.hash").exists()
    assert oct(os.stat(data / "passwd").st_mode & 0o777) == "0o600"
