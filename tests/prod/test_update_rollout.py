"""Staged agent updates from the fleet, end to end: `POST /api/v1/updates/rollouts`, the
fleet's worker sending `update` wave by wave, real agents.

- Boxes with slots (built from this repo's wheels, restarted the way systemd would on exit
  75) download the signed bundle from the fleet's /updates/, and the second wave starts
  only after the first box is judged on the new version; the API then shows 0.2.0 for
  both.
- Boxes that cannot take the update make the first wave fail, and the rollout stops by
  itself before the other boxes get anything.
"""

import shutil
import threading
from pathlib import Path
from typing import Any, Dict, List

import pytest

from testbed.harness import (
    Broker,
    Fleet,
    Process,
    agent_process,
    device,
    wait_until,
    write_agent_config,
)
from tests.prod.conftest import Bundles
from tests.prod.test_update_slots import box_config, install_first, systemd_start

pytestmark = pytest.mark.slow


def rollout(fleet: Fleet, rollout_id: int) -> Dict[str, Any]:
    with fleet.api() as api:
        resp = api.get(f"/api/v1/updates/rollouts/{rollout_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def start_rollout(fleet: Fleet, body: Dict[str, Any]) -> Dict[str, Any]:
    with fleet.api(fleet.create_token("operator")) as api:
        resp = api.post("/api/v1/updates/rollouts", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


class Systemd:
    """Restarts each box's agent when it exits, as `Restart=always` would."""

    def __init__(self) -> None:
        self.boxes: List[Any] = []
        self.stop = threading.Event()
        self.restarts = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def add(self, cfg: Any, config: Path, log: Path) -> None:
        self.boxes.append([cfg, config, log, systemd_start(cfg, config, log)])

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            for box in self.boxes:
                proc: Process = box[3]
                if not proc.alive():
                    proc.stop()
                    box[3] = systemd_start(box[0], box[1], box[2])
                    self.restarts += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for box in self.boxes:
            box[3].stop()


def test_rollout_moves_wave_by_wave(scratch: Path, broker: Broker, bundles: Bundles) -> None:
    served = scratch / "updates"
    served.mkdir()
    shutil.copy(bundles.bundle("0.2.0"), served / "simpul-agent-0.2.0.tar")
    fleet = Fleet(scratch, broker)
    fleet.process.args += ["--updates-dir", str(served), "--alert-interval", "1"]
    fleet.start()
    systemd = Systemd()
    try:
        for name in ("upd-a", "upd-b"):
            config = box_config(scratch, name, fleet.register(name)["mqtt"], bundles)
            systemd.add(install_first(config, bundles), config, scratch / f"{name}.log")
        systemd.thread.start()
        wait_until(lambda: all(device(fleet, n)["agent_version"] == "0.1.0"
                               for n in ("upd-a", "upd-b")), 60, what="both on 0.1.0")
        created = start_rollout(fleet, {
            "version": "0.2.0", "url": f"{fleet.url}/updates/simpul-agent-0.2.0.tar",
            "devices": ["upd-a", "upd-b"], "waves": [0.5, 1.0], "settle_s": 6})
        assert created["waves"] == [1, 1] and created["status"] == "running"
        rid = created["id"]
        # While the canary runs and settles, the second box gets nothing.
        wait_until(lambda: rollout(fleet, rid)["targets"][0]["command_id"], 20,
                   what="the canary's command")
        first = wait_until(lambda: (lambda r: r if r["targets"][0]["outcome"] else None)(
            rollout(fleet, rid)), 300, what="the canary judged")
        assert first["targets"][0]["outcome"] == "succeeded", first
        done = wait_until(lambda: (lambda r: r if r["status"] != "running" else None)(
            rollout(fleet, rid)), 300, what="the rollout finished")
        assert done["status"] == "done", done
        assert done["counts"] == {"succeeded": 2, "failed": 0, "running": 0, "waiting": 0}
        a, b = done["targets"]
        assert b["sent_at"] > a["sent_at"]
        assert [device(fleet, n)["agent_version"] for n in ("upd-a", "upd-b")] == [
            "0.2.0", "0.2.0"]
        assert systemd.restarts >= 2  # each box exited 75 and came back from its new slot
    finally:
        systemd.close()
        fleet.stop()


def test_rollout_stops_by_itself_when_the_canaries_fail(scratch: Path, fleet: Fleet) -> None:
    agents = []
    names = ["stp-a", "stp-b", "stp-c"]
    try:
        for name in names:
            config = write_agent_config(scratch, name, fleet.register(name)["mqtt"])
            agents.append(agent_process(scratch, config, name).start())
        wait_until(lambda: all(device(fleet, n)["agent_version"] for n in names), 30,
                   what="all online")
        with fleet.api(fleet.create_token("operator")) as api:
            bad = api.post("/api/v1/updates/rollouts", json={
                "version": "9.9.9", "url": "ftp://nowhere", "waves": [0.5, 0.2]})
            assert bad.status_code == 422
        created = start_rollout(fleet, {
            "version": "9.9.9", "url": f"{fleet.url}/updates/simpul-agent-9.9.9.tar",
            "waves": [0.3, 1.0], "max_failure_ratio": 0.1, "settle_s": 1})
        assert created["waves"] == [1, 2]
        stopped = wait_until(lambda: (lambda r: r if r["status"] != "running" else None)(
            rollout(fleet, created["id"])), 60, what="the rollout stopped")
        assert stopped["status"] == "stopped", stopped
        assert "1 of 1 failed" in stopped["reason"] and "stp-a" in stopped["reason"]
        canary, *rest = stopped["targets"]
        assert canary["outcome"] == "failed" and canary["detail"]
        assert all(t["command_id"] is None for t in rest)  # never sent
        with fleet.api() as api:
            for name in names[1:]:
                sent = api.get(f"/api/v1/devices/{name}/commands").json()["data"]
                assert not [c for c in sent if c["name"] == "update"]
    finally:
        for agent in agents:
            agent.stop()
