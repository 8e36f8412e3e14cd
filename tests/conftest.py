"""Shared fixtures: real Mosquitto from broker_config/, a real fleet process.

testbed.harness (and so httpx) is imported inside the fixtures: the bullseye python3.9
run (scripts/py39-chroot.sh) loads this file without the fleet side installed.
"""

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

if TYPE_CHECKING:
    from testbed.harness import Broker, Fleet


@pytest.fixture
def scratch() -> Iterator[Path]:
    from testbed.harness import cleanup, scratch_dir

    path = scratch_dir()
    yield path
    if not os.environ.get("SIMPUL_KEEP"):
        cleanup(path)


@pytest.fixture
def broker(scratch: Path) -> "Iterator[Broker]":
    from testbed.harness import Broker

    b = Broker(scratch).start()
    yield b
    b.stop()


@pytest.fixture
def fleet(scratch: Path, broker: "Broker") -> "Iterator[Fleet]":
    from testbed.harness import Fleet

    f = Fleet(scratch, broker).start()
    yield f
    f.stop()
