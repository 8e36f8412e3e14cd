"""The agent's and the bridge's unit tests under Debian bullseye's python3.9 (the
Raspberry Pi OS Bullseye interpreter), in the debootstrap chroot of
scripts/py39-chroot.sh. The first run builds the rootfs (about 2.5 min); later runs
reuse it from /var/cache/simpul and take seconds."""

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "py39-chroot.sh"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def chroot(*args: str) -> "subprocess.CompletedProcess[str]":
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, timeout=1100)


def host_py39_count(files: List[str]) -> int:
    """How many py39 tests this host's pytest collects from the same files."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
         "-m", "py39", *files], capture_output=True, text=True, cwd=REPO, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    found = re.search(r"(\d+)/\d+ tests collected|(\d+) tests? collected", out.stdout)
    assert found, out.stdout + out.stderr
    return int(found.group(1) or found.group(2))


def test_every_py39_test_passes_under_bullseye_python39() -> None:
    files = chroot("--list-files").stdout.split()
    assert "tests/wire/test_wire.py" in files and "tests/test_py39_chroot.py" not in files
    run = chroot()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert re.search(r"Python 3\.9\.\d+ on Debian 11\.\d+ x86_64", run.stderr), run.stderr
    passed = re.search(r"^(\d+) passed", run.stdout, re.M)
    assert passed, run.stdout[-2000:]
    # The chroot ran exactly what the host collects: nothing silently left out.
    assert int(passed.group(1)) == host_py39_count(files)
    assert "failed" not in run.stdout.splitlines()[-1]


def test_the_chroot_refuses_what_bullseye_refuses() -> None:
    """`int | None` in a pydantic model fails on 3.9, typing.Optional does not: the
    chroot catches exactly the mistake it is there for."""
    model = ("from typing import Optional\nfrom pydantic import BaseModel\n"
             "class M(BaseModel):\n    x: {} = None\nprint(M(x=3).x)\n")
    bad = chroot("--exec", "python", "-c", model.format("int | None"))
    assert bad.returncode != 0
    assert "TypeError" in bad.stderr and "unsupported operand type(s) for |" in bad.stderr
    good = chroot("--exec", "python", "-c", model.format("Optional[int]"))
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip() == "3"
