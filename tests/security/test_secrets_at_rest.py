"""Secrets at rest (issue 16, item 9): a rotated broker password is never written in
clear by the fleet (database, WAL, PostgreSQL, audit, logs, broker data), and the
SQLite files are the owner's only."""

import sqlite3
import stat
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List

import psycopg
import pytest

from fleet_api.broker.accounts import FLEET_USER
from fleet_api.db import make_engine
from testbed.harness import (
    Broker,
    Fleet,
    agent_process,
    device,
    wait_until,
    write_agent_config,
)
from tests.fleet.conftest import db_url, fleet  # noqa: F401  (SQLite and PostgreSQL)

pytestmark = pytest.mark.slow


def _command_args(db: str, command_id: str) -> Dict[str, Any]:
    """The stored args, read straight from the database (not through the API's redaction)."""
    import json

    if db.startswith("sqlite:///"):
        with sqlite3.connect(db[len("sqlite:///"):]) as conn:
            row = conn.execute("SELECT args FROM commands WHERE command_id = ?",
                               (command_id,)).fetchone()
        return json.loads(row[0])  # type: ignore[no-any-return]
    with psycopg.connect(db) as conn:
        got = conn.execute("SELECT args FROM commands WHERE command_id = %s",
                           (command_id,)).fetchone()
    assert got is not None
    return got[0]  # type: ignore[no-any-return]


def _files_holding(root: Path, secret: bytes, skip: Path) -> List[str]:
    return [str(p) for p in sorted(root.rglob("*"))
            if p.is_file() and skip not in p.parents and secret in p.read_bytes()]


def _pg_dump_holds(db: str, secret: str) -> bool:
    dump = subprocess.run(["pg_dump", "--data-only", "--dbname", db], capture_output=True,
                          text=True, check=True).stdout
    assert "COPY public.commands" in dump  # the dump really covers the fleet's tables
    return secret in dump


def test_rotated_password_is_never_stored_in_clear(scratch: Path, broker: Broker,
                                                   fleet: Fleet) -> None:  # noqa: F811
    reg = fleet.register("box-a")
    config = write_agent_config(scratch, "box-a", reg["mqtt"],
                                '[[collectors]]\ntype = "synthetic"\nname = "air"\n'
                                "values = { pm2_5 = 2.0 }\n")
    box_dir = config.parent  # the box's own files: its password file must hold it
    agent = agent_process(scratch, config, "box-a").start()
    operator = fleet.create_token("operator")
    try:
        wait_until(lambda: device(fleet, "box-a")["state"] == "online", 20, what="online")
        with fleet.api(operator) as api:
            started = api.post("/api/v1/devices/box-a/credentials/rotate",
                               json={"reconnect_after_s": 1})
            assert started.status_code == 202, started.text
        rotation_id = started.json()["rotation_id"]
        # While the box has not answered, the stored args hold the password sealed.
        staged = _command_args(fleet.db_url, rotation_id)
        assert set(staged["password"]) == {"sealed"}
        wait_until(lambda: device(fleet, "box-a")["rotation"] == "done", 40,
                   what="the rotation done")
        new = (box_dir / "mqtt.password").read_text().strip()
        assert new != reg["mqtt"]["password"]
        assert new not in str(staged)
        # Once the command is done the sealed copy is erased too.
        assert _command_args(fleet.db_url, rotation_id)["password"] is None
        with fleet.api() as api:
            audit = api.get("/api/v1/audit", params={"target": "box-a"})
            view = api.get(f"/api/v1/devices/box-a/commands/{rotation_id}")
        assert audit.status_code == 200 and "rotate_credentials" in audit.text
        assert view.json()["status"] == "succeeded" and new not in view.text
        secret = new.encode()
        assert _files_holding(scratch, secret, box_dir) == []  # db, WAL, SHM, logs, broker
        if fleet.db_url.startswith("postgresql"):
            assert not _pg_dump_holds(fleet.db_url, new)
        else:
            db_file = Path(fleet.db_url[len("sqlite:///"):])
            for path in (db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")):
                assert path.exists(), path
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        key = broker.data / "sealing.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    finally:
        agent.stop()
        fleet.stop()
        broker.stop()  # Mosquitto writes its persistence file on the way down
    assert _files_holding(scratch, secret, box_dir) == []
    assert new not in agent.output()


def test_the_fleet_opens_a_sealed_value_only_for_the_rotation(scratch: Path, broker: Broker,
                                                              fleet: Fleet) -> None:  # noqa: F811
    """A sealed password copied out of the database and sent back in another command's
    args goes out sealed: the fleet is no oracle that opens values for a caller."""
    import json

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from simpul_wire.models import StatePayload, encode
    from simpul_wire.topics import topic
    from tests.security.test_broker_crash import box_session

    password = fleet.register("box-b")["mqtt"]["password"]
    time.sleep(1.0)  # the account sync's reload
    box = box_session(broker.port, "box-b", password)
    box.publish(topic("box-b", "state"), encode(StatePayload(
        device_id="box-b", state="online", boot_id="b0")), qos=1).wait_for_publish(5)
    wait_until(lambda: device(fleet, "box-b")["state"] == "online", 10, what="online")
    seen: List[Dict[str, Any]] = []
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="simpul_secrets_watcher",
                          protocol=mqtt.MQTTv5)
    watcher.username_pw_set(FLEET_USER, broker.fleet_password)
    watcher.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe("simpul/v1/box-b/cmd/+", 1)
    watcher.on_message = lambda _c, _u, m: seen.append(json.loads(m.payload))
    watcher.connect("127.0.0.1", broker.fleet_port)
    watcher.loop_start()
    operator = fleet.create_token("operator")
    try:
        time.sleep(1.0)  # subscribed
        with fleet.api(operator) as api:
            started = api.post("/api/v1/devices/box-b/credentials/rotate", json={})
            assert started.status_code == 202, started.text
            sealed = _command_args(fleet.db_url, started.json()["rotation_id"])["password"]
            replay = api.post("/api/v1/devices/box-b/commands", json={
                "name": "diagnostic", "args": {"password": sealed}})
            assert replay.status_code == 201, replay.text
        wait_until(lambda: len(seen) == 2, 10, what="both commands on the wire")
    finally:
        watcher.disconnect()
        watcher.loop_stop()
        box.disconnect()
        box.loop_stop()
    by_name = {m["name"]: m["args"] for m in seen}
    assert isinstance(by_name["rotate_credentials"]["password"], str)  # opened for the box
    assert by_name["diagnostic"]["password"] == sealed  # left sealed


def test_an_offline_box_is_not_rotated(scratch: Path, broker: Broker,
                                       fleet: Fleet) -> None:  # noqa: F811
    """Measured before this rule: rotating a box that is away (its persistent session
    subscribed to its commands) put the new password in clear into DIR/mosquitto.db
    within the broker's 30 s autosave."""
    fleet.register("box-c")
    with fleet.api(fleet.create_token("operator")) as api:
        refused = api.post("/api/v1/devices/box-c/credentials/rotate", json={})
        commands = api.get("/api/v1/devices/box-c/commands").json()
    assert refused.status_code == 409 and "online" in refused.json()["detail"]
    assert commands["count"] == 0


def test_a_deleted_devices_final_rotation_loses_its_sealed_password(db_url: str,  # noqa: F811
                                                                     scratch: Path) -> None:
    """The device went away mid-rotation, so no rotation step erases its command's
    password; the sweep does, on both engines, once the command is final."""
    from fleet_api import sealing
    from fleet_api.control import box_commands as cmds
    from fleet_api.db import commands, migrate

    engine = make_engine(db_url)
    migrate(engine)
    box = sealing.Sealer(scratch / "sealing.key")
    with engine.begin() as conn:
        for command_id, status in (("c-final", "expired"), ("c-open", "delivered")):
            cmds.create(conn, "gone-box", "rotate_credentials",
                        {"password": box.seal("p" * 32), "rotation_id": command_id}, 600,
                        "test", command_id=command_id)
            conn.execute(commands.update().where(
                commands.c.command_id == command_id).values(status=status))
        assert cmds.forget_final_secrets(conn) == 1
    engine.dispose()
    assert _command_args(db_url, "c-final") == {"password": None, "rotation_id": "c-final"}
    assert sealing.is_sealed(_command_args(db_url, "c-open")["password"])  # still needed
    assert stat.S_IMODE((scratch / "sealing.key").stat().st_mode) == 0o600


def test_an_older_world_readable_database_is_tightened(scratch: Path) -> None:
    path = scratch / "old" / "fleet.db"
    path.parent.mkdir()
    old = sqlite3.connect(path)  # as an older fleet left it: 0644, WAL mode, still open
    try:
        old.execute("PRAGMA journal_mode=WAL")
        old.execute("CREATE TABLE t (x)")
        old.execute("INSERT INTO t VALUES (1)")
        old.commit()
        path.chmod(0o644)
        Path(f"{path}-wal").chmod(0o644)
        Path(f"{path}-shm").chmod(0o644)
        engine = make_engine(f"sqlite:///{path}")
        with engine.begin() as c:
            c.exec_driver_sql("INSERT INTO t VALUES (2)")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
        engine.dispose()
    finally:
        old.close()
    assert modes == {"fleet.db": 0o600, "fleet.db-wal": 0o600, "fleet.db-shm": 0o600}


def test_a_new_database_is_created_private(scratch: Path) -> None:
    path = scratch / "new" / "fleet.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE t (x)")
        c.exec_driver_sql("INSERT INTO t VALUES (1)")
    with engine.connect() as c:  # a second connection keeps the -wal and -shm there
        c.exec_driver_sql("SELECT * FROM t").fetchall()
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
    engine.dispose()
    assert modes == {"fleet.db": 0o600, "fleet.db-wal": 0o600, "fleet.db-shm": 0o600}
