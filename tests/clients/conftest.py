"""Shared fixtures: a simulated hotspot (capture files, fixtures, ground truth) and CLI runners."""

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

# Until the lead's run/doctor commands land in this branch, the CLI is driven with the
# clients module alone; agent.cli.main itself (parsing, error handling) is what runs.
AGENT_SHIM = (
    "import sys, agent.cli as c; "
    "c.COMMAND_MODULES = [m for m in c.COMMAND_MODULES if m == 'clients']; "
    "sys.exit(c.main(sys.argv[1:]))"
)


def run_agent(args: List[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [PYTHON, "-c", AGENT_SHIM, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(REPO),
    )


def make_hotspot(out: Path, *extra: str) -> Dict[str, Any]:
    from simulator.commands import hotspot

    parser = argparse.ArgumentParser()
    hotspot.register(parser.add_subparsers())
    args = parser.parse_args(["hotspot", "--out", str(out), *extra])
    with contextlib.redirect_stdout(io.StringIO()):
        assert args.func(args) == 0
    truth: Dict[str, Any] = json.loads((out / "truth.json").read_text())
    return truth


@pytest.fixture(scope="session")
def hotspot(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Dict[str, Any]]:
    out = tmp_path_factory.mktemp("hotspot")
    return out, make_hotspot(out, "--seed", "7", "--duration", "900", "--noise-rate", "20")
