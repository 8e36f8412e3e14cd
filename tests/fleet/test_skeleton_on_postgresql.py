"""The skeleton's API and ingest tests (tests/test_*.py run them on SQLite), again on
PostgreSQL: this module narrows the package's `db_url` to the PostgreSQL server."""

from pathlib import Path
from typing import Iterator

import pytest

from tests.broker.test_acl import (  # noqa: F401 - collected here with a PostgreSQL fleet
    test_device_is_confined_to_its_own_tree,
)
from tests.fleet.conftest import create_pg_database, drop_pg_database, pg_base
from tests.test_e2e_skeleton import (  # noqa: F401
    test_broker_outage_loses_nothing,
    test_three_agents_report_their_values,
)
from tests.test_ingest import (  # noqa: F401
    test_bad_payloads_are_counted_and_ingest_goes_on,
    test_duplicate_delivery_is_stored_once_and_confirmed_each_time,
)


@pytest.fixture
def db_url(scratch: Path) -> Iterator[str]:
    name = create_pg_database()
    try:
        yield f"{pg_base()}/{name}"
    finally:
        drop_pg_database(name)
