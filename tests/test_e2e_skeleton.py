"""Walking skeleton end to end: real agents, real Mosquitto from broker_config/, real fleet."""

from pathlib import Path
from typing import Dict, List

import pytest

from testbed.harness import (
    Broker,
    Fleet,
    Process,
    agent_process,
    device,
    telemetry,
    wait_until,
    write_agent_config,
)

pytestmark = pytest.mark.slow

VALUES = {"box-a": 11.5, "box-b": 22.25, "box-c": 33.0}


def start_agents(scratch: Path, fleet: Fleet) -> Dict[str, Process]:
    agents = {}
    for device_id, value in VALUES.items():
        reg = fleet.register(device_id)
        collectors = (f'[[collectors]]\ntype = "synthetic"\nname = "air"\n'
                      f"values = {{ pm2_5 = {value}, noise_db = {value * 2} }}\n")
        config = write_agent_config(scratch, device_id, reg["mqtt"], collectors)
        agents[device_id] = agent_process(scratch, config, device_id).start()
    return agents


def seqs(records: List[dict]) -> List[int]:
    return [r["seq"] for r in records]


def complete(records: List[dict]) -> bool:
    """One epoch, seq 0..n with no gap and no duplicate."""
    got = sorted(seqs(records))
    return len({r["epoch"] for r in records}) == 1 and got == list(range(len(got)))


def test_three_agents_report_their_values(scratch: Path, broker: Broker, fleet: Fleet) -> None:
    agents = start_agents(scratch, fleet)
    try:
        for device_id, value in VALUES.items():
            records = wait_until(lambda d=device_id: len(telemetry(fleet, d)) >= 4 and
                                 telemetry(fleet, d), 30, what=f"telemetry of {device_id}")
            for record in records:
                assert record["metrics"]["pm2_5"] == value
                assert record["metrics"]["noise_db"] == value * 2
                assert record["sources"]["air"]["state"] == "ok"
            # The sample counter counts up from 1 with the seq: nothing skipped.
            assert [r["metrics"]["air_samples"] for r in records] == \
                [float(s + 1) for s in seqs(records)]
            assert device(fleet, device_id)["online"] is True
            health = wait_until(lambda d=device_id: telemetry(fleet, d, stream="health"), 15,
                                what=f"health of {device_id}")
            assert "outbox_depth" in health[0]["metrics"]
        with fleet.api() as api:
            listed = api.get("/api/v1/devices").json()
        assert listed["count"] == 3
        assert all(d["online"] for d in listed["data"])
    finally:
        for agent in agents.values():
            agent.stop()
    # A clean stop says offline at once (retained state), not only by timeout.
    wait_until(lambda: not any(device(fleet, d)["online"] for d in VALUES), 10,
               what="devices offline after agents stopped")


def test_broker_outage_loses_nothing(scratch: Path, broker: Broker, fleet: Fleet) -> None:
    agents = start_agents(scratch, fleet)
    try:
        wait_until(lambda: all(device(fleet, d)["online"] for d in VALUES), 30,
                   what="all online")
        before = {d: len(telemetry(fleet, d)) for d in VALUES}
        # kill -9: Mosquitto loses what it accepted since its last autosave, and does not
        # restore shared subscriptions; the fleet's end-to-end confirmations cover both.
        broker.kill()
        # While the broker is down the fleet cannot hear anyone: nobody shows online.
        wait_until(lambda: not any(device(fleet, d)["online"] for d in VALUES), 15,
                   what="devices not online during the outage")
        states = {device(fleet, d)["state"] for d in VALUES}
        assert states <= {"offline", "unknown"}
        # The agents keep sampling into their outboxes (sample interval 0.5 s).
        import time

        time.sleep(4)
        assert all(a.alive() for a in agents.values())
        broker.start()
        wait_until(lambda: all(device(fleet, d)["online"] for d in VALUES), 60,
                   what="all online again after the broker restart")
        for device_id in VALUES:
            # Every record made during the outage (8 or more samples) arrives, once each.
            wait_until(lambda d=device_id: (lambda r: len(r) >= before[d] + 10 and complete(r))(
                telemetry(fleet, d)), 60, what=f"complete replay of {device_id}")
            wait_until(lambda d=device_id: complete(telemetry(fleet, d, stream="health")), 30,
                       what=f"complete health stream of {device_id}")
    finally:
        for agent in agents.values():
            agent.stop()
