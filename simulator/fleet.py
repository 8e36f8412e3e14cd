"""A fleet of virtual boxes in one process: the agent's own Box, outbox and link, many on
one reactor. Each box has its own MQTT connection and credentials, registered through
the fleet API like a real one."""

import logging
import random
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import httpx

from agent.config import AgentConfig
from agent.control.builtin import RecentLog
from agent.daemon import Agent, build_agent
from agent.reactor import Reactor

log = logging.getLogger("simpul.sim.fleet")

KINDS = ("wifi", "cctv", "sensor")
DISTRICTS = ("Kota Barat", "Kota Timur", "Kota Utara", "Kota Selatan", "Kota Tengah")


class SimError(Exception):
    """The simulator cannot go on; the message says why."""


def simulated_tier(tier: Optional[Dict[str, Any]]) -> Optional[Dict[str, float]]:
    """A virtual box has no interface to shape: it reports the tier as applied."""
    if tier is None:
        return None
    return {k: float(v) for k, v in tier.items() if k in ("down_mbps", "up_mbps",
                                                          "per_client_mbps") and v is not None}


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


def box_config(reg: Registered, data_dir: Path, interval: float, seed: int) -> AgentConfig:
    return AgentConfig.model_validate({
        "device": {"device_id": reg.device_id, "data_dir": str(data_dir / reg.device_id)},
        "broker": {"url": reg.url},
        "publish": {"sample_interval_s": interval, "health_interval_s": interval * 3},
        "collectors": [{"type": "synthetic", "name": "sim", "shape": "city", "seed": seed},
                       {"type": "synthetic", "name": "board", "shape": "box", "seed": seed,
                        "stream": "health"}],
    })


def run_fleet(fleet_url: str, token: str, count: int, interval: float,
              duration: Optional[float], prefix: Optional[str] = None,
              data_dir: Optional[str] = None, seed: int = 1) -> Dict[str, int]:
    rng = random.Random(seed)
    prefix = prefix or f"sim-{secrets.token_hex(2)}"
    root = Path(data_dir or tempfile.mkdtemp(prefix="simpul-sim-"))
    reactor = Reactor()
    boxes: List[Agent] = []
    recent = RecentLog()
    with httpx.Client(base_url=fleet_url, headers={"Authorization": f"Bearer {token}"},
                      timeout=30) as api:
        for n in range(1, count + 1):
            reg = register(api, f"{prefix}-{n:04d}", rng)
            config = box_config(reg, root, interval, seed * 100003 + n)
            boxes.append(build_agent(config, reactor, reg.password, recent_log=recent,
                                     tier_applier=simulated_tier))
    for box in boxes:
        box.start()
    log.info("%d virtual boxes running (outboxes under %s)", len(boxes), root)
    try:
        reactor.run(timeout=duration)
    finally:
        for box in boxes:
            box.stop()
    return {"boxes": len(boxes)}
