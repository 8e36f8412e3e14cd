"""A fleet of virtual boxes in one process: the agent's own Box, outbox and link, many on
one reactor. Each box has its own MQTT connection and credentials, registered through
the fleet API like a real one."""

import logging
import math
import random
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import httpx

from agent.box import Box
from agent.collectors.base import Accumulator, PollingCollector
from agent.config import AgentConfig
from agent.reactor import Reactor

log = logging.getLogger("simpul.sim.fleet")

KINDS = ("wifi", "cctv", "sensor")
DISTRICTS = ("Kota Barat", "Kota Timur", "Kota Utara", "Kota Selatan", "Kota Tengah")


class SimError(Exception):
    """The simulator cannot go on; the message says why."""


class ShapedCollector(PollingCollector):
    """Plausible readings for a point: clients, air and water that move with the hour."""

    def __init__(self, seed: int, kind: str, clock=time.time) -> None:  # type: ignore[no-untyped-def]
        self.name = "sim"
        self.stream = "telemetry"
        self._rng = random.Random(seed)
        self._kind = kind
        self._clock = clock
        self.samples = 0

    def gather(self, acc: Accumulator) -> None:
        self.samples += 1
        hour = (self._clock() / 3600.0 + 7) % 24  # WIB
        evening = math.exp(-((hour - 19) ** 2) / 8)
        rush = math.exp(-((hour - 7.5) ** 2) / 2) + math.exp(-((hour - 17.5) ** 2) / 2)
        base = 5 + 40 * evening + 25 * rush
        acc.add("connected", max(0, round(base + self._rng.gauss(0, 3))))
        acc.add("nearby", max(0, round(base * 2.5 + self._rng.gauss(0, 5))))
        acc.add("pm2_5", round(12 + 30 * rush + self._rng.gauss(0, 2), 1))
        acc.add("water_level_cm", round(40 + self._rng.gauss(0, 0.5), 1))
        acc.add("sim_samples", self.samples)
        acc.status("sim", "ok")


@dataclass
class Registered:
    device_id: str
    password: str
    url: str
    kind: str


def register(api: httpx.Client, device_id: str, rng: random.Random) -> Registered:
    kind = KINDS[rng.randrange(len(KINDS))]
    body = {"device_id": device_id, "site": f"Titik {device_id}", "kind": kind,
            "district": DISTRICTS[rng.randrange(len(DISTRICTS))],
            "lat": round(-6.2 + rng.uniform(-0.05, 0.05), 5),
            "lon": round(106.8 + rng.uniform(-0.05, 0.05), 5), "tags": ["simulated"]}
    try:
        resp = api.post("/api/v1/devices", json=body)
    except httpx.HTTPError as exc:
        raise SimError(f"cannot reach the fleet API: {exc}") from exc
    if resp.status_code == 401:
        raise SimError("the fleet API refused the token (401)")
    if resp.status_code != 201:
        raise SimError(f"registering {device_id} failed: {resp.status_code} {resp.text[:200]}")
    mqtt = resp.json()["mqtt"]
    return Registered(device_id, mqtt["password"], mqtt["url"], kind)


def box_config(reg: Registered, data_dir: Path, interval: float) -> AgentConfig:
    return AgentConfig.model_validate({
        "device": {"device_id": reg.device_id, "data_dir": str(data_dir / reg.device_id)},
        "broker": {"url": reg.url},
        "publish": {"sample_interval_s": interval, "health_interval_s": interval * 3},
        "collectors": [],
    })


def run_fleet(fleet_url: str, token: str, count: int, interval: float,
              duration: Optional[float], prefix: Optional[str] = None,
              data_dir: Optional[str] = None, seed: int = 1) -> Dict[str, int]:
    rng = random.Random(seed)
    prefix = prefix or f"sim-{secrets.token_hex(2)}"
    root = Path(data_dir or tempfile.mkdtemp(prefix="simpul-sim-"))
    reactor = Reactor()
    boxes: List[Box] = []
    with httpx.Client(base_url=fleet_url, headers={"Authorization": f"Bearer {token}"},
                      timeout=30) as api:
        for n in range(1, count + 1):
            reg = register(api, f"{prefix}-{n:04d}", rng)
            config = box_config(reg, root, interval)
            collector = ShapedCollector(seed * 100003 + n, reg.kind)
            boxes.append(Box(config, reactor, reg.password, collectors=[collector]))
    for box in boxes:
        box.start()
    log.info("%d virtual boxes running (outboxes under %s)", len(boxes), root)
    try:
        reactor.run(timeout=duration)
    finally:
        for box in boxes:
            box.stop()
            box.outbox.close()
    return {"boxes": len(boxes)}
