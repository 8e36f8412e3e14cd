"""`simpul-fleet broker --profile city`: Mosquitto accepts the city config and runs with
an open-file limit above its connection cap; a district broker refuses to start
without the city's bridge password, naming the file."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from fleet_api.broker.process import CITY_MAX_CONNECTIONS
from testbed.ports import free_port
from testbed.stack import REPO, Stack, env


@pytest.mark.slow
def test_city_profile_runs_with_descriptors_for_its_connections(city_dir: Path) -> None:
    stack = Stack(city_dir, f"sqlite:///{city_dir}/fleet.db", profile="city")
    try:
        stack.start_broker()
        pid = int((stack.broker_data / "mosquitto.pid").read_text())
        limits = Path(f"/proc/{pid}/limits").read_text()
        soft = int(re.search(r"Max open files\s+(\d+)", limits).group(1))  # type: ignore[union-attr]
        assert soft >= CITY_MAX_CONNECTIONS + 64
        conf = (stack.broker_data / "mosquitto.conf").read_text()
        assert f"max_connections {CITY_MAX_CONNECTIONS}" in conf
        assert "memory_limit" in conf
        assert conf.count("plugin_opt_listener") == 2  # the access plugin on each listener
        passwd = (stack.broker_data / "passwd").read_text()
        assert passwd.count(":$7$") == 1  # the fleet's own; bridges only when made
        assert (stack.broker_data / "passwd").stat().st_mode & 0o077 == 0
    finally:
        stack.stop()


def test_a_district_needs_the_city_bridge_password(city_dir: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fleet_api.cli", "broker", "--port", str(free_port()),
         "--data", str(city_dir / "district"), "--bridge", "127.0.0.1:1883",
         "--bridge-name", "kota-barat"], capture_output=True, text=True, env=env(), cwd=REPO,
        timeout=30)
    assert out.returncode == 1
    assert "bridge.password is missing" in out.stderr
    assert "Traceback" not in out.stderr
