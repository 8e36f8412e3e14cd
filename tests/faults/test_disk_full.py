"""The box's disk full: the outbox on a 3 MiB tmpfs while the broker is down.

1. The outbox itself fills the disk: under min_free_bytes free it freezes its budget and
   each new record displaces the oldest (counted gap records).
2. Another program takes the last byte: the outbox, frozen, reuses the pages of what it
   drops; when a write still fails (SQLITE_FULL) it gives back its reserve file,
   checkpoints, drops the oldest and retries, so every new record still gets its seq.
3. Space returns: no more drops. The broker returns: every seq reaches the fleet exactly
   once, as a record or inside a declared gap, and the gaps cover exactly the count of
   dropped records. integrity_check is ok at the end.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest

from testbed.harness import Broker, Fleet, device, wait_until
from tests.faults.helpers import (
    assert_exactly_once,
    collectors,
    make_box,
    outbox_once_made,
    publish,
    read_outbox,
)

pytestmark = pytest.mark.slow

# 300 metrics: records of about 6 KB, 20 a second, so 3 MiB fill in seconds.
BIG = {f"m{i:03d}": float(i) for i in range(300)}


def fill(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def test_disk_full(scratch: Path, broker: Broker, fleet: Fleet) -> None:
    box = make_box(scratch, fleet, "full-disk", publish(sample_s=0.05, health_s=1, batch=20),
                   collectors("big", BIG))
    broker.stop()
    box.data.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0755", "tmpfs", str(box.data)],
                   check=True)
    filler = box.data / "filler"
    try:
        box.start()
        state = wait_until(lambda: (lambda s: s is not None and s.counters.get("dropped", 0)
                                    >= 30 and s)(outbox_once_made(box.outbox)), 60,
                           what="drop-oldest once the outbox has filled the disk")
        assert state.counters.get("disk_low") == 1
        # Something else takes every byte that is left.
        fill(filler)
        assert os.statvfs(box.data).f_bavail == 0
        full = wait_until(lambda: (lambda s: sum(s.numbered.values()) >=
                                   sum(state.numbered.values()) + 30 and s)(
                                       read_outbox(box.outbox)),
                          30, what="new records stored with the disk at 0 bytes")
        # Room made by dropping the oldest; no record refused.
        assert full.counters["dropped"] >= state.counters["dropped"] + 30
        assert full.counters.get("write_errors", 0) == 0
        filler.unlink()
        subprocess.run(["mount", "-o", "remount,size=64m", str(box.data)], check=True)
        wait_until(lambda: "disk space is back" in box.logs(), 10, what="space noticed")
        time.sleep(0.5)
        before = read_outbox(box.outbox)
        time.sleep(3)
        after = read_outbox(box.outbox)
        # Space is back: records keep coming and none is dropped any more.
        assert after.numbered["telemetry"] >= before.numbered["telemetry"] + 30
        assert after.counters["dropped"] == before.counters["dropped"]
        broker.start()
        wait_until(lambda: device(fleet, box.device_id)["online"], 90, what="online")
        # Drained: nothing numbered before the broker came back is still held (a held
        # gap holds every seq folded into it).
        wait_until(lambda: not any(seq < after.numbered["telemetry"] for seq in
                                   read_outbox(box.outbox).held["telemetry"]),
                   60, what="the backlog drained")
        box.stop()
        final = read_outbox(box.outbox)
        assert final.integrity == "ok"
        assert final.counters.get("write_errors", 0) == 0, final.counters
        rows = assert_exactly_once(fleet, box, gaps_allowed=True)
        in_gaps = sum(r["gap_to"] - r["seq"] + 1 for stream in rows.values() for r in stream
                      if r["gap_to"] is not None)
        # Every dropped record is declared in a gap, and nothing else is.
        assert in_gaps == final.counters["dropped"] > 60
        assert "Traceback" not in box.logs()
    finally:
        box.stop()
        subprocess.run(["umount", str(box.data)], check=False)


def test_disk_filled_to_the_last_byte_by_another_program(scratch: Path) -> None:
    """Before the outbox has frozen its budget, something else takes every byte: a write
    may then be refused. A refused record gets no seq (the stream stays contiguous), is
    counted in write_errors, and the file stays sound; writes resume when space returns."""
    from agent.errors import OutboxError
    from agent.outbox import Outbox

    mount = scratch / "card"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        outbox = Outbox(str(mount / "outbox.sqlite"), min_free_bytes=64 * 1024)
        body = {"ts": "2026-11-23T08:00:00+00:00", "metrics": BIG, "sources": {}}
        for _ in range(100):
            outbox.append("telemetry", body)
        fill(mount / "filler")
        stored, refused = 100, 0
        for _ in range(200):
            try:
                outbox.append("telemetry", body)
                stored += 1
            except OutboxError:
                refused += 1
        assert refused > 0  # else this test proves nothing about a full disk
        assert outbox.counter("write_errors") == refused
        assert outbox.counter("disk_full") >= 1
        (mount / "filler").unlink()
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
        for _ in range(50):
            outbox.append("telemetry", body)
        stored += 50
        outbox.close()
        state = read_outbox(mount / "outbox.sqlite")
        assert state.integrity == "ok"
        # Counted on disk now, and every stored record has its own seq, none skipped.
        assert state.counters["write_errors"] == refused
        assert state.numbered["telemetry"] == stored
    finally:
        subprocess.run(["umount", str(mount)], check=False)
