"""Rollups and retention, run by the worker under its lease.

Each pass folds the records that *arrived* since the last pass (by receive time, so a
box's late backlog is counted too) into per-minute and per-hour buckets of their own
timestamps: count, sum, min, max per metric, merged by upsert. Retention then deletes
raw records, minute buckets and hour buckets past their ages, so a year of a thousand
points stays small: hours are kept longest.

A device whose rows cannot be folded (a value that is not a finite number in the
contract's range, a row of the wrong shape, buckets the database refuses) is isolated:
what can be folded of it is, the rest is skipped, a `rollup` alert is opened on it, and
the pass goes on for every other device.
"""

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Dict, List, Optional, Set, Tuple

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from fleet_api.alerts.rules import Finding, apply
from fleet_api.db import alerts, marks, records, rollup_1h, rollup_1m, utcnow
from fleet_api.ingest.store import WRITE_ERRORS, brief, clean_text, store_failure
from simpul_wire.models import MAX_METRIC

log = logging.getLogger("simpul.rollups")

MARK = "rollups"
SETTLE = timedelta(seconds=2)  # commits in flight when the pass reads


@dataclass
class Retention:
    raw_days: float = 14
    minute_days: float = 35
    hour_days: float = 400


Key = Tuple[str, str, str, datetime]


# device_id -> [how many values or rows could not be folded, the first reason]
Problems = Dict[str, List[Any]]
ALERT_RULE = "rollup"


def note(problems: Problems, device_id: str, reason: str, count: int = 1) -> None:
    entry = problems.setdefault(device_id, [0, reason])
    entry[0] += count


def foldable(value: Any) -> Optional[float]:
    """The value as a float when it is a finite number within the contract's range."""
    if not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any double
        return None
    return number if math.isfinite(number) and abs(number) <= MAX_METRIC else None


def _values(row: Any, problems: Problems) -> Tuple[datetime, datetime, List[Tuple[str, float]]]:
    """A row's minute, hour and foldable values; raises on a row of the wrong shape."""
    minute = row.ts.replace(second=0, microsecond=0)
    hour = minute.replace(minute=0)
    values = []
    for name, value in (row.metrics or {}).items():
        if len(name) > 64:
            continue  # longer than the rollup's metric column; kept raw only
        if "\x00" in name:  # no text column of PostgreSQL holds it
            note(problems, row.device_id, f"metric name {name[:64]!r} holds a NUL")
            continue
        number = foldable(value)
        if number is None:
            if isinstance(value, (int, float)):  # a number, but not one a bucket can hold
                note(problems, row.device_id, f"metric {name[:64]!r} is {value!r:.40}")
            continue
        values.append((name, number))
    return minute, hour, values


def fold(rows: List[Any], problems: Optional[Problems] = None
         ) -> Tuple[Dict[Key, List[float]], Dict[Key, List[float]]]:
    """Pure: per-minute and per-hour [count, sum, min, max] of the rows' metrics. What
    cannot be folded is skipped and counted in `problems` by device."""
    problems = {} if problems is None else problems
    minutes: Dict[Key, List[float]] = {}
    hours: Dict[Key, List[float]] = {}
    for row in rows:
        try:
            minute, hour, values = _values(row, problems)
        except (AttributeError, TypeError, ValueError) as exc:  # not a dict, no datetime
            note(problems, str(row.device_id), f"a row cannot be folded: {exc}")
            continue
        for name, value in values:
            for table, bucket in ((minutes, minute), (hours, hour)):
                key = (row.device_id, row.stream, name, bucket)
                agg = table.get(key)
                if agg is None:
                    table[key] = [1, value, value, value]
                else:
                    agg[0] += 1
                    agg[1] += value
                    agg[2] = min(agg[2], value)
                    agg[3] = max(agg[3], value)
    return minutes, hours


def upsert(conn: Connection, table: Table, aggs: Dict[Key, List[float]]) -> None:
    if not aggs:
        return
    rows = [{"device_id": k[0], "stream": k[1], "metric": k[2], "bucket": k[3],
             "count": int(v[0]), "sum": v[1], "min": v[2], "max": v[3]}
            for k, v in aggs.items()]
    dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    ex = stmt.excluded
    from sqlalchemy import func

    least = func.least if conn.dialect.name == "postgresql" else func.min
    greatest = func.greatest if conn.dialect.name == "postgresql" else func.max
    stmt = stmt.on_conflict_do_update(
        index_elements=["device_id", "stream", "metric", "bucket"],
        set_={"count": table.c.count + ex.count, "sum": table.c.sum + ex.sum,
              "min": least(table.c.min, ex.min), "max": greatest(table.c.max, ex.max)})
    for i in range(0, len(rows), 5000):
        conn.execute(stmt, rows[i:i + 5000])


def merge(conn: Connection, minutes: Dict[Key, List[float]], hours: Dict[Key, List[float]],
          problems: Problems) -> None:
    """Upsert a part's buckets; when the database refuses them for a reason in the data,
    each device's on its own, so one device's buckets never hold back the others'."""
    try:
        with conn.begin_nested():
            upsert(conn, rollup_1m, minutes)
            upsert(conn, rollup_1h, hours)
        return
    except WRITE_ERRORS as exc:
        if store_failure(exc):
            raise
        log.warning("rollup buckets refused (%s); merging device by device", brief(exc))
    for device_id in sorted({k[0] for k in minutes} | {k[0] for k in hours}):
        try:
            with conn.begin_nested():
                upsert(conn, rollup_1m, {k: v for k, v in minutes.items() if k[0] == device_id})
                upsert(conn, rollup_1h, {k: v for k, v in hours.items() if k[0] == device_id})
        except WRITE_ERRORS as exc:
            if store_failure(exc):
                raise
            note(problems, device_id, f"its buckets cannot be stored: {brief(exc)}")


def report(conn: Connection, problems: Problems, folded: Set[str], now: datetime) -> None:
    """A `rollup` alert on each device with rows the pass could not fold; resolved once a
    pass folds all of that device's new rows."""
    for device_id, (count, reason) in sorted(problems.items()):
        log.warning("rollup skipped %d values or rows of %s: %s", count, device_id, reason)
        message = clean_text(f"{count} values or rows could not be rolled up: {reason}", 500)
        apply(conn, device_id, (ALERT_RULE,), [Finding(ALERT_RULE, "", message, count)], now)
    flagged = {r[0] for r in conn.execute(select(alerts.c.device_id).where(
        alerts.c.rule == ALERT_RULE, alerts.c.status == "open"))}
    for device_id in sorted((flagged & folded) - set(problems)):
        apply(conn, device_id, (ALERT_RULE,), [], now)


def _mark(conn: Connection) -> Optional[datetime]:
    row = conn.execute(select(marks.c.at).where(marks.c.name == MARK)).first()
    return None if row is None else row[0]


def run(engine: Engine, retention: Retention, now: Optional[datetime] = None,
        chunk: int = 5000) -> int:
    """One pass; returns how many records were folded. Rows are read and folded `chunk`
    at a time (each part's buckets merged by upsert), so a pass's memory stays bounded:
    at 50,000 a city of 10,000 boxes (26,000 records a minute) took the fleet process
    from 300 to 520 MB once a minute in the city soak."""
    now = now or utcnow()
    until = now - SETTLE
    folded = 0
    problems: Problems = {}
    devices: Set[str] = set()
    with engine.begin() as conn:
        since = _mark(conn)
        query = select(records.c.device_id, records.c.stream, records.c.ts,
                       records.c.metrics).where(records.c.received_at < until)
        if since is not None:
            query = query.where(records.c.received_at >= since)
        result = conn.execute(query.execution_options(yield_per=chunk))
        for part in result.partitions(chunk):
            minutes, hours = fold(list(part), problems)
            merge(conn, minutes, hours, problems)
            devices.update(str(row.device_id) for row in part)
            folded += len(part)
        report(conn, problems, devices, now)
        if since is None:
            conn.execute(marks.insert().values(name=MARK, at=until))
        else:
            conn.execute(marks.update().where(marks.c.name == MARK).values(at=until))
    with engine.begin() as conn:
        conn.execute(delete(records).where(
            records.c.received_at < now - timedelta(days=retention.raw_days)))
        conn.execute(delete(rollup_1m).where(
            rollup_1m.c.bucket < now - timedelta(days=retention.minute_days)))
        conn.execute(delete(rollup_1h).where(
            rollup_1h.c.bucket < now - timedelta(days=retention.hour_days)))
    if folded:
        log.info("rolled up %d records", folded)
    return folded
