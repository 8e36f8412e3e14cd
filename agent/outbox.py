"""The durable outbox: every accepted record waits here until the broker acknowledges it.

A record's identity is (stream, epoch, seq). The epoch is random and made when the
outbox file is created, so a re-flashed card never reuses old numbers; seq counts up
per stream and survives restarts because it is assigned in the same transaction that
stores the record.

Durability: WAL journal with synchronous=FULL. Every commit fsyncs the WAL before it
returns, so a record the agent has accepted survives kill -9 and a power cut; a torn
write at power loss is rolled back by SQLite's WAL checksums, never half-applied.

Confirmation: a record leaves the outbox only when the fleet says it is stored (an `ack`
message after the ingest's commit), not merely when the broker has it: Mosquitto loses
what it accepted for a shared subscription across a restart. Sent records wait for that
confirmation and are sent again after a timeout; the fleet's unique key absorbs repeats.

Budget: when the file holds more than max_bytes, or records older than max_age_s, the
oldest records are dropped and replaced by one gap record (same stream, the first
dropped seq, `gap.to_seq` the last), so the fleet sees exactly what was lost.

Disk full: the card fills (a long outage, or logs beside us). The WAL is kept small
(checkpoint every WAL_PAGES pages, truncated back to WAL_LIMIT), and when the
filesystem's free space falls under min_free_bytes, or a write fails with SQLITE_FULL,
the byte budget is frozen at what the outbox holds now: each new record then displaces
the oldest (counted gap records, `disk_low` counted), reusing their pages, so the file
stops growing while every new record still gets its seq. On freezing it also takes a
reserve file of half min_free_bytes: if another program then takes the last byte and a
write fails with SQLITE_FULL, the reserve is given back, the WAL checkpointed and cut,
the oldest dropped, and the write tried once more. The freeze lifts when the free space
is back above twice min_free_bytes. A disk filled to the last byte before the outbox
froze can refuse a write even so: a refused record has no seq and is counted in
`write_errors` (kept in memory until the disk takes it). See docs/reliability.md.
"""

import json
import logging
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from agent.errors import OutboxError

log = logging.getLogger("simpul.outbox")

# Lower sends first: health and alerts go before bulk telemetry.
PRIORITY = {"health": 0, "telemetry": 5}
DEFAULT_PRIORITY = 5
# A sent record the fleet has not confirmed is sent again after this long, doubling per
# try up to RESEND_MAX_S, so a long fleet outage does not flood the broker's queues.
RESEND_AFTER_S = 30.0
RESEND_MAX_S = 3600.0
# Disk full: the WAL stays under about WAL_PAGES pages, and its file is cut back to
# WAL_LIMIT after a checkpoint instead of keeping its largest size.
WAL_PAGES = 128
WAL_LIMIT = 1 << 20
MIN_FREE_BYTES = 2 << 20
SQLITE_FULL = 13

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seqs (stream TEXT PRIMARY KEY, next_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    created REAL NOT NULL,
    body TEXT NOT NULL,
    is_gap INTEGER NOT NULL DEFAULT 0,
    sent_at REAL,
    sends INTEGER NOT NULL DEFAULT 0,
    UNIQUE (stream, seq)
);
CREATE INDEX IF NOT EXISTS records_send ON records (priority, id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class StoredRecord:
    id: int
    stream: str
    seq: int
    text: str  # the body as stored: a JSON object without `seq`

    @property
    def body(self) -> Dict[str, object]:
        return json.loads(self.text)  # type: ignore[no-any-return]


class Outbox:
    """One SQLite file per box. Not thread-safe: the agent's loop owns it."""

    def __init__(self, path: str, max_bytes: int = 64 << 20, max_age_s: float = 7 * 86400,
                 clock: Callable[[], float] = time.time,
                 resend_after_s: float = RESEND_AFTER_S,
                 min_free_bytes: int = MIN_FREE_BYTES) -> None:
        self.path = path
        self.resend_after_s = resend_after_s
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.min_free_bytes = min_free_bytes
        # The byte budget frozen while the disk is full; None when there is room.
        self.disk_cap: Optional[int] = None
        self._reserve = path + "-reserve"
        self._reserved = path != ":memory:" and os.path.exists(self._reserve)
        self._unsaved: Dict[str, int] = {}
        self._clock = clock
        try:
            if path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
            self._db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
            self._db.executescript(_SCHEMA)
            self.epoch = self._load_epoch()
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"outbox {path}: {exc}") from exc
        self._bytes = self._count_bytes()

    # -- identity ---------------------------------------------------------------------
    def _load_epoch(self) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()
        if row:
            return str(row[0])
        epoch = secrets.token_hex(8)
        self._db.execute("INSERT INTO meta (key, value) VALUES ('epoch', ?)", (epoch,))
        return epoch

    def _count_bytes(self) -> int:
        row = self._db.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM records").fetchone()
        return int(row[0])

    # -- writing ----------------------------------------------------------------------
    def append(self, stream: str, body: Dict[str, object]) -> int:
        """Store one record durably and return its seq. `body` must not hold `seq`.

        On a full disk the oldest records make room (counted gaps) and the write is
        tried once more; only if that fails too is the record refused (OutboxError)."""
        self._watch_disk()
        text = json.dumps(body, separators=(",", ":"), sort_keys=True)
        try:
            seq = self._insert(stream, text)
        except sqlite3.Error as exc:
            self._rollback()
            if not _is_full(exc):
                self.bump("write_errors")
                raise OutboxError(f"outbox {self.path}: cannot store record: {exc}") from exc
            try:
                self._make_room()
                seq = self._insert(stream, text)
            except (sqlite3.Error, OutboxError) as again:
                self._rollback()
                self.bump("write_errors")
                raise OutboxError(f"outbox {self.path}: disk full, cannot store record: "
                                  f"{again}") from again
        self._bytes += len(text)
        for name in list(self._unsaved):  # the disk takes writes again
            self.bump(name, 0)
        try:
            self.enforce_budget()
        except OutboxError as exc:  # the record is stored; the budget waits for the next one
            log.warning("%s", exc)
        return seq

    def _insert(self, stream: str, text: str) -> int:
        self._db.execute("BEGIN IMMEDIATE")
        row = self._db.execute("SELECT next_seq FROM seqs WHERE stream=?", (stream,)).fetchone()
        seq = int(row[0]) if row else 0
        self._db.execute(
            "INSERT INTO seqs (stream, next_seq) VALUES (?, ?) "
            "ON CONFLICT(stream) DO UPDATE SET next_seq=excluded.next_seq",
            (stream, seq + 1),
        )
        self._db.execute(
            "INSERT INTO records (stream, seq, priority, created, body) VALUES (?, ?, ?, ?, ?)",
            (stream, seq, PRIORITY.get(stream, DEFAULT_PRIORITY), self._clock(), text),
        )
        self._db.execute("COMMIT")
        return seq

    # -- a full disk ------------------------------------------------------------------
    def _free_bytes(self) -> Optional[int]:
        if self.path == ":memory:":
            return None
        try:
            st = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
        except OSError:
            return None
        return int(st.f_bavail * st.f_frsize)

    def _watch_disk(self) -> None:
        """Freeze the budget when free space runs low; lift it when space is back."""
        free = self._free_bytes()
        if free is None:
            return
        if self.disk_cap is None and free < self.min_free_bytes:
            self.disk_cap = self._bytes
            self.bump("disk_low")
            self._take_reserve()
            log.warning("outbox %s: %d bytes free on its disk; new records now displace "
                        "the oldest", self.path, free)
        elif free >= 2 * self.min_free_bytes and (self.disk_cap is not None or self._reserved):
            self.disk_cap = None
            self._release_reserve()
            log.warning("outbox %s: disk space is back (%d bytes free)", self.path, free)

    def _take_reserve(self) -> None:
        try:
            fd = os.open(self._reserve, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, max(4096, self.min_free_bytes // 2))
            finally:
                os.close(fd)
            self._reserved = True
        except OSError:
            self._release_reserve()  # no room even for that; SQLITE_FULL will tell

    def _release_reserve(self) -> None:
        self._reserved = False
        try:
            os.remove(self._reserve)
        except OSError:
            pass

    def _make_room(self) -> None:
        """SQLITE_FULL: shrink the frozen budget by a tenth, drop the oldest to fit it,
        and hand the WAL's space back to the file system."""
        self.disk_cap = int(min(self.disk_cap if self.disk_cap is not None else self._bytes,
                                self._bytes) * 0.9)
        log.warning("outbox %s: disk full; dropping the oldest records", self.path)
        self._release_reserve()
        # Copy the WAL into the file and cut it to nothing: the drops below then
        # write into a fresh WAL, and their pages are reused by the retried insert.
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass  # the drops and the retry say whether there is room now
        self.bump("disk_full")
        self.enforce_budget()

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    # -- reading and acknowledging --------------------------------------------------------
    def pending(self, limit: int, exclude: Sequence[int] = ()) -> List[StoredRecord]:
        """The next records to send, by priority then oldest: never sent, or sent and not
        confirmed by the fleet within a resend timeout that doubles with each try."""
        skip = set(exclude)
        now = self._clock()
        # A sent_at in the future means the wall clock went back: due now, not in an hour.
        rows = self._db.execute(
            "SELECT id, stream, seq, body FROM records WHERE sent_at IS NULL "
            "OR sent_at + min(?, ? * (1 << min(sends - 1, 10))) <= ? OR sent_at > ? "
            "ORDER BY priority, id LIMIT ?",
            (RESEND_MAX_S, self.resend_after_s, now, now, limit + len(skip)),
        ).fetchall()
        out = [StoredRecord(r[0], r[1], r[2], r[3]) for r in rows if r[0] not in skip]
        return out[:limit]

    def mark_sent(self, ids: Sequence[int]) -> None:
        """Published (from the moment they go out); they stay until the fleet confirms
        storage, and are due again after the resend timeout."""
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        self._db.execute(
            f"UPDATE records SET sent_at=?, sends=sends+1 WHERE id IN ({marks})",
            [self._clock(), *ids],
        )

    def confirm(self, stream: str, epoch: str, ranges: Sequence[Tuple[int, int]]) -> int:
        """The fleet stored these seqs: forget them. Returns how many were removed."""
        if epoch != self.epoch:
            return 0  # an old card's numbers; nothing of ours
        removed = 0
        for first, last in ranges:
            freed = self._db.execute(
                "SELECT COALESCE(SUM(LENGTH(body)), 0), COUNT(*) FROM records "
                "WHERE stream=? AND seq BETWEEN ? AND ?", (stream, first, last)).fetchone()
            self._db.execute("DELETE FROM records WHERE stream=? AND seq BETWEEN ? AND ?",
                             (stream, first, last))
            self._bytes -= int(freed[0])
            removed += int(freed[1])
        return removed

    def last_id(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM records").fetchone()
        return int(row[0])

    def shift_times(self, step: float, after_id: int) -> int:
        """The wall clock stepped by `step` s (agent.timesync.ClockJumps): move the stored
        times of records written since `after_id` with it, so NTP's first sync after a
        boot in 1970 does not make fresh records look decades old (and drop them)."""
        cur = self._db.execute("UPDATE records SET created=created+?, sent_at=sent_at+? "
                               "WHERE id>?", (step, step, after_id))
        return int(cur.rowcount)

    def resend_unconfirmed(self) -> None:
        """After a reconnect: what the broker had but the fleet never confirmed may have
        died with the broker, so it is due again at once."""
        self._db.execute("UPDATE records SET sent_at=NULL WHERE sent_at IS NOT NULL")

    def unconfirmed(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM records WHERE sent_at IS NOT NULL")
        return int(row.fetchone()[0])

    # -- budget -----------------------------------------------------------------------
    def enforce_budget(self) -> int:
        """Drop the oldest records beyond the byte and age caps; return how many."""
        dropped = 0
        cutoff = self._clock() - self.max_age_s
        cap = self.max_bytes if self.disk_cap is None else min(self.max_bytes, self.disk_cap)
        while True:
            row = self._db.execute(
                "SELECT id, stream, created FROM records WHERE is_gap=0 ORDER BY id LIMIT 1"
            ).fetchone()
            if row is None:
                break
            too_old = row[2] < cutoff
            if not (self._bytes > cap or too_old):
                break
            self._drop(row[0], row[1], "age" if too_old else "budget")
            dropped += 1
        return dropped

    def drop(self, record_id: int, reason: str) -> None:
        """Replace one record by a counted gap (`dropped`, and `reason` itself)."""
        row = self._db.execute("SELECT stream FROM records WHERE id=? AND is_gap=0",
                               (record_id,)).fetchone()
        if row is not None:
            self._drop(record_id, str(row[0]), reason)
            self.bump(reason)

    def _drop(self, victim_id: int, stream: str, reason: str) -> None:
        """Turn one record into a gap, or fold it into the gap just before it."""
        victim = self._db.execute(
            "SELECT seq, body FROM records WHERE id=?", (victim_id,)
        ).fetchone()
        # Only a gap never sent may grow: the fleet keeps the first row of a seq, so a
        # grown copy of a gap it already holds would be ignored, and the folded seq lost.
        before = self._db.execute(
            "SELECT id, body FROM records WHERE stream=? AND is_gap=1 AND seq<? AND sends=0 "
            "ORDER BY seq DESC LIMIT 1", (stream, victim[0])
        ).fetchone()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            gap_body = json.loads(before[1]) if before else None
            if gap_body is not None and gap_body["gap"]["to_seq"] == victim[0] - 1:
                gap_body["gap"]["to_seq"] = victim[0]
                text = json.dumps(gap_body, separators=(",", ":"), sort_keys=True)
                self._db.execute("UPDATE records SET body=? WHERE id=?", (text, before[0]))
                self._db.execute("DELETE FROM records WHERE id=?", (victim_id,))
                delta = len(text) - len(before[1]) - len(victim[1])
            else:
                ts = json.loads(victim[1]).get("ts")
                body = {"ts": ts, "gap": {"to_seq": victim[0], "reason": reason}}
                text = json.dumps(body, separators=(",", ":"), sort_keys=True)
                self._db.execute("UPDATE records SET body=?, is_gap=1 WHERE id=?",
                                 (text, victim_id))
                delta = len(text) - len(victim[1])
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES ('dropped', 1) "
                "ON CONFLICT(name) DO UPDATE SET value=value+1")
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise OutboxError(f"outbox {self.path}: cannot drop a record: {exc}") from exc
        self._bytes += delta

    # -- figures ----------------------------------------------------------------------
    def bump(self, name: str, by: int = 1) -> None:
        by += self._unsaved.pop(name, 0)
        try:
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value=value+excluded.value",
                (name, by),
            )
        except sqlite3.Error:
            # A counter must never cost a record; on a full disk it waits in memory.
            self._unsaved[name] = by

    def counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
        return (int(row[0]) if row else 0) + self._unsaved.get(name, 0)

    def depth(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def oldest_age_s(self) -> Optional[float]:
        row = self._db.execute("SELECT MIN(created) FROM records").fetchone()
        return None if row[0] is None else max(0.0, self._clock() - float(row[0]))

    def next_seqs(self) -> Dict[str, int]:
        """The next seq of each stream: every seq below it was assigned (for loss checks)."""
        return {str(r[0]): int(r[1]) for r in self._db.execute("SELECT stream, next_seq FROM seqs")}

    @property
    def bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        self._db.close()


def _is_full(exc: sqlite3.Error) -> bool:
    """SQLITE_FULL; Python 3.9 has no sqlite_errorcode, so the message decides there."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF == SQLITE_FULL)
    return "database or disk is full" in str(exc)
