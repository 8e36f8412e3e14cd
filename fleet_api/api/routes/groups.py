"""Groups: a config template with per-device overrides, alert thresholds, tier
assignment, and staged rollouts of a new template revision."""

from typing import Annotated, Any, Dict, List, Optional

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection

from fleet_api.api.limits import FreeJson, RequestBody
from fleet_api.broker.publisher import publish_desired
from fleet_api.control import groups as svc
from fleet_api.control import twin
from fleet_api.db import iso
from fleet_api.deps import GroupName, Operator, RowId, ServicesDep, Viewer

router = APIRouter(prefix="/api/v1", tags=["groups"])


class RolloutSpec(RequestBody):

    stage_size: int = Field(default=10, ge=1, le=10000)
    stage_timeout_s: float = Field(default=900, ge=1, le=7 * 86400)


class GroupPutBody(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "template": {"publish": {"sample_interval_s": 30}},
        "thresholds": {"offline_min": 10, "pm2_5": 55.4},
        "rollout": {"stage_size": 5, "stage_timeout_s": 600}}]})

    template: FreeJson = Field(default_factory=dict)
    thresholds: Optional[Dict[Annotated[str, Field(min_length=1, max_length=64)], float]] = \
        Field(default=None, max_length=100)
    rollout: Optional[RolloutSpec] = Field(
        default=None, description="move members stage by stage; without it, all at once")


class GroupTierBody(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"mbps": 300, "rollout": {"stage_size": 5}}]})

    mbps: float = Field(gt=0, le=10000)
    rollout: Optional[RolloutSpec] = None


class GroupView(BaseModel):
    name: str
    rev: int
    template: Dict[str, Any]
    thresholds: Dict[str, Any]
    members: int
    rollout_id: Optional[int] = None


class RolloutView(BaseModel):
    id: int
    group: str
    target_rev: int
    status: str
    stage: int
    stage_size: int
    waiting: Dict[str, int]
    done: List[str]
    failed: List[str]
    reason: Optional[str]
    created_by: str
    created_at: Optional[str]
    updated_at: Optional[str]


def _group(conn: Connection, name: str) -> Any:
    try:
        return svc.group_row(conn, name)
    except svc.NoGroup as exc:
        raise HTTPException(404, str(exc)) from exc


def _view(conn: Connection, row: Any, rollout_id: Optional[int] = None) -> GroupView:
    return GroupView(name=row.name, rev=row.rev,
                     template=twin.redact(twin.template(conn, row.name, row.rev)),
                     thresholds=dict(row.thresholds or {}),
                     members=svc.member_count(conn, row.name), rollout_id=rollout_id)


def _rollout_view(r: Any) -> RolloutView:
    return RolloutView(id=r.id, group=r.group_name, target_rev=r.target_rev, status=r.status,
                       stage=r.stage, stage_size=r.stage_size, waiting=dict(r.waiting or {}),
                       done=list(r.done or []), failed=list(r.failed or []), reason=r.reason,
                       created_by=r.created_by, created_at=iso(r.created_at),
                       updated_at=iso(r.updated_at))


def _apply(services: Any, who: Any, name: str, template: Dict[str, Any],
           thresholds: Optional[Dict[str, Any]], spec: Optional[RolloutSpec],
           action: str) -> GroupView:
    stages = None if spec is None else (spec.stage_size, spec.stage_timeout_s)
    try:
        moved, rollout_id = svc.apply(services.engine, who, name, template, thresholds,
                                      stages, action)
    except (twin.TwinError, twin.VersionConflict, LookupError) as exc:
        raise HTTPException(422 if not isinstance(exc, twin.VersionConflict) else 409,
                            str(exc)) from exc
    publish_desired(services.engine, services.publisher, moved)
    with services.engine.connect() as conn:
        return _view(conn, _group(conn, name), rollout_id)


@router.get("/groups", response_model=List[GroupView])
def list_groups(services: ServicesDep, _who: Viewer) -> List[GroupView]:
    with services.engine.connect() as conn:
        return [_view(conn, r) for r in svc.all_groups(conn)]


@router.get("/groups/{name}", response_model=GroupView)
def get_group(name: GroupName, services: ServicesDep, _who: Viewer) -> GroupView:
    with services.engine.connect() as conn:
        return _view(conn, _group(conn, name))


@router.put("/groups/{name}", response_model=GroupView)
def put_group(name: GroupName, body: GroupPutBody, services: ServicesDep, who: Operator
              ) -> GroupView:
    """Create or update a group. A changed template becomes a new revision; members move
    to it at once, or stage by stage when `rollout` is given."""
    if not 1 <= len(name) <= 100:
        raise HTTPException(422, "a group name has 1-100 characters")
    return _apply(services, who, name, body.template, body.thresholds, body.rollout,
                  "group.put")


@router.put("/groups/{name}/tier", response_model=GroupView)
def put_group_tier(name: GroupName, body: GroupTierBody, services: ServicesDep, who: Operator
                   ) -> GroupView:
    """Assign a catalogue tier to every member through the group's template."""
    try:
        template = svc.template_with_tier(services.engine, name, body.mbps)
    except svc.NoGroup as exc:
        raise HTTPException(404, str(exc)) from exc
    except LookupError as exc:
        raise HTTPException(422, str(exc)) from exc
    return _apply(services, who, name, template, None, body.rollout, "group.tier")

@router.get("/rollouts", response_model=List[RolloutView])
def list_rollouts(services: ServicesDep, _who: Viewer,
                  group: Optional[str] = Query(None, max_length=100)) -> List[RolloutView]:
    return [_rollout_view(r) for r in svc.list_rollouts(services.engine, group)]


@router.get("/rollouts/{rollout_id}", response_model=RolloutView)
def get_rollout(rollout_id: RowId, services: ServicesDep, _who: Viewer) -> RolloutView:
    row = svc.find_rollout(services.engine, rollout_id)
    if row is None:
        raise HTTPException(404, f"no rollout {rollout_id}")
    return _rollout_view(row)
