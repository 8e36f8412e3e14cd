"""Build this repo's wheel the way a fresh clone would, away from the working tree.

The source is copied first, so that builds running at the same time (pytest-xdist, the
update tests) never share setuptools' build/ directory, and so that only what the wheel
declares can reach it.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[2]
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]


def clean_env() -> Dict[str, str]:
    """This environment without PYTHONPATH: an installed wheel must stand on its own
    (and pip must not take a checkout on the path for an installed simpul)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def packages() -> List[str]:
    """The top-level packages pyproject.toml's packages.find includes (`agent*` ->
    agent): read from there, so a new package can never be left out of the copy."""
    import tomllib

    found = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = found["tool"]["setuptools"]["packages"]["find"]["include"]
    return [pattern.rstrip("*") for pattern in include]


def build_wheel(base: Path) -> Path:
    """The simpul wheel built from a copy of this tree under base; its path."""
    src = base / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "node_modules", "*.egg-info", "build")
    for pkg in packages():
        shutil.copytree(ROOT / pkg, src / pkg, ignore=skip)
    out = base / "dist"
    subprocess.run([*PIP, "wheel", "--no-deps", "-w", str(out), str(src)], check=True,
                   env=clean_env(), timeout=300)  # fmt: skip
    (wheel,) = out.glob("simpul-*.whl")
    return wheel
