"""Staged rollouts of agent updates (fleet_api/updates/rollout.py), and the bundles the
boxes download (`simpul-fleet serve --updates-dir`)."""

from typing import Annotated, Any, Dict, List, Literal, Optional

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from fleet_api.api.limits import ROLLOUT_BODY_CAP, RequestBody
from fleet_api.audit import record
from fleet_api.db import devices, iso, update_rollouts, update_targets
from fleet_api.deps import Operator, RowId, ServicesDep, Viewer
from fleet_api.updates import rollout as update_rollout

router = APIRouter(prefix="/api/v1/updates", tags=["updates"])


class UpdateRolloutCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "version": "0.2.0", "url": "https://fleet.example.go.id/updates/simpul-agent-0.2.0.tar",
        "district": "Kota Barat", "waves": [0.01, 0.1, 0.5, 1.0], "max_failure_ratio": 0.1,
        "settle_s": 900}]})

    version: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z.+_-]+$")
    url: str = Field(min_length=8, max_length=2000,
                     description="where boxes download the signed bundle (http or https)")
    devices: Optional[List[Annotated[str, Field(min_length=1, max_length=63)]]] = Field(
        default=None, min_length=1, max_length=100000,
                                         description="in this order (canaries first)")
    district: Optional[str] = Field(default=None, max_length=100)
    group: Optional[str] = Field(default=None, max_length=100)
    waves: List[float] = Field(default=[0.01, 0.1, 0.5, 1.0], min_length=1, max_length=20)
    max_failure_ratio: float = Field(default=0.1, ge=0, le=1)
    settle_s: float = Field(default=900, ge=0, le=7 * 86400,
                            description="after a box's success, wait this long (above the "
                                        "boxes' commit_after_s) before judging its version")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("waves")
    @classmethod
    def _waves(cls, value: List[float]) -> List[float]:
        if any(not 0 < f <= 1 for f in value) or value != sorted(value) or value[-1] != 1:
            raise ValueError("fractions in (0, 1], rising, ending with 1")
        return value


class Target(BaseModel):
    device_id: str
    wave: int
    command_id: Optional[str]
    sent_at: Optional[str]
    outcome: Optional[Literal["succeeded", "failed"]]
    detail: Optional[str]


class UpdateRolloutView(BaseModel):
    id: int
    version: str
    url: str
    status: Literal["running", "stopped", "done"]
    reason: Optional[str]
    waves: List[int]
    max_failure_ratio: float
    settle_s: float
    created_by: str
    created_at: Optional[str]
    updated_at: Optional[str]
    counts: Dict[str, int]
    targets: List[Target]


class UpdateRolloutList(BaseModel):
    data: List[UpdateRolloutView]
    count: int


def _view(conn: Any, ro: Any, with_targets: bool = True) -> UpdateRolloutView:
    targets = [Target(device_id=t.device_id, wave=t.wave, command_id=t.command_id,
                      sent_at=iso(t.sent_at), outcome=t.outcome, detail=t.detail)
               for t in conn.execute(select(update_targets)
                                     .where(update_targets.c.rollout_id == ro.id)
                                     .order_by(update_targets.c.wave,
                                               update_targets.c.device_id))]
    counts = {"succeeded": 0, "failed": 0, "running": 0, "waiting": 0}
    for t in targets:
        key = t.outcome or ("running" if t.command_id else "waiting")
        counts[key] += 1
    return UpdateRolloutView(
        id=ro.id, version=ro.version, url=ro.url, status=ro.status, reason=ro.reason,
        waves=[len(w) for w in ro.plan], max_failure_ratio=ro.max_failure_ratio,
        settle_s=ro.settle_s, created_by=ro.created_by, created_at=iso(ro.created_at),
        updated_at=iso(ro.updated_at), counts=counts,
        targets=targets if with_targets else [])


@router.post("/rollouts", status_code=201, response_model=UpdateRolloutView,
             max_body_size=ROLLOUT_BODY_CAP)  # 100,000 device ids (fleet_api/api/limits.py)
def create_rollout(body: UpdateRolloutCreate, services: ServicesDep, who: Operator
                   ) -> UpdateRolloutView:
    """Update the agent on the chosen boxes wave by wave; the rollout stops by itself
    when a wave's failures pass `max_failure_ratio`."""
    query = select(devices.c.device_id).order_by(devices.c.device_id)
    if body.district is not None:
        query = query.where(devices.c.district == body.district)
    if body.group is not None:
        query = query.where(devices.c.group_name == body.group)
    with services.engine.begin() as conn:
        known = [r[0] for r in conn.execute(query)]
        if body.devices is not None:
            missing = sorted(set(body.devices) - set(known))
            if missing:
                raise HTTPException(422, f"not registered (or not in the district/group): "
                                         f"{', '.join(missing[:20])}")
            chosen = list(dict.fromkeys(body.devices))
        else:
            chosen = known
        if not chosen:
            raise HTTPException(422, "no devices match")
        running = conn.execute(select(update_rollouts.c.id).where(
            update_rollouts.c.status == "running")).first()
        if running is not None:
            raise HTTPException(409, f"update rollout {running[0]} is still running")
        rollout_id = update_rollout.create(
            conn, body.version, body.url, chosen, body.waves, body.max_failure_ratio,
            body.settle_s, who.name or f"#{who.token_id}")
        record(conn, who, "update.rollout", str(rollout_id),
               {"version": body.version, "devices": len(chosen)})
        ro = conn.execute(select(update_rollouts)
                          .where(update_rollouts.c.id == rollout_id)).one()
        return _view(conn, ro)


@router.get("/rollouts", response_model=UpdateRolloutList)
def list_rollouts(services: ServicesDep, _who: Viewer,
                  limit: int = Query(50, ge=1, le=500)) -> UpdateRolloutList:
    with services.engine.connect() as conn:
        rows = conn.execute(select(update_rollouts)
                            .order_by(update_rollouts.c.id.desc()).limit(limit)).fetchall()
        data = [_view(conn, ro, with_targets=False) for ro in rows]
    return UpdateRolloutList(data=data, count=len(data))


@router.get("/rollouts/{rollout_id}", response_model=UpdateRolloutView)
def get_rollout(rollout_id: RowId, services: ServicesDep, _who: Viewer) -> UpdateRolloutView:
    with services.engine.connect() as conn:
        ro = conn.execute(select(update_rollouts)
                          .where(update_rollouts.c.id == rollout_id)).first()
        if ro is None:
            raise HTTPException(404, f"no update rollout {rollout_id}")
        return _view(conn, ro)
