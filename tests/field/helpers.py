"""Helpers for the provisioning tests: the CLI as a child process, bundle checks."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

from simpul_field.provision.bundle import installed_device

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
CLI = [PY, "-m", "simpul_field.cli"]

SYNTHETIC = ('[publish]\nsample_interval_s = 0.5\nhealth_interval_s = 2\n\n'
             '[[collectors]]\ntype = "synthetic"\nname = "air"\n'
             'values = { pm2_5 = 7.25 }\n')


def env(fleet_url: Optional[str] = None, token: Optional[str] = None) -> Dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("SIMPUL_FLEET", "SIMPUL_TOKEN")}
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    if fleet_url:
        e["SIMPUL_FLEET"] = fleet_url
    if token:
        e["SIMPUL_TOKEN"] = token
    return e


def field(args: List[str], cwd: Path, fleet_url: Optional[str] = None,
          token: Optional[str] = None, timeout: float = 120) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(CLI + args, cwd=cwd, env=env(fleet_url, token), text=True,
                          capture_output=True, timeout=timeout)


def spawn(args: List[str], cwd: Path, log: Path, fleet_url: Optional[str] = None,
          token: Optional[str] = None) -> "subprocess.Popen[bytes]":
    with open(log, "wb") as out:
        return subprocess.Popen(CLI + args, cwd=cwd, env=env(fleet_url, token), stdout=out,
                                stderr=subprocess.STDOUT)


def one_line_error(proc: "subprocess.CompletedProcess[str]") -> str:
    """The CLI failed with one plain line on stderr, never a traceback."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("simpul-field: "), proc.stderr
    return lines[0]


def is_whole_or_absent(target: Path) -> bool:
    """The target is absent, or a complete bundle: never anything in between."""
    return not target.exists() or installed_device(target) is not None
