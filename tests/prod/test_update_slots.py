"""Agent updates for real: virtualenv slots built from this repo's wheels, a real broker,
the agent restarted the way systemd would (start guard, then ROOT/current/bin/simpul-agent).
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from agent.config import load_config
from agent.update import guard
from agent.update.slots import bootstrap
from fleet_api.broker.accounts import FLEET_USER
from testbed.harness import Broker, Fleet, Process, wait_until, write_agent_config
from testbed.mqtt import Client
from tests.agent_runtime.test_control import command, results
from tests.prod.conftest import Bundles

pytestmark = pytest.mark.slow

# The slot's own interpreter must find only the slot's packages, never this checkout.
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def box_config(scratch: Path, name: str, mqtt: Dict[str, Any], bundles: Bundles) -> Path:
    config = write_agent_config(scratch, name, mqtt, '[[collectors]]\ntype = "synthetic"\n'
                                'name = "air"\nvalues = { pm2_5 = 3.0 }\n')
    with open(config, "a") as fh:
        fh.write(f'\n[update]\nroot = "{scratch / name / "opt"}"\npython = "{sys.executable}"\n'
                 f'public_keys = ["{bundles.public}"]\ncommit_after_s = 3\n'
                 "trial_deadline_s = 60\n")
    return config


def install_first(config: Path, bundles: Bundles) -> Any:
    cfg = load_config(str(config))
    bootstrap(cfg.update, cfg.device.data_dir, bundles.bundle("0.1.0"))
    return cfg


def systemd_start(cfg: Any, config: Path, log: Path) -> Process:
    """What the unit does: ExecStartPre guard, then the agent from ROOT/current."""
    root = cfg.update.root
    done = subprocess.run([sys.executable, f"{root}/guard.py", "--root", root, "--data",
                           cfg.device.data_dir, "--max-starts", "3"], env=ENV,
                          capture_output=True, text=True, check=True)
    with open(log, "a") as fh:
        fh.write(done.stdout)
    return Process([f"{root}/current/bin/simpul-agent", "run", "--config", str(config)], log,
                   env=ENV).start()


def slot_version(cfg: Any) -> str:
    out = subprocess.run([f"{cfg.update.root}/current/bin/simpul-agent", "--version"],
                         env=ENV, capture_output=True, text=True, check=True)
    return out.stdout.split()[-1]


def births(watcher: Client, name: str) -> List[str]:
    return [json.loads(m).get("agent_version") for t, m in watcher.messages
            if t == f"simpul/v1/{name}/state" and m and json.loads(m).get("state") == "online"]


def test_good_update_installs_switches_and_commits(scratch: Path, broker: Broker, fleet: Fleet,
                                                   bundles: Bundles) -> None:
    bundle = bundles.bundle("0.2.0")
    reg = fleet.register("box-a")
    config = box_config(scratch, "box-a", reg["mqtt"], bundles)
    cfg = install_first(config, bundles)
    watcher = Client(broker.fleet_port, FLEET_USER, broker.fleet_password, "simpul_upd-watch")
    watcher.subscribe("simpul/v1/box-a/#")
    agent = systemd_start(cfg, config, scratch / "agent.log")
    try:
        wait_until(lambda: "0.1.0" in births(watcher, "box-a"), 30, what="0.1.0 online")
        watcher.c.publish("simpul/v1/box-a/cmd/c-upd", command("update", "c-upd",
                                                               {"path": str(bundle)}), qos=1)
        done = wait_until(lambda: [r for r in results(watcher, "c-upd")
                                   if r["status"] in ("succeeded", "failed")], 240,
                          what="update result")
        assert done[0]["status"] == "succeeded", done[0]
        assert done[0]["result"]["version"] == "0.2.0" and done[0]["result"]["slot"] == "slot-b"
        # The agent exits 75 so that systemd starts it again, now from slot-b.
        assert agent.proc is not None and agent.proc.wait(20) == 75
        agent.stop()
        state = guard.load_state(cfg.device.data_dir)
        assert state["trial"]["slot"] == "slot-b"
        assert guard.current_slot(cfg.update.root) == "slot-b"
        agent = systemd_start(cfg, config, scratch / "agent.log")
        wait_until(lambda: "0.2.0" in births(watcher, "box-a"), 30, what="0.2.0 online")
        state = wait_until(lambda: (lambda s: s if s.get("committed") == "slot-b" else None)(
            guard.load_state(cfg.device.data_dir)), 30, what="commit")
        assert state["trial"] is None and state["last"]["result"] == "committed"
        assert state["committed_version"] == "0.2.0" and slot_version(cfg) == "0.2.0"
        assert agent.alive()
    finally:
        agent.stop()
        watcher.c.loop_stop()


def test_failed_health_check_rolls_back(scratch: Path, broker: Broker, bundles: Bundles) -> None:
    bad = bundles.bundle("0.2.1", "health")
    config = box_config(scratch, "box-h", {"url": broker.device_url, "password": "x"}, bundles)
    cfg = install_first(config, bundles)
    done = subprocess.run([f"{cfg.update.root}/current/bin/simpul-agent", "update", "apply",
                           "--config", str(config), "--bundle", str(bad)], env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "rolled back to slot-a" in done.stderr and "FAIL broker" in done.stderr
    assert "Traceback" not in done.stderr
    state = guard.load_state(cfg.device.data_dir)
    assert guard.current_slot(cfg.update.root) == "slot-a" and state["committed"] == "slot-a"
    assert state["trial"] is None and state["last"]["result"] == "rolled_back"
    assert state["rollbacks"] == 1 and slot_version(cfg) == "0.1.0"


def test_crash_loop_rolls_back(scratch: Path, broker: Broker, fleet: Fleet,
                               bundles: Bundles) -> None:
    crashing = bundles.bundle("0.2.2", "crash")
    reg = fleet.register("box-c")
    config = box_config(scratch, "box-c", reg["mqtt"], bundles)
    cfg = install_first(config, bundles)
    done = subprocess.run([f"{cfg.update.root}/current/bin/simpul-agent", "update", "apply",
                           "--config", str(config), "--bundle", str(crashing)], env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr  # its health check passes
    assert guard.current_slot(cfg.update.root) == "slot-b"
    watcher = Client(broker.fleet_port, FLEET_USER, broker.fleet_password, "simpul_crash-watch")
    watcher.subscribe("simpul/v1/box-c/#")
    log = scratch / "agent.log"
    crashes = 0
    agent = None
    try:
        for _ in range(6):  # Restart=always, as fast as the test can go
            agent = systemd_start(cfg, config, log)
            assert agent.proc is not None
            try:
                agent.proc.wait(15)
            except subprocess.TimeoutExpired:
                break  # it stays up
            crashes += 1
            agent.stop()
        assert crashes == 3, log.read_text()
        assert "crash on start" in log.read_text()
        state = guard.load_state(cfg.device.data_dir)
        assert state["last"]["result"] == "rolled_back" and "crash loop" in state["last"]["reason"]
        assert guard.current_slot(cfg.update.root) == "slot-a" and slot_version(cfg) == "0.1.0"
        wait_until(lambda: "0.1.0" in births(watcher, "box-c"), 30, what="0.1.0 back online")
        assert agent is not None and agent.alive()
    finally:
        if agent is not None:
            agent.stop()
        watcher.c.loop_stop()
