"""Provisioning against a running fleet: the online path, the offline batch and a later
claim, a refused claim, and the final check naming what is missing. Real Mosquitto,
real fleet, real `simpul-agent run` started from the bundle the CLI wrote."""

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any, Dict

import pytest

from agent.config import load_config
from simpul_field.provision.bundle import installed_device
from testbed.harness import Fleet, Process, agent_process, device, telemetry, wait_until
from tests.field.helpers import SYNTHETIC, field, spawn

pytestmark = pytest.mark.slow


def claim(fleet: Fleet, code: str) -> Dict[str, Any]:
    with fleet.api() as api:
        resp = api.get(f"/api/v1/claims/{code}")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def collectors(scratch: Path) -> Path:
    path = scratch / "collectors.toml"
    path.write_text(SYNTHETIC)
    return path


def test_online_provision_comes_online(scratch: Path, fleet: Fleet) -> None:
    tech = fleet.create_token("technician")
    device_id = f"halte-{os.getpid()}"
    (scratch / "card").mkdir()
    target = scratch / "card" / "simpul"
    log = scratch / "provision.log"
    proc = spawn(["provision", "--device-id", device_id, "--site", "Halte Pasar Baru",
                  "--kind", "wifi", "--district", "Kota Barat", "--lat", "-6.2",
                  "--lon", "106.8", "--tag", "bus", "--target", str(target),
                  "--box-dir", str(target), "--data-dir", str(scratch / "data"),
                  "--collectors", str(collectors(scratch)), "--label",
                  str(scratch / "label.png"), "--timeout", "60"],
                 scratch, log, fleet.url, tech)
    agent = None
    try:
        wait_until(lambda: installed_device(target) == device_id, 30)
        assert stat.S_IMODE((target / "mqtt.password").stat().st_mode) == 0o600
        assert load_config(str(target / "agent.toml")).claim is None
        agent = agent_process(scratch, target / "agent.toml", "agent").start()
        assert proc.wait(timeout=90) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        if agent:
            agent.stop()
    out = log.read_text()
    assert "never connected" in out  # the progress saw the box before it started
    assert f"online: {device_id}" in out
    records = telemetry(fleet, device_id)
    assert records and records[0]["metrics"]["pm2_5"] == 7.25
    code = next(line.split()[1] for line in out.splitlines() if line.startswith("claim "))
    recorded = claim(fleet, code)
    assert (recorded["device_id"], recorded["claimed"], recorded["claimed_via"]) == (
        device_id, True, "register")
    assert device(fleet, device_id)["site"] == "Halte Pasar Baru"
    # The PNG label's QR reads back as the device and its claim code.
    qr = subprocess.run(["zbarimg", "--raw", "-q", str(scratch / "label.png")],
                        capture_output=True, text=True, check=True)
    assert qr.stdout.strip() == f"simpul:{device_id}:{code}"


def test_offline_batch_then_claim_on_first_connection(scratch: Path, fleet: Fleet) -> None:
    tech = fleet.create_token("technician")
    out_dir = scratch / "bundles"
    made = field(["provision", "batch", "--count", "3", "--kind", "sensor", "--district",
                  "Kota Timur", "--prefix", "halte", "--out", str(out_dir)],
                 scratch, fleet.url, tech)
    assert made.returncode == 0, made.stderr
    bundles = sorted(out_dir.glob("*.bundle.json"))
    assert len(bundles) == 3 and len(list(out_dir.glob("*-label.svg"))) == 3
    assert all(stat.S_IMODE(b.stat().st_mode) == 0o600 for b in bundles)
    with fleet.api() as api:
        unclaimed = api.get("/api/v1/claims", params={"claimed": "false"}).json()
    assert unclaimed["count"] == 3
    first = json.loads(bundles[0].read_text())
    dev = device(fleet, first["device_id"])
    assert ("unclaimed" in dev["tags"], dev["site"], dev["district"]) == (
        True, "unclaimed", "Kota Timur")

    # In the field, offline: no fleet address, no token.
    (scratch / "card").mkdir()
    target = scratch / "card" / "simpul"
    data = scratch / "data"
    put = field(["provision", "install", str(bundles[0]), "--target", str(target),
                 "--box-dir", str(target), "--data-dir", str(data), "--site", "Taman Kota",
                 "--district", "Kota Timur", "--lat", "-6.3", "--lon", "106.9",
                 "--collectors", str(collectors(scratch)), "--label",
                 str(scratch / "label.svg")], scratch)
    assert put.returncode == 0, put.stderr
    assert load_config(str(target / "agent.toml")).claim is not None
    assert first["claim_code"] in (scratch / "label.svg").read_text()

    agent = agent_process(scratch, target / "agent.toml", "agent-1").start()
    try:
        wait_until(lambda: claim(fleet, first["claim_code"])["claimed"], 30)
        wait_until(lambda: (data / "claim.acked").exists(), 10)
    finally:
        agent.stop()
    got = claim(fleet, first["claim_code"])
    assert (got["claimed_via"], got["site"], got["lat"], got["lon"]) == (
        "mqtt", "Taman Kota", -6.3, 106.9)
    dev = device(fleet, first["device_id"])
    assert (dev["site"], dev["lat"], "unclaimed" in dev["tags"]) == ("Taman Kota", -6.3, False)
    with fleet.api() as api:
        assert api.get("/api/v1/claims", params={"claimed": "false"}).json()["count"] == 2
        # A second box claimed over HTTP, from the code on its label as a person types it.
        second = json.loads(bundles[1].read_text())
        typed = second["claim_code"].replace("-", "").lower()
        resp = api.post(f"/api/v1/claims/{typed}", json={"site": "Pasar", "lat": 1.5,
                                                         "lon": 2.5})
        assert resp.status_code == 200, resp.text
        assert (resp.json()["device_id"], resp.json()["claimed_via"]) == (
            second["device_id"], "api")
        assert api.post("/api/v1/claims/AAAA-BBBB-CCCC", json={}).status_code == 404
        assert device(fleet, second["device_id"])["site"] == "Pasar"
    assert "claiming registration" in agent.output()

    checked = field(["provision", "check", first["device_id"], "--claim-code",
                     first["claim_code"], "--timeout", "20"], scratch, fleet.url, tech)
    assert checked.returncode == 0, checked.stderr
    assert f"online: {first['device_id']}" in checked.stdout

    # A restart does not claim again: the marker says the fleet has it.
    again = agent_process(scratch, target / "agent.toml", "agent-2").start()
    try:
        before = len(telemetry(fleet, first["device_id"]))
        wait_until(lambda: len(telemetry(fleet, first["device_id"])) > before + 2, 20)
    finally:
        again.stop()
    assert "claiming registration" not in again.output()


def test_wrong_claim_code_is_refused(scratch: Path, fleet: Fleet) -> None:
    tech = fleet.create_token("technician")
    out_dir = scratch / "bundles"
    assert field(["provision", "batch", "--count", "2", "--kind", "wifi", "--out",
                  str(out_dir)], scratch, fleet.url, tech).returncode == 0
    one, two = (json.loads(p.read_text()) for p in sorted(out_dir.glob("*.bundle.json")))
    mixed = scratch / "mixed.bundle.json"
    mixed.write_text(json.dumps(dict(one, claim_code=two["claim_code"])))
    (scratch / "card").mkdir()
    target = scratch / "card" / "simpul"
    data = scratch / "data"
    assert field(["provision", "install", str(mixed), "--target", str(target), "--box-dir",
                  str(target), "--data-dir", str(data), "--site", "X", "--lat", "1",
                  "--lon", "2", "--collectors", str(collectors(scratch))],
                 scratch).returncode == 0
    agent: Process = agent_process(scratch, target / "agent.toml", "agent").start()
    try:
        wait_until(lambda: "refused this box's claim" in agent.output(), 30)
        check = field(["provision", "check", one["device_id"], "--claim-code",
                       two["claim_code"], "--timeout", "2"], scratch, fleet.url, tech)
    finally:
        agent.stop()
    assert "does not belong to this device" in agent.output()
    assert not (data / "claim.acked").exists()
    assert not claim(fleet, one["claim_code"])["claimed"]
    assert not claim(fleet, two["claim_code"])["claimed"]
    assert check.returncode == 8
    assert "sending, not claimed yet" in check.stderr


def test_check_names_what_is_missing(scratch: Path, fleet: Fleet) -> None:
    tech = fleet.create_token("technician")
    reg = fleet.register("quiet-box")

    def check(device_id: str, *extra: str) -> str:
        done = field(["provision", "check", device_id, "--timeout", "1", *extra], scratch,
                     fleet.url, tech)
        assert done.returncode == 8, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        return done.stderr.strip().splitlines()[-1]

    assert "not registered" in check("no-such-box")
    assert "never connected" in check("quiet-box")
    # Connected and sending health, but no telemetry collector: names exactly that.
    box = scratch / "quiet"
    box.mkdir()
    (box / "pw").write_text(reg["mqtt"]["password"])
    (box / "agent.toml").write_text(
        f'[device]\ndevice_id = "quiet-box"\ndata_dir = "{box / "data"}"\n'
        f'[broker]\nurl = "{reg["mqtt"]["url"]}"\npassword_file = "{box / "pw"}"\n'
        "[publish]\nhealth_interval_s = 1\n")
    agent = agent_process(scratch, box / "agent.toml", "quiet").start()
    try:
        wait_until(lambda: telemetry(fleet, "quiet-box", stream="health"), 20)
        line = check("quiet-box", "--stream", "telemetry")
    finally:
        agent.stop()
    assert "connected, no telemetry yet" in line
