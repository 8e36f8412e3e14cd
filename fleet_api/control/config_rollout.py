"""Group templates and staged rollouts.

A group's template has revisions. Moving a member to a revision rewrites its twin
(new desired version, published). A rollout moves the members stage by stage: the next
stage starts only when every box of the current one reports the new version applied; a
box reporting `failed_version` >= its target, or a stage outlasting its timeout, halts
the rollout by itself. Boxes already moved stay moved (the operator rolls back by
publishing the old template as a new revision).
"""

import logging
from datetime import timedelta
from typing import Any, Dict, List, Optional

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Connection, Engine

from fleet_api.broker.publisher import Publisher, publish_desired
from fleet_api.control import twin
from fleet_api.db import devices, group_templates, groups, rollouts, utcnow

log = logging.getLogger("simpul.rollout")


def new_revision(conn: Connection, name: str, template: Dict[str, Any],
                 thresholds: Optional[Dict[str, Any]]) -> int:
    """Store `template` as the group's next revision (creating the group); return it."""
    twin.validate(template)
    now = utcnow()
    row = conn.execute(select(groups).where(groups.c.name == name)).first()
    if row is None:
        rev = 1
        conn.execute(groups.insert().values(name=name, rev=rev, thresholds=thresholds or {},
                                            created_at=now))
    else:
        current = twin.template(conn, name, row.rev)
        rev = row.rev if current == template else row.rev + 1
        values: Dict[str, Any] = {"rev": rev}
        if thresholds is not None:
            values["thresholds"] = thresholds
        conn.execute(update(groups).where(groups.c.name == name).values(**values))
    if row is None or rev != row.rev:
        conn.execute(group_templates.insert().values(group_name=name, rev=rev,
                                                     template=template, created_at=now))
    return rev


def behind(rev: int) -> Any:
    return or_(devices.c.group_rev.is_(None), devices.c.group_rev != rev)


def move(conn: Connection, row: Any, rev: int) -> int:
    """Put one member on revision `rev` of its group; return its new desired version."""
    return twin.write(conn, row, row.desired_version, dict(row.desired or {}), rev=rev)


def move_all(conn: Connection, name: str, rev: int) -> List[str]:
    rows = conn.execute(select(devices).where(devices.c.group_name == name,
                                              behind(rev))).fetchall()
    for row in rows:
        move(conn, row, rev)
    return [r.device_id for r in rows]


def _applied(reported: Dict[str, Any], target: int) -> Optional[bool]:
    """True applied, False failed, None not yet."""
    failed = reported.get("failed_version")
    if failed is not None and int(failed) >= target:
        return False
    if int(reported.get("version") or 0) >= target and not reported.get("error"):
        return True
    return None


def _why(row: Any) -> str:
    if row is None:
        return "deregistered"
    return str(dict(row.reported or {}).get("error") or "no reason given")


def advance_one(engine: Engine, rollout_id: int) -> List[str]:
    """One step of one rollout; return the devices whose twin changed (to publish)."""
    now = utcnow()
    with engine.begin() as conn:
        ro = conn.execute(select(rollouts).where(rollouts.c.id == rollout_id)).first()
        if ro is None or ro.status != "running":
            return []
        waiting: Dict[str, int] = dict(ro.waiting or {})
        done: List[str] = list(ro.done or [])
        failed: List[str] = list(ro.failed or [])
        values: Dict[str, Any] = {"updated_at": now}
        moved: List[str] = []
        if waiting:
            rows = {r.device_id: r for r in conn.execute(
                select(devices.c.device_id, devices.c.reported)
                .where(devices.c.device_id.in_(list(waiting))))}
            for device_id, target in list(waiting.items()):
                row = rows.get(device_id)
                state = _applied(dict(row.reported or {}), target) if row else False
                if state is None:
                    continue
                waiting.pop(device_id)
                (done if state else failed).append(device_id)
            if failed:
                reason = "; ".join(f"{d} failed to apply: {_why(rows.get(d))}"
                                   for d in failed[-3:])
                values.update(status="halted", reason=reason[:1000])
                log.warning("rollout %d of group %s halted: %s", ro.id, ro.group_name, reason)
            elif waiting and ro.stage_started_at is not None and \
                    now - ro.stage_started_at > timedelta(seconds=ro.stage_timeout_s):
                values.update(status="halted", reason=(
                    f"stage {ro.stage} timed out after {ro.stage_timeout_s:g}s waiting for "
                    + ", ".join(sorted(waiting)[:5]))[:1000])
                log.warning("rollout %d of group %s halted: timeout", ro.id, ro.group_name)
        if not waiting and values.get("status") is None:
            todo = conn.execute(select(devices).where(
                devices.c.group_name == ro.group_name, behind(ro.target_rev))
                .order_by(devices.c.device_id).limit(ro.stage_size)).fetchall()
            if not todo:
                values.update(status="completed")
            else:
                for row in todo:
                    try:
                        waiting[row.device_id] = move(conn, row, ro.target_rev)
                        moved.append(row.device_id)
                    except (twin.TwinError, twin.VersionConflict) as exc:
                        failed.append(row.device_id)
                        values.update(status="halted",
                                      reason=f"{row.device_id}: {exc}"[:1000])
                        break
                values.update(stage=ro.stage + 1, stage_started_at=now)
        values.update(waiting=waiting, done=done, failed=failed)
        conn.execute(update(rollouts).where(rollouts.c.id == ro.id).values(**values))
    return moved


def advance(engine: Engine, publisher: Optional[Publisher]) -> None:
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(select(rollouts.c.id)
                                          .where(rollouts.c.status == "running"))]
    for rollout_id in ids:
        moved = advance_one(engine, rollout_id)
        if moved:
            publish_desired(engine, publisher, moved)
