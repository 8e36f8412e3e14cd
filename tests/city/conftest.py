"""City tests start whole stacks (broker, fleet processes, a simulated fleet); each
makes its own ports, directories and PostgreSQL database, and removes them."""

import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from testbed.harness import scratch


@pytest.fixture
def city_dir() -> Iterator[Path]:
    path = scratch("simpul-city-test-")
    yield path
    if not os.environ.get("SIMPUL_KEEP"):
        shutil.rmtree(path, ignore_errors=True)
