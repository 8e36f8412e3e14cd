"""firmware_bridge is the protocol layer and the flasher: importing all of it loads
nothing of the agent, of simpul_field (the field tool above it), the fleet or the
simulator."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import importlib
import pkgutil
import sys

import firmware_bridge

names = [m.name for m in pkgutil.walk_packages(firmware_bridge.__path__, "firmware_bridge.")]
for name in names:
    importlib.import_module(name)
above = sorted(n for n in sys.modules
               if n.split(".")[0] in ("agent", "simpul_field", "fleet_api", "simulator"))
print(len(names))
print(" ".join(above))
"""


@pytest.mark.py39
def test_firmware_bridge_imports_nothing_above_it() -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, text=True,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    count, above = [*proc.stdout.splitlines(), "", ""][:2]
    assert int(count) >= 10  # every module was imported, the flasher's included
    assert above == "", f"firmware_bridge loaded {above}"
