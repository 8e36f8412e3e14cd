"""A device's telemetry as the API reads it: a page of records as JSON bytes (the stored
JSON text passed through), its per-minute and per-hour rollups, and the tier upgrade
report (each point's p95 use of its tier). The routes (fleet_api/api/routes/devices.py,
reports.py) parse and shape."""

import json
import math
from datetime import datetime, timedelta
from typing import Any, Dict, List, Optional

from pydantic_core import to_json
from sqlalchemy import Text, cast, select
from sqlalchemy.engine import Engine

from fleet_api.db import devices, iso, records, rollup_1h, rollup_1m, to_naive_utc, utcnow
from fleet_api.devices.registry import NoDevice, exists

RX, TX = "tier_down_mbps", "tier_up_mbps"  # from the tier_usage collector


def finite_json(stored: Optional[str]) -> bytes:
    """Stored JSON text as it is, unless an older fleet wrote NaN or Infinity into it
    (SQLite kept them; no JSON reader takes them): then without those values."""
    text = stored or "{}"
    if "NaN" not in text and "Infinity" not in text:  # the common case: a substring test
        return text.encode()
    value = json.loads(text)
    if isinstance(value, dict):
        value = {k: v for k, v in value.items()
                 if not (isinstance(v, float) and not math.isfinite(v))}
    return to_json(value, inf_nan_mode="null")


def telemetry_page(engine: Engine, device_id: str, stream: str, since: Optional[datetime],
                   until: Optional[datetime], limit: int, by: str = "ts") -> bytes:
    """A page of the device's records of `stream` as the JSON body {"data", "count"},
    filtered and ordered on the box's time (by="ts") or the fleet's receive time
    (by="received_at"); NoDevice when there is no such device."""
    # metrics and sources leave the database as the JSON text they were stored as and go
    # into the page as they are: decoding and encoding them again was most of the time.
    query = select(records.c.seq, records.c.epoch, records.c.stream, records.c.ts,
                   records.c.received_at, cast(records.c.metrics, Text),
                   cast(records.c.sources, Text), records.c.gap_to).where(
        records.c.device_id == device_id, records.c.stream == stream)
    when = records.c.received_at if by == "received_at" else records.c.ts
    if since is not None:
        query = query.where(when >= to_naive_utc(since))
    if until is not None:
        query = query.where(when < to_naive_utc(until))
    with engine.connect() as conn:
        if not exists(conn, device_id):
            raise NoDevice(f"no device {device_id}")
        rows = conn.execute(query.order_by(when, records.c.seq).limit(limit)).fetchall()
    parts = []
    for seq, epoch, stream_, ts, received, metrics, sources, gap in rows:
        head = to_json({"seq": seq, "epoch": epoch, "stream": stream_, "ts": iso(ts) or "",
                        "received_at": iso(received) or "", "gap_to": gap})
        parts.append(b"".join((head[:-1], b',"metrics":', finite_json(metrics),
                               b',"sources":', finite_json(sources), b"}")))
    return b"".join((b'{"data":[', b",".join(parts), b'],"count":', str(len(parts)).encode(),
                     b"}"))


def rollups(engine: Engine, device_id: str, resolution: str, stream: str,
            since: Optional[datetime], until: Optional[datetime], metric: Optional[str],
            limit: int) -> List[Dict[str, Any]]:
    """Per-minute (resolution "1m") or per-hour ("1h") buckets, oldest first, at most
    `limit`: {"bucket": iso time, "metrics": {name: {count, mean, min, max}}}; NoDevice
    when there is no such device."""
    table = rollup_1m if resolution == "1m" else rollup_1h
    query = select(table).where(table.c.device_id == device_id, table.c.stream == stream)
    if since is not None:
        query = query.where(table.c.bucket >= to_naive_utc(since))
    if until is not None:
        query = query.where(table.c.bucket < to_naive_utc(until))
    if metric is not None:
        query = query.where(table.c.metric == metric)
    with engine.connect() as conn:
        if not exists(conn, device_id):
            raise NoDevice(f"no device {device_id}")
        rows = conn.execute(query.order_by(table.c.bucket).limit(limit * 50)).fetchall()
    buckets: Dict[datetime, Dict[str, Dict[str, Any]]] = {}
    for r in rows:
        buckets.setdefault(r.bucket, {})[r.metric] = {
            "count": r._mapping["count"], "mean": r.sum / r._mapping["count"], "min": r.min,
            "max": r.max}
    return [{"bucket": iso(b) or "", "metrics": m} for b, m in sorted(buckets.items())][:limit]


def p95(values: List[float]) -> Optional[float]:
    """Nearest-rank 95th percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def upgrade_report(engine: Engine, days: float, district: Optional[str] = None
                   ) -> Dict[str, Any]:
    """Each point's p95 use of its tier over `days`, ranked, highest first: the 95th
    percentile of the per-minute mean `tier_down_mbps` (health stream), over the tier's
    down rate; and the districts summarised. {"days", "generated_at", "data",
    "districts"}, the rows as dicts."""
    now = utcnow()
    since = now - timedelta(days=days)
    series: Dict[str, Dict[str, List[float]]] = {}
    dev_q = select(devices.c.device_id, devices.c.site, devices.c.district,
                   devices.c.tier_mbps, devices.c.tier_applied_mbps)
    if district is not None:
        dev_q = dev_q.where(devices.c.district == district)
    with engine.connect() as conn:
        points = conn.execute(dev_q).fetchall()
        for r in conn.execute(select(rollup_1m.c.device_id, rollup_1m.c.metric,
                                     rollup_1m.c.sum, rollup_1m.c.count)
                              .where(rollup_1m.c.metric.in_([RX, TX]),
                                     rollup_1m.c.stream == "health",
                                     rollup_1m.c.bucket >= since)):
            mean = r.sum / r._mapping["count"]
            series.setdefault(r.device_id, {RX: [], TX: []})[r.metric].append(mean)
    data: List[Dict[str, Any]] = []
    for p in points:
        s = series.get(p.device_id, {RX: [], TX: []})
        rx, tx = p95(s[RX]), p95(s[TX])
        tier = p.tier_applied_mbps or p.tier_mbps
        use = round(rx / tier, 4) if rx is not None and tier else None
        data.append({"device_id": p.device_id, "site": p.site, "district": p.district,
                     "tier_mbps": p.tier_mbps, "tier_applied_mbps": p.tier_applied_mbps,
                     "p95_rx_mbps": rx, "p95_tx_mbps": tx, "p95_use": use,
                     "minutes": len(s[RX])})
    data.sort(key=lambda d: (d["p95_use"] is None, -(d["p95_use"] or 0), d["device_id"]))
    by_district: Dict[str, List[Dict[str, Any]]] = {}
    for row in data:
        by_district.setdefault(row["district"], []).append(row)
    districts: List[Dict[str, Any]] = []
    for name, rows in by_district.items():
        uses = [r["p95_use"] for r in rows if r["p95_use"] is not None]
        districts.append({
            "district": name, "points": len(rows),
            "mean_p95_use": round(sum(uses) / len(uses), 4) if uses else None,
            "saturated": sum(1 for u in uses if u >= 0.8)})
    districts.sort(key=lambda d: (d["mean_p95_use"] is None, -(d["mean_p95_use"] or 0)))
    return {"days": days, "generated_at": iso(now) or "", "data": data,
            "districts": districts}
