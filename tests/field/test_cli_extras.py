"""`simpul-field` in an agent-only install: --help and --version work, and every verb
either runs or names the missing extra in one line (exit 2), never a traceback.

The CLI runs as a child process in which importing a field-extra package raises
ImportError (an import blocker on sys.meta_path), as it would where they are absent.
"""

import importlib.metadata
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

import simpul_field
import simpul_field.cli
from simpul_field.extras import optional_module
from tests.field.helpers import env, one_line_error

# What an agent-only venv lacks of the field extra.
FIELD_ONLY = ("httpx", "intelhex", "esptool", "tqdm", "segno")

BLOCKER = """
import runpy
import sys

blocked = set(sys.argv[1].split(","))


class Blocker:
    # Ahead of every finder: a blocked package (or any of its modules) is not there.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Blocker())
sys.argv = ["simpul-field", *sys.argv[2:]]
runpy.run_module("simpul_field.cli", run_name="__main__", alter_sys=True)
"""


def field_without(blocked: List[str], args: List[str], cwd: Path
                  ) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-c", BLOCKER, ",".join(blocked), *args],
                          cwd=cwd, env=env("http://127.0.0.1:9", "t"), text=True,
                          capture_output=True, timeout=60)


@pytest.mark.parametrize("args", [["--help"], ["flash", "--help"], ["provision", "--help"],
                                  ["provision", "batch", "--help"],
                                  ["provision", "install", "--help"],
                                  ["provision", "check", "--help"]])
def test_help_works_without_the_field_extra(tmp_path: Path, args: List[str]) -> None:
    proc = field_without(list(FIELD_ONLY), args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: simpul-field"), proc.stdout
    assert proc.stderr == ""


def test_version_without_the_field_extra(tmp_path: Path) -> None:
    proc = field_without(list(FIELD_ONLY), ["--version"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"simpul-field {importlib.metadata.version('simpul')}"
    assert proc.stdout.strip() == "simpul-field 0.1.0"


def test_version_falls_back_to_the_package_without_a_distribution(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def absent(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", absent)
    assert simpul_field.cli.version() == simpul_field.__version__ == "0.1.0"


def test_the_extra_is_named_exactly(tmp_path: Path) -> None:
    proc = field_without(["httpx"], ["provision", "check", "box-a"], tmp_path)
    assert proc.returncode == 2
    assert one_line_error(proc) == ("simpul-field: 'provision' needs the field extra: "
                                    "pip install 'simpul[field]' (missing: httpx)")


@pytest.mark.parametrize("args, missing", [
    (["flash", "--port", "loop://", "--hex", "sensor.hex"], "intelhex, tqdm"),
    (["flash", "--port", "loop://", "--bin", "app.bin", "--board", "esp32"], "esptool"),
    (["provision", "--device-id", "box-a", "--site", "Halte", "--kind", "wifi",
      "--district", "Barat", "--lat", "-6.2", "--lon", "106.8", "--target", "card"],
     "httpx, segno"),
    (["provision", "batch", "--count", "2", "--kind", "wifi", "--out", "bundles"],
     "httpx, segno"),
    (["provision", "install", "box.bundle.json", "--target", "card", "--site", "S",
      "--lat", "1", "--lon", "2"], "segno"),
    (["provision", "install", "box.bundle.json", "--target", "card", "--site", "S",
      "--lat", "1", "--lon", "2", "--check"], "httpx, segno"),
    (["provision", "check", "box-a"], "httpx"),
])
def test_every_verb_names_the_missing_extra(tmp_path: Path, args: List[str],
                                            missing: str) -> None:
    proc = field_without(list(FIELD_ONLY), args, tmp_path)
    assert proc.returncode == 2
    line = one_line_error(proc)
    verb = args[0]
    assert line.startswith(f"simpul-field: '{verb}' needs the field extra: "
                           f"pip install 'simpul[field]' (missing: {missing})"), line
    # Nothing was started: no bundle directory, no label, no card.
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_unforeseen_import_of_an_optional_package_is_recognised() -> None:
    assert optional_module(ModuleNotFoundError("no", name="segno.helpers")) == "segno"
    assert optional_module(ModuleNotFoundError("no", name="agent.config")) is None
    assert optional_module(ImportError("no")) is None
