"""Deregistration: revoke a device's broker access at once, live session included.

Mosquitto 2.0.11 re-reads its password file on SIGHUP but keeps live sessions. The fleet
therefore (1) swaps the device's password hash for a throwaway one and reloads, (2) logs
in on the device listener as that device with the throwaway password, clean start:
the broker hands the client id (= username) to the newcomer and drops the box's
connection and session, (3) deletes the account and reloads again, so the box's
reconnect is refused. Retained state and desired config are cleared too.

A box on the TLS listener logs in with its certificate, not the password file: its
certificates are marked revoked and the CRL rewritten before (1), so the reload in (1)
makes the TLS handshake refuse them; the ACL also denies the identity everything, a
second lock. The takeover in (2) drops its TLS session as well, because client ids are
broker-wide.
"""

import logging
import threading
from typing import Optional

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import delete, update
from sqlalchemy.engine import Engine

from fleet_api.accounts import AccountSync, mosquitto_hash, new_password
from fleet_api.db import devices
from fleet_api.pki import FleetCA, revoke_device
from fleet_api.publisher import Publisher
from simpul_wire.topics import topic

log = logging.getLogger("simpul.revoke")


class RevokeError(Exception):
    """The broker did not confirm a step of the revocation."""


def take_over(host: str, port: int, device_id: str, password: str, timeout: float = 10.0
              ) -> None:
    done = threading.Event()
    result: dict = {}  # type: ignore[type-arg]

    def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
        result["rc"] = rc
        done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id,
                         protocol=mqtt.MQTTv5)
    client.username_pw_set(device_id, password)
    client.on_connect = on_connect
    client.connect(host, port, keepalive=10, clean_start=True)
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise RevokeError("no CONNACK for the takeover")
        if getattr(result["rc"], "is_failure", True):
            raise RevokeError(f"the broker refused the takeover: {result['rc']}")
    finally:
        client.disconnect()
        client.loop_stop()


def deregister(engine: Engine, accounts: Optional[AccountSync], publisher: Optional[Publisher],
               device_url: Optional[str], device_id: str, ca: Optional[FleetCA] = None
               ) -> None:
    from urllib.parse import urlsplit

    revoked = revoke_device(engine, ca, device_id)
    if revoked:
        log.info("revoked %d certificate(s) of %s", revoked, device_id)
    if accounts is not None and device_url:
        throwaway = new_password()
        with engine.begin() as conn:
            conn.execute(update(devices).where(devices.c.device_id == device_id)
                         .values(password_hash=mosquitto_hash(throwaway), rotation_state=None,
                                 pending_password_hash=None))
        if not accounts.wait(accounts.request(), timeout=15):
            raise RevokeError("the broker did not reload the password file")
        parts = urlsplit(device_url)
        take_over(parts.hostname or "127.0.0.1", parts.port or 1883, device_id, throwaway)
    with engine.begin() as conn:
        conn.execute(delete(devices).where(devices.c.device_id == device_id))
    if accounts is not None and not accounts.wait(accounts.request(), timeout=15):
        raise RevokeError("the broker did not reload the password file")
    if publisher is not None:
        for leaf in ("config/desired", "state", "config/reported"):
            publisher.publish(topic(device_id, leaf), b"", retain=True)
    log.info("deregistered %s and revoked its broker access", device_id)
