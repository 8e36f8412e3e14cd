"""Shared fixtures: real Mosquitto from broker_config/, a real fleet process."""

import os
from pathlib import Path
from typing import Iterator

import pytest

from tests.harness import Broker, Fleet, cleanup, scratch_dir


@pytest.fixture
def scratch() -> Iterator[Path]:
    path = scratch_dir()
    yield path
    if not os.environ.get("SIMPUL_KEEP"):
        cleanup(path)


@pytest.fixture
def broker(scratch: Path) -> Iterator[Broker]:
    b = Broker(scratch).start()
    yield b
    b.stop()


@pytest.fixture
def fleet(scratch: Path, broker: Broker) -> Iterator[Fleet]:
    f = Fleet(scratch, broker).start()
    yield f
    f.stop()
