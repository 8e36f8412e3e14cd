"""Privacy end to end: a real agent daemon counts a population through its client
collectors, publishes through a real Mosquitto to a real fleet, answers the diagnostics
and self-test commands; then every MQTT payload, the outbox, the fleet's database, all
logs and every other file the run left are searched for the population's MACs."""

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from fleet_api.broker.accounts import FLEET_USER
from testbed.harness import (
    BIN,
    ROOT,
    Broker,
    Fleet,
    agent_process,
    telemetry,
    wait_until,
    write_agent_config,
)
from testbed.mqtt import Client
from tests.agent_runtime.test_control import command
from tests.clients.test_privacy import find_in_files, find_macs

pytestmark = pytest.mark.slow
DEVICE = "box-a"  # tests.agent_runtime.test_control.command() addresses this box


@pytest.fixture(autouse=True)
def console_scripts(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Where the console scripts are not installed (a shared dev venv), put small
    stand-ins for them on PATH; with `make setup` the harness finds the real ones."""
    shims = tmp_path_factory.mktemp("bin")
    for name, module in (("simpul-agent", "agent.cli"), ("simpul-fleet", "fleet_api.cli")):
        if not (BIN / name).exists() and shutil.which(name) is None:
            shim = shims / name
            shim.write_text(
                f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m {module} "$@"\n'
            )
            shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")


def test_nothing_the_box_publishes_or_keeps_holds_a_mac(
    hotspot, tmp_path: Path, scratch: Path, broker: Broker, fleet: Fleet
) -> None:
    out, truth = hotspot
    macs: List[str] = truth["population_macs"]
    # Inputs live outside `scratch`, which is searched afterwards.
    leases = tmp_path / "dnsmasq.leases"
    leases.write_text(
        "".join(
            "0 " + line.split(" ", 1)[1] + "\n"
            for line in (out / "dnsmasq.leases").read_text().splitlines()
        )
    )
    garbage = tmp_path / "garbage.leases"
    garbage.write_text(f"1763903600 {macs[0]}-x 10.0.0.1 phone *\n")
    collectors = (
        f'[[collectors]]\ntype = "clients_dnsmasq"\nname = "leases"\nleases_path = "{leases}"\n'
        f'[[collectors]]\ntype = "clients_iw"\nname = "iw"\n'
        f'command = ["cat", "{out / "iw_station_dump.txt"}"]\n'
        f'[[collectors]]\ntype = "clients_hostapd"\nname = "hostapd"\n'
        f'command = ["cat", "{out / "hostapd_all_sta.txt"}"]\n'
        f'[[collectors]]\ntype = "clients_neigh"\nname = "neigh"\nsource = "proc"\n'
        f'proc_path = "{out / "proc_net_arp.txt"}"\n'
        f'[[collectors]]\ntype = "clients_dnsmasq"\nname = "broken"\nleases_path = "{garbage}"\n'
    )
    reg = fleet.register(DEVICE)
    config = write_agent_config(scratch, DEVICE, reg["mqtt"], collectors)
    watcher = Client(broker.fleet_port, FLEET_USER, broker.fleet_password, "simpul_priv-watcher")
    watcher.subscribe(f"simpul/v1/{DEVICE}/#")
    agent = agent_process(scratch, config, DEVICE).start()
    try:
        records = wait_until(
            lambda: (lambda r: len(r) >= 3 and r)(
                [r for r in telemetry(fleet, DEVICE) if "leases_connected_now" in r["metrics"]]
            ),
            40,
            what="client counts in telemetry",
        )
        n = truth["state_connected"]
        last: Dict[str, Any] = records[-1]
        for name in ("leases", "iw", "hostapd", "neigh"):
            assert last["metrics"][f"{name}_connected_now"] == n
        assert last["sources"]["broken"]["state"] == "unavailable"
        assert "<mac>" in last["sources"]["broken"]["reason"]
        for cid, name in (("c-diag", "diagnostics"), ("c-self", "sensor_selftest")):
            watcher.c.publish(f"simpul/v1/{DEVICE}/cmd/{cid}", command(name, cid, {}), qos=1)
        wait_until(
            lambda: (
                {
                    t
                    for t, m in watcher.messages
                    if t.endswith("/result") and json.loads(m)["status"] in ("succeeded", "failed")
                }
                >= {
                    f"simpul/v1/{DEVICE}/cmd/c-diag/result",
                    f"simpul/v1/{DEVICE}/cmd/c-self/result",
                }
            ),
            20,
            what="diagnostics and self-test results",
        )
    finally:
        agent.stop()
        watcher.close()
    payloads = "\n".join(m.decode("utf-8", "replace") for _t, m in watcher.messages)
    assert "leases_connected_now" in payloads and '"log"' in payloads  # the search has matter
    assert find_macs(payloads, macs) == []
    assert find_macs(json.dumps(telemetry(fleet, DEVICE)), macs) == []
    # The outbox, the agent's data dir and log, the broker's and the fleet's files.
    assert any(p.is_file() for p in (scratch / DEVICE / "data").rglob("*"))
    assert find_in_files(scratch, macs) == []
