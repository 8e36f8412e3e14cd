"""A fleet of virtual boxes in one process: the agent's own Box, outbox, link and twin,
many on one reactor (one thread, one epoll). Each box has its own MQTT connection and
credentials, registered through the fleet API like a real one.

City scale (10,000 boxes on a 2-core machine):
- registration goes through `POST /api/v1/devices/bulk` in chunks, so the broker
  reloads its password file once per chunk, not once per box;
- credentials can be kept in a file (`--credentials`), so a second run skips it;
- outboxes and command ledgers live in memory (see simulator/virtual.py);
- the open-file limit is raised to what the boxes need;
- boxes connect in a ramp with jitter, so the broker is not stormed.
"""

import json
import logging
import os
import random
import resource
import secrets
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import httpx

from agent.control.builtin import RecentLog
from agent.reactor import Reactor
from simpul_wire.config import AgentConfig
from simulator.errors import SimError
from simulator.virtual import VirtualBox

log = logging.getLogger("simpul.sim.fleet")

KINDS = ("wifi", "cctv", "sensor")
DISTRICTS = ("Kota Barat", "Kota Timur", "Kota Utara", "Kota Selatan", "Kota Tengah")
BULK_CHUNK = 1000


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
    district: str


def raise_nofile(wanted: int) -> int:
    """Raise the soft open-file limit (and the hard one when root) to `wanted`; return
    what we got. Each box holds one socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            wanted = hard  # not root: the hard limit is as far as we may go
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


def device_specs(prefix: str, count: int, rng: random.Random) -> List[Dict[str, Any]]:
    specs = []
    for n in range(1, count + 1):
        district = DISTRICTS[rng.randrange(len(DISTRICTS))]
        specs.append({"device_id": f"{prefix}-{n:04d}", "site": f"Titik {prefix}-{n:04d}",
                      "kind": KINDS[rng.randrange(len(KINDS))], "district": district,
                      "lat": round(-6.2 + rng.uniform(-0.05, 0.05), 5),
                      "lon": round(106.8 + rng.uniform(-0.05, 0.05), 5), "tags": ["simulated"]})
    return specs


def _post(api: httpx.Client, path: str, body: Dict[str, Any]) -> httpx.Response:
    try:
        resp = api.post(path, json=body)
    except httpx.HTTPError as exc:
        raise SimError(f"cannot reach the fleet API: {exc}") from exc
    if resp.status_code == 401:
        raise SimError("the fleet API refused the token (401)")
    if resp.status_code != 201:
        raise SimError(f"registration failed: {resp.status_code} {resp.text[:200]}")
    return resp


def register_all(api: httpx.Client, specs: List[Dict[str, Any]], chunk: int = BULK_CHUNK
                 ) -> List[Registered]:
    """Bulk registration, `chunk` devices a request: one transaction and one broker
    reload each. A single box goes through the plain endpoint."""
    out: List[Registered] = []
    by_id = {s["device_id"]: s for s in specs}
    if len(specs) == 1:
        mqtt = _post(api, "/api/v1/devices", specs[0]).json()["mqtt"]
        return [Registered(specs[0]["device_id"], mqtt["password"], mqtt["url"],
                           specs[0]["kind"], specs[0]["district"])]
    for i in range(0, len(specs), chunk):
        part = specs[i:i + chunk]
        data = _post(api, "/api/v1/devices/bulk", {"devices": part}).json()["data"]
        for item in data:
            spec = by_id[item["device_id"]]
            out.append(Registered(item["device_id"], item["mqtt"]["password"],
                                  item["mqtt"]["url"], spec["kind"], spec["district"]))
        log.info("registered %d/%d boxes", len(out), len(specs))
    return out


def load_or_register(api: httpx.Client, specs: List[Dict[str, Any]],
                     credentials: Optional[str]) -> List[Registered]:
    """With a credentials file that exists, reuse it (a second run registers nothing)."""
    if credentials and Path(credentials).exists():
        rows = json.loads(Path(credentials).read_text())
        regs = [Registered(**r) for r in rows]
        if len(regs) < len(specs):
            raise SimError(f"{credentials} holds {len(regs)} boxes, fewer than asked")
        return regs[:len(specs)]
    regs = register_all(api, specs)
    if credentials:
        fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump([asdict(r) for r in regs], fh)
    return regs


def box_config(reg: Registered, data_dir: Path, interval: float, seed: int,
               health_interval: Optional[float] = None, keepalive: int = 60,
               resend_after: float = 30.0) -> AgentConfig:
    rain_seed = DISTRICTS.index(reg.district) if reg.district in DISTRICTS else 0
    return AgentConfig.model_validate({
        "device": {"device_id": reg.device_id, "data_dir": str(data_dir / reg.device_id)},
        "broker": {"url": reg.url, "keepalive_s": keepalive},
        "publish": {"sample_interval_s": interval,
                    "health_interval_s": health_interval or interval * 3},
        "outbox": {"resend_after_s": resend_after},
        "collectors": [{"type": "synthetic", "name": "sim", "shape": "city", "seed": seed,
                        "rain_seed": rain_seed},
                       {"type": "synthetic", "name": "board", "shape": "box", "seed": seed,
                        "stream": "health"}],
    })


@dataclass
class FleetOptions:
    count: int
    interval: float = 10.0
    health_interval: Optional[float] = None
    duration: Optional[float] = None
    prefix: Optional[str] = None
    data_dir: Optional[str] = None
    seed: int = 1
    ramp_per_s: float = 500.0
    in_memory: bool = True
    credentials: Optional[str] = None
    drain_s: float = 0.0
    report: Optional[str] = None
    scenario: Optional[str] = None
    broker_data: Optional[str] = None
    keepalive: int = 60
    resend_after: float = 30.0


class Fleet:
    """The running simulation: boxes on one reactor, plus what scenarios need."""

    def __init__(self, opts: FleetOptions, regs: List[Registered], root: Path,
                 api_url: str, token: str) -> None:
        self.opts = opts
        self.root = root
        self.api_url = api_url
        self.token = token
        self.reactor = Reactor()
        self.rng = random.Random(opts.seed)
        recent = RecentLog()
        self.regs = regs
        self.boxes: List[VirtualBox] = []
        for n, reg in enumerate(regs, start=1):
            config = box_config(reg, root, opts.interval, opts.seed * 100003 + n,
                                opts.health_interval, opts.keepalive, opts.resend_after)
            self.boxes.append(VirtualBox(config, self.reactor, reg.password, recent,
                                         simulated_tier, in_memory=opts.in_memory))
        self.district = {reg.device_id: reg.district for reg in regs}
        self.draining = False

    def start_ramp(self) -> float:
        """Start the boxes about `ramp_per_s` a second in a shuffled order, in small jittered
        batches; when the loop falls behind (a busy machine), the batches shrink, so
        sockets already open keep being served (their CONNACKs read, keepalives kept).
        Returns the planned duration."""
        order = list(self.boxes)
        self.rng.shuffle(order)
        tick = 0.1
        per_tick = max(1, round(self.opts.ramp_per_s * tick))
        state = {"i": 0, "due": self.reactor.monotonic()}

        def step() -> None:
            if self.draining:
                log.info("ramp stopped for the drain: %d of %d boxes started", state["i"],
                         len(order))
                return
            late = self.reactor.monotonic() - state["due"]
            n = per_tick if late < 0.5 else max(1, per_tick // 4)
            i = int(state["i"])
            for box in order[i:i + n]:
                box.start()
            state["i"] = i + n
            if state["i"] < len(order):
                delay = tick * self.rng.uniform(0.5, 1.5)
                state["due"] = self.reactor.monotonic() + delay
                self.reactor.call_later(delay, step)
            else:
                log.info("all %d boxes started", len(order))

        self.reactor.call_later(0.0, step)
        return len(order) / self.opts.ramp_per_s

    def connected(self) -> int:
        return sum(1 for b in self.boxes if b.agent is not None and b.agent.box.link.connected)

    def in_district(self, district: str) -> List[VirtualBox]:
        return [b for b in self.boxes if self.district[b.device_id] == district]

    def stop_sampling(self) -> None:
        """For the drain: no box samples from now on, also one that starts or reboots."""
        self.draining = True
        for box in self.boxes:
            box.sampling = False
            if box.agent is not None:
                box.agent.box.sampler.stop_schedule()

    def pending(self) -> int:
        return sum(b.outbox.depth() for b in self.boxes)

    def report(self) -> Dict[str, Any]:
        return {"boxes": {b.device_id: b.report() for b in self.boxes},
                "connected": self.connected(), "pending": self.pending(),
                "reactor_errors": self.reactor.errors}

    def close(self) -> None:
        for box in self.boxes:
            box.close()


def drain(fleet: Fleet, timeout: float) -> None:
    """Stop sampling and run until every outbox is empty (all confirmed), or timeout."""
    fleet.stop_sampling()

    def check() -> None:
        if fleet.pending() == 0:
            fleet.reactor.stop()

    timer = fleet.reactor.call_every(1.0, check, first=0.5)
    fleet.reactor.run(timeout=timeout)
    timer.cancel()


def run_fleet(fleet_url: str, token: str, opts: FleetOptions) -> Dict[str, Any]:
    rng = random.Random(opts.seed)
    prefix = opts.prefix or f"sim-{secrets.token_hex(2)}"
    root = Path(opts.data_dir or tempfile.mkdtemp(prefix="simpul-sim-"))
    got = raise_nofile(opts.count + 1024)
    if got < opts.count + 64:
        raise SimError(f"the open-file limit is {got}: too low for {opts.count} boxes "
                       f"(raise it with `ulimit -n {opts.count + 1024}`)")
    scenario = None
    if opts.scenario:
        from simulator.scenario import load_scenario

        scenario = load_scenario(opts.scenario)
        if scenario.seed is not None:
            rng = random.Random(scenario.seed)
    specs = device_specs(prefix, opts.count, rng)
    with httpx.Client(base_url=fleet_url, headers={"Authorization": f"Bearer {token}"},
                      timeout=120) as api:
        regs = load_or_register(api, specs, opts.credentials)
    fleet = Fleet(opts, regs, root, fleet_url, token)
    ramp = fleet.start_ramp()
    log.info("%d virtual boxes starting over %.0f s (outboxes %s)", len(fleet.boxes), ramp,
             "in memory" if opts.in_memory else f"under {root}")
    if scenario is not None:
        from simulator.scenario import schedule

        schedule(scenario, fleet)
    fleet.reactor.call_every(30.0, lambda: log.info(
        "%d/%d boxes connected, %d records pending", fleet.connected(), len(fleet.boxes),
        fleet.pending()), first=30.0)
    try:
        fleet.reactor.run(timeout=opts.duration)
        if opts.drain_s > 0:
            drain(fleet, opts.drain_s)
        summary = fleet.report()
        if opts.report:
            Path(opts.report).write_text(json.dumps(summary) + "\n")
    finally:
        fleet.close()
        fleet.reactor.run(timeout=0.5)  # let the DISCONNECTs out
        if opts.data_dir is None:
            shutil.rmtree(root, ignore_errors=True)  # ours: a temp dir of 10,000 box dirs
    return {"boxes": len(fleet.boxes), "connected": summary["connected"],
            "pending": summary["pending"]}
