"""No secret in any log: a full run (broker, fleet, agents, one at DEBUG, kiosk logins,
a broker restart, failed logins), then every log file is searched for the API tokens,
the device passwords and the fleet's broker password."""

import time
from pathlib import Path
from typing import List

import httpx
import pytest

from testbed.harness import Broker, Fleet, device, telemetry, wait_until
from tests.faults.helpers import make_box, publish

pytestmark = pytest.mark.slow


def log_files(base: Path) -> List[Path]:
    return [p for p in base.rglob("*") if p.is_file() and (p.suffix == ".log" or
                                                          p.name == "mosquitto.log")]


def test_no_secret_in_any_log(scratch: Path, broker: Broker, fleet: Fleet) -> None:
    viewer = fleet.create_token("viewer")
    boxes = [make_box(scratch, fleet, d, publish(sample_s=0.5, health_s=1))
             for d in ("quiet-box", "chatty-box")]
    passwords = [(b.base / b.device_id / "mqtt.password").read_text().strip() for b in boxes]
    try:
        boxes[0].start()
        boxes[1].start(argv_suffix=["--log-level", "DEBUG"])
        for box in boxes:
            wait_until(lambda b=box: len(telemetry(fleet, b.device_id)) >= 3, 30,
                       what=f"{box.device_id} telemetry")
        # Kiosk sign-in with a token in the query string, for two roles, and a wrong one.
        for token in (fleet.token, viewer):
            with httpx.Client(base_url=fleet.url, follow_redirects=True) as kiosk:
                page = kiosk.get("/login", params={"token": token})
                assert page.status_code == 200 and "Masuk sebagai" in page.text
        assert httpx.get(f"{fleet.url}/login", params={"token": fleet.token[::-1]}
                         ).status_code == 401
        with httpx.Client(base_url=fleet.url,
                          headers={"Authorization": f"Bearer {viewer}x"}) as wrong:
            assert wrong.get("/api/v1/devices").status_code == 401
        # A broker restart: reconnects, the fleet re-reads its account, boxes log in again.
        broker.stop()
        time.sleep(1)
        broker.start()
        wait_until(lambda: all(device(fleet, b.device_id)["online"] for b in boxes), 60,
                   what="boxes back online")
    finally:
        for box in boxes:
            box.stop()
    fleet.stop()
    secrets = {"admin token": fleet.token, "viewer token": viewer,
               "fleet broker password": broker.fleet_password,
               **{f"password of {b.device_id}": p for b, p in zip(boxes, passwords)}}
    assert all(len(s) >= 16 for s in secrets.values()), "secrets too short to search for"
    files = log_files(scratch)
    names = {p.name for p in files}
    assert {"fleet.log", "broker.log", "mosquitto.log", "chatty-box-1.log"} <= names, names
    text = {p: p.read_text(errors="replace") for p in files}
    # The logs did see the run: the sign-ins, the agents' reconnects.
    assert "GET /login 303" in text[scratch / "fleet.log"]
    assert "reconnect failed" in text[scratch / "chatty-box-1.log"]
    leaks = [f"{what} in {path}" for path, body in text.items()
             for what, secret in secrets.items() if secret in body]
    assert leaks == []
