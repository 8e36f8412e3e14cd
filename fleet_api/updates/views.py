"""Staged update rollouts as the API shows them: plain dicts with each target's state and
the counts per outcome (fleet_api/updates/rollout.py drives them)."""

from typing import Any, Dict, List

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from fleet_api.db import iso, update_rollouts, update_targets
from fleet_api.errors import FleetError


class NoRollout(FleetError, LookupError):
    """No such update rollout."""


def rollout_view(conn: Connection, ro: Any, with_targets: bool = True) -> Dict[str, Any]:
    """One rollout row as the API shows it: the wave sizes, the targets by wave and id
    (none without `with_targets`), and how many succeeded, failed, run or wait."""
    targets = [{"device_id": t.device_id, "wave": t.wave, "command_id": t.command_id,
                "sent_at": iso(t.sent_at), "outcome": t.outcome, "detail": t.detail}
               for t in conn.execute(select(update_targets)
                                     .where(update_targets.c.rollout_id == ro.id)
                                     .order_by(update_targets.c.wave,
                                               update_targets.c.device_id))]
    counts = {"succeeded": 0, "failed": 0, "running": 0, "waiting": 0}
    for t in targets:
        key = t["outcome"] or ("running" if t["command_id"] else "waiting")
        counts[key] += 1
    return {"id": ro.id, "version": ro.version, "url": ro.url, "status": ro.status,
            "reason": ro.reason, "waves": [len(w) for w in ro.plan],
            "max_failure_ratio": ro.max_failure_ratio, "settle_s": ro.settle_s,
            "created_by": ro.created_by, "created_at": iso(ro.created_at),
            "updated_at": iso(ro.updated_at), "counts": counts,
            "targets": targets if with_targets else []}


def view_of(conn: Connection, rollout_id: int) -> Dict[str, Any]:
    """The rollout's view with its targets; NoRollout when there is none."""
    ro = conn.execute(select(update_rollouts)
                      .where(update_rollouts.c.id == rollout_id)).first()
    if ro is None:
        raise NoRollout(f"no update rollout {rollout_id}")
    return rollout_view(conn, ro)


def find(engine: Engine, rollout_id: int) -> Dict[str, Any]:
    with engine.connect() as conn:
        return view_of(conn, rollout_id)


def listing(engine: Engine, limit: int) -> List[Dict[str, Any]]:
    """The newest `limit` rollouts, newest first, without their targets."""
    with engine.connect() as conn:
        rows = conn.execute(select(update_rollouts)
                            .order_by(update_rollouts.c.id.desc()).limit(limit)).fetchall()
        return [rollout_view(conn, ro, with_targets=False) for ro in rows]
