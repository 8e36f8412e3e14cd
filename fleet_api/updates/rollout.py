"""Staged rollouts of agent updates: the fleet sends the `update` command wave by wave
(canaries first) and stops by itself when a wave's failures pass the threshold.

The decisions are `updates.waves` and `updates.next_action` (pure, tested on their own);
this is the leased job around them, run by the fleet worker every second:

- a device already on the version succeeds without a command;
- a device whose command failed or expired has failed (the box refused the bundle: bad
  signature, failed health check, no slot layout; the command's error says which);
- a device whose command succeeded is judged `settle_s` after that (set it above the
  boxes' `commit_after_s`, so a version that breaks during its trial has rolled back by
  then): succeeded when its latest birth reports the new version, failed otherwise
  (rolled back by its trial, its start guard, or never restarted).

`start` is the API's way in: it picks the devices, refuses a second running rollout and
writes the audit entry in the rollout's transaction (views in fleet_api/updates/views.py).
"""

import logging
from datetime import timedelta
from typing import Any, Dict, List, Optional, Sequence, Tuple

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from fleet_api.audit import record
from fleet_api.auth import Principal
from fleet_api.broker.publisher import Publisher
from fleet_api.control import box_commands as cmds
from fleet_api.db import commands, devices, inserted_id, update_rollouts, update_targets, utcnow
from fleet_api.errors import FleetError
from fleet_api.updates import views
from fleet_api.updates.bundles import next_action, waves

log = logging.getLogger("simpul.update_rollout")

COMMAND_TIMEOUT_S = 3600.0


class NoDevicesChosen(FleetError, ValueError):
    """The request names devices that are not registered (or not in its district or
    group), or matches none."""


class StillRunning(FleetError):
    """Another update rollout is still running; one runs at a time."""


def create(conn: Connection, version: str, url: str, device_ids: Sequence[str],
           fractions: Sequence[float], max_failure_ratio: float, settle_s: float,
           who: str) -> int:
    plan = waves(list(device_ids), fractions)
    now = utcnow()
    rollout_id = inserted_id(conn.execute(update_rollouts.insert().values(
        version=version, url=url, plan=plan, max_failure_ratio=max_failure_ratio,
        settle_s=settle_s, status="running", created_by=who, created_at=now,
        updated_at=now)))
    conn.execute(update_targets.insert(), [
        {"rollout_id": rollout_id, "device_id": d, "wave": i}
        for i, wave in enumerate(plan) for d in wave])
    return rollout_id


def start(engine: Engine, who: Principal, version: str, url: str,
          device_ids: Optional[Sequence[str]], district: Optional[str], group: Optional[str],
          fractions: Sequence[float], max_failure_ratio: float, settle_s: float
          ) -> Dict[str, Any]:
    """A new rollout to `version` on the given devices, in their order (canaries first),
    or on every device of the district and group, by id; its audit entry is in the same
    transaction. Returns its view (fleet_api/updates/views.py). NoDevicesChosen when a
    named device is not registered there or no device matches; StillRunning while
    another rollout runs."""
    query = select(devices.c.device_id).order_by(devices.c.device_id)
    if district is not None:
        query = query.where(devices.c.district == district)
    if group is not None:
        query = query.where(devices.c.group_name == group)
    with engine.begin() as conn:
        known = [r[0] for r in conn.execute(query)]
        if device_ids is not None:
            missing = sorted(set(device_ids) - set(known))
            if missing:
                raise NoDevicesChosen(f"not registered (or not in the district/group): "
                                      f"{', '.join(missing[:20])}")
            chosen = list(dict.fromkeys(device_ids))
        else:
            chosen = known
        if not chosen:
            raise NoDevicesChosen("no devices match")
        running = conn.execute(select(update_rollouts.c.id).where(
            update_rollouts.c.status == "running")).first()
        if running is not None:
            raise StillRunning(f"update rollout {running[0]} is still running")
        rollout_id = create(conn, version, url, chosen, fractions, max_failure_ratio,
                            settle_s, who.name or f"#{who.token_id}")
        record(conn, who, "update.rollout", str(rollout_id),
               {"version": version, "devices": len(chosen)})
        return views.view_of(conn, rollout_id)


def _judge(command: Any, version_now: Optional[str], version: str,
           settle_s: float, now: Any) -> Tuple[Optional[str], Optional[str]]:
    if command is None:
        return "failed", "its update command is gone"
    status = cmds.effective_status(command, now)
    if status in ("failed", "expired"):
        return "failed", command.error or status
    if status != "succeeded":
        return None, None
    if now - command.updated_at < timedelta(seconds=settle_s):
        return None, None
    if version_now == version:
        return "succeeded", None
    return "failed", (f"runs {version_now or 'an unknown version'} {settle_s:.0f} s after "
                      f"the update to {version} (rolled back, or not restarted)")


def _advance_one(conn: Connection, ro: Any, now: Any) -> List[Dict[str, Any]]:
    """One step of one rollout; returns the command rows to publish."""
    rows = {t.device_id: t for t in conn.execute(
        select(update_targets).where(update_targets.c.rollout_id == ro.id))}
    versions = dict(conn.execute(select(devices.c.device_id, devices.c.agent_version)
                                 .where(devices.c.device_id.in_(list(rows)))).all())
    sent = [t.command_id for t in rows.values() if t.command_id and not t.outcome]
    found = {c.command_id: c for c in conn.execute(
        select(commands).where(commands.c.command_id.in_(sent)))} if sent else {}
    outcome: Dict[str, str] = {d: t.outcome for d, t in rows.items() if t.outcome}
    for device_id, t in rows.items():
        if t.command_id and not t.outcome:
            verdict, detail = _judge(found.get(t.command_id), versions.get(device_id),
                                     ro.version, ro.settle_s, now)
            if verdict:
                outcome[device_id] = verdict
                _set(conn, ro.id, device_id, outcome=verdict, detail=detail)
    action, picked = next_action(ro.plan, outcome, ro.max_failure_ratio)
    to_publish: List[Dict[str, Any]] = []
    if action in ("send", "wait"):
        wave = picked if action == "send" else next(
            (w for w in ro.plan if any(d not in outcome for d in w)), [])
        for device_id in wave:
            t = rows[device_id]
            if t.command_id or t.outcome:
                continue
            if device_id not in versions:
                _set(conn, ro.id, device_id, outcome="failed", detail="deregistered")
            elif versions[device_id] == ro.version:
                _set(conn, ro.id, device_id, outcome="succeeded", detail="already on it")
            else:
                row = cmds.create(conn, device_id, "update", {"url": ro.url},
                                  COMMAND_TIMEOUT_S, f"update rollout #{ro.id}")
                _set(conn, ro.id, device_id, command_id=row["command_id"], sent_at=now)
                to_publish.append(row)
    elif action == "stop":
        wave_size = next(len(w) for w in ro.plan if picked[0] in w)
        reason = (f"{len(picked)} of {wave_size} failed in a wave, over the "
                  f"{ro.max_failure_ratio:.0%} allowed: {', '.join(picked[:20])}")
        conn.execute(update(update_rollouts).where(update_rollouts.c.id == ro.id)
                     .values(status="stopped", reason=reason, updated_at=now))
        log.warning("update rollout %d to %s stopped: %s", ro.id, ro.version, reason)
    elif action == "done":
        conn.execute(update(update_rollouts).where(update_rollouts.c.id == ro.id)
                     .values(status="done", updated_at=now))
        log.info("update rollout %d to %s done", ro.id, ro.version)
    return to_publish


def _set(conn: Connection, rollout_id: int, device_id: str, **values: Any) -> None:
    conn.execute(update(update_targets).where(update_targets.c.rollout_id == rollout_id,
                                              update_targets.c.device_id == device_id)
                 .values(**values))


def advance(engine: Engine, publisher: Optional[Publisher]) -> None:
    now = utcnow()
    with engine.connect() as conn:
        running = conn.execute(select(update_rollouts).where(
            update_rollouts.c.status == "running")).fetchall()
    for ro in running:
        with engine.begin() as conn:
            rows = _advance_one(conn, ro, now)
        for row in rows:
            cmds.publish(engine, publisher, row)
