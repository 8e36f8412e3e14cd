"""/metrics: the fleet gauges from the database (presence as the device API decides it,
backlog and refused records per district and of the 20 worst boxes only, the broker
connection, webhook failures), served from a cache (a second scrape runs no query); and
the shipped alert rules and Grafana dashboard: `promtool check rules`, and every metric
they name exported. On SQLite and PostgreSQL (the `db_url` fixture)."""

import json
import re
import shutil
import statistics
import subprocess
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, Iterator, List, Set, Tuple

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, update
from sqlalchemy.engine import Engine

import fleet_api
from fleet_api.auth import create_token
from fleet_api.db import (
    deliveries,
    devices,
    make_engine,
    migrate,
    rollup_1m,
    utcnow,
    webhooks,
    workers,
)
from fleet_api.deps import Services
from fleet_api.main import create_app
from fleet_api.metrics import FLEET, WORST
from fleet_api.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

OPS = Path(fleet_api.__file__).parent / "ops"
RULES = OPS / "prometheus-rules.yml"
DASHBOARD = OPS / "grafana-dashboard.json"
TIMEOUT_S = 120.0

Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


@pytest.fixture
def fleet(db_url: str) -> Iterator[Tuple[Engine, TestClient, str]]:
    engine = make_engine(db_url)
    migrate(engine)
    token = create_token(engine, "viewer")
    app = create_app(Services(engine=engine, settings=Settings(
        db_url=db_url, heartbeat_timeout_s=TIMEOUT_S)))
    with TestClient(app) as client:
        yield engine, client, token
    FLEET.refresh_s = 15.0
    deadline = time.monotonic() + 10
    while FLEET._running and time.monotonic() < deadline:  # a pass still on this engine
        time.sleep(0.02)
    engine.dispose()


def add(engine: Engine, device_id: str, district: str, state: str, seen_ago_s: float,
        rejected: int = 0) -> None:
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(devices.insert().values(
            device_id=device_id, site=device_id, kind="wifi", district=district, lat=0,
            lon=0, tags=[], password_hash="x", created_at=now, state=state,
            last_seen=now - timedelta(seconds=seen_ago_s), desired={}, desired_version=0,
            reported={}, rejected_count=rejected))


def depth(engine: Engine, device_id: str, minutes_ago: int, value: float) -> None:
    bucket = (utcnow() - timedelta(minutes=minutes_ago)).replace(second=0, microsecond=0)
    with engine.begin() as conn:
        conn.execute(rollup_1m.insert().values(
            device_id=device_id, stream="health", metric="outbox_depth", bucket=bucket,
            count=1, sum=value, min=value, max=value))


def ingest_beat(engine: Engine, connected: bool) -> None:
    with engine.begin() as conn:
        done = conn.execute(update(workers).where(workers.c.name == "ingest_1")
                            .values(connected=connected, beat_at=utcnow()))
        if not done.rowcount:
            conn.execute(workers.insert().values(name="ingest_1", connected=connected,
                                                 beat_at=utcnow()))


def samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def named(found: Samples, name: str) -> Dict[Tuple[Tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in found.items() if n == name}


class Queries:
    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._one)

    def _one(self, *_args: Any) -> None:
        self.count += 1


def seed(engine: Engine) -> None:
    add(engine, "barat-on", "Barat", "online", 10, rejected=3)
    add(engine, "barat-stale", "Barat", "online", TIMEOUT_S + 60)  # silent: offline
    add(engine, "barat-off", "Barat", "offline", 900)
    add(engine, "timur-new", "Timur", "unknown", 0)
    for i in range(WORST + 5):  # more boxes with a backlog and refusals than are named
        add(engine, f"utara-{i:02d}", "Utara", "online", 5, rejected=i + 1)
        depth(engine, f"utara-{i:02d}", 1, 100.0 * (i + 1))
        depth(engine, f"utara-{i:02d}", 3, 1.0)  # older minute: not the box's backlog
    depth(engine, "barat-on", 40, 9999)  # too old to stand for a backlog now
    with engine.begin() as conn:
        hook = conn.execute(webhooks.insert().values(
            name="posko", url="http://127.0.0.1:9/", secret="s", categories=["all"],
            active=True, created_at=utcnow())).inserted_primary_key[0]
        for status in ("failed", "failed", "pending", "delivered"):
            conn.execute(deliveries.insert().values(
                webhook_id=hook, event_id=1, body="{}", status=status, attempts=8,
                next_at=utcnow(), created_at=utcnow()))


def test_fleet_gauges_agree_with_the_api_and_come_from_the_cache(
        fleet: Tuple[Engine, TestClient, str]) -> None:
    engine, client, token = fleet
    seed(engine)
    ingest_beat(engine, connected=True)
    queries = Queries(engine)

    first = client.get("/metrics")
    assert first.status_code == 200
    assert queries.count > 0
    found = samples(first.text)

    # Presence as the device API answers it, per state and district.
    api: Dict[Tuple[str, str], float] = {}
    listed = client.get("/api/v1/devices?limit=1000",
                        headers={"Authorization": f"Bearer {token}"}).json()["data"]
    for d in listed:
        key = (d["district"], d["state"])
        api[key] = api.get(key, 0) + 1
    gauges = {(dict(labels)["district"], dict(labels)["state"]): v
              for labels, v in named(found, "simpul_devices").items() if v}
    assert gauges == api
    assert gauges[("Barat", "online")] == 1 and gauges[("Barat", "offline")] == 2
    assert named(found, "simpul_devices")[(("district", "Timur"), ("state", "online"))] == 0
    assert found[("simpul_devices_online", ())] == sum(d["online"] for d in listed) == 26
    assert found[("simpul_broker_up", ())] == 1
    assert found[("simpul_ingest_workers_connected", ())] == 1

    backlog = named(found, "simpul_outbox_backlog_records")
    assert backlog[(("district", "Utara"),)] == sum(100.0 * (i + 1) for i in range(WORST + 5))
    assert backlog[(("district", "Barat"),)] == 0  # its only minute is too old
    worst = named(found, "simpul_outbox_backlog_worst_records")
    assert len(worst) == WORST
    assert min(worst.values()) == 600.0  # boxes 05..24; the 5 smallest are left out
    assert {dict(labels)["district"] for labels in worst} == {"Utara"}

    refused = named(found, "simpul_device_rejected_records")
    assert refused[(("district", "Barat"),)] == 3
    assert refused[(("district", "Utara"),)] == sum(range(1, WORST + 6))
    refused_worst = named(found, "simpul_device_rejected_records_worst")
    assert len(refused_worst) == WORST
    assert (("device_id", "barat-on"), ("district", "Barat")) not in refused_worst

    assert found[("simpul_webhook_delivery_failures_total", (("webhook", "posko"),))] == 2
    assert found[("simpul_webhook_deliveries_pending", (("webhook", "posko"),))] == 1
    assert found[("simpul_fleet_metrics_age_seconds", ())] < 15

    # Cached: later scrapes read no row, and take well under 10 ms.
    queries.count = 0
    assert client.get("/metrics").status_code == 200
    took: List[float] = []
    for _ in range(7):
        started = time.perf_counter()
        generate_latest()
        took.append(time.perf_counter() - started)
    assert queries.count == 0
    assert statistics.median(took) < 0.010, took

    # The broker lost: every box unknown, at the next pass.
    ingest_beat(engine, connected=False)
    assert FLEET.refresh()
    found = samples(client.get("/metrics").text)
    assert found[("simpul_broker_up", ())] == 0
    assert found[("simpul_devices_online", ())] == 0
    states = {dict(labels)["state"] for labels, v in named(found, "simpul_devices").items() if v}
    assert states == {"unknown"}


def test_a_stale_cache_is_served_while_one_pass_runs_behind_it(
        fleet: Tuple[Engine, TestClient, str]) -> None:
    engine, client, _ = fleet
    add(engine, "barat-on", "Barat", "online", 10)
    ingest_beat(engine, connected=True)
    client.get("/metrics")
    add(engine, "barat-2", "Barat", "online", 10)
    FLEET.refresh_s = 0.0  # stale at once
    found = samples(client.get("/metrics").text)
    assert found[("simpul_devices_online", ())] == 1  # the old cache, not waited for
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = samples(generate_latest().decode())
        if found[("simpul_devices_online", ())] == 2:
            break
        time.sleep(0.05)
    assert found[("simpul_devices_online", ())] == 2


def test_alert_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run scripts/setup-system.sh (.ci/apt/fleet.txt)")
    run = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def _exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query", "definition") and isinstance(value, str):
                yield value
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def _names(text: str) -> Set[str]:
    return set(re.findall(r"\bsimpul_[a-z0-9_]+", text))


def test_rules_and_dashboard_name_only_exported_metrics(
        fleet: Tuple[Engine, TestClient, str]) -> None:
    engine, client, _ = fleet
    seed(engine)
    ingest_beat(engine, connected=True)
    client.get("/healthz")  # a request observed by the latency histogram
    exported = {name for name, _labels in samples(client.get("/metrics").text)}

    rules = RULES.read_text()
    exprs = [line for line in rules.splitlines() if not line.lstrip().startswith("#")]
    in_rules = _names("\n".join(exprs))
    in_dashboard = set().union(*(_names(e) for e in _exprs(json.loads(DASHBOARD.read_text()))))
    assert len(in_rules) >= 8 and len(in_dashboard) >= 10
    assert in_rules - exported == set()
    assert in_dashboard - exported == set()
    for name in ("simpul_devices", "simpul_outbox_backlog_worst_records", "simpul_broker_up",
                 "simpul_webhook_delivery_failures_total"):
        assert name in in_rules | in_dashboard
