"""The wire contract stands alone: the fleet and the contract load no agent code.

Each check runs in a fresh interpreter, so what this test module itself imported cannot
hide a stray import.
"""

import ast
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

ROOT = Path(__file__).resolve().parents[2]
AGENT_SIDE = ("agent", "firmware_bridge", "scapy", "psutil", "pymodbus")


def loaded_after(statement: str) -> List[str]:
    probe = (f"{statement}; import sys; "
             f"print(sorted(m for m in sys.modules if m.split('.')[0] in {AGENT_SIDE!r}))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    return ast.literal_eval(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("statement", [
    "import fleet_api.main, fleet_api.cli, fleet_api.control.twin, fleet_api.updates.bundles",
    "import simpul_wire, simpul_wire.config, simpul_wire.bundle, simpul_wire.transport",
])
def test_loads_nothing_of_the_agent(statement: str) -> None:
    assert loaded_after(statement) == []


def test_the_fleet_validates_desired_config_without_the_agent() -> None:
    statement = ("from fleet_api.control.twin import validate; "
                 "validate({'collectors': [{'type': 'modbus', 'port': '/dev/x', "
                 "'registers': [{'name': 'level', 'register': 0}]}]})")
    assert loaded_after(statement) == []
