"""Staged rollouts of agent updates (fleet_api/updates/rollout.py), and the bundles the
boxes download (`simpul-fleet serve --updates-dir`)."""

from typing import Annotated, Dict, List, Literal, Optional

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from fleet_api.api.limits import ROLLOUT_BODY_CAP, RequestBody
from fleet_api.deps import Operator, RowId, ServicesDep, Viewer
from fleet_api.updates import rollout as update_rollout
from fleet_api.updates import views

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


@router.post("/rollouts", status_code=201, response_model=UpdateRolloutView,
             max_body_size=ROLLOUT_BODY_CAP)  # 100,000 device ids (fleet_api/api/limits.py)
def create_rollout(body: UpdateRolloutCreate, services: ServicesDep, who: Operator
                   ) -> UpdateRolloutView:
    """Update the agent on the chosen boxes wave by wave; the rollout stops by itself
    when a wave's failures pass `max_failure_ratio`."""
    try:
        made = update_rollout.start(
            services.engine, who, body.version, body.url, body.devices, body.district,
            body.group, body.waves, body.max_failure_ratio, body.settle_s)
    except update_rollout.NoDevicesChosen as exc:
        raise HTTPException(422, str(exc)) from exc
    except update_rollout.StillRunning as exc:
        raise HTTPException(409, str(exc)) from exc
    return UpdateRolloutView(**made)


@router.get("/rollouts", response_model=UpdateRolloutList)
def list_rollouts(services: ServicesDep, _who: Viewer,
                  limit: int = Query(50, ge=1, le=500)) -> UpdateRolloutList:
    data = [UpdateRolloutView(**ro) for ro in views.listing(services.engine, limit)]
    return UpdateRolloutList(data=data, count=len(data))


@router.get("/rollouts/{rollout_id}", response_model=UpdateRolloutView)
def get_rollout(rollout_id: RowId, services: ServicesDep, _who: Viewer) -> UpdateRolloutView:
    try:
        return UpdateRolloutView(**views.find(services.engine, rollout_id))
    except views.NoRollout as exc:
        raise HTTPException(404, str(exc)) from exc
