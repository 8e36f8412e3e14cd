"""Prometheus metrics of the fleet service.

Two kinds. The process's own counters and histograms (ingest, HTTP) are updated as things
happen. The fleet's state (devices per district and presence, outbox backlog, rejected
records, the broker connection, webhook deliveries) lives in the database: `FLEET`
computes it at most every `REFRESH_S` seconds into a cache, and a scrape only reads that
cache, so `/metrics` answers in about a millisecond however large the fleet, and any
number of scrapers cost the database one pass per `REFRESH_S`. A scrape that finds the
cache stale serves it as it is and starts one refresh in the background; only the first
scrape after `bind` waits for a pass. `simpul_fleet_metrics_age_seconds` tells how old
what a scrape saw is (fleet_api/ops/ has the alert on it).

Per-box series are bounded: backlog and rejected records per district, and only the
`WORST` boxes of each by name, never one series per box of a fleet of thousands.
"""

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Dict, Iterable, Iterator, List, Optional, Tuple, Union

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from fleet_api.db import deliveries, devices, rollup_1m, utcnow, webhooks, workers
from fleet_api.ingest.presence import INGEST_BEAT_STALE_S, ingest_alive, presence

log = logging.getLogger("simpul.metrics")

MESSAGES_INGESTED = Counter("simpul_ingest_messages_total", "MQTT messages ingested")
RECORDS_STORED = Counter("simpul_ingest_records_stored_total", "records newly stored")
PAYLOADS_REJECTED = Counter("simpul_ingest_rejected_total", "payloads refused by ingest")
INGEST_DB_ERRORS = Counter("simpul_ingest_db_errors_total", "failed ingest commits")
HTTP_LATENCY = Histogram("simpul_http_request_seconds", "HTTP request latency", ["route"])
REFRESH_ERRORS = Counter("simpul_fleet_metrics_refresh_errors",
                         "passes over the database for the fleet metrics that failed")

REFRESH_S = 15.0  # at most one pass over the database this often
WORST = 20  # boxes named per metric: the worst only
# A box's backlog is the outbox_depth of its newest health minute (rollup_1m) this recent;
# a box silent for longer counts as offline in simpul_devices, not as a backlog.
BACKLOG_WINDOW = timedelta(minutes=15)
STATES = ("online", "offline", "unknown")  # each district has all three, zero or not


@dataclass
class _Source:
    engine: Engine
    timeout_s: float  # the API's heartbeat_timeout_s: the same presence


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


Family = Union[GaugeMetricFamily, CounterMetricFamily]


def _families() -> Dict[str, Family]:
    """The cached families, empty: what `describe` names and each pass fills."""
    return {f.name: f for f in (
        _gauge("simpul_devices_online",
               "devices online, presence as the device API decides it"),
        _gauge("simpul_devices", "devices per district and presence state "
               "(online, offline, unknown: the rule of the device API)",
               ["district", "state"]),
        _gauge("simpul_outbox_backlog_records",
               "records waiting in the outboxes of a district's boxes (newest health "
               "minute of each box heard in the last 15 min)", ["district"]),
        _gauge("simpul_outbox_backlog_worst_records",
               f"outbox backlog of the {WORST} boxes with the largest one",
               ["device_id", "district"]),
        _gauge("simpul_device_rejected_records",
               "records of a district's boxes refused by the fleet, since registration",
               ["district"]),
        _gauge("simpul_device_rejected_records_worst",
               f"records refused, of the {WORST} boxes with the most",
               ["device_id", "district"]),
        _gauge("simpul_broker_up",
               "1 when an ingest worker is connected to the broker and beat in the "
               f"last {INGEST_BEAT_STALE_S:g} s; 0 means presence is unknown"),
        _gauge("simpul_ingest_workers_connected",
               "ingest workers connected to the broker with a recent beat"),
        CounterMetricFamily("simpul_webhook_delivery_failures",
                            "webhook deliveries given up after every retry", labels=["webhook"]),
        _gauge("simpul_webhook_deliveries_pending",
               "webhook deliveries waiting for their first try or a retry", ["webhook"]),
        _gauge("simpul_fleet_metrics_refresh_seconds",
               "how long the last pass over the database took"),
    )}


def _worst(values: Dict[str, Tuple[float, str]], family: Family) -> None:
    ranked = sorted(((v, d, dist) for d, (v, dist) in values.items() if v > 0),
                    key=lambda t: (-t[0], t[1]))
    for value, device_id, district in ranked[:WORST]:
        family.add_metric([device_id, district], value)


def compute(engine: Engine, timeout_s: float) -> List[Metric]:
    """One pass over the database: the fleet's families."""
    started = time.perf_counter()
    now = utcnow()
    fam = _families()
    with engine.connect() as conn:
        alive = ingest_alive(conn, now)
        connected = conn.execute(
            select(func.count()).select_from(workers)
            .where(workers.c.connected.is_(True),
                   workers.c.beat_at >= now - timedelta(seconds=INGEST_BEAT_STALE_S))
        ).scalar_one()
        boxes = conn.execute(select(devices.c.device_id, devices.c.district, devices.c.state,
                                    devices.c.last_seen, devices.c.rejected_count)).fetchall()
        depth_rows = conn.execute(
            select(rollup_1m.c.device_id, rollup_1m.c.bucket, rollup_1m.c.max)
            .where(rollup_1m.c.metric == "outbox_depth", rollup_1m.c.stream == "health",
                   rollup_1m.c.bucket >= now - BACKLOG_WINDOW)).fetchall()
        names = dict(conn.execute(select(webhooks.c.id, webhooks.c.name)).fetchall())
        hooks = conn.execute(
            select(deliveries.c.webhook_id, deliveries.c.status, func.count())
            .where(deliveries.c.status.in_(("failed", "pending")))
            .group_by(deliveries.c.webhook_id, deliveries.c.status)).fetchall()

    counts: Dict[Tuple[str, str], int] = {}
    rejected: Dict[str, float] = {}  # every district with a box, zero or not
    district_of: Dict[str, str] = {}
    worst_rejected: Dict[str, Tuple[float, str]] = {}
    online = 0
    for box in boxes:
        state, is_online = presence(box.state, box.last_seen, now, timeout_s, alive)
        online += is_online
        district_of[box.device_id] = box.district
        for s in STATES:
            counts.setdefault((box.district, s), 0)
        counts[(box.district, state)] = counts.get((box.district, state), 0) + 1
        rejected[box.district] = rejected.get(box.district, 0.0) + (box.rejected_count or 0)
        worst_rejected[box.device_id] = (float(box.rejected_count or 0), box.district)
    for (district, state), n in sorted(counts.items()):
        fam["simpul_devices"].add_metric([district, state], n)
    for district, total in sorted(rejected.items()):
        fam["simpul_device_rejected_records"].add_metric([district], total)
    _worst(worst_rejected, fam["simpul_device_rejected_records_worst"])

    newest: Dict[str, Tuple[datetime, float]] = {}
    for row in depth_rows:
        seen = newest.get(row.device_id)
        if row.device_id in district_of and math.isfinite(row.max) \
                and (seen is None or row.bucket > seen[0]):
            newest[row.device_id] = (row.bucket, float(row.max))
    backlog = {d: 0.0 for d in rejected}  # every district, zero when nothing waits
    worst_backlog: Dict[str, Tuple[float, str]] = {}
    for device_id, (_bucket, depth) in newest.items():
        backlog[district_of[device_id]] += depth
        worst_backlog[device_id] = (depth, district_of[device_id])
    for district, waiting in sorted(backlog.items()):
        fam["simpul_outbox_backlog_records"].add_metric([district], waiting)
    _worst(worst_backlog, fam["simpul_outbox_backlog_worst_records"])

    fam["simpul_devices_online"].add_metric([], online)
    fam["simpul_broker_up"].add_metric([], 1 if alive else 0)
    fam["simpul_ingest_workers_connected"].add_metric([], connected)
    by_hook: Dict[str, Dict[str, int]] = {
        name: {"failed": 0, "pending": 0} for name in names.values()}
    for webhook_id, status, n in hooks:
        name = names.get(webhook_id, f"deleted-{webhook_id}")
        by_hook.setdefault(name, {"failed": 0, "pending": 0})[status] += n
    for name, n_by in sorted(by_hook.items()):
        fam["simpul_webhook_delivery_failures"].add_metric(
            [name], n_by["failed"])
        fam["simpul_webhook_deliveries_pending"].add_metric(
            [name], n_by["pending"])
    fam["simpul_fleet_metrics_refresh_seconds"].add_metric(
        [], time.perf_counter() - started)
    return list(fam.values())


class FleetMetrics(Collector):
    """The fleet's state from the database, cached; registered once in the default
    registry, bound to the app's engine by `create_app`."""

    def __init__(self, refresh_s: float = REFRESH_S) -> None:
        self.refresh_s = refresh_s
        self._source: Optional[_Source] = None
        self._cached: List[Metric] = []
        self._at: Optional[float] = None  # monotonic time of the last good pass
        self._tried = -math.inf  # monotonic time of the last pass, good or not
        self._lock = threading.Lock()
        self._running = False

    def bind(self, engine: Engine, timeout_s: float) -> None:
        with self._lock:
            self._source = _Source(engine, timeout_s)
            self._cached, self._at, self._tried = [], None, -math.inf

    def refresh(self) -> bool:
        """One pass now (the caller's thread); False when it failed (logged, counted)."""
        source = self._source
        if source is None:
            return False
        try:
            families = compute(source.engine, source.timeout_s)
        except Exception as exc:  # a scrape must never fail for it
            REFRESH_ERRORS.inc()
            log.warning("cannot compute the fleet metrics: %s", exc)
            return False
        finally:
            self._tried = time.monotonic()
        with self._lock:
            if self._source is source:  # not rebound meanwhile
                self._cached, self._at = families, time.monotonic()
        return True

    def _background(self) -> None:
        try:
            self.refresh()
        finally:
            self._running = False

    def describe(self) -> Iterator[Metric]:
        yield from _families().values()
        yield _gauge("simpul_fleet_metrics_age_seconds", "")

    def collect(self) -> Iterator[Metric]:
        cached, at = self._cached, self._at  # what this scrape serves, unless it is the first
        if self._source is not None and time.monotonic() - self._tried >= self.refresh_s:
            if at is None:
                self.refresh()  # nothing to serve yet: the first scrape waits for one pass
                cached, at = self._cached, self._at
            else:
                with self._lock:
                    start, self._running = not self._running, True
                if start:
                    threading.Thread(target=self._background, name="fleet-metrics",
                                     daemon=True).start()
        yield from cached
        age = _gauge("simpul_fleet_metrics_age_seconds",
                     "seconds since the fleet metrics were last computed from the database")
        if at is not None:
            age.add_metric([], time.monotonic() - at)
        yield age


FLEET = FleetMetrics()
REGISTRY.register(FLEET)
