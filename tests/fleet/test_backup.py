"""`simpul-fleet backup` and `restore`, round trip on both engines: a backup taken while
the fleet and broker run, restored into a new database and a new broker data dir, serves
the same devices and telemetry, keeps the CA, and the box reconnects with its old
password and goes on sending."""

import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from testbed.harness import (
    Broker,
    Fleet,
    agent_process,
    cleanup,
    scratch_dir,
    telemetry,
    tool,
    wait_until,
    write_agent_config,
)
from tests.fleet.conftest import create_pg_database, drop_pg_database, pg_base

pytestmark = pytest.mark.slow

SYNTHETIC = '[[collectors]]\ntype = "synthetic"\nname = "air"\nvalues = { pm2_5 = 9.5 }\n'


def fleet_cli(*args: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([tool("simpul-fleet"), *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def restored_url(db_url: str, scratch: Path) -> Iterator[str]:
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{scratch}/restored/fleet.db"
        return
    name = create_pg_database()
    try:
        yield f"{pg_base()}/{name}"
    finally:
        drop_pg_database(name)


def seqs(records: List[Dict[str, Any]]) -> List[int]:
    return sorted(r["seq"] for r in records)


def test_backup_restore_round_trip(scratch: Path, db_url: str, restored_url: str) -> None:
    broker = Broker(scratch, tls=True).start()
    fleet = Fleet(scratch, broker, db_url=db_url).start()
    try:
        mqtt = fleet.register("bk-a")["mqtt"]
        fleet.register("bk-b")
        config = write_agent_config(scratch, "bk-a", mqtt, SYNTHETIC)
        agent = agent_process(scratch, config, "agent-1").start()
        wait_until(lambda: len(telemetry(fleet, "bk-a")) >= 5, 30, what="telemetry")
        agent.stop()
        before = telemetry(fleet, "bk-a")
        # Online: the fleet and the broker keep running while the backup is taken.
        out = scratch / "fleet-backup.tar.gz"
        done = fleet_cli("backup", "--db", db_url, "--broker-data", str(broker.data),
                         "--out", str(out))
        assert done.returncode == 0, done.stderr
        assert oct(out.stat().st_mode & 0o777) == "0o600"
        ca_pem = (broker.data / "tls" / "ca.pem").read_text()
    finally:
        fleet.stop()
        broker.stop()

    # A damaged archive is refused before anything is written.
    damaged = scratch / "damaged.tar.gz"
    damaged.write_bytes(out.read_bytes()[:-200])
    base = scratch_dir()
    refused = fleet_cli("restore", str(damaged), "--db", restored_url, "--broker-data",
                        str(base / "broker"))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("simpul-fleet: ")
    assert not (base / "broker").exists()

    done = fleet_cli("restore", str(out), "--db", restored_url, "--broker-data",
                     str(base / "broker"))
    assert done.returncode == 0, done.stderr
    # Restoring over it again needs --force.
    again = fleet_cli("restore", str(out), "--db", restored_url, "--broker-data",
                      str(base / "broker"))
    assert again.returncode == 1 and "--force" in again.stderr

    broker2 = Broker(base, tls=True).start()
    fleet2 = Fleet(base, broker2, db_url=restored_url).start()
    try:
        assert (broker2.data / "tls" / "ca.pem").read_text() == ca_pem
        with fleet2.api() as api:
            ids = sorted(d["device_id"] for d in api.get("/api/v1/devices").json()["data"])
        assert ids == ["bk-a", "bk-b"]
        restored = telemetry(fleet2, "bk-a")
        assert seqs(restored) == seqs(before)
        assert [r["metrics"] for r in restored] == [r["metrics"] for r in before]
        # The box reconnects to the restored broker with its old password and goes on.
        config = write_agent_config(scratch, "bk-a", {**mqtt, "url": broker2.device_url},
                                    SYNTHETIC)
        agent = agent_process(scratch, config, "agent-2").start()
        try:
            wait_until(lambda: max(seqs(telemetry(fleet2, "bk-a"))) > max(seqs(before)), 30,
                       what="new telemetry after the restore")
        finally:
            agent.stop()
        assert "refused" not in agent.output().lower()
    finally:
        fleet2.stop()
        broker2.stop()
        cleanup(base)
