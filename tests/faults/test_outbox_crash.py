"""kill -9 in the middle of outbox writes, many times over, then the file reopened.

A child appends records of random size (up to 24 KB, across overflow pages) in a loop,
under a byte budget that keeps dropping the oldest into gaps, and is killed at random
moments. After each kill: integrity_check is ok, every record the child saw committed
is there, every body is whole (its digest matches), and records plus gaps cover each
stream's seqs 0..n exactly once, with the gaps' total equal to the `dropped` counter.
A kill keeps the page cache, so this is not a power cut: docs/reliability.md says why
the settings also survive one.
"""

import hashlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Set

import pytest

from testbed.harness import ROOT

pytestmark = pytest.mark.slow

KILLS = 15
BUDGET = 256 * 1024


def check(path: Path, committed: Dict[str, Set[int]]) -> Dict[str, int]:
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        numbered = dict(db.execute("SELECT stream, next_seq FROM seqs").fetchall())
        dropped = dict(db.execute("SELECT name, value FROM counters").fetchall()).get(
            "dropped", 0)
        in_gaps = 0
        for stream, total in numbered.items():
            covered: List[int] = []
            for seq, is_gap, text in db.execute(
                    "SELECT seq, is_gap, body FROM records WHERE stream=? ORDER BY seq",
                    (stream,)):
                body = json.loads(text)
                if is_gap:
                    covered.extend(range(seq, body["gap"]["to_seq"] + 1))
                    in_gaps += body["gap"]["to_seq"] - seq + 1
                else:
                    assert hashlib.sha256(body["pad"].encode()).hexdigest() == body["sha"]
                    covered.append(seq)
            assert covered == list(range(total)), f"{stream}: seqs not 0..{total - 1} once"
            # Durable: what the child saw committed is numbered (and held or in a gap).
            assert all(s < total for s in committed.get(stream, set()))
        assert in_gaps == dropped
        return numbered
    finally:
        db.close()


def test_kill_during_outbox_writes(scratch: Path) -> None:
    path = scratch / "outbox.sqlite"
    committed: Dict[str, Set[int]] = {}
    rng = random.Random()
    last: Dict[str, int] = {}
    for _ in range(KILLS):
        child = subprocess.Popen([sys.executable, "-m", "tests.faults.outbox_writer", str(path),
                                  str(BUDGET)], stdout=subprocess.PIPE, cwd=ROOT, text=True)
        assert child.stdout is not None
        first = child.stdout.readline()  # it has started writing
        time.sleep(rng.uniform(0.05, 0.5))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=10)
        for line in (first + out).splitlines():
            stream, seq = line.split()
            committed.setdefault(stream, set()).add(int(seq))
        numbered = check(path, committed)
        # Every run added records: the kills did not stop progress.
        assert all(numbered.get(s, 0) >= n for s, n in last.items())
        last = numbered
    assert sum(last.values()) > KILLS * 10
