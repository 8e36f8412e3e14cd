"""A box without a real-time clock: wrong wall clocks still give complete, ordered data,
with the fleet's receive time beside the box's time."""

import glob
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List

import pytest

from agent.box import Box
from agent.cli.run import read_password
from agent.config import load_config
from agent.reactor import Reactor
from agent.timesync import ClockJumps, parse_timedatectl, synced_from_adjtimex
from testbed.harness import (
    Broker,
    Fleet,
    Process,
    device,
    telemetry,
    wait_until,
    write_agent_config,
)

COLLECTORS = '[[collectors]]\ntype = "synthetic"\nname = "air"\nvalues = { pm2_5 = 4.0 }\n'
YEAR_2100 = datetime(2100, 1, 1, tzinfo=timezone.utc).timestamp()


def year(iso: str) -> int:
    return datetime.fromisoformat(iso).year


def by_seq(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return sorted(records, key=lambda r: r["seq"])


def complete(records: List[Dict[str, Any]], at_least: int) -> bool:
    seqs = [r["seq"] for r in records]
    return len(seqs) >= at_least and sorted(seqs) == list(range(len(seqs)))


@pytest.mark.py39
@pytest.mark.parametrize("text,expected", [
    ("NTPSynchronized=yes\n", True), ("NTPSynchronized=no\n", False),
    ("Timezone=UTC\n", None), ("", None), ("NTPSynchronized=maybe", None)])
def test_parse_timedatectl(text: str, expected: Any) -> None:
    assert parse_timedatectl(text) is expected


@pytest.mark.py39
def test_adjtimex_state() -> None:
    assert synced_from_adjtimex(0, 0x2001) is True  # TIME_OK, PLL on, UNSYNC clear
    assert synced_from_adjtimex(5, 0x0041) is False  # TIME_ERROR with STA_UNSYNC
    assert synced_from_adjtimex(0, 0x0040) is False
    assert synced_from_adjtimex(-1, 0) is None


@pytest.mark.py39
def test_clock_jumps_are_seen_against_monotonic() -> None:
    wall, mono = [100.0], [5.0]
    jumps = ClockJumps(lambda: wall[0], lambda: mono[0], threshold_s=60)
    wall[0], mono[0] = 110.0, 15.0  # both moved 10 s: no step
    assert jumps.check() == 0.0
    wall[0], mono[0] = 1.7e9, 16.0
    assert jumps.check() == pytest.approx(1.7e9 - 111.0)
    wall[0], mono[0] = 1.7e9 - 3600 + 1, 17.0  # stepped back an hour
    assert jumps.check() == pytest.approx(-3600.0)
    assert jumps.jumps == 2


class SteppedClock:
    """The box's wall clock: runs at real speed from a settable point."""

    def __init__(self, start: float) -> None:
        self.set(start)

    def set(self, wall: float) -> None:
        self.offset = wall - time.monotonic()

    def __call__(self) -> float:
        return self.offset + time.monotonic()


@pytest.mark.slow
def test_boot_in_1970_then_ntp_then_far_future(scratch: Path, fleet: Fleet) -> None:
    reg = fleet.register("box-t")
    config = load_config(str(write_agent_config(scratch, "box-t", reg["mqtt"], COLLECTORS)))
    clock = SteppedClock(1000.0)  # 1970-01-01T00:16:40Z: a Pi without RTC, before NTP
    reactor = Reactor()
    box = Box(config, reactor, read_password(config.broker.password_file), clock=clock)
    started = datetime.now(timezone.utc)
    try:
        # Offline in 1970: the uplink is not up yet, records wait in the outbox.
        for _ in range(5):
            box.sampler.sample_telemetry()
        clock.set(time.time())  # NTP's first sync steps the clock by 56 years
        box.start()
        reactor.run(until=lambda: len(telemetry(fleet, "box-t")) >= 12, timeout=30)
        clock.set(YEAR_2100)  # a bad NTP answer, or a fake-hwclock file from the future
        reactor.run(timeout=2)
        clock.set(time.time())  # and back
        reactor.run(until=lambda: len(telemetry(fleet, "box-t")) >= 30, timeout=30)
    finally:
        box.stop()
        box.outbox.close()
    records = by_seq(telemetry(fleet, "box-t"))
    assert complete(records, 30), [r["seq"] for r in records]
    assert not [r for r in records if r["gap_to"] is not None]  # nothing dropped as "old"
    years = [year(r["ts"]) for r in records]
    assert years[:5] == [1970] * 5 and 2100 in years and years[-1] == started.year
    for r in records:  # the fleet's own clock, beside the box's
        received = datetime.fromisoformat(r["received_at"]).replace(tzinfo=timezone.utc)
        assert abs((received - started).total_seconds()) < 120
    assert box.sampler.clock_jumps.jumps == 3


def clock_alerts(fleet: Fleet, device_id: str, status: str) -> List[Dict[str, Any]]:
    with fleet.api() as api:
        resp = api.get("/api/v1/alerts", params={"device_id": device_id, "status": status})
    assert resp.status_code == 200, resp.text
    return [a for a in resp.json()["data"] if a["rule"] == "clock"]


@pytest.mark.slow
def test_box_that_says_unsynced_too_long_gets_an_alert(scratch: Path, broker: Broker,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The box's own report, `ntp_synced: false`, stored per device; past the fleet's
    --clock-alert-after it opens a clock alert, and a synced report resolves it."""
    import agent.sender

    fleet = Fleet(scratch, broker)
    fleet.process.args += ["--clock-alert-after", "2", "--alert-interval", "0.5"]
    fleet.start()
    synced = [False]
    monkeypatch.setattr(agent.sender, "ntp_synced", lambda _monotonic: synced[0])
    reg = fleet.register("box-ntp")
    config = load_config(str(write_agent_config(scratch, "box-ntp", reg["mqtt"], COLLECTORS)))
    reactor = Reactor()
    box = Box(config, reactor, read_password(config.broker.password_file))
    try:
        box.start()
        reactor.run(until=lambda: device(fleet, "box-ntp")["ntp_synced"] is False, timeout=20)
        reactor.run(until=lambda: clock_alerts(fleet, "box-ntp", "open"), timeout=30)
        assert "not synced" in clock_alerts(fleet, "box-ntp", "open")[0]["message"]
        synced[0] = True
        reactor.run(until=lambda: clock_alerts(fleet, "box-ntp", "resolved"), timeout=30)
        assert device(fleet, "box-ntp")["ntp_synced"] is True
    finally:
        box.stop()
        box.outbox.close()
        fleet.stop()


def libfaketime() -> str:
    found = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    assert found, "apt install faketime (.ci/apt/prod.txt)"
    return found[0]


@pytest.mark.slow
@pytest.mark.parametrize("fake", ["@1970-01-01 00:00:00", "+30y"])
def test_real_agent_under_faketime(scratch: Path, fleet: Fleet, fake: str) -> None:
    name = "box-1970" if fake.startswith("@") else "box-future"
    reg = fleet.register(name)
    config = write_agent_config(scratch, name, reg["mqtt"], COLLECTORS)
    agent_bin = str(Path(fleet.process.args[0]).with_name("simpul-agent"))
    run = [agent_bin, "run", "--config", str(config)]
    # libfaketime preloaded into the agent itself: the `faketime` wrapper does not pass
    # SIGTERM on, so stopping it would leave the agent running. A Pi's monotonic clock is
    # right even when its wall clock is not.
    env = dict(os.environ, LD_PRELOAD=libfaketime(), FAKETIME=fake,
               FAKETIME_DONT_FAKE_MONOTONIC="1", FAKETIME_NO_CACHE="1")
    wrong = Process(run, scratch / f"{name}-wrong.log", env=env).start()
    try:
        wait_until(lambda: len(telemetry(fleet, name)) >= 6, 40, what="records, wrong clock")
        # The fleet sees the box's time far from its own receive time: a clock alert.
        alert = wait_until(lambda: clock_alerts(fleet, name, "open"), 30, what="clock alert")
        assert "check NTP" in alert[0]["message"]
    finally:
        wrong.stop()
    assert "Traceback" not in wrong.output()
    right = Process(run, scratch / f"{name}-right.log").start()  # NTP synced, restarted
    try:
        wait_until(lambda: any(year(r["ts"]) == datetime.now(timezone.utc).year
                               for r in telemetry(fleet, name)), 30, what="records, right clock")
    finally:
        right.stop()
    records = by_seq(telemetry(fleet, name))
    assert complete(records, 7)
    assert len({r["epoch"] for r in records}) == 1  # one outbox across the restart
    # By the fleet's receive time, the records come in the box's order, whatever its ts.
    received = telemetry(fleet, name, by="received_at")
    assert [r["seq"] for r in received] == sorted(r["seq"] for r in received)
    wait_until(lambda: clock_alerts(fleet, name, "resolved"), 30, what="clock alert resolved")
    expected = 1970 if fake.startswith("@") else datetime.now(timezone.utc).year + 30
    assert year(records[0]["ts"]) == expected
    assert year(records[-1]["ts"]) == datetime.now(timezone.utc).year
    now = datetime.now(timezone.utc)
    for r in records:
        received = datetime.fromisoformat(r["received_at"]).replace(tzinfo=timezone.utc)
        assert abs((now - received).total_seconds()) < 180
