"""Group templates with per-device overrides, and a staged rollout that halts itself."""

from typing import Any, Dict

import pytest

from testbed.harness import Fleet, wait_until
from tests.fleet.boxes import FakeBox

pytestmark = pytest.mark.slow


def rollout(fleet: Fleet, rollout_id: int) -> Dict[str, Any]:
    with fleet.api() as api:
        return api.get(f"/api/v1/rollouts/{rollout_id}").json()  # type: ignore[no-any-return]


def test_group_template_overrides_and_rollout_halts_on_failure(fleet: Fleet) -> None:
    names = [f"kb-{i}" for i in range(1, 5)]
    boxes = {n: FakeBox(fleet, n, fleet.register(n)) for n in names}
    with fleet.api() as api:
        made = api.put("/api/v1/groups/kb", json={
            "template": {"publish": {"sample_interval_s": 20}}, "thresholds": {"pm2_5": 55}})
        assert made.status_code == 200, made.text
        assert made.json()["rev"] == 1
        put = api.put("/api/v1/devices/kb-1/config", json={
            "desired": {"publish": {"health_interval_s": 5, "sample_interval_s": 5}},
            "version": 0})
        assert put.status_code == 200, put.text
        for n in names:
            assert api.put(f"/api/v1/devices/{n}/group", json={"group": "kb"}).status_code == 200
        # The device's own part wins over the template, key by key.
        assert boxes["kb-1"].desired(2)["config"]["publish"] == {
            "sample_interval_s": 5, "health_interval_s": 5}
        assert boxes["kb-2"].desired(1)["config"]["publish"] == {"sample_interval_s": 20}
        for n in names:
            boxes[n].report(2 if n == "kb-1" else 1)
        staged = api.put("/api/v1/groups/kb", json={
            "template": {"publish": {"sample_interval_s": 30}},
            "rollout": {"stage_size": 2, "stage_timeout_s": 60}})
        assert staged.status_code == 200, staged.text
        assert staged.json()["rev"] == 2
        rid = staged.json()["rollout_id"]
        # Stage 1 is kb-1 and kb-2 only.
        first = wait_until(lambda: (lambda r: r["stage"] == 1 and r)(rollout(fleet, rid)),
                           15, what="stage 1")
        assert sorted(first["waiting"]) == ["kb-1", "kb-2"]
        v1, v2 = first["waiting"]["kb-1"], first["waiting"]["kb-2"]
        assert boxes["kb-2"].desired(v2)["config"]["publish"]["sample_interval_s"] == 30
        boxes["kb-1"].report(v1)
        boxes["kb-2"].report(1, failed=v2, error="collectors.0: no such device")
        halted = wait_until(lambda: (lambda r: r["status"] == "halted" and r)(
            rollout(fleet, rid)), 15, what="the rollout halting")
        assert halted["done"] == ["kb-1"] and halted["failed"] == ["kb-2"]
        assert "no such device" in halted["reason"]
        for n in ("kb-3", "kb-4"):
            twin = api.get(f"/api/v1/devices/{n}/config").json()
            assert twin["group_rev"] == 1 and twin["version"] == 1
        # A fixed template as a new rollout reaches everyone not on it yet.
        fixed = api.put("/api/v1/groups/kb", json={
            "template": {"publish": {"sample_interval_s": 25}},
            "rollout": {"stage_size": 10, "stage_timeout_s": 60}}).json()
        rid = fixed["rollout_id"]
        stage = wait_until(lambda: (lambda r: r["stage"] == 1 and r)(rollout(fleet, rid)),
                           15, what="stage 1 of the fix")
        assert sorted(stage["waiting"]) == names
        for n, version in stage["waiting"].items():
            boxes[n].desired(version)
            boxes[n].report(version)
        done = wait_until(lambda: (lambda r: r["status"] == "completed" and r)(
            rollout(fleet, rid)), 15, what="the rollout completing")
        assert sorted(done["done"]) == names and done["failed"] == []
    for box in boxes.values():
        box.close()
