"""Only finite numbers are stored: clean the NaN and Infinity an older fleet let in.

On SQLite the JSON columns kept the words NaN and Infinity (no JSON reader takes them:
a device's telemetry page was invalid JSON) and a REAL column kept Infinity. Telemetry
metrics lose the values (a non-finite reading is no reading, as the agent treats it),
other JSON maps them to null, rollup buckets holding them are deleted and alert values
set to NULL.

PostgreSQL never held them: its `json` type refuses both words, so those messages never
committed (they stalled the ingest instead), and nothing folded from them. The migration
is a no-op there rather than a scan of a city's tables.

Revision ID: 0110
Revises: 0105
"""

import json
import math
from typing import Any, Callable

import sqlalchemy as sa
from alembic import op

revision = "0110"
down_revision = "0105"

# SQLite's literal for a REAL infinity.
_INF = "9e999"


def _without_non_finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: v for k, v in value.items()
                if not (isinstance(v, float) and not math.isfinite(v))}
    return value


def _nulled(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nulled(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nulled(v) for v in value]
    return value


def _clean(conn: Any, table: str, key: str, column: str,
           fix: Callable[[Any], Any]) -> None:
    rows = conn.execute(sa.text(
        f"SELECT {key}, {column} FROM {table} "
        f"WHERE {column} LIKE '%NaN%' OR {column} LIKE '%Infinity%'")).fetchall()
    for row_key, text in rows:
        try:
            value = json.loads(text)
        except ValueError:
            continue  # not JSON at all: not this migration's to judge
        cleaned = json.dumps(fix(value), allow_nan=False)
        if cleaned != text:
            conn.execute(sa.text(f"UPDATE {table} SET {column} = :v WHERE {key} = :k"),
                         {"v": cleaned, "k": row_key})


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return
    _clean(conn, "records", "id", "metrics", _without_non_finite)
    _clean(conn, "devices", "device_id", "reported", _nulled)
    _clean(conn, "commands", "command_id", "result", _nulled)
    _clean(conn, "events", "id", "data", _nulled)
    for table in ("rollup_1m", "rollup_1h"):
        conn.execute(sa.text(f"DELETE FROM {table} WHERE abs(sum) >= {_INF} "
                             f"OR abs(min) >= {_INF} OR abs(max) >= {_INF}"))
    conn.execute(sa.text(f"UPDATE alerts SET value = NULL WHERE abs(value) >= {_INF}"))


def downgrade() -> None:
    pass  # the values removed were no readings; nothing to put back
