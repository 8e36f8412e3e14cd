"""The broker's crash after "register a device named like the fleet, log in, delete it"
(issue 16, item 11), reproduced with its exact ingredients against a real Mosquitto.

Cause (Mosquitto 2.0.11, unchanged through 2.0.20): on every SIGHUP reload
`mosquitto_security_apply_default()` (src/security_default.c) re-checks the password of
every context in `contexts_by_id`, including sessions that are already disconnected and
only wait to expire. For one that no longer checks it calls
`mosquitto__set_state(context, mosq_cs_disconnecting)` and then `do_disconnect()`: the new
state defeats do_disconnect's `state == mosq_cs_disconnected` guard, so
`context__disconnect()` runs a second time and `session_expiry__add()` puts the context in
the session-expiry list twice (`context->expiry_list_item` keeps only the newer entry).
When the client resumes its session, handle_connect removes that newer entry and frees
the old context; the older entry stays in the list with a dangling pointer, and
`session_expiry__check()` (once a second) reads freed memory: it "expires" whatever
live client now occupies that memory (the log shows "Expiring client <live id> due to
timeout") and then dies in `will_delay__remove()` on garbage (the assertion
`(delay_list) != NULL` in will_delay.c:104 aborts Debian's build; without asserts it is a
segfault).

The ingredients the fleet supplied: a device registered as `simpul-fleet` adds a second
password-file entry for the fleet's own user, which Mosquitto finds first, so the
reload locks out the fleet's ingest and leaves its persistent session (clean_start false)
disconnected with credentials that no longer check; deregistration then reloads again
(the throwaway hash): the double add. Deleting the device lets the ingest back in, which
resumes its session and frees the context: the dangling entry.

Renaming the fleet's accounts removes these ingredients, not the bug: any persistent
session that is disconnected when a reload invalidates its credentials is added twice,
for example a switched-off box being deleted (second test) or a box between its two
logins of a rotation when another operator's change reloads the password file. The fix
on the fleet's side: before every reload, take over (clean start, on the fleet listener
with the fleet's account, client id = the user) the session of every user whose hash
the reload changes or drops, and again before the next reload for those of the last
one, so no stale disconnected session ever meets a reload.

A session's second "Client <id> disconnected." with no connection in between is the
double add itself, logged by Mosquitto; a freed context is then re-used by the next
connection, so this test also opens a few idle connections (a new context each) before it
looks at the broker.
"""

import re
import socket
import time
from pathlib import Path
from typing import Dict, List, Optional

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleet_api.broker.accounts import FLEET_USER
from simpul_wire.models import Record, TelemetryBatch, encode
from simpul_wire.topics import topic
from testbed.harness import Broker, Fleet, telemetry, wait_until

pytestmark = pytest.mark.slow

SESSION_EXPIRY_S = 7 * 86400  # what the agent asks (agent/link.py)
_CONNECTED = re.compile(r"New client connected from \S+ as (\S+) \(")
_GONE = re.compile(r"Client (\S+) (?:disconnected|closed its connection|has exceeded"
                   r"|been disconnected)")


def box_session(port: int, device_id: str, password: str) -> mqtt.Client:
    """A box's login as the agent makes it: MQTT v5, persistent session."""
    client = try_box_session(port, device_id, password)
    assert client is not None, f"the broker refused {device_id}"
    return client


def try_box_session(port: int, device_id: str, password: str) -> Optional[mqtt.Client]:
    """box_session, or None when the broker refuses the login."""
    got: List[object] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id,
                         protocol=mqtt.MQTTv5)
    client.username_pw_set(device_id, password)
    client.on_connect = lambda _c, _u, _f, rc, _p: got.append(rc)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    client.connect("127.0.0.1", port, keepalive=30, clean_start=False, properties=props)
    client.loop_start()
    wait_until(lambda: got, 10, what=f"CONNACK for {device_id}")
    if getattr(got[0], "is_failure", True):
        client.loop_stop()
        return None
    return client


def double_disconnects(broker_log: str) -> List[str]:
    """Sessions Mosquitto disconnected twice without a connection in between."""
    connected: Dict[str, bool] = {}
    twice = []
    for line in broker_log.splitlines():
        if m := _CONNECTED.search(line):
            connected[m.group(1)] = True
        elif (m := _GONE.search(line)) and m.group(1) != "<unknown>":
            if connected.get(m.group(1)) is False:
                twice.append(line)
            connected[m.group(1)] = False
    return twice


def touch_the_heap(port: int, rounds: int = 3, sockets: int = 20) -> None:
    """Idle connections, each a fresh context in the broker, held past the one-second
    session-expiry check: a freed context's memory gets re-used and walked."""
    for _ in range(rounds):
        try:
            held = [socket.create_connection(("127.0.0.1", port), timeout=2)
                    for _ in range(sockets)]
        except OSError:
            return  # the broker is gone; the caller's assertions say so, with its log
        time.sleep(1.5)
        for sock in held:
            sock.close()


def test_a_device_named_like_the_fleet_cannot_crash_the_broker(scratch: Path, broker: Broker,
                                                                fleet: Fleet) -> None:
    pid = broker.process.proc.pid if broker.process.proc else None
    steady = fleet.register("steady-1")["mqtt"]["password"]
    answers: Dict[str, int] = {}
    for name in sorted({"simpul-fleet", FLEET_USER}):
        body = {"device_id": name, "site": "Taman", "kind": "sensor",
                "district": "Kota Barat", "lat": -6.2, "lon": 106.8}
        with fleet.api() as api:
            resp = api.post("/api/v1/devices", json=body)
        answers[name] = resp.status_code
    # The fleet's names are out of any device's reach (docs/security.md, "Names").
    assert answers == {name: 422 for name in answers}, answers
    # The fleet is whole again: a box's record reaches the database through the ingest.
    box = box_session(broker.port, "steady-1", steady)
    try:
        batch = TelemetryBatch(device_id="steady-1", epoch="0123456789abcdef", records=[
            Record(seq=0, ts=time.time(), metrics={"pm2_5": 1.0})])  # type: ignore[arg-type]
        box.publish(topic("steady-1", "telemetry"), encode(batch), qos=1).wait_for_publish(5)
        wait_until(lambda: telemetry(fleet, "steady-1"), 30, what="the record stored")
        touch_the_heap(fleet.broker.fleet_port)
    finally:
        box.disconnect()
        box.loop_stop()
    log = broker.process.output()
    assert broker.process.alive(), f"the broker died:\n{log[-2000:]}"
    assert broker.process.proc is not None and broker.process.proc.pid == pid
    assert double_disconnects(log) == [], "a session was disconnected twice (the double " \
        "add to Mosquitto's session-expiry list that frees it while still listed)"
    assert "Expiring client" not in log, "Mosquitto expired a session within seconds"


def test_deleting_offline_boxes_cannot_crash_the_broker(scratch: Path, broker: Broker,
                                                        fleet: Fleet) -> None:
    """The same double add with ordinary devices and no fleet name: a box that is off
    (its persistent session waits in the broker) is deleted. Deregistration's first
    reload (the throwaway hash) re-disconnects that session; its take-over then frees
    the context with the stale entry still listed. Measured on the current code: five
    such deletions, five double disconnects, and the broker dead in most runs."""
    pid = broker.process.proc.pid if broker.process.proc else None
    passwords = {f"off-{i}": fleet.register(f"off-{i}")["mqtt"]["password"] for i in range(5)}
    time.sleep(1.0)  # the account sync's reload
    for device_id, password in passwords.items():
        box = box_session(broker.port, device_id, password)
        box.disconnect()  # the box is switched off; its session stays
        box.loop_stop()
    with fleet.api() as api:
        for device_id in passwords:
            gone = api.delete(f"/api/v1/devices/{device_id}")
            assert gone.status_code == 204, gone.text
    touch_the_heap(broker.fleet_port)
    log = broker.process.output()
    assert broker.process.alive(), f"the broker died:\n{log[-2000:]}"
    assert broker.process.proc is not None and broker.process.proc.pid == pid
    assert double_disconnects(log) == [], "a session was disconnected twice"
    assert "Expiring client" not in log
