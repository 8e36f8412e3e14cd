"""Rollups of a device's telemetry and the tier upgrade report."""

from typing import Dict, List, Literal, Optional

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from fleet_api.deps import DeviceId, ServicesDep, StorableTime, Viewer
from fleet_api.devices import telemetry
from fleet_api.devices.registry import NoDevice

router = APIRouter(prefix="/api/v1", tags=["reports"])


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


@router.get("/devices/{device_id}/rollups", response_model=RollupList)
def get_rollups(device_id: DeviceId, services: ServicesDep, _who: Viewer,
                resolution: Literal["1m", "1h"] = "1h",
                since: Optional[StorableTime] = None, until: Optional[StorableTime] = None,
                stream: str = Query("telemetry", pattern=r"^[a-z][a-z0-9_]{0,31}$"),
                metric: Optional[str] = Query(None, max_length=64),
                limit: int = Query(2000, ge=1, le=20000)) -> RollupList:
    """Per-minute or per-hour count, mean, min and max of each metric."""
    try:
        data = telemetry.rollups(services.engine, device_id, resolution, stream, since, until,
                                 metric, limit)
    except NoDevice as exc:
        raise HTTPException(404, str(exc)) from exc
    return RollupList(resolution=resolution, data=[Bucket(**b) for b in data],
                      count=len(data))


@router.get("/reports/upgrade", response_model=UpgradeReport)
def upgrade_report(services: ServicesDep, _who: Viewer,
                   days: float = Query(7, gt=0, le=35, allow_inf_nan=False),
                   district: Optional[str] = Query(None, max_length=100)) -> UpgradeReport:
    """Each point's p95 use of its tier over `days`, ranked, highest first: the 95th
    percentile of the per-minute mean `tier_down_mbps` (health stream), over the tier's
    down rate. Districts are summarised below it."""
    return UpgradeReport(**telemetry.upgrade_report(services.engine, days, district))
