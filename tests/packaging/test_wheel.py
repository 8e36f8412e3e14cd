"""The wheel on its own: built from the tree, installed with pip into empty venvs, run
with no checkout (cwd elsewhere, no PYTHONPATH). `simpul[agent]` alone and
`simpul[fleet]` alone, each CLI's --help and --version, one real command each, and the
fleet without the agent's collectors or scapy. Takes minutes (PyPI, cached by pip in
~/.cache/pip between the venvs and between runs)."""

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Iterator, List

import pytest

from testbed.harness import scratch_dir, wait_port
from testbed.ports import free_port
from tests.packaging.wheels import PIP, ROOT, build_wheel, clean_env

pytestmark = pytest.mark.slow

CLIS = ("simpul-agent", "simpul-fleet", "simpul-sim", "simpul-field")
# what scripts/build-dashboard.sh makes
VENDORED = ("uPlot.iife.min.js", "uPlot.min.css", "swagger-ui-bundle.js", "swagger-ui.css")
DATA_FILES = (
    "broker_config/mosquitto.conf.in", "broker_config/plugin/simpul_acl.c",
    "broker_config/plugin/access_data.h", "agent/systemd/simpul-agent.service",
    "simulator/scenarios/stormy-day.toml", "fleet_api/dashboard/templates/base.html",
    "fleet_api/dashboard/static/app.css", "fleet_api/systemd/simpul-fleet-api.service",
    "fleet_api/systemd/simpul-fleet-ingest@.service", "fleet_api/ops/prometheus-rules.yml",
    "fleet_api/ops/grafana-dashboard.json",
    *(f"fleet_api/dashboard/static/vendor/{name}" for name in VENDORED),
)


class Venv:
    def __init__(self, path: Path, cwd: Path) -> None:
        self.path = path
        self.cwd = cwd  # outside the checkout

    def bin(self, name: str) -> str:
        return str(self.path / "bin" / name)

    def run(self, *args: str, timeout: float = 120) -> "subprocess.CompletedProcess[str]":
        return subprocess.run(list(args), cwd=self.cwd, env=clean_env(), capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip

    def pip(self, *args: str) -> "subprocess.CompletedProcess[str]":
        out = subprocess.run([*PIP, "--python", self.bin("python"), *args], cwd=self.cwd,
                             env=clean_env(), capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr
        return out

    def start(self, args: List[str], log: Path) -> "subprocess.Popen[bytes]":
        with open(log, "ab") as out:
            return subprocess.Popen(args, cwd=self.cwd, env=clean_env(), stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: "subprocess.Popen[bytes]") -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # As `make setup` does: the dashboard's vendored assets exist before the wheel.
    subprocess.run(["bash", str(ROOT / "scripts" / "build-dashboard.sh")], check=True,
                   timeout=600)  # fmt: skip
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def _venv(base: Path, wheel: Path, extra: str) -> Venv:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(base / "venv")],
                   check=True, env=clean_env())  # fmt: skip
    (base / "cwd").mkdir()
    venv = Venv(base / "venv", base / "cwd")
    venv.pip("install", f"simpul[{extra}] @ {wheel.as_uri()}")
    return venv


@pytest.fixture(scope="module")
def agent_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Venv:
    return _venv(tmp_path_factory.mktemp("agent"), wheel, "agent")


@pytest.fixture(scope="module")
def fleet_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Venv:
    return _venv(tmp_path_factory.mktemp("fleet"), wheel, "fleet")


def test_the_wheel_holds_every_data_file_the_code_reads(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not [f for f in DATA_FILES if f not in names]
    assert not [n for n in names if n.startswith(("tests/", "bench/", "build/", "testbed/"))]


def _answers(venv: Venv, cli: str, flag: str) -> str:
    out = venv.run(venv.bin(cli), flag)
    said = out.stdout + out.stderr
    assert "Traceback" not in said, f"{cli} {flag}:\n{said}"
    # Either it works, or it names the extra it needs in one line.
    assert out.returncode == 0 or (
        len(said.strip().splitlines()) == 1 and "simpul[" in said), f"{cli} {flag}: {said}"
    return out.stdout if out.returncode == 0 else ""


@pytest.mark.parametrize("cli", CLIS)
def test_each_cli_helps_in_the_agent_venv(agent_venv: Venv, cli: str) -> None:
    _answers(agent_venv, cli, "--help")


@pytest.mark.parametrize("cli", CLIS)
def test_each_cli_helps_in_the_fleet_venv(fleet_venv: Venv, cli: str) -> None:
    _answers(fleet_venv, cli, "--help")


@pytest.mark.parametrize("cli", CLIS)
def test_each_cli_says_its_version_in_the_agent_venv(agent_venv: Venv, cli: str) -> None:
    said = _answers(agent_venv, cli, "--version")
    assert not said or "0.1.0" in said, said


@pytest.mark.parametrize("cli", CLIS)
def test_each_cli_says_its_version_in_the_fleet_venv(fleet_venv: Venv, cli: str) -> None:
    said = _answers(fleet_venv, cli, "--version")
    assert not said or "0.1.0" in said, said


def test_simpul_field_in_the_agent_venv_works_or_names_its_extra(agent_venv: Venv) -> None:
    out = agent_venv.run(agent_venv.bin("simpul-field"), "--help")
    said = out.stdout + out.stderr
    assert "Traceback" not in said
    assert out.returncode == 0 or (len(said.strip().splitlines()) == 1
                                   and "simpul[field]" in said), said


def test_agent_doctor_checks_a_sample_config_from_the_wheel(agent_venv: Venv) -> None:
    base = agent_venv.cwd
    secret = base / "mqtt.password"
    secret.write_text("x\n")
    with socket.socket() as broker:  # something listening where the config says
        broker.bind(("127.0.0.1", 0))
        broker.listen()
        port = broker.getsockname()[1]
        config = base / "agent.toml"
        config.write_text(
            f'[device]\ndevice_id = "park-01"\ndata_dir = "{base / "data"}"\n\n'
            f'[broker]\nurl = "mqtt://127.0.0.1:{port}"\npassword_file = "{secret}"\n')
        out = agent_venv.run(agent_venv.bin("simpul-agent"), "doctor", "--config", str(config))
    lines = out.stdout.splitlines()
    assert "Traceback" not in out.stdout + out.stderr
    assert lines[0].startswith("ok   config:"), out.stdout + out.stderr
    assert any(ln.startswith("ok   broker:") for ln in lines), out.stdout


# Every fleet module imported: none of them may load the agent (its collectors) or scapy.
# (find_spec alone cannot tell: the one wheel ships agent/ to every venv; the extras
# decide only the dependencies.)
IMPORT_ALL_OF_THE_FLEET = """
import importlib, importlib.util, pkgutil, sys
import fleet_api
for mod in pkgutil.walk_packages(fleet_api.__path__, "fleet_api."):
    if ".migrations" not in mod.name:
        importlib.import_module(mod.name)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("agent", "scapy")))
print(importlib.util.find_spec("scapy"))
"""


def test_fleet_venv_has_neither_scapy_nor_the_agents_collectors(fleet_venv: Venv) -> None:
    listed = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check",
                             "--python", fleet_venv.bin("python"), "list", "--format=freeze"],
                            env=clean_env(), capture_output=True, text=True, check=True,
                            timeout=120).stdout  # fmt: skip
    names = {line.partition("==")[0].lower() for line in listed.splitlines()}
    assert "fastapi" in names  # the listing itself works
    assert "scapy" not in names
    out = fleet_venv.run(fleet_venv.bin("python"), "-c", IMPORT_ALL_OF_THE_FLEET)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["[]", "None"], out.stdout


@pytest.fixture(scope="module")
def broker(fleet_venv: Venv) -> Iterator[Path]:
    # Mosquitto drops to its own user: the data dir must be reachable by it.
    base = scratch_dir("simpul-wheel-")
    data = base / "broker"
    port = free_port()
    proc = fleet_venv.start([fleet_venv.bin("simpul-fleet"), "broker", "--port", str(port),
                             "--fleet-port", str(free_port()), "--data", str(data)],
                            fleet_venv.cwd / "broker.log")  # fmt: skip
    try:
        wait_port(port, timeout=60)  # the plugin is compiled from the wheel's sources first
        assert proc.poll() is None
        yield data
    finally:
        _stop(proc)
        shutil.rmtree(base, ignore_errors=True)


def test_broker_from_the_wheel_accepts_connections(broker: Path) -> None:
    assert (broker / "mosquitto.conf").exists()
    assert (broker / "simpul_acl.so").exists()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return bytes(response.read())


def test_serve_from_the_wheel_answers_health_and_the_dashboards_assets(
        fleet_venv: Venv, broker: Path) -> None:
    port = free_port()
    log = fleet_venv.cwd / "serve.log"
    proc = fleet_venv.start([fleet_venv.bin("simpul-fleet"), "serve",
                             "--db", f"sqlite:///{fleet_venv.cwd / 'fleet.db'}",
                             "--broker-data", str(broker), "--port", str(port)], log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = _get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        assert health
        assert b"uPlot" in _get(f"http://127.0.0.1:{port}/static/vendor/uPlot.iife.min.js")
        assert _get(f"http://127.0.0.1:{port}/static/app.css")
        assert "dashboard charts need vendored assets" not in log.read_text()
    finally:
        _stop(proc)
