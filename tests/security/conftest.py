"""Security tests: a real Mosquitto and a real fleet, on SQLite and on PostgreSQL.

The fleet fixtures of tests/fleet (one PostgreSQL database per test) serve here too."""

from tests.fleet.conftest import db_url, fleet

__all__ = ["db_url", "fleet"]
