"""District bridges: an admin creates each one for the districts whose boxes it carries.

A bridge is a broker account `simpul_bridge_<name>` (a '_' no device id can have); its
password is shown once, at creation, and only its hash is stored. The access plugin
lets it write and read only the topics of devices registered in its districts, so a
stolen bridge password cannot fake another district's flood alert. Deleting a bridge
takes its account out of the password file; a live session left behind can no longer
publish or read anything, because its districts are gone from the plugin's data too.
"""

from typing import Any, Dict, List, Optional

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from fleet_api.audit import record
from fleet_api.auth import Principal
from fleet_api.broker.accounts import AccountSync, bridge_user, mosquitto_hash, new_password
from fleet_api.db import bridges, iso, utcnow
from fleet_api.errors import FleetError


class BridgeError(FleetError):
    """A bridge cannot be made or found; the message says why."""


class NoAccounts(FleetError):
    """This fleet manages no broker accounts, so it has no bridges to make or delete."""


def _sync(accounts: Optional[AccountSync]) -> AccountSync:
    if accounts is None:
        raise NoAccounts("this fleet manages no broker accounts (start it with "
                         "--broker-data)")
    return accounts


def _public(row: Any) -> Dict[str, Any]:
    return {"name": row.name, "username": bridge_user(row.name),
            "districts": list(row.districts), "created_by": row.created_by,
            "created_at": iso(row.created_at)}


def create(engine: Engine, accounts: Optional[AccountSync], who: Principal, name: str,
           districts: List[str]) -> Dict[str, Any]:
    """Make the bridge and wait for the broker to know it; returns its view and, once,
    its password. NoAccounts without an account sync, BridgeError when it exists."""
    sync = _sync(accounts)
    password = new_password()
    try:
        with engine.begin() as conn:
            conn.execute(insert(bridges).values(
                name=name, districts=sorted(set(districts)),
                password_hash=mosquitto_hash(password), created_by=who.name or "token",
                created_at=utcnow()))
            record(conn, who, "bridge.create", name, {"districts": sorted(set(districts))})
            row = conn.execute(select(bridges).where(bridges.c.name == name)).one()
    except IntegrityError as exc:
        raise BridgeError(f"bridge {name} exists already") from exc
    sync.wait(sync.request(), timeout=15)
    return {**_public(row), "password": password}


def listing(engine: Engine) -> List[Dict[str, Any]]:
    with engine.connect() as conn:
        return [_public(r) for r in conn.execute(select(bridges).order_by(bridges.c.name))]


def remove(engine: Engine, accounts: Optional[AccountSync], who: Principal, name: str
           ) -> None:
    """Delete the bridge and wait for the broker to drop it. NoAccounts without an account
    sync, BridgeError when there is no such bridge."""
    sync = _sync(accounts)
    with engine.begin() as conn:
        gone = conn.execute(delete(bridges).where(bridges.c.name == name)).rowcount
        if not gone:
            raise BridgeError(f"no bridge {name}")
        record(conn, who, "bridge.delete", name)
    sync.wait(sync.request(), timeout=15)
