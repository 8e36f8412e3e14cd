"""Database leases: work that must happen once across several fleet processes.

A lease row names its holder and an expiry. Taking it succeeds when it is free, expired
or already ours; the holder renews it each tick. Two transactions, so a lost INSERT race
on PostgreSQL does not abort the caller's work.
"""

from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from fleet_api.db import leases, utcnow


def acquire(engine: Engine, name: str, holder: str, ttl_s: float) -> bool:
    now = utcnow()
    until = now + timedelta(seconds=ttl_s)
    with engine.begin() as conn:
        done = conn.execute(update(leases).where(
            leases.c.name == name,
            or_(leases.c.holder == holder, leases.c.expires_at < now))
            .values(holder=holder, expires_at=until))
        if done.rowcount == 1:
            return True
    try:
        with engine.begin() as conn:
            conn.execute(leases.insert().values(name=name, holder=holder, expires_at=until))
        return True
    except IntegrityError:
        return False


def release(engine: Engine, name: str, holder: str) -> None:
    with engine.begin() as conn:
        conn.execute(leases.delete().where(leases.c.name == name, leases.c.holder == holder))
