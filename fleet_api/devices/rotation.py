"""Credential rotation from the fleet, with no window in which the box is locked out.

The steps are `identity.begin/step` (pure); this module keeps their state in the
`devices` row and does what their actions say:

- `start` (the API, through `request`, which refuses a device being deregistered and
  writes the audit entry): a new password; the device row keeps the old hash and stores
  the new one as pending (state `staging`); a `rotate_credentials` command carries the
  password to the box, whose command id is the rotation id. The broker still has the old
  hash.
- `advance` (the fleet worker, under its lease, every second):
  - staging: the command succeeded (the box wrote the new password beside the old one)
    → `switched`, and the account sync gives the broker the pending hash;
    the command failed or expired, or 30 minutes passed → back to idle, old password kept.
  - switched: a live birth after the switch (the broker takes no other password)
    → `done`: the pending hash becomes the device's hash. 30 minutes without one → the
    broker gets the old hash back (the box still holds it) and an alert.
The password is never stored in clear: the command's stored args hold it sealed with a
key outside the database (fleet_api/sealing.py), opened only when the command is
published (and re-published while the broker has not taken it), and erased once the
command is final. Every API view and audit entry redacts it too (fleet_api/twin.redact).
In clear it exists only in this process's memory, in the MQTT message and on the box.
"""

import logging
import time
from datetime import datetime
from typing import Any, Dict, List, Optional

from sqlalchemy import case, select, update
from sqlalchemy.engine import Connection, Engine

from fleet_api import sealing
from fleet_api.alerts import rules as alerts
from fleet_api.audit import record
from fleet_api.auth import Principal
from fleet_api.broker.accounts import AccountSync, mosquitto_hash, new_password
from fleet_api.control import box_commands as cmds
from fleet_api.db import births, commands, devices, utcnow
from fleet_api.devices.identity import Rotation, begin, step
from fleet_api.devices.revoke import is_pending
from fleet_api.errors import FleetError

log = logging.getLogger("simpul.rotation")

COMMAND = "rotate_credentials"
COMMAND_TIMEOUT_S = 600.0
if COMMAND not in cmds.SEALED_COMMANDS:  # its password arg is sealed; publish must open it
    raise RuntimeError(f"{COMMAND} must be in commands.SEALED_COMMANDS")
# Final rotate commands whose rotation nobody follows any more (the device was deleted)
# are swept for sealed passwords this often; every other one is erased when it ends.
SWEEP_EVERY_S = 60.0
_swept_at = 0.0


class RotationError(FleetError):
    """A rotation cannot start; the message says why."""


class Deregistering(RotationError):
    """The device is being deregistered."""


def broker_hash() -> Any:
    """The hash the broker's password file gets: the pending one once the box has it."""
    return case((devices.c.rotation_state == "switched", devices.c.pending_password_hash),
                else_=devices.c.password_hash)


def _load(row: Any) -> Rotation:
    state = row.rotation_state or "idle"
    current = row.password_hash
    return Rotation(device_id=row.device_id, state=state, current_hash=current,
                    pending_hash=row.pending_password_hash,
                    broker_hash=row.pending_password_hash if state == "switched" else current,
                    rotation_id=row.rotation_id, since=row.rotation_since)


def _store(conn: Connection, rot: Rotation) -> None:
    conn.execute(update(devices).where(devices.c.device_id == rot.device_id).values(
        rotation_state=None if rot.state == "idle" else rot.state,
        password_hash=rot.current_hash, pending_password_hash=rot.pending_hash,
        rotation_id=rot.rotation_id, rotation_since=rot.since))


def start(conn: Connection, device_id: str, who: str, only_boot_id: Optional[str] = None,
          reconnect_after_s: float = 5.0) -> Dict[str, Any]:
    """Begin a rotation in the caller's transaction; returns the command row to publish."""
    row = conn.execute(select(devices).where(devices.c.device_id == device_id)).first()
    if row is None:
        raise LookupError(device_id)
    if row.state != "online":
        # For a box that is away the broker would queue the command, password and all,
        # in the box's session, and its autosave writes that to DIR/mosquitto.db.
        raise RotationError(f"{device_id} is {row.state}: credentials are rotated only "
                            "while the box is online, so the new password never waits "
                            "in the broker's queue and persistence file")
    try:
        sealer = sealing.sealer()
    except sealing.SealingError as exc:
        raise RotationError(str(exc)) from exc
    password = new_password()
    command_id = cmds.new_id()
    rot, actions = begin(_load(row), mosquitto_hash(password), command_id, utcnow())
    if actions and actions[0].startswith("refuse"):
        raise RotationError(actions[0].split(": ", 1)[1])
    try:
        sealed = sealer.seal(password)
    except sealing.SealingError as exc:
        raise RotationError(str(exc)) from exc
    args: Dict[str, Any] = {"password": sealed, "rotation_id": command_id,
                            "reconnect_after_s": reconnect_after_s}
    if only_boot_id:
        args["only_boot_id"] = only_boot_id
    command = cmds.create(conn, device_id, COMMAND, args, COMMAND_TIMEOUT_S, who,
                          command_id=command_id)
    _store(conn, rot)
    return command


def request(engine: Engine, who: Principal, device_id: str, only_boot_id: Optional[str],
            reconnect_after_s: float) -> Dict[str, Any]:
    """The API's rotation: `start` and its audit entry in one transaction; returns the
    command row to publish. LookupError when there is no such device, Deregistering
    (a RotationError) while it is being deregistered, RotationError when it cannot
    start."""
    with engine.begin() as conn:
        if is_pending(conn, device_id):
            raise Deregistering(f"{device_id} is being deregistered")
        command = start(conn, device_id, who.name or f"#{who.token_id}", only_boot_id,
                        reconnect_after_s)
        record(conn, who, "device.rotate_credentials", device_id,
               {"rotation_id": command["command_id"], "only_boot_id": only_boot_id})
    return command


def _act(conn: Connection, rot: Rotation, actions: List[str], now: datetime) -> bool:
    """Store and alert; return whether the broker's password file must be rebuilt."""
    if "store" in actions:
        _store(conn, rot)
    for action in actions:
        if action.startswith("alert: "):
            alerts.apply(conn, rot.device_id, ("rotation",), [alerts.Finding(
                "rotation", "credentials", action[len("alert: "):])], now)
    if rot.state == "done":
        alerts.apply(conn, rot.device_id, ("rotation",), [], now)  # resolve an old one
    return "write_broker_hash" in actions or "drop_old_hash" in actions


def _sweep(conn: Connection) -> None:
    global _swept_at
    if time.monotonic() - _swept_at >= SWEEP_EVERY_S:
        _swept_at = time.monotonic()
        cmds.forget_final_secrets(conn)


def advance(engine: Engine, accounts: Optional[AccountSync]) -> None:
    now = utcnow()
    resync = False
    with engine.begin() as conn:
        _sweep(conn)
        rows = conn.execute(select(devices).where(
            devices.c.rotation_state.in_(("staging", "switched")))).fetchall()
        for row in rows:
            rot = _load(row)
            actions: List[str] = []
            if rot.state == "staging":
                status = conn.execute(select(commands.c.status).where(
                    commands.c.command_id == rot.rotation_id)).scalar()
                if status == "succeeded":
                    rot, actions = step(rot, "staged", now, rot.rotation_id)
                elif status in ("failed", "expired") or status is None:
                    rot, actions = Rotation(
                        device_id=rot.device_id, current_hash=rot.current_hash,
                        broker_hash=rot.current_hash, since=now), [
                        "store", f"alert: rotation {row.rotation_id} was not staged "
                                 f"({status or 'no command'}); old password kept"]
            else:
                birth = conn.execute(select(births.c.received_at).where(
                    births.c.device_id == rot.device_id,
                    births.c.received_at > rot.since).order_by(
                    births.c.received_at).limit(1)).scalar()
                if birth is not None:
                    rot, actions = step(rot, "online", now, boot_after=birth)
            if not actions:
                rot, actions = step(rot, "tick", now)
            if row.rotation_state == "staging" and rot.state != "staging":
                # The command is done (staged, failed or expired): the box has the
                # password or never will; it is not kept.
                cmds.forget_secrets(conn, row.rotation_id)
            if actions:
                log.info("rotation of %s: %s", rot.device_id, rot.state)
                resync = _act(conn, rot, actions, now) or resync
    if resync and accounts is not None:
        accounts.request()
