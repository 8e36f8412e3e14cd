"""Identity: cloned-card detection, and credential rotation without a lockout."""

import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import List

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.control.builtin import CommandError
from agent.credentials import Credentials, rotate_handler
from fleet_api.devices.identity import Birth, Rotation, begin, detect_clones, step

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


def births(ids: str, every_s: float = 20, device: str = "box-a") -> List[Birth]:
    return [Birth(device, f"boot-{c}", T0 + timedelta(seconds=i * every_s))
            for i, c in enumerate(ids)]


@pytest.mark.parametrize("ids,flagged", [
    ("ABCDE", False),  # one box restarting: a boot id never comes back
    ("AAAB", False),  # the same process reconnecting, then one restart
    ("ABA", False),  # one return: a stale message is enough to explain it
    ("ABAB", True), ("ABABAB", True), ("AABBAABB", True), ("ABCAB", True),
])
def test_clone_detection_table(ids: str, flagged: bool) -> None:
    found = detect_clones(births(ids))
    assert bool(found) is flagged
    if flagged:
        assert found[0].device_id == "box-a" and "boot-A" in found[0].boot_ids
        assert found[0].returns >= 2


def test_slow_alternation_outside_the_window_and_retained_births_are_ignored() -> None:
    assert detect_clones(births("ABAB", every_s=3600)) == []
    replayed = [Birth(b.device_id, b.boot_id, b.at, retained=i % 2 == 0)
                for i, b in enumerate(births("ABABAB"))]
    assert detect_clones(replayed) == []  # only B's live births remain
    two = births("ABAB") + births("CDE", device="box-b")
    assert [s.device_id for s in detect_clones(two)] == ["box-a"]


@given(st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=30))
def test_one_box_restarting_is_never_a_clone(gaps: List[int]) -> None:
    at, seq = T0, []
    for i, gap in enumerate(gaps):
        at += timedelta(seconds=gap)
        seq.append(Birth("box-a", f"boot-{i}", at))
    assert detect_clones(seq) == []


@given(st.lists(st.sampled_from("AB"), min_size=1, max_size=30))
def test_two_boxes_fighting_are_found_once_they_alternate(picks: List[str]) -> None:
    seq = births("".join(picks), every_s=5)
    switches = sum(1 for a, b in zip(picks, picks[1:]) if a != b)
    assert bool(detect_clones(seq)) is (switches >= 3)


def test_rotation_walk() -> None:
    rot = Rotation("box-a", current_hash="old", broker_hash="old")
    rot, actions = begin(rot, "new", "r1", T0)
    assert rot.state == "staging" and rot.broker_hash == "old" and "send_rotate_command" in actions
    assert begin(rot, "newer", "r2", T0)[1][0].startswith("refuse")
    assert step(rot, "staged", T0, rotation_id="r0") == (rot, [])  # an older rotation's answer
    rot, actions = step(rot, "staged", T0 + timedelta(seconds=5), rotation_id="r1")
    assert rot.state == "switched" and rot.broker_hash == "new" and "write_broker_hash" in actions
    # A birth from before the switch proves nothing; one after it proves the new password.
    assert step(rot, "online", T0 + timedelta(seconds=6), boot_after=T0)[0].state == "switched"
    rot, actions = step(rot, "online", T0 + timedelta(seconds=9),
                        boot_after=T0 + timedelta(seconds=8))
    assert rot.state == "done" and rot.current_hash == "new" and actions[-1] == "drop_old_hash"


def test_rotation_timeouts_fall_back_to_the_old_password() -> None:
    rot, _ = begin(Rotation("box-a", current_hash="old", broker_hash="old"), "new", "r1", T0)
    late = T0 + timedelta(hours=1)
    idle, actions = step(rot, "tick", late)
    assert idle.state == "idle" and idle.pending_hash is None and actions[-1].startswith("alert")
    rot, _ = step(rot, "staged", T0, rotation_id="r1")
    back, actions = step(rot, "tick", late)
    assert back.state == "idle" and back.broker_hash == "old" and "write_broker_hash" in actions


def test_box_tries_both_passwords_until_the_new_one_is_taken(tmp_path: Path) -> None:
    path = tmp_path / "mqtt.password"
    path.write_text("old-password\n")
    creds = Credentials(str(path))
    assert creds.password() == "old-password"
    handler = rotate_handler(creds, lambda delay: None)
    assert handler({"password": "n" * 24, "rotation_id": "r1"})["staged"] == "r1"
    assert stat.S_IMODE(os.stat(creds.pending_path).st_mode) == 0o600
    assert path.read_text() == "old-password\n"  # the old one stays until the new works
    # The broker has not switched yet: the new one is refused, the old one works.
    assert creds.password() == "n" * 24
    creds.auth_result(False)
    assert creds.password() == "old-password"
    creds.auth_result(True)
    assert creds.pending and path.read_text() == "old-password\n"
    # After the switch: the new one is accepted and replaces the old one.
    assert creds.password() == "n" * 24
    creds.auth_result(True)
    assert not creds.pending and path.read_text().strip() == "n" * 24
    assert creds.password() == "n" * 24 and creds.promoted == 1


@pytest.mark.parametrize("args,match", [
    ({"password": "short", "rotation_id": "r"}, "16-256"),
    ({"password": "has a space in it ok", "rotation_id": "r"}, "without spaces"),
    ({"password": "x" * 20, "rotation_id": "bad id!"}, "rotation_id"),
    ({"password": "x" * 20, "rotation_id": "r", "reconnect_after_s": -1}, "0-3600"),
])
def test_rotate_command_refuses_bad_args(tmp_path: Path, args: dict, match: str) -> None:  # type: ignore[type-arg]
    (tmp_path / "pw").write_text("old\n")
    with pytest.raises(CommandError, match=match):
        rotate_handler(Credentials(str(tmp_path / "pw")), lambda d: None)(args)
    with pytest.raises(CommandError, match="without a password file"):
        rotate_handler(None, lambda d: None)({})


def test_rotation_for_one_boot_only(tmp_path: Path) -> None:
    """Revoking a clone: only the box the operator keeps takes the new password."""
    (tmp_path / "pw").write_text("old\n")
    creds = Credentials(str(tmp_path / "pw"))
    args = {"password": "k" * 20, "rotation_id": "r9", "only_boot_id": "aaaa"}
    with pytest.raises(CommandError, match="this box is boot bbbb"):
        rotate_handler(creds, lambda d: None, boot_id="bbbb")(args)
    assert not creds.pending
    assert rotate_handler(creds, lambda d: None, boot_id="aaaa")(args)["staged"] == "r9"
    assert creds.pending


@pytest.mark.slow
def test_rotation_from_the_fleet_api_has_no_lockout(scratch: Path, broker, fleet) -> None:  # type: ignore[no-untyped-def]
    """`POST /credentials/rotate` against a running agent: the fleet stages, switches the
    broker and drops the old hash by itself; the box is never refused."""
    import json

    import paho.mqtt.client as mqtt

    from testbed.harness import agent_process, device, telemetry, wait_until, write_agent_config

    reg = fleet.register("box-a")
    config = write_agent_config(scratch, "box-a", reg["mqtt"],
                                '[[collectors]]\ntype = "synthetic"\nname = "air"\n'
                                "values = { pm2_5 = 2.0 }\n")
    secret = config.parent / "mqtt.password"
    old = reg["mqtt"]["password"]
    agent = agent_process(scratch, config, "box-a").start()
    operator = fleet.create_token("operator")

    def accepts(password: str) -> bool:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="probe",  # type: ignore[attr-defined]
                        protocol=mqtt.MQTTv5)
        c.username_pw_set("box-a", password)
        got: list = []  # type: ignore[type-arg]
        c.on_connect = lambda cl, u, f, rc, p: got.append(rc)
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        wait_until(lambda: got, 5, what="CONNACK")
        c.loop_stop()
        c.disconnect()
        return not got[0].is_failure

    try:
        wait_until(lambda: device(fleet, "box-a")["state"] == "online", 20, what="online")
        with fleet.api(operator) as api:
            # The generic command endpoint does not bypass the rotation's steps.
            refused = api.post("/api/v1/devices/box-a/commands",
                               json={"name": "rotate_credentials", "args": {}})
            assert refused.status_code == 409 and "credentials/rotate" in refused.text
            started = api.post("/api/v1/devices/box-a/credentials/rotate",
                               json={"reconnect_after_s": 2})
            assert started.status_code == 202, started.text
            rotation_id = started.json()["rotation_id"]
            again = api.post("/api/v1/devices/box-a/credentials/rotate", json={})
            assert again.status_code == 409 and "staging" in again.text
            shown = api.get(f"/api/v1/devices/box-a/commands/{rotation_id}").json()
            assert shown["args"]["password"] == "********"
        wait_until(lambda: device(fleet, "box-a")["rotation"] == "done", 40,
                   what="the rotation done")
        new = secret.read_text().strip()
        assert new != old
        assert not secret.with_name("mqtt.password.pending").exists()
        with fleet.api() as api:
            result = api.get(f"/api/v1/devices/box-a/commands/{rotation_id}").json()
            audit = api.get("/api/v1/audit", params={"target": "box-a"}).text
        assert result["status"] == "succeeded" and result["result"]["staged"] == rotation_id
        assert new not in json.dumps(result) and new not in audit
        seen = len(telemetry(fleet, "box-a"))
        wait_until(lambda: len(telemetry(fleet, "box-a")) > seen + 3, 20, what="telemetry")
        # The broker refuses the old password and takes the new one (a probe's login
        # with a password takes the box's session, so probe the old one only).
        wait_until(lambda: not accepts(old), 10, what="the old password refused")
        assert agent.alive()
        assert "broker refused" not in agent.output()  # never locked out, not even once
        assert new not in agent.output() and new not in (scratch / "fleet.log").read_text()
    finally:
        agent.stop()
