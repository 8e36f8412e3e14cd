"""Groups as the API changes them: a template revision applied to every member at once
or through a staged config rollout (fleet_api/control/config_rollout.py), with its audit
entry in the same transaction; and the reads the group and rollout views need."""

from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from fleet_api.audit import record
from fleet_api.auth import Principal
from fleet_api.control import config_rollout as ro
from fleet_api.control import twin
from fleet_api.db import devices, groups, inserted_id, rollouts, utcnow
from fleet_api.errors import FleetError


class NoGroup(FleetError):
    """No such group."""


def group_row(conn: Connection, name: str) -> Any:
    row = conn.execute(select(groups).where(groups.c.name == name)).first()
    if row is None:
        raise NoGroup(f"no group {name}")
    return row


def member_count(conn: Connection, name: str) -> int:
    return int(conn.execute(select(func.count()).select_from(devices)
                            .where(devices.c.group_name == name)).scalar_one())


def all_groups(conn: Connection) -> List[Any]:
    return list(conn.execute(select(groups).order_by(groups.c.name)))


def apply(engine: Engine, who: Principal, name: str, template: Dict[str, Any],
          thresholds: Optional[Dict[str, Any]], stages: Optional[Tuple[int, float]],
          action: str) -> Tuple[List[str], Optional[int]]:
    """A new template revision; members move to it at once (the moved ids) or, with
    `stages` = (stage size, stage timeout), through a new rollout that supersedes a
    running one (its id). Secrets the writer left redacted are kept."""
    moved: List[str] = []
    rollout_id = None
    with engine.begin() as conn:
        existing = conn.execute(select(groups.c.rev).where(groups.c.name == name)).first()
        old = twin.template(conn, name, existing[0]) if existing else {}
        rev = ro.new_revision(conn, name, twin.keep_secrets(template, old), thresholds)
        if stages is None:
            moved = ro.move_all(conn, name, rev)
        else:
            now = utcnow()
            conn.execute(rollouts.update().where(rollouts.c.group_name == name,
                                                 rollouts.c.status == "running")
                         .values(status="superseded", updated_at=now))
            rollout_id = inserted_id(conn.execute(rollouts.insert().values(
                group_name=name, target_rev=rev, stage_size=stages[0],
                stage_timeout_s=stages[1], status="running", stage=0,
                waiting={}, done=[], failed=[], created_by=who.name or f"#{who.token_id}",
                created_at=now, updated_at=now)))
        record(conn, who, action, f"group:{name}",
               {"rev": rev, "template": template, "rollout": rollout_id})
    return moved, rollout_id


def template_with_tier(engine: Engine, name: str, mbps: float) -> Dict[str, Any]:
    """The group's current template with the catalogue tier of `mbps`; LookupError when
    the catalogue has none."""
    with engine.connect() as conn:
        row = group_row(conn, name)
        template = twin.template(conn, name, row.rev)
        template["tier"] = twin.tier_section(conn, mbps)
    return template


def list_rollouts(engine: Engine, group: Optional[str]) -> List[Any]:
    query = select(rollouts).order_by(rollouts.c.id.desc()).limit(200)
    if group is not None:
        query = query.where(rollouts.c.group_name == group)
    with engine.connect() as conn:
        return list(conn.execute(query))


def find_rollout(engine: Engine, rollout_id: int) -> Optional[Any]:
    with engine.connect() as conn:
        return conn.execute(select(rollouts).where(rollouts.c.id == rollout_id)).first()
