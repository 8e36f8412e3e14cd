"""Scenario files: timed events played against a running simulated fleet.

A scenario is TOML, validated with pydantic (`extra="forbid"`: a misspelt key is an
error, not a silent no-op). Each event has `at_s` (seconds after the fleet starts), an
`action`, and picks its boxes by `district` and/or `fraction`; the pick is drawn from
the scenario's `seed`, so a run can be reproduced.

    name = "a district loses its uplink"
    seed = 7

    [[events]]
    at_s = 60
    action = "outage"          # outage, flap, reboot, broker_restart, sensor_fault,
    district = "Kota Barat"    # clock_skew, rain, tier_rollout
    duration_s = 120

See docs/simulator.md for every action and its fields.
"""

import json
import logging
import os
import random
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, List, Literal, Optional, Union

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.errors import ScenarioError
from simulator.virtual import VirtualBox, each

if TYPE_CHECKING:
    from simulator.fleet import Fleet

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger("simpul.sim.scenario")


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at_s: float = Field(ge=0)
    district: Optional[str] = None
    fraction: float = Field(default=1.0, gt=0, le=1)


class Outage(_Event):
    """The uplink of the picked boxes is cut for duration_s; they keep sampling."""
    action: Literal["outage"]
    duration_s: float = Field(gt=0)


class Flap(_Event):
    """Links drop abruptly, each picked box about every `every_s`, for duration_s; the
    agent's backoff brings each back."""
    action: Literal["flap"]
    duration_s: float = Field(gt=0)
    every_s: float = Field(default=30.0, gt=0)


class Reboot(_Event):
    """The picked boxes power-cycle, spread over spread_s, each dark for down_s."""
    action: Literal["reboot"]
    down_s: float = Field(default=20.0, ge=0)
    spread_s: float = Field(default=10.0, ge=0)


class BrokerRestart(_Event):
    """The city's broker stops (SIGTERM) and starts again after down_s. Needs
    `simpul-sim fleet --broker-data DIR`."""
    action: Literal["broker_restart"]
    down_s: float = Field(default=5.0, ge=0)


class SensorFault(_Event):
    """The picked boxes' telemetry sensors stop answering (`unavailable`) or read far too
    high (`spike`), for duration_s."""
    action: Literal["sensor_fault"]
    kind: Literal["unavailable", "spike"] = "unavailable"
    duration_s: float = Field(gt=0)


class ClockSkew(_Event):
    """The picked boxes' clocks jump by offset_s (NTP not synced), until duration_s has
    passed (0: for the rest of the run)."""
    action: Literal["clock_skew"]
    offset_s: float
    duration_s: float = Field(default=0.0, ge=0)


class Rain(_Event):
    """A storm of mm_h over the picked boxes for duration_s: water levels rise."""
    action: Literal["rain"]
    mm_h: float = Field(ge=0, le=300)
    duration_s: float = Field(gt=0)


class TierRollout(_Event):
    """The fleet API moves the picked boxes to a catalogue tier, stage_size boxes every
    stage_interval_s (PUT /api/v1/devices/{id}/tier, as an operator would)."""
    action: Literal["tier_rollout"]
    mbps: float = Field(gt=0)
    stage_size: int = Field(default=50, ge=1)
    stage_interval_s: float = Field(default=5.0, ge=0)


Event = Annotated[Union[Outage, Flap, Reboot, BrokerRestart, SensorFault, ClockSkew, Rain,
                        TierRollout], Field(discriminator="action")]


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    seed: Optional[int] = None
    events: List[Event] = Field(default_factory=list)


def parse_scenario(text: str) -> Scenario:
    try:
        return Scenario.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"not TOML: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ScenarioError(f"{where}: {first['msg']}") from exc


# The shipped scenarios are package data, so `--scenario stormy-day` works from a wheel.
SHIPPED = Path(__file__).resolve().parent / "scenarios"


def shipped_scenario(name: str) -> Optional[Path]:
    """The scenario shipped under this name ("stormy-day"), or None."""
    found = SHIPPED / f"{name}.toml"
    return found if "/" not in name and found.is_file() else None


def load_scenario(path: str) -> Scenario:
    """A scenario from a TOML file, or a shipped one by its name when no such file exists."""
    file = Path(path)
    if not file.exists():
        file = shipped_scenario(path) or file
    try:
        return parse_scenario(file.read_text())
    except OSError as exc:
        raise ScenarioError(f"cannot read {path}: {exc.strerror}") from exc


def pick(fleet: "Fleet", event: _Event, rng: random.Random) -> List[VirtualBox]:
    boxes = fleet.in_district(event.district) if event.district else list(fleet.boxes)
    if event.fraction < 1.0:
        boxes = rng.sample(boxes, max(1, round(len(boxes) * event.fraction)))
    return boxes


def schedule(scenario: Scenario, fleet: "Fleet") -> None:
    """Put every event on the fleet's reactor. Boxes are picked when the event fires,
    from a generator seeded per event, so the picks do not depend on timing."""
    base = scenario.seed if scenario.seed is not None else fleet.opts.seed
    for i, event in enumerate(scenario.events):
        rng = random.Random(base * 1000 + i)
        fleet.reactor.call_later(event.at_s, partial(fire, fleet, event, rng))
    log.info("scenario %r: %d events", scenario.name, len(scenario.events))


def fire(fleet: "Fleet", event: Event, rng: random.Random) -> None:
    boxes = pick(fleet, event, rng) if not isinstance(event, BrokerRestart) else []
    log.info("scenario: %s on %d boxes", event.action, len(boxes))
    r = fleet.reactor
    if isinstance(event, Outage):
        each(boxes, lambda b: b.cut(event.duration_s))
    elif isinstance(event, Flap):
        for box in boxes:
            t = rng.expovariate(1.0 / event.every_s)
            while t < event.duration_s:
                r.call_later(t, box.flap)
                t += rng.expovariate(1.0 / event.every_s)
    elif isinstance(event, Reboot):
        down = event.down_s
        for box in boxes:
            r.call_later(rng.uniform(0, event.spread_s), partial(box.reboot, down))
    elif isinstance(event, SensorFault):
        each(boxes, lambda b: b.set_fault(event.kind))
        r.call_later(event.duration_s, lambda: each(boxes, lambda b: b.set_fault(None)))
    elif isinstance(event, ClockSkew):
        for box in boxes:
            box.clock.offset_s = event.offset_s
        if event.duration_s:
            def unskew() -> None:
                for box in boxes:
                    box.clock.offset_s = 0.0
            r.call_later(event.duration_s, unskew)
    elif isinstance(event, Rain):
        each(boxes, lambda b: b.set_rain(event.mm_h))
        r.call_later(event.duration_s, lambda: each(boxes, lambda b: b.set_rain(None)))
    elif isinstance(event, TierRollout):
        ids = [b.device_id for b in boxes]
        threading.Thread(target=tier_rollout, args=(fleet.api_url, fleet.token, ids, event),
                         name="tier-rollout", daemon=True).start()
    elif isinstance(event, BrokerRestart):
        restart_broker(fleet, event.down_s)


def tier_rollout(url: str, token: str, ids: List[str], event: TierRollout) -> None:
    """In a thread: HTTP must not stall the boxes' loop."""
    ok = failed = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                      timeout=30) as api:
        for i in range(0, len(ids), event.stage_size):
            for device_id in ids[i:i + event.stage_size]:
                try:
                    resp = api.put(f"/api/v1/devices/{device_id}/tier",
                                   json={"mbps": event.mbps})
                    ok, failed = (ok + 1, failed) if resp.status_code == 200 else (ok, failed + 1)
                except httpx.HTTPError:
                    failed += 1
            time.sleep(event.stage_interval_s)
    log.info("tier rollout to %g Mbps: %d set, %d failed", event.mbps, ok, failed)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def restart_broker(fleet: "Fleet", down_s: float) -> None:
    """SIGTERM the broker named in --broker-data, wait for it to go, and start it again
    down_s later with the same data dir and ports (`simpul-fleet broker`). The new
    broker is the city's: it outlives the simulator."""
    data = fleet.opts.broker_data
    if not data:
        log.error("broker_restart needs --broker-data; skipped")
        return
    import signal

    pid = int((Path(data) / "mosquitto.pid").read_text().strip())
    info = json.loads((Path(data) / "broker.json").read_text())
    args = ["--port", str(info["port"]), "--fleet-port", str(info["fleet_port"]),
            "--data", data, "--bind", info.get("bind", "0.0.0.0"),
            "--profile", info.get("profile", "default")]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15

    def start_again() -> None:
        if _alive(pid) and time.monotonic() < deadline:
            fleet.reactor.call_later(0.1, start_again)
            return
        log.info("scenario: broker back on port %s", info["port"])
        with open(Path(data) / "restarted.log", "ab") as out:
            subprocess.Popen([sys.executable, "-m", "fleet_api.cli", "broker", *args],
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    fleet.reactor.call_later(down_s, start_again)
