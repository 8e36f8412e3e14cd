"""Scenario files parse, refuse typos, and pick the same boxes from the same seed;
synthetic water levels rise with rain and drain after it."""

import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any, List

import pytest

from agent.collectors.base import Accumulator
from agent.collectors.synthetic import (
    WATER_BASE_CM,
    SyntheticCollector,
    SyntheticConfig,
    rain_mm_h,
    water_step,
)
from simulator.errors import ScenarioError
from simulator.scenario import SHIPPED, load_scenario, parse_scenario, pick

SCENARIOS = sorted(SHIPPED.glob("*.toml"))


def test_there_are_the_issue_scenarios() -> None:
    actions = {e.action for f in SCENARIOS for e in load_scenario(str(f)).events}
    assert {"outage", "broker_restart", "sensor_fault", "clock_skew", "tier_rollout",
            "flap", "reboot", "rain"} <= actions


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_every_scenario_file_parses_with_a_seed(path: Path) -> None:
    scenario = load_scenario(str(path))
    assert scenario.name and scenario.seed is not None and scenario.events


@pytest.mark.parametrize("text, where", [
    ('name = "x"\n[[events]]\nat_s = 1\naction = "outage"\nduration_s = 5\ndistrikt = "A"\n',
     "distrikt"),
    ('name = "x"\n[[events]]\nat_s = 1\naction = "earthquake"\n', "events.0"),
    ('name = "x"\n[[events]]\nat_s = -1\naction = "outage"\nduration_s = 5\n', "at_s"),
    ('name = "x"\n[[events]]\nat_s = 1\naction = "reboot"\nfraction = 1.5\n', "fraction"),
    ('name = "x"\ncolour = "red"\n', "colour"),
    ("name = \n", "not TOML"),
])
def test_bad_scenarios_name_the_field(text: str, where: str) -> None:
    with pytest.raises(ScenarioError, match=where):
        parse_scenario(text)


def _fleet(n: int) -> Any:
    boxes = [SimpleNamespace(device_id=f"b-{i}") for i in range(n)]
    district = {b.device_id: ("A" if i % 2 else "B") for i, b in enumerate(boxes)}
    return SimpleNamespace(boxes=boxes, in_district=lambda d: [
        b for b in boxes if district[b.device_id] == d])


def test_the_same_seed_picks_the_same_boxes() -> None:
    event = parse_scenario('name = "x"\n[[events]]\nat_s = 1\naction = "reboot"\n'
                           'district = "A"\nfraction = 0.1\n').events[0]
    fleet = _fleet(1000)

    def ids(seed: int) -> List[str]:
        return [b.device_id for b in pick(fleet, event, random.Random(seed))]

    assert ids(5) == ids(5)
    assert ids(5) != ids(6)
    assert len(ids(5)) == 50
    assert all(int(i.split("-")[1]) % 2 == 1 for i in ids(5))


def test_water_rises_with_rain_and_drains_after() -> None:
    level = WATER_BASE_CM
    for _ in range(8):  # two hours of 40 mm/h in 15-minute steps
        level = water_step(level, 40.0, 900)
    assert level > WATER_BASE_CM + 50
    peak = level
    for _ in range(16):
        level = water_step(level, 0.0, 900)
    assert level < WATER_BASE_CM + (peak - WATER_BASE_CM) / 2


def test_storms_are_shared_by_a_district_and_differ_between_districts() -> None:
    day = [1763856000 + h * 900 for h in range(96 * 30)]
    assert [rain_mm_h(3, t) for t in day] == [rain_mm_h(3, t) for t in day]
    assert [rain_mm_h(3, t) for t in day] != [rain_mm_h(4, t) for t in day]
    assert any(rain_mm_h(3, t) > 0 for t in day)


def test_the_collector_reports_rain_and_its_water_level() -> None:
    now = [1763856000.0]
    collector = SyntheticCollector(SyntheticConfig(type="synthetic", shape="city", seed=1),
                                   clock=lambda: now[0])
    collector.rain_mm_h = 80.0  # what a scenario's storm sets
    levels = []
    for _ in range(6):
        acc = Accumulator()
        collector.gather(acc)
        levels.append(acc.metrics["water_level_cm"])
        assert acc.metrics["rain_mm_h"] == 80.0
        now[0] += 600
    assert levels[-1] > levels[0] + 50


def test_a_shipped_scenario_loads_by_its_name() -> None:
    # From an installed wheel there is no simulator/scenarios/ path to give.
    assert load_scenario("stormy-day") == load_scenario(str(SHIPPED / "stormy-day.toml"))
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario("no-such-scenario")


def test_a_bad_scenario_is_one_line_from_the_cli(tmp_path: Path) -> None:
    """ScenarioError is a SimError, so `simpul-sim fleet` says what is wrong in one line
    before it registers a single box (the fleet address here answers nothing)."""
    import subprocess
    import sys

    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[events]]\nat_s = "soon"\n')
    for scenario, said in ((str(bad), "events"), ("/no/such.toml", "cannot read")):
        done = subprocess.run([sys.executable, "-m", "simulator.cli", "fleet", "--fleet",
                               "http://127.0.0.1:9", "--token", "x", "--devices", "1",
                               "--scenario", scenario], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("simpul-sim: ") and said in lines[0]
