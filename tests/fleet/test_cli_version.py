"""`simpul-fleet --version` names the program and the installed version."""

import subprocess
import sys

from fleet_api import __version__
from fleet_api.cli import version


def test_version_is_the_distribution_or_the_source_tree() -> None:
    assert version() == __version__  # pyproject's version and fleet_api's agree


def test_version_flag_prints_it_and_exits_zero() -> None:
    run = subprocess.run([sys.executable, "-m", "fleet_api.cli", "--version"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0
    assert run.stdout.strip() == f"simpul-fleet {__version__}"
