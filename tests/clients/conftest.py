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

# `simpul-agent` as the console script runs it, without needing it installed.
AGENT = [PYTHON, "-m", "agent.cli"]


def run_agent(args: List[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [*AGENT, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(REPO),
    )


def make_hotspot(out: Path, *extra: str) -> Dict[str, Any]:
    from simulator.cli import hotspot

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
