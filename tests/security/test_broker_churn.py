"""Churn (issue 16, item 11): 100 ordinary devices registered, logged in, rotated and
deleted through the API, with attempts at the fleet's own names among them, while five
other boxes stay connected and publish. The broker stays up (the same pid), no session
is disconnected twice (the double add behind the crash, test_broker_crash.py) and the
five boxes lose nothing: every seq they published is stored.

The churned boxes behave as the agent does: a persistent session, the rotation's
password staged and answered, a reconnect with it once the broker dropped the old login,
a birth. A quarter are deleted while offline (a decommissioned box keeps its session in
the broker). Six operators work at once, as in a city, so reloads of the password file
land while other boxes are between two logins.
"""

import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional

import httpx
import paho.mqtt.client as mqtt
import pytest

from fleet_api.broker.accounts import BRIDGE_PREFIX, FLEET_USER
from simpul_wire.models import (
    Command,
    CommandResult,
    Record,
    StatePayload,
    TelemetryBatch,
    decode,
    encode,
)
from simpul_wire.topics import topic
from testbed.harness import Broker, Fleet, telemetry, wait_until
from tests.security.test_broker_crash import box_session, double_disconnects, try_box_session

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CHURNED = 100
STEADY = 5
OPERATORS = 6
# The fleet's own names, as they were and as they are; each is tried among the churn.
FLEET_NAMES = sorted({"simpul-fleet", "simpul-bridge", "simpul-ingest-1", FLEET_USER,
                      f"{BRIDGE_PREFIX}kota-barat"})


class SteadyBox(threading.Thread):
    """A box that stays connected and publishes one record every 0.2 s, QoS 1."""

    def __init__(self, port: int, device_id: str, password: str) -> None:
        super().__init__(name=device_id, daemon=True)
        self.device_id = device_id
        self.client = box_session(port, device_id, password)
        self.epoch = secrets.token_hex(8)
        self.sent: List[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        seq = 0
        while not self.stop.wait(0.2):
            batch = TelemetryBatch(device_id=self.device_id, epoch=self.epoch, records=[
                Record(seq=seq, ts=time.time(), metrics={"pm2_5": float(seq)})])  # type: ignore[arg-type]
            # paho keeps a QoS 1 message it could not send and sends it on reconnect.
            self.client.publish(topic(self.device_id, "telemetry"), encode(batch), qos=1)
            self.sent.append(seq)
            seq += 1

    def close(self) -> None:
        self.stop.set()
        self.join(5)
        time.sleep(1.0)  # the last PUBACKs
        self.client.disconnect()
        self.client.loop_stop()


class ChurnedBox:
    """A box that answers `rotate_credentials` as the agent does (agent/credentials.py):
    it stages the password, answers, and logs in with it once the broker drops its old
    login (the fleet's switch) or `reconnect_after_s` has passed."""

    def __init__(self, port: int, device_id: str, password: str) -> None:
        self.port = port
        self.device_id = device_id
        self.staged: Optional[str] = None
        self.reconnect_after_s = 0.0
        self.dropped = threading.Event()
        self.client = self._login(password)
        self._birth()  # the fleet rotates a box only while it is online

    def _login(self, password: str) -> mqtt.Client:
        # The password file is reloaded a little after the API answers (debounced).
        client: mqtt.Client = wait_until(
            lambda: try_box_session(self.port, self.device_id, password), 20, interval=0.3,
            what=f"{self.device_id} logged in")
        client.on_message = self._on_command
        client.on_disconnect = lambda *_args: self.dropped.set()
        client.subscribe(f"simpul/v1/{self.device_id}/cmd/+", qos=1)
        return client

    def _on_command(self, client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        command = decode(Command, bytes(message.payload))
        if command.name != "rotate_credentials":
            return
        self.staged = command.args["password"]
        self.reconnect_after_s = float(command.args["reconnect_after_s"])
        result = CommandResult(device_id=self.device_id, command_id=command.command_id,
                               status="succeeded",
                               result={"staged": command.args["rotation_id"]})
        client.publish(topic(self.device_id, "cmd/result", command.command_id),
                       encode(result), qos=1)

    def switch(self) -> None:
        """Log in again with the staged password and send a birth."""
        wait_until(lambda: self.staged, 30, what=f"{self.device_id} got the command")
        assert self.staged is not None
        self.dropped.wait(self.reconnect_after_s)
        self.close()
        self.client = self._login(self.staged)
        self._birth()

    def _birth(self) -> None:
        birth = StatePayload(device_id=self.device_id, state="online",
                             boot_id=secrets.token_hex(8))
        self.client.publish(topic(self.device_id, "state"), encode(birth),
                            qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _register(api: httpx.Client, device_id: str) -> httpx.Response:
    return api.post("/api/v1/devices", json={
        "device_id": device_id, "site": f"Site {device_id}", "kind": "sensor",
        "district": "Kota Barat", "lat": -6.2, "lon": 106.8})


def _device(api: httpx.Client, device_id: str) -> Dict[str, Any]:
    resp = api.get(f"/api/v1/devices/{device_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def _rotation(api: httpx.Client, device_id: str) -> Optional[str]:
    return _device(api, device_id)["rotation"]  # type: ignore[no-any-return]


def _state(api: httpx.Client, device_id: str) -> str:
    return _device(api, device_id)["state"]  # type: ignore[no-any-return]


def churn_one(fleet: Fleet, broker: Broker, n: int, answers: Dict[str, int]) -> None:
    device_id = f"churn-{n:03d}"
    with fleet.api() as api:
        if n % (CHURNED // len(FLEET_NAMES)) == 0:
            name = FLEET_NAMES[(n // (CHURNED // len(FLEET_NAMES))) % len(FLEET_NAMES)]
            attempt = _register(api, name)
            answers[name] = attempt.status_code
            assert attempt.status_code == 422, attempt.text
        reg = _register(api, device_id)
        assert reg.status_code == 201, reg.text
        box = ChurnedBox(broker.port, device_id, reg.json()["mqtt"]["password"])
        try:
            wait_until(lambda: _state(api, device_id) == "online", 30,
                       what=f"{device_id} online")
            started = api.post(f"/api/v1/devices/{device_id}/credentials/rotate", json={})
            assert started.status_code == 202, started.text
            box.switch()
            wait_until(lambda: _rotation(api, device_id) == "done", 60,
                       what=f"{device_id} rotation done")
            if n % 4 == 3:
                box.close()  # decommissioned: deleted while offline, its session kept
            gone = api.delete(f"/api/v1/devices/{device_id}")
            assert gone.status_code == 204, gone.text
        finally:
            box.close()


def _missing(fleet: Fleet, box: SteadyBox) -> List[int]:
    stored = {r["seq"] for r in telemetry(fleet, box.device_id)}
    return sorted(set(box.sent) - stored)


def test_churn_leaves_the_broker_up_and_loses_nothing(scratch: Path, broker: Broker,
                                                      fleet: Fleet) -> None:
    pid = broker.process.proc.pid if broker.process.proc else None
    passwords = {f"steady-{i}": fleet.register(f"steady-{i}")["mqtt"]["password"]
                 for i in range(STEADY)}
    time.sleep(1.0)
    boxes = [SteadyBox(broker.port, d, pw) for d, pw in passwords.items()]
    for box in boxes:
        box.start()
    answers: Dict[str, int] = {}
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(OPERATORS) as pool:
            for done in [pool.submit(churn_one, fleet, broker, n, answers)
                         for n in range(CHURNED)]:
                try:
                    done.result()
                except (AssertionError, OSError) as exc:
                    pool.shutdown(wait=False, cancel_futures=True)
                    # A dead broker shows first as refused logins or a failed delete.
                    assert broker.process.alive(), \
                        f"the broker died:\n{broker.process.output()[-2000:]}"
                    raise exc
    finally:
        for box in boxes:
            box.close()
    print(f"churned {CHURNED} devices in {time.monotonic() - started:.0f} s; "
          f"registration of the fleet's names answered {answers}")
    log = broker.process.output()
    assert broker.process.alive(), f"the broker died:\n{log[-2000:]}"
    assert broker.process.proc is not None and broker.process.proc.pid == pid
    for box in boxes:
        assert len(box.sent) > 10
        try:
            wait_until(lambda b=box: not _missing(fleet, b), 60,  # type: ignore[misc]
                       what=f"every seq of {box.device_id} stored")
        except AssertionError:
            missing = _missing(fleet, box)
            raise AssertionError(f"{box.device_id} lost {len(missing)} of {len(box.sent)} "
                                 f"records, seqs {missing[:5]}..{missing[-5:]}") from None
    assert double_disconnects(log) == [], "a session was disconnected twice"
    with fleet.api() as api:
        left = api.get("/api/v1/devices", params={"limit": 1000}).json()
    assert {d["device_id"] for d in left["data"]} == set(passwords)
