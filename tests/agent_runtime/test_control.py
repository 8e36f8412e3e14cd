"""The agent's control side against a real broker: config twin and commands."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List

import pytest

from fleet_api.broker.accounts import FLEET_USER
from simpul_wire import Command, DesiredConfig, encode
from testbed.harness import Broker, Fleet, agent_process, telemetry, wait_until, write_agent_config
from testbed.mqtt import Client

pytestmark = pytest.mark.slow


def collectors(value: float) -> str:
    return f'[[collectors]]\ntype = "synthetic"\nname = "air"\nvalues = {{ pm2_5 = {value} }}\n'


def managed(value: float) -> Dict[str, Any]:
    return {"publish": {"sample_interval_s": 0.5, "health_interval_s": 2},
            "outbox": {"resend_after_s": 3},
            "collectors": [{"type": "synthetic", "name": "air", "values": {"pm2_5": value}}]}


def latest(messages: List[tuple], suffix: str) -> Dict[str, Any]:
    found = [json.loads(m) for t, m in messages if t.endswith(suffix) and m]
    return found[-1] if found else {}


def setup_box(scratch: Path, fleet: Fleet, broker: Broker, extra: str = ""):  # type: ignore[no-untyped-def]
    reg = fleet.register("box-a")
    config = write_agent_config(scratch, "box-a", reg["mqtt"], collectors(1.0) + extra)
    agent = agent_process(scratch, config, "box-a").start()
    watcher = Client(broker.fleet_port, FLEET_USER, broker.fleet_password, "simpul_ctl-watcher")
    watcher.subscribe("simpul/v1/box-a/#")
    wait_until(lambda: latest(watcher.messages, "/config/reported"), 20, what="first report")
    return agent, watcher


def test_desired_config_applies_rolls_back_and_survives_restart(
        scratch: Path, broker: Broker, fleet: Fleet) -> None:
    agent, watcher = setup_box(scratch, fleet, broker)
    desired = "simpul/v1/box-a/config/desired"
    try:
        first = latest(watcher.messages, "/config/reported")
        assert first["version"] == 0
        watcher.c.publish(desired, encode(DesiredConfig(device_id="box-a", version=1,
                                                        config=managed(7.5))), qos=1, retain=True)
        rep = wait_until(lambda: (lambda r: r.get("version") == 1 and r)(
            latest(watcher.messages, "/config/reported")), 15, what="v1 reported")
        assert rep["config_hash"] != first["config_hash"] and "error" not in rep
        wait_until(lambda: telemetry(fleet, "box-a")[-1]["metrics"]["pm2_5"] == 7.5, 15,
                   what="new values in telemetry")
        # A bad desired config (a collector type this box does not know) rolls back.
        bad = managed(9.0)
        bad["collectors"][0]["type"] = "thermometer"
        watcher.c.publish(desired, encode(DesiredConfig(device_id="box-a", version=2,
                                                        config=bad)), qos=1, retain=True)
        rep = wait_until(lambda: (lambda r: r.get("failed_version") == 2 and r)(
            latest(watcher.messages, "/config/reported")), 15, what="v2 refused")
        assert rep["version"] == 1 and "collectors.0" in rep["error"]
        # One naming the local part is refused too: desired config never touches it.
        local = managed(9.0)
        local["broker"] = {"url": "mqtt://elsewhere:1883"}
        watcher.c.publish(desired, encode(DesiredConfig(device_id="box-a", version=3,
                                                        config=local)), qos=1, retain=True)
        rep = wait_until(lambda: (lambda r: r.get("failed_version") == 3 and r)(
            latest(watcher.messages, "/config/reported")), 15, what="v3 refused")
        assert "unknown key 'broker'" in rep["error"] and rep["version"] == 1
        # The box still runs v1, also after a restart (the twin persists it).
        agent.stop()
        agent.start()
        wait_until(lambda: telemetry(fleet, "box-a")[-1]["metrics"]["pm2_5"] == 7.5 and
                   len(telemetry(fleet, "box-a")) > 10, 20, what="v1 after restart")
        before = len(telemetry(fleet, "box-a"))
        wait_until(lambda: len(telemetry(fleet, "box-a")) > before + 3, 10, what="more samples")
        assert {r["metrics"]["pm2_5"] for r in telemetry(fleet, "box-a")[before:]} == {7.5}
    finally:
        agent.stop()
        watcher.close()


def command(name: str, command_id: str, args: Dict[str, Any], expires_in: float = 60) -> bytes:
    return encode(Command(device_id="box-a", command_id=command_id, name=name, args=args,
                          expires_at=datetime.now(timezone.utc) + timedelta(seconds=expires_in)))


def results(watcher: Client, command_id: str) -> List[Dict[str, Any]]:
    return [json.loads(m) for t, m in watcher.messages if t.endswith(f"/cmd/{command_id}/result")]


def test_commands_run_once_and_report(scratch: Path, broker: Broker, fleet: Fleet) -> None:
    marker = scratch / "reboots.txt"
    extra = f'\n[control]\nreboot_command = ["sh", "-c", "echo reboot >> {marker}"]\n'
    agent, watcher = setup_box(scratch, fleet, broker, extra)
    try:
        def send(name: str, cid: str, args: Dict[str, Any], expires_in: float = 60) -> None:
            watcher.c.publish(f"simpul/v1/box-a/cmd/{cid}", command(name, cid, args, expires_in),
                              qos=1)

        send("reboot", "c-reboot", {})
        wait_until(lambda: any(r["status"] == "succeeded" for r in results(watcher, "c-reboot")),
                   15, what="reboot result")
        assert results(watcher, "c-reboot")[0]["status"] == "received"
        # Delivered again (also after an agent restart): reported again, never run again.
        send("reboot", "c-reboot", {})
        agent.stop()
        agent.start()
        send("reboot", "c-reboot", {})
        wait_until(lambda: len([r for r in results(watcher, "c-reboot")
                                if r["status"] == "succeeded"]) >= 3, 20, what="re-reports")
        assert marker.read_text().splitlines() == ["reboot"]

        send("ping", "c-ping", {"host": "127.0.0.1", "port": broker.port})
        ok = wait_until(lambda: [r for r in results(watcher, "c-ping")
                                 if r["status"] == "succeeded"], 15, what="ping result")
        assert ok[0]["result"]["connect_ms"] >= 0
        send("ping", "c-ping-bad", {"host": "127.0.0.1", "port": 1})
        bad = wait_until(lambda: [r for r in results(watcher, "c-ping-bad")
                                  if r["status"] == "failed"], 15, what="failed ping")
        assert "refused" in bad[0]["error"].lower()
        send("sensor_selftest", "c-self", {})
        self_test = wait_until(lambda: [r for r in results(watcher, "c-self")
                                        if r["status"] == "succeeded"], 15, what="self-test")
        assert self_test[0]["result"]["air"]["metrics"]["pm2_5"] == 1.0
        send("diagnostics", "c-diag", {})
        diag = wait_until(lambda: [r for r in results(watcher, "c-diag")
                                   if r["status"] == "succeeded"], 15, what="diagnostics")
        assert diag[0]["result"]["config_hash"] and diag[0]["result"]["log"]
        send("launch_rockets", "c-unknown", {})
        send("reboot", "c-late", {}, expires_in=-5)
        wait_until(lambda: results(watcher, "c-unknown") and results(watcher, "c-late"), 15,
                   what="refusals")
        assert results(watcher, "c-unknown")[-1]["status"] == "rejected"
        assert results(watcher, "c-late")[-1]["status"] == "expired"
        assert marker.read_text().splitlines() == ["reboot"]
    finally:
        agent.stop()
        watcher.close()
