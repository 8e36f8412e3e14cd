"""Rollups of a device's telemetry and the tier upgrade report."""

import math
from datetime import datetime, timedelta
from typing import Dict, List, Literal, Optional

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from fleet_api.db import devices, iso, rollup_1h, rollup_1m, to_naive_utc, utcnow
from fleet_api.deps import DeviceId, ServicesDep, StorableTime, Viewer

router = APIRouter(prefix="/api/v1", tags=["reports"])

RX, TX = "tier_down_mbps", "tier_up_mbps"  # from the tier_usage collector


class Aggregate(BaseModel):
    count: int
    mean: float
    min: float
    max: float


class Bucket(BaseModel):
    bucket: str
    metrics: Dict[str, Aggregate]


class RollupList(BaseModel):
    resolution: str
    data: List[Bucket]
    count: int


class UpgradeRow(BaseModel):
    device_id: str
    site: str
    district: str
    tier_mbps: Optional[float]
    tier_applied_mbps: Optional[float]
    p95_rx_mbps: Optional[float]
    p95_tx_mbps: Optional[float]
    p95_use: Optional[float] = Field(description="p95_rx_mbps / tier (applied, else asked)")
    minutes: int = Field(description="minutes of data behind the figures")


class DistrictRow(BaseModel):
    district: str
    points: int
    mean_p95_use: Optional[float]
    saturated: int = Field(description="points whose p95 use is 80% or more of their tier")


class UpgradeReport(BaseModel):
    days: float
    generated_at: str
    data: List[UpgradeRow]
    districts: List[DistrictRow]


def p95(values: List[float]) -> Optional[float]:
    """Nearest-rank 95th percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


@router.get("/devices/{device_id}/rollups", response_model=RollupList)
def get_rollups(device_id: DeviceId, services: ServicesDep, _who: Viewer,
                resolution: Literal["1m", "1h"] = "1h",
                since: Optional[StorableTime] = None, until: Optional[StorableTime] = None,
                stream: str = Query("telemetry", pattern=r"^[a-z][a-z0-9_]{0,31}$"),
                metric: Optional[str] = Query(None, max_length=64),
                limit: int = Query(2000, ge=1, le=20000)) -> RollupList:
    """Per-minute or per-hour count, mean, min and max of each metric."""
    table = rollup_1m if resolution == "1m" else rollup_1h
    query = select(table).where(table.c.device_id == device_id, table.c.stream == stream)
    if since is not None:
        query = query.where(table.c.bucket >= to_naive_utc(since))
    if until is not None:
        query = query.where(table.c.bucket < to_naive_utc(until))
    if metric is not None:
        query = query.where(table.c.metric == metric)
    with services.engine.connect() as conn:
        if conn.execute(select(devices.c.device_id)
                        .where(devices.c.device_id == device_id)).first() is None:
            raise HTTPException(404, f"no device {device_id}")
        rows = conn.execute(query.order_by(table.c.bucket).limit(limit * 50)).fetchall()
    buckets: Dict[datetime, Dict[str, Aggregate]] = {}
    for r in rows:
        buckets.setdefault(r.bucket, {})[r.metric] = Aggregate(
            count=r._mapping["count"], mean=r.sum / r._mapping["count"], min=r.min, max=r.max)
    data = [Bucket(bucket=iso(b) or "", metrics=m) for b, m in sorted(buckets.items())][:limit]
    return RollupList(resolution=resolution, data=data, count=len(data))


@router.get("/reports/upgrade", response_model=UpgradeReport)
def upgrade_report(services: ServicesDep, _who: Viewer,
                   days: float = Query(7, gt=0, le=35, allow_inf_nan=False),
                   district: Optional[str] = Query(None, max_length=100)) -> UpgradeReport:
    """Each point's p95 use of its tier over `days`, ranked, highest first: the 95th
    percentile of the per-minute mean `tier_down_mbps` (health stream), over the tier's
    down rate. Districts are summarised below it."""
    now = utcnow()
    since = now - timedelta(days=days)
    series: Dict[str, Dict[str, List[float]]] = {}
    dev_q = select(devices.c.device_id, devices.c.site, devices.c.district,
                   devices.c.tier_mbps, devices.c.tier_applied_mbps)
    if district is not None:
        dev_q = dev_q.where(devices.c.district == district)
    with services.engine.connect() as conn:
        points = conn.execute(dev_q).fetchall()
        for r in conn.execute(select(rollup_1m.c.device_id, rollup_1m.c.metric,
                                     rollup_1m.c.sum, rollup_1m.c.count)
                              .where(rollup_1m.c.metric.in_([RX, TX]),
                                     rollup_1m.c.stream == "health",
                                     rollup_1m.c.bucket >= since)):
            mean = r.sum / r._mapping["count"]
            series.setdefault(r.device_id, {RX: [], TX: []})[r.metric].append(mean)
    data = []
    for p in points:
        s = series.get(p.device_id, {RX: [], TX: []})
        rx, tx = p95(s[RX]), p95(s[TX])
        tier = p.tier_applied_mbps or p.tier_mbps
        use = round(rx / tier, 4) if rx is not None and tier else None
        data.append(UpgradeRow(device_id=p.device_id, site=p.site, district=p.district,
                               tier_mbps=p.tier_mbps, tier_applied_mbps=p.tier_applied_mbps,
                               p95_rx_mbps=rx, p95_tx_mbps=tx, p95_use=use,
                               minutes=len(s[RX])))
    data.sort(key=lambda d: (d.p95_use is None, -(d.p95_use or 0), d.device_id))
    by_district: Dict[str, List[UpgradeRow]] = {}
    for row in data:
        by_district.setdefault(row.district, []).append(row)
    districts = []
    for name, rows in by_district.items():
        uses = [r.p95_use for r in rows if r.p95_use is not None]
        districts.append(DistrictRow(
            district=name, points=len(rows),
            mean_p95_use=round(sum(uses) / len(uses), 4) if uses else None,
            saturated=sum(1 for u in uses if u >= 0.8)))
    districts.sort(key=lambda d: (d.mean_p95_use is None, -(d.mean_p95_use or 0)))
    return UpgradeReport(days=days, generated_at=iso(now) or "", data=data, districts=districts)
