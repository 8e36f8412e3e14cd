"""Deregistration: revoke a device's broker access at once, live session included.

A broker reload (the access plugin re-reading the password file) kicks the live
connection of an account whose hash changed, but keeps its session. The fleet
therefore (1) swaps the device's password hash for a throwaway one and reloads, (2) logs
in on the device listener as that device with the throwaway password, clean start:
the broker hands the client id (= username) to the newcomer and drops the box's
connection and session, (3) clears the retained state and desired config, (4) deletes
the account and reloads again, so the box's reconnect is refused.

A box on the TLS listener logs in with its certificate, not the password file: its
certificates are marked revoked and the CRL rewritten before (1) (Mosquitto reads it at
its next start), and the reload in (1) makes the access plugin deny the identity
everything and kick its live connection. The takeover in (2) drops its TLS session as
well, because client ids are broker-wide.

When the broker cannot be reached (down, restarting, not answering), the device stays,
marked pending (a `deregister:<id>` row in `marks`, whose time is the next attempt):
after (1) no password the box knows is in the password file, so the box is locked out
from the broker's next reload or start on. The fleet's worker repeats (1)-(4) every
RETRY_S until they pass; the request that asked never fails for it.
"""

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import List, Optional
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection, Engine

from fleet_api.audit import record
from fleet_api.auth import Principal
from fleet_api.broker.accounts import AccountSync, mosquitto_hash, new_password
from fleet_api.broker.publisher import Publisher
from fleet_api.db import devices, marks, utcnow
from fleet_api.devices import registry
from fleet_api.devices.pki import FleetCA, revoke_device
from fleet_api.errors import FleetError
from fleet_api.settings import Settings, SettingsError
from simpul_wire.topics import topic

log = logging.getLogger("simpul.revoke")

MARK_PREFIX = "deregister:"
RETRY_S = 5.0
# An attempt holds its mark this long, so the worker and a request never run one device's
# steps at the same time (each swaps in its own throwaway password).
CLAIM_S = 60.0
RETAINED_LEAVES = ("config/desired", "state", "config/reported")


class RevokeError(FleetError):
    """The broker did not confirm a step of the revocation."""


@dataclass
class BrokerSide:
    """How this fleet reaches the broker for a deregistration; all None: no broker."""

    accounts: Optional[AccountSync] = None
    publisher: Optional[Publisher] = None
    settings: Optional[Settings] = None

    def device_url(self) -> Optional[str]:
        if self.settings is None or not self.settings.broker_data:
            return None
        try:
            return self.settings.device_url()
        except SettingsError as exc:
            raise RevokeError(str(exc)) from exc

    def ca(self) -> Optional[FleetCA]:
        if self.settings is None or not self.settings.broker_data:
            return None
        return FleetCA(self.settings.broker_data)


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


def _mark_name(device_id: str) -> str:
    return MARK_PREFIX + device_id


def is_pending(conn: Connection, device_id: str) -> bool:
    return conn.execute(select(marks.c.name).where(
        marks.c.name == _mark_name(device_id))).first() is not None


def _hold(conn: Connection, device_id: str, seconds: float) -> None:
    """Set (or create) the device's mark: no attempt starts before `seconds` from now."""
    at = utcnow() + timedelta(seconds=seconds)
    name = _mark_name(device_id)
    if not conn.execute(update(marks).where(marks.c.name == name).values(at=at)).rowcount:
        conn.execute(marks.insert().values(name=name, at=at))


def _claim(engine: Engine, device_id: str) -> bool:
    """Take a due mark for one attempt; False when another attempt has it."""
    now = utcnow()
    with engine.begin() as conn:
        return bool(conn.execute(update(marks).where(
            marks.c.name == _mark_name(device_id), marks.c.at <= now)
            .values(at=now + timedelta(seconds=CLAIM_S))).rowcount)


def _cut_off(engine: Engine, side: BrokerSide, device_id: str) -> None:
    """Steps (1)-(4); raises RevokeError or OSError while the broker is unreachable."""
    with engine.begin() as conn:
        if conn.execute(select(devices.c.device_id)
                        .where(devices.c.device_id == device_id)).first() is None:
            conn.execute(delete(marks).where(marks.c.name == _mark_name(device_id)))
            return  # finished meanwhile by another attempt
    url = side.device_url()
    if side.accounts is not None and url:
        throwaway = new_password()
        with engine.begin() as conn:
            # published_version: the worker must not republish desired config meanwhile.
            conn.execute(update(devices).where(devices.c.device_id == device_id)
                         .values(password_hash=mosquitto_hash(throwaway), rotation_state=None,
                                 pending_password_hash=None,
                                 published_version=devices.c.desired_version))
        if not side.accounts.wait(side.accounts.request(), timeout=15):
            raise RevokeError("the broker's password file was not rewritten")
        parts = urlsplit(url)
        take_over(parts.hostname or "127.0.0.1", parts.port or 1883, device_id, throwaway)
    if side.publisher is not None:
        for leaf in RETAINED_LEAVES:
            if not side.publisher.publish(topic(device_id, leaf), b"", retain=True):
                raise RevokeError(f"the broker did not take the clearing of {leaf}")
    with engine.begin() as conn:
        conn.execute(delete(devices).where(devices.c.device_id == device_id))
        conn.execute(delete(marks).where(marks.c.name == _mark_name(device_id)))
    if side.accounts is not None and not side.accounts.wait(side.accounts.request(),
                                                            timeout=15):
        # Harmless: the line left holds a throwaway password no one knows.
        log.warning("the broker has not reloaded since %s was deleted", device_id)
    log.info("deregistered %s and revoked its broker access", device_id)


def _attempt(engine: Engine, side: BrokerSide, device_id: str) -> bool:
    try:
        _cut_off(engine, side, device_id)
    except (RevokeError, OSError) as exc:
        log.warning("deregistration of %s pending (%s); retrying every %.0fs", device_id,
                    exc, RETRY_S)
        with engine.begin() as conn:
            _hold(conn, device_id, RETRY_S)
        return False
    return True


def deregister(engine: Engine, side: BrokerSide, device_id: str) -> bool:
    """True when the device is gone and cut off; False when it is marked pending and the
    worker finishes it once the broker answers."""
    revoked = revoke_device(engine, side.ca(), device_id)
    if revoked:
        log.info("revoked %d certificate(s) of %s", revoked, device_id)
    with engine.begin() as conn:
        if conn.execute(select(devices.c.device_id)
                        .where(devices.c.device_id == device_id)).first() is None:
            return True  # another request finished it a moment ago
        _hold(conn, device_id, CLAIM_S)
    return _attempt(engine, side, device_id)


def deregister_as(engine: Engine, side: BrokerSide, who: Principal, device_id: str) -> bool:
    """The API's deregistration: its audit entry (NoDevice when the device is not
    registered), then `deregister`."""
    with engine.begin() as conn:
        registry.require(conn, device_id)
        record(conn, who, "device.delete", device_id)
    return deregister(engine, side, device_id)


def retry_pending(engine: Engine, side: BrokerSide) -> List[str]:
    """The worker's task: one more attempt for each pending deregistration that is due.
    Returns the ids finished."""
    now = utcnow()
    with engine.connect() as conn:
        names = [r[0] for r in conn.execute(select(marks.c.name).where(
            marks.c.name.startswith(MARK_PREFIX, autoescape=True), marks.c.at <= now))]
    done = []
    for name in names:
        device_id = name[len(MARK_PREFIX):]
        if _claim(engine, device_id) and _attempt(engine, side, device_id):
            done.append(device_id)
    return done
