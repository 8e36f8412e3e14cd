"""Fleet fixtures: every fleet test runs on SQLite and on the running PostgreSQL.

Each PostgreSQL test gets its own database (`simpul_t_<pid>_<n>`), created on the server
at 127.0.0.1:5432 (trust auth, user postgres) and dropped afterwards; no test touches
another's database.
"""

import itertools
import os
from pathlib import Path
from typing import Iterator

import psycopg
import pytest

from testbed.harness import Broker, Fleet

PG_ADMIN = os.environ.get("SIMPUL_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
_counter = itertools.count()


def pg_base() -> str:
    return PG_ADMIN.rsplit("/", 1)[0]


def create_pg_database() -> str:
    name = f"simpul_t_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_pg_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, scratch: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{scratch}/fleet.db"
        return
    name = create_pg_database()
    try:
        yield f"{pg_base()}/{name}"
    finally:
        drop_pg_database(name)


@pytest.fixture
def fleet(scratch: Path, broker: Broker, db_url: str) -> Iterator[Fleet]:
    f = Fleet(scratch, broker, db_url=db_url)
    f.process.args += ["--alert-interval", "0.5"]
    f.start()
    yield f
    f.stop()
