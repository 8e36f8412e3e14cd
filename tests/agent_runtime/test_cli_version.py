"""`--version` on the agent's and the simulator's CLI, as a technician runs them."""

import subprocess
import sys

import pytest

from agent import __version__


# The box's CLI also runs in the py39 chroot; the simulator is not installed there.
@pytest.mark.parametrize("module,prog", [
    pytest.param("agent.cli", "simpul-agent", marks=pytest.mark.py39),
    ("simulator.cli", "simpul-sim")])
def test_version(module: str, prog: str) -> None:
    done = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{prog} {__version__}"
