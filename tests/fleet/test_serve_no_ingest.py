"""How the deployment runs (issue #18): `serve --no-ingest` (API, dashboard, worker) beside
separate `simpul-fleet ingest` workers, real broker and processes; and the fleet's
systemd units that run it so, through systemd's own linter."""

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List

import httpx
import pytest

from fleet_api.cli import build_parser, main
from simpul_wire import Record, StatePayload, TelemetryBatch, encode, utcnow
from simpul_wire.topics import valid_device_id
from testbed.harness import Broker, Fleet, Process, device, telemetry, tool, wait_until
from testbed.mqtt import Client
from testbed.units import unit_settings

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "fleet_api" / "systemd"
API_UNIT = "simpul-fleet-api.service"
INGEST_UNIT = "simpul-fleet-ingest@.service"
VENV = "/opt/simpul-fleet"
EPOCH = "00112233445566778899aabb"
BOX = "box-split"


def _settings(name: str) -> Dict[str, List[str]]:
    return unit_settings(UNITS / name)


def _argv(name: str, instance: str = "2") -> List[str]:
    """The unit's ExecStart as simpul-fleet's arguments, its variables filled in."""
    (start,) = _settings(name)["ExecStart"]
    words = start.replace("${SIMPUL_FLEET_DB}", "postgresql://simpul@db/simpul") \
        .replace("%i", instance).split()
    assert words[0] == f"{VENV}/bin/simpul-fleet"
    return words[1:]


def test_api_unit_serves_without_ingest_and_the_ingest_template_runs_workers() -> None:
    serve = build_parser().parse_args(_argv(API_UNIT))
    assert serve.command == "serve" and serve.no_ingest
    assert serve.ingest_client_id is None and serve.broker_data == "/var/lib/simpul/broker"
    for n in ("1", "2", "7"):
        ingest = build_parser().parse_args(_argv(INGEST_UNIT, n))
        assert ingest.command == "ingest" and ingest.client_id == f"simpul_ingest_{n}"
        assert not valid_device_id(ingest.client_id)  # no box can take its session
    for name in (API_UNIT, INGEST_UNIT):
        s = _settings(name)
        assert s["EnvironmentFile"] == ["/etc/simpul-fleet/fleet.env"]
        assert s["Restart"] == ["always"] and s["NoNewPrivileges"] == ["yes"]
        assert s["ProtectSystem"] == ["strict"] and s["ReadWritePaths"] == ["/var/lib/simpul"]
        assert s["StandardOutput"] == s["StandardError"] == ["journal"]


def test_fleet_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """As tests/agent_runtime/test_systemd_unit.py does for the agent's: a scratch root
    with the system's units and the command the units run (the venv's console script)."""
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    shutil.copy(Path("/bin/sh").resolve(), root / "usr/bin/sh")
    bin_dir = root / VENV.lstrip("/") / "bin"
    bin_dir.mkdir(parents=True)
    shutil.copy(tool("simpul-fleet"), bin_dir / "simpul-fleet")
    units = root / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    for name in (API_UNIT, INGEST_UNIT):
        shutil.copy(UNITS / name, units / name)
    out = subprocess.run(["systemd-analyze", "verify", f"--root={root}", API_UNIT,
                          "simpul-fleet-ingest@1.service", "simpul-fleet-ingest@2.service"],
                         cwd=units, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr == "", out.stderr
    # And it does look: without the command, verify fails.
    (bin_dir / "simpul-fleet").unlink()
    out = subprocess.run(["systemd-analyze", "verify", f"--root={root}", API_UNIT],
                         cwd=units, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "is not executable" in out.stderr


def test_no_ingest_with_an_ingest_client_id_is_a_one_line_error(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["serve", "--no-ingest", "--ingest-client-id", "simpul_ingest_9",
                 "--db", f"sqlite:///{tmp_path}/fleet.db"])
    err = capsys.readouterr().err
    assert code == 1 and "--no-ingest runs none" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "fleet.db").exists()


def _batch(seqs: range) -> bytes:
    records = [Record(seq=s, ts=utcnow(), metrics={"pm2_5": float(s)}) for s in seqs]
    return encode(TelemetryBatch(device_id=BOX, epoch=EPOCH, records=records))


def _acks(box: Client) -> List[Dict[str, Any]]:
    return [json.loads(m) for t, m in list(box.messages) if t == f"simpul/v1/{BOX}/ack"]


def _worker(scratch: Path, broker: Broker, fleet: Fleet) -> Process:
    return Process([tool("simpul-fleet"), "ingest", "--db", fleet.db_url, "--broker-data",
                    str(broker.data), "--client-id", "simpul_ingest_2"],
                   scratch / "ingest-2.log")


@pytest.mark.slow
def test_serve_no_ingest_beside_a_separate_ingest_worker(
        scratch: Path, broker: Broker, db_url: str) -> None:
    fleet = Fleet(scratch, broker, db_url=db_url, heartbeat_timeout=60)
    fleet.process.args += ["--no-ingest", "--alert-interval", "0.5"]
    fleet.start()
    worker = _worker(scratch, broker, fleet)
    box = None
    try:
        pw = fleet.register(BOX)["mqtt"]["password"]
        box = Client(broker.port, BOX, pw)
        assert not box.subscribe(f"simpul/v1/{BOX}/ack").is_failure

        # serve --no-ingest alone: nobody on the ingest share, so the broker drops the
        # box's batch (a shared subscription with no member keeps nothing).
        assert "serving without an ingest consumer" in fleet.process.output()
        assert not box.publish(f"simpul/v1/{BOX}/telemetry", _batch(range(0, 5))).is_failure
        time.sleep(3)
        assert telemetry(fleet, BOX) == [] and _acks(box) == []
        alone = device(fleet, BOX)
        assert (alone["state"], alone["online"]) == ("unknown", False)
        broker_log = (broker.data / "mosquitto.log").read_text()
        assert " as simpul_api_" in broker_log  # the log names the fleet's clients...
        assert "simpul_ingest" not in broker_log  # ...and no ingest among them
        metrics = httpx.get(f"{fleet.url}/metrics", timeout=5).text
        assert "simpul_http_request_seconds" in metrics
        assert "simpul_ingest_records_stored_total" not in metrics  # not a false 0

        # A separate ingest worker: the birth and the batch stored, acked once.
        worker.start()
        wait_until(lambda: "ingest simpul_ingest_2 connected" in worker.output(), 20,
                   what="the ingest worker connected")
        birth = StatePayload(device_id=BOX, state="online", agent_version="9.8.7",
                             boot_id="boot-split-1")
        assert not box.publish(f"simpul/v1/{BOX}/state", encode(birth)).is_failure
        assert not box.publish(f"simpul/v1/{BOX}/telemetry",
                               _batch(range(5, 15))).is_failure
        wait_until(lambda: _acks(box), 15, what="the ack")
        wait_until(lambda: len(telemetry(fleet, BOX)) >= 10, 15, what="the batch stored")
        time.sleep(2)  # room for a second ack or row, which must not come
        rows = telemetry(fleet, BOX)
        assert sorted(r["seq"] for r in rows) == list(range(5, 15))
        assert [r["metrics"]["pm2_5"] for r in sorted(rows, key=lambda r: r["seq"])] == \
            [float(s) for s in range(5, 15)]
        (ack,) = _acks(box)
        assert ack["ranges"] == [[5, 14]] and ack["epoch"] == EPOCH and not ack.get("rejected")
        here = wait_until(lambda: (lambda d: d["online"] and d)(device(fleet, BOX)), 10,
                          what="the box online")
        assert here["state"] == "online" and here["agent_version"] == "9.8.7"
        assert here["last_seen"] is not None

        # The worker stopped: presence is unknown, and serve goes on answering.
        worker.stop()
        assert "ingest simpul_ingest_2 lost" not in worker.output()
        gone = wait_until(lambda: (lambda d: d["state"] == "unknown" and d)(
            device(fleet, BOX)), 10, what="presence unknown")
        assert gone["online"] is False
        with fleet.api() as api:
            listed = api.get("/api/v1/devices", params={"status": "unknown"})
            assert listed.status_code == 200, listed.text
            assert [d["device_id"] for d in listed.json()["data"]] == [BOX]
            assert api.get("/api/v1/devices", params={"status": "online"}).json()["count"] == 0
        assert httpx.get(f"{fleet.url}/healthz", timeout=5).status_code == 200
        assert len(telemetry(fleet, BOX)) == 10
        assert fleet.process.alive()
    finally:
        if box is not None:
            box.close()
        worker.stop()
        fleet.stop()
    assert "Traceback" not in fleet.process.output() + worker.output()
