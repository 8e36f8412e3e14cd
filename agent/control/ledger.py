"""The command ledger: which command ids this box has run, with their results.

It persists (SQLite beside the outbox), so a command delivered twice runs once, also
across restarts, and a result the broker never acknowledged is sent again on reconnect.
A command is written as `received` before it runs, so a reboot command cannot loop.
"""

import json
import sqlite3
import time
from typing import Any, Dict, List, Optional, Tuple

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    command_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    received_at REAL NOT NULL,
    status TEXT NOT NULL,
    result TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    reported INTEGER NOT NULL DEFAULT 0
);
"""
KEEP_S = 30 * 86400


class Ledger:
    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db.execute("DELETE FROM commands WHERE received_at < ?", (time.time() - KEEP_S,))

    def seen(self, command_id: str) -> Optional[Tuple[str, Dict[str, Any], Optional[str]]]:
        row = self._db.execute("SELECT status, result, error FROM commands WHERE command_id=?",
                               (command_id,)).fetchone()
        return None if row is None else (row[0], json.loads(row[1]), row[2])

    def receive(self, command_id: str, name: str) -> bool:
        """Record a command before running it; False if it was already there."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO commands (command_id, name, received_at, status) "
            "VALUES (?, ?, ?, 'received')", (command_id, name, time.time()))
        return cur.rowcount == 1

    def finish(self, command_id: str, status: str, result: Dict[str, Any],
               error: Optional[str]) -> None:
        self._db.execute(
            "UPDATE commands SET status=?, result=?, error=?, reported=0 WHERE command_id=?",
            (status, json.dumps(result, default=str), error, command_id))

    def reported(self, command_id: str, status: str) -> None:
        self._db.execute("UPDATE commands SET reported=1 WHERE command_id=? AND status=?",
                         (command_id, status))

    def unreported(self) -> List[Tuple[str, str, Dict[str, Any], Optional[str]]]:
        rows = self._db.execute(
            "SELECT command_id, status, result, error FROM commands WHERE reported=0 "
            "AND status != 'received'").fetchall()
        return [(r[0], r[1], json.loads(r[2]), r[3]) for r in rows]

    def close(self) -> None:
        self._db.close()
