"""What the broker must know, read from the fleet database: every device's account and
district, every bridge's account and districts, and the revoked certificate identities.
The account sync (fleet_api/broker/accounts.py) writes it into the broker's files."""

from sqlalchemy import select
from sqlalchemy.engine import Engine

from fleet_api.broker.accounts import AccessData, bridge_user
from fleet_api.db import bridges, devices
from fleet_api.devices.pki import revoked_identities
from fleet_api.devices.rotation import broker_hash


def load_access(engine: Engine) -> AccessData:
    data = AccessData()
    with engine.connect() as conn:
        for device_id, pw_hash, district in conn.execute(
                select(devices.c.device_id, broker_hash(), devices.c.district)
                .order_by(devices.c.device_id)):
            data.accounts.append((device_id, pw_hash))
            data.districts.append((device_id, district))
        for name, pw_hash, districts in conn.execute(
                select(bridges.c.name, bridges.c.password_hash, bridges.c.districts)
                .order_by(bridges.c.name)):
            data.accounts.append((bridge_user(name), pw_hash))
            data.bridges += [(bridge_user(name), d) for d in districts]
    data.denied = revoked_identities(engine)
    return data
