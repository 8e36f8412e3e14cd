"""Real wheel sets for the update tests: this repo built at several versions."""

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, Iterator, Tuple

import pytest

from simpul_wire import bundle as b

ROOT = Path(__file__).resolve().parents[2]
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
# Builds of the agent that go wrong on purpose, each a patch of (file, old, new).
BROKEN = {
    # A bug that points the broker at the wrong port: the health check cannot reach it.
    "health": ("simpul_wire/config/sections.py",
               "return parts.hostname or \"127.0.0.1\", parts.port or default",
               "return parts.hostname or \"127.0.0.1\", (parts.port or default) + 1"),
    # Starts, then dies: systemd would restart it again and again.
    "crash": ("agent/cli/run.py", "    from agent.config import load_config\n",
              "    raise SystemExit('crash on start (a broken test build)')\n"),
}


class Bundles:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.deps = base / "deps"
        self.key_pem, self.public = b.generate_key()
        self.made: Dict[Tuple[str, str], Path] = {}

    def _source(self, version: str, broken: str) -> Path:
        src = self.base / f"src-{version}-{broken or 'good'}"
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, src / name)
        for pkg in ("agent", "firmware_bridge", "simpul_wire"):
            shutil.copytree(ROOT / pkg, src / pkg,
                            ignore=shutil.ignore_patterns("__pycache__"))
        patches = [("pyproject.toml", 'version = "0.1.0"', f'version = "{version}"'),
                   ("agent/__init__.py", '__version__ = "0.1.0"', f'__version__ = "{version}"'),
                   *([BROKEN[broken]] if broken else [])]
        for rel, old, new in patches:
            text = (src / rel).read_text()
            assert old in text, f"{rel}: patch no longer applies"
            (src / rel).write_text(text.replace(old, new, 1))
        return src

    def bundle(self, version: str, broken: str = "") -> Path:
        if (version, broken) in self.made:
            return self.made[(version, broken)]
        if not self.deps.exists():
            # The dependencies once per session (pip's cache makes later sessions quick).
            subprocess.run([*PIP, "wheel", f"{ROOT}[agent]", "-w", str(self.deps)], check=True)
            for whl in self.deps.glob("simpul-*.whl"):
                whl.unlink()
        out = self.base / f"wheels-{version}-{broken or 'good'}"
        subprocess.run([*PIP, "wheel", str(self._source(version, broken)), "--no-deps",
                        "-w", str(out)], check=True)
        for whl in self.deps.glob("*.whl"):
            shutil.copy(whl, out)
        wheels = sorted(out.glob("*.whl"))
        manifest = b.build_manifest(wheels, version)
        path = self.base / f"simpul-agent-{version}-{broken or 'good'}.tar"
        b.write_bundle(path, manifest, b.sign_manifest(manifest, self.key_pem), wheels)
        self.made[(version, broken)] = path
        return path


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bundles]:
    made = Bundles(tmp_path_factory.mktemp("bundles"))
    yield made
    shutil.rmtree(made.base, ignore_errors=True)


BundleMaker = Callable[[str, str], Path]
