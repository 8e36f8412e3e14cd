"""Alert rules, evaluated under the worker's lease.

Rules (thresholds per group, `thresholds` of the group; defaults below):
- offline: the device has been offline longer than `offline_min` minutes (never while
  the fleet cannot hear the broker: then its state is unknown, not offline);
- soc_temp: health metric `soc_temp_c` above `soc_temp_c`;
- disk: health metric `disk_percent` above `disk_percent`;
- source: a source of the latest record is stale or unavailable;
- camera: a camera source (named `cam...` or `...camera...`) is not ok;
- pm2_5: a metric named `pm2_5` or `<collector>_pm2_5` above `pm2_5`;
- water_level: a metric named `water_level_cm` or `..._water_level_cm` above
  `water_level_cm`.
An alert is keyed by (device, rule, subject): while open it is refreshed, not repeated
(dedup); it resolves itself when a newer record, or presence, shows the condition gone.
"""

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Dict, List, Optional, Set, Tuple

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Connection, Engine

from fleet_api.db import (
    alerts,
    deliveries,
    devices,
    events,
    groups,
    inserted_id,
    iso,
    records,
    utcnow,
    webhooks,
)
from fleet_api.ingest.presence import ingest_alive, presence

log = logging.getLogger("simpul.alerts")

DEFAULTS: Dict[str, float] = {"offline_min": 10, "soc_temp_c": 80, "disk_percent": 90,
                              "pm2_5": 55.4, "water_level_cm": 150}
CATEGORIES = ("device", "air", "flood")
# rule -> (category, severity)
RULES: Dict[str, Tuple[str, str]] = {
    "offline": ("device", "warning"), "soc_temp": ("device", "warning"),
    "disk": ("device", "warning"), "source": ("device", "warning"),
    "camera": ("device", "critical"), "pm2_5": ("air", "warning"),
    "water_level": ("flood", "critical"), "clone": ("identity", "critical"),
    "rotation": ("identity", "warning"), "clock": ("device", "warning"),
    "rollup": ("device", "warning"),  # rows the rollup pass cannot fold (rollups.py)
}
# Which rules one stream's record decides (so it may resolve them).
STREAM_RULES = {"telemetry": ("source", "camera", "pm2_5", "water_level", "clock"),
                "health": ("soc_temp", "disk", "source", "camera", "clock")}
# A record's ts this far ahead of the fleet's receive time is a wrong clock (never a
# backlog); this far behind is older than any outbox keeps a record (max_age_s).
CLOCK_AHEAD = timedelta(minutes=5)
CLOCK_BEHIND = timedelta(days=30)


@dataclass(frozen=True)
class Finding:
    rule: str
    subject: str
    message: str
    value: Optional[float] = None


def metric(values: Dict[str, float], key: str) -> Optional[float]:
    found = [v for k, v in values.items() if k == key or k.endswith("_" + key)]
    return max(found) if found else None


def is_camera(source: str) -> bool:
    return source.startswith("cam") or "camera" in source


def judge(stream: str, metrics: Dict[str, float], sources: Dict[str, Any],
          limits: Dict[str, float]) -> List[Finding]:
    """Pure: the conditions one record shows."""
    found: List[Finding] = []
    checks = [("soc_temp", "soc_temp_c", "SoC temperature {v:g} °C above {t:g} °C"),
              ("disk", "disk_percent", "disk {v:g}% full, above {t:g}%")] \
        if stream == "health" else \
        [("pm2_5", "pm2_5", "PM2.5 {v:g} µg/m³ above {t:g} µg/m³"),
         ("water_level", "water_level_cm", "water level {v:g} cm above {t:g} cm")]
    for rule, key, text in checks:
        value = metric(metrics, key)
        if value is not None and value > limits[key]:
            found.append(Finding(rule, "", text.format(v=value, t=limits[key]), value))
    for name, status in sorted(sources.items()):
        state = (status or {}).get("state", "ok")
        if state == "ok":
            continue
        reason = (status or {}).get("reason") or "no reason given"
        rule = "camera" if is_camera(name) else "source"
        found.append(Finding(rule, name[:64], f"{name} is {state}: {reason}"))
    return found


def _limits(conn: Connection) -> Dict[str, Dict[str, float]]:
    out = {}
    for row in conn.execute(select(groups.c.name, groups.c.thresholds)):
        out[row.name] = {**DEFAULTS, **{k: float(v) for k, v in (row.thresholds or {}).items()
                                        if k in DEFAULTS and v is not None}}
    return out


def alert_dict(row: Any) -> Dict[str, Any]:
    return {"id": row.id, "device_id": row.device_id, "rule": row.rule, "subject": row.subject,
            "category": row.category, "severity": row.severity, "status": row.status,
            "message": row.message, "value": row.value, "count": row._mapping["count"],
            "opened_at": iso(row.opened_at), "last_seen_at": iso(row.last_seen_at),
            "resolved_at": iso(row.resolved_at), "acked_by": row.acked_by,
            "acked_at": iso(row.acked_at)}


def emit(conn: Connection, kind: str, alert: Dict[str, Any]) -> None:
    """An event for SSE, and a delivery for each webhook routed to its category."""
    now = utcnow()
    event_id = inserted_id(conn.execute(events.insert().values(at=now, kind=kind, data=alert)
                            ))
    body = json.dumps({"event": kind, "event_id": event_id, "alert": alert})
    for hook in conn.execute(select(webhooks.c.id, webhooks.c.categories)
                             .where(webhooks.c.active.is_(True))):
        cats = hook.categories or []
        if "*" in cats or alert["category"] in cats:
            conn.execute(deliveries.insert().values(
                webhook_id=hook.id, event_id=event_id, body=body, status="pending",
                attempts=0, next_at=now, created_at=now))


def _open(conn: Connection, device_id: str, f: Finding, now: datetime) -> None:
    key = f"{device_id}:{f.rule}:{f.subject}"
    done = conn.execute(update(alerts).where(alerts.c.open_key == key).values(
        last_seen_at=now, value=f.value, message=f.message, count=alerts.c.count + 1))
    if done.rowcount:
        return
    category, severity = RULES[f.rule]
    new_id = inserted_id(conn.execute(alerts.insert().values(
        device_id=device_id, rule=f.rule, subject=f.subject, category=category,
        severity=severity, status="open", message=f.message, value=f.value, count=1,
        open_key=key, opened_at=now, last_seen_at=now)))
    row = conn.execute(select(alerts).where(alerts.c.id == new_id)).one()
    log.warning("alert opened: %s %s: %s", device_id, f.rule, f.message)
    emit(conn, "alert.opened", alert_dict(row))


def _resolve(conn: Connection, device_id: str, rules: Tuple[str, ...], keep: Set[str],
             now: datetime, open_rows: Optional[List[Any]] = None) -> None:
    rows: List[Any] = open_rows if open_rows is not None else list(conn.execute(
        select(alerts).where(alerts.c.device_id == device_id, alerts.c.status == "open",
                             alerts.c.rule.in_(rules))))
    for row in list(rows):
        if row.rule not in rules or row.open_key in keep:
            continue
        rows.remove(row)  # resolved once, whichever stream comes next
        conn.execute(update(alerts).where(alerts.c.id == row.id).values(
            status="resolved", resolved_at=now, open_key=None))
        resolved = conn.execute(select(alerts).where(alerts.c.id == row.id)).one()
        log.info("alert resolved: %s %s", device_id, row.rule)
        emit(conn, "alert.resolved", alert_dict(resolved))


def apply(conn: Connection, device_id: str, rules: Tuple[str, ...],
          findings: List[Finding], now: datetime, open_rows: Optional[List[Any]] = None
          ) -> None:
    """Open (or refresh) each finding and resolve the device's other open alerts of these
    rules. `open_rows`: the device's open alerts, when the caller loaded them in bulk."""
    for f in findings:
        _open(conn, device_id, f, now)
    keep = {f"{device_id}:{f.rule}:{f.subject}" for f in findings}
    _resolve(conn, device_id, rules, keep, now, open_rows)


class Evaluator:
    """Incremental: each run judges the newest record per (device, stream) received
    since the last run, and presence for the offline rule."""

    def __init__(self, engine: Engine, heartbeat_timeout_s: float, overlap_s: float = 5.0,
                 unsynced_after_s: float = 3600.0) -> None:
        self.engine = engine
        self.unsynced_after = timedelta(seconds=unsynced_after_s)
        self.timeout_s = heartbeat_timeout_s
        self.overlap = timedelta(seconds=overlap_s)
        self.since: Optional[datetime] = None

    def run(self) -> None:
        now = utcnow()
        since = self.since or now - timedelta(minutes=5)
        with self.engine.begin() as conn:
            limits = _limits(conn)
            latest: Dict[Tuple[str, str], Any] = {}
            newest: Dict[Tuple[str, str], Any] = {}
            for row in conn.execute(
                    select(records.c.device_id, records.c.stream, records.c.ts,
                           records.c.seq, records.c.received_at, records.c.metrics,
                           records.c.sources)
                    .where(records.c.received_at >= since - self.overlap)
                    .order_by(records.c.ts)):
                latest[(row.device_id, row.stream)] = row
                # The clock is judged on the box's newest record by seq: a replayed
                # backlog (old or wrong ts) must not stand for the clock it has now.
                key = (row.device_id, row.stream)
                if key not in newest or row.seq > newest[key].seq:
                    newest[key] = row
            # Only the devices heard from in the window: at city scale a full scan every
            # run held the GIL long enough to show in the API's tail latency.
            group_of: Dict[str, Optional[str]] = {}
            unsynced: Dict[str, Optional[datetime]] = {}
            heard = sorted({device_id for device_id, _ in latest})
            # Their open alerts in bulk too: a query per device to find what to resolve
            # was thousands of queries a run at city scale.
            open_of: Dict[str, List[Any]] = {d: [] for d in heard}
            for i in range(0, len(heard), 500):
                chunk = heard[i:i + 500]
                for r in conn.execute(select(devices.c.device_id, devices.c.group_name,
                                             devices.c.ntp_unsynced_since)
                                      .where(devices.c.device_id.in_(chunk))):
                    group_of[r.device_id] = r.group_name
                    unsynced[r.device_id] = r.ntp_unsynced_since
                for r in conn.execute(select(alerts).where(alerts.c.device_id.in_(chunk),
                                                           alerts.c.status == "open")):
                    open_of[r.device_id].append(r)
            for (device_id, stream), row in latest.items():
                if stream not in STREAM_RULES or device_id not in group_of:
                    continue
                lim = limits.get(group_of[device_id] or "", DEFAULTS)
                findings = judge(stream, row.metrics or {}, row.sources or {}, lim)
                findings += self._clock(newest[(device_id, stream)], unsynced.get(device_id),
                                        now)
                apply(conn, device_id, STREAM_RULES[stream], findings, now,
                      open_of[device_id])
            self._offline(conn, now, limits)
        self.since = now

    def _clock(self, row: Any, unsynced_since: Optional[datetime], now: datetime
               ) -> List[Finding]:
        """A box whose clock is wrong: its newest record's ts far from the fleet's receive
        time, or the box itself saying "not synced" for longer than unsynced_after."""
        skew = (row.ts - row.received_at).total_seconds()
        hint = "check NTP (UDP 123) on the uplink"
        if row.ts - row.received_at > CLOCK_AHEAD or row.received_at - row.ts > CLOCK_BEHIND:
            return [Finding("clock", "", f"box clock off by {skew / 3600:+.1f} h; {hint}",
                            round(skew, 1))]
        if unsynced_since is not None and now - unsynced_since > self.unsynced_after:
            hours = (now - unsynced_since).total_seconds() / 3600
            return [Finding("clock", "", f"clock not synced for {hours:.1f} h; {hint}",
                            round(skew, 1))]
        return []

    def _offline(self, conn: Connection, now: datetime, limits: Dict[str, Dict[str, float]]
                 ) -> None:
        if not ingest_alive(conn, now):
            return  # the fleet cannot know: presence is unknown, not offline
        open_offline = select(alerts.c.device_id).where(alerts.c.rule == "offline",
                                                        alerts.c.status == "open")
        flagged = {r[0] for r in conn.execute(open_offline)}
        # Candidates only: silent for longer than the shortest offline limit (maybe offline
        # long enough), or already flagged (maybe back). The database filters them, not a
        # Python loop over every device.
        shortest = min([lim["offline_min"] for lim in limits.values()]
                       + [DEFAULTS["offline_min"]]) * 60
        quiet = now - timedelta(seconds=shortest)
        for row in conn.execute(select(devices.c.device_id, devices.c.state,
                                       devices.c.last_seen, devices.c.group_name)
                                .where(devices.c.last_seen.is_not(None),
                                       or_(devices.c.last_seen < quiet,
                                           devices.c.device_id.in_(open_offline)))):
            state, _online = presence(row.state, row.last_seen, now, self.timeout_s, True)
            silent = (now - row.last_seen).total_seconds()
            lim = limits.get(row.group_name or "", DEFAULTS)
            if state == "offline" and silent > lim["offline_min"] * 60:
                apply(conn, row.device_id, ("offline",), [Finding(
                    "offline", "", f"offline for {silent / 60:.1f} min, over "
                    f"{lim['offline_min']:g} min", round(silent / 60, 2))], now)
            elif state == "online" and row.device_id in flagged:
                apply(conn, row.device_id, ("offline",), [], now)
