"""What the fault tests share: boxes with known records, and the exactly-once check.

The check compares the fleet's rows with the box's own outbox, by seq: after the box
is stopped, its outbox says how many records it ever numbered per stream (`seqs`) and
which it still holds (not yet confirmed by the fleet). Every numbered record the box has
forgotten must be in the fleet exactly once, and the fleet holds nothing else.
"""

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

from agent.outbox import Outbox
from simpul_wire.models import seq_ranges
from testbed.harness import Fleet, Process, agent_process, telemetry, wait_until, write_agent_config


def collectors(name: str = "air", values: Optional[Dict[str, float]] = None) -> str:
    values = values or {"pm2_5": 12.5}
    inner = ", ".join(f"{k} = {v}" for k, v in values.items())
    return f'[[collectors]]\ntype = "synthetic"\nname = "{name}"\nvalues = {{ {inner} }}\n'


def publish(sample_s: float = 0.5, health_s: float = 2.0, batch: int = 200,
            inflight: int = 20) -> str:
    return (f"sample_interval_s = {sample_s}\nhealth_interval_s = {health_s}\n"
            f"batch_max_records = {batch}\nmax_inflight = {inflight}")


@dataclass
class Box:
    """One registered device with its agent config; `start()` runs a real agent."""

    base: Path
    device_id: str
    config: Path
    process: Optional[Process] = None
    runs: int = 0

    @property
    def data(self) -> Path:
        return self.base / self.device_id / "data"

    @property
    def outbox(self) -> Path:
        return self.data / "outbox.sqlite"

    def start(self, argv_prefix: Optional[List[str]] = None,
              env: Optional[Dict[str, str]] = None,
              argv_suffix: Optional[List[str]] = None) -> Process:
        self.runs += 1
        self.process = agent_process(self.base, self.config, f"{self.device_id}-{self.runs}",
                                     extra_env=env)
        self.process.args = [*(argv_prefix or []), *self.process.args, *(argv_suffix or [])]
        return self.process.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def logs(self) -> str:
        return "".join((self.base / f"{self.device_id}-{n}.log").read_text(errors="replace")
                       for n in range(1, self.runs + 1))


def make_box(base: Path, fleet: Fleet, device_id: str, publish_cfg: str = "",
             collector_cfg: str = "", url: Optional[str] = None) -> Box:
    reg = fleet.register(device_id)
    mqtt = dict(reg["mqtt"])
    if url:
        mqtt["url"] = url
    config = write_agent_config(base, device_id, mqtt, collector_cfg or collectors(),
                                publish_cfg or publish())
    return Box(base, device_id, config)


def prefill(box: Box, count: int, stream: str = "telemetry",
            metrics: Optional[Dict[str, float]] = None) -> str:
    """Queue `count` records in the box's outbox before its agent starts, as a long
    outage would; record i carries metric n = i. Returns the outbox epoch."""
    box.data.mkdir(parents=True, exist_ok=True)
    outbox = Outbox(str(box.outbox))
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    for i in range(count):
        ts = (start + timedelta(milliseconds=i)).isoformat()
        outbox.append(stream, {"ts": ts, "metrics": {**(metrics or {}), "n": float(i)},
                               "sources": {}})
    epoch = outbox.epoch
    outbox.close()
    return epoch


@dataclass
class OutboxState:
    epoch: str
    numbered: Dict[str, int]  # stream -> how many seqs were ever assigned
    held: Dict[str, Set[int]]  # stream -> seqs still in the outbox (gaps: all covered)
    counters: Dict[str, int]
    integrity: str


def outbox_once_made(path: Path) -> Optional[OutboxState]:
    """read_outbox, or None while the agent has not created the file or its tables yet."""
    if not path.exists():
        return None
    try:
        return read_outbox(path)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise


def read_outbox(path: Path) -> OutboxState:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        epoch = db.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()[0]
        numbered = {s: n for s, n in db.execute("SELECT stream, next_seq FROM seqs")}
        held: Dict[str, Set[int]] = {s: set() for s in numbered}
        # A gap row holds every seq it covers: the records folded into it are not in
        # the fleet yet either.
        for stream, seq, to_seq in db.execute(
                "SELECT stream, seq, CASE WHEN is_gap THEN json_extract(body, '$.gap.to_seq') "
                "ELSE seq END FROM records"):
            held.setdefault(stream, set()).update(range(seq, int(to_seq) + 1))
        counters = {k: v for k, v in db.execute("SELECT name, value FROM counters")}
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()
    return OutboxState(epoch, numbered, held, counters, integrity)


def covered(records: List[Dict[str, Any]]) -> List[int]:
    """The seqs the fleet's rows account for, a gap row covering seq..gap_to."""
    out: List[int] = []
    for r in records:
        last = r["gap_to"] if r.get("gap_to") is not None else r["seq"]
        out.extend(range(r["seq"], last + 1))
    return out


def fleet_rows(fleet: Fleet, device_id: str, stream: str) -> List[Dict[str, Any]]:
    return telemetry(fleet, device_id, stream=stream)


def assert_exactly_once(fleet: Fleet, box: Box, streams: tuple = ("telemetry", "health"),
                        timeout: float = 60.0, gaps_allowed: bool = False
                        ) -> Dict[str, List[Dict[str, Any]]]:
    """The box must be stopped. Waits until every record the box forgot is in the fleet,
    then checks exactly once per seq, one epoch, and nothing the box never numbered."""
    assert box.process is None or not box.process.alive(), "stop the box first"
    state = read_outbox(box.outbox)
    assert state.integrity == "ok", state.integrity
    result = {}
    for stream in streams:
        total = state.numbered.get(stream, 0)
        assert total > 0, f"{box.device_id} numbered no {stream} records"
        must = set(range(total)) - state.held.get(stream, set())

        def arrived(s: str = stream, m: Set[int] = must) -> Any:
            rows = fleet_rows(fleet, box.device_id, s)
            return rows if m <= set(covered(rows)) else None

        try:
            rows = wait_until(arrived, timeout, interval=0.5,
                              what=f"{box.device_id} {stream}: all {len(must)} forgotten "
                                   f"records stored (of {total} numbered)")
        except AssertionError as exc:  # say which seqs are missing: the clue to the cause
            missing = sorted(must - set(covered(fleet_rows(fleet, box.device_id, stream))))
            raise AssertionError(f"{exc}; missing {len(missing)}: "
                                 f"{seq_ranges_text(missing)}") from None
        seqs = covered(rows)
        assert len(seqs) == len(set(seqs)), f"{stream}: a seq stored twice"
        assert set(seqs) <= set(range(total)), f"{stream}: a seq the box never numbered"
        assert {r["epoch"] for r in rows} == {state.epoch}
        if not gaps_allowed:
            assert not [r for r in rows if r.get("gap_to") is not None], "unexpected gap"
        result[stream] = rows
    return result


def seq_ranges_text(seqs: List[int]) -> str:
    """[3, 4, 5, 9] -> "3-5, 9"."""
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in seq_ranges(seqs))


def fleet_count(fleet: Fleet, device_id: str) -> int:
    """Rows stored for a device, read from the fleet's SQLite file (fast enough to poll)."""
    path = fleet.db_url[len("sqlite:///"):]
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return int(db.execute("SELECT COUNT(*) FROM records WHERE device_id=? AND "
                              "stream='telemetry'", (device_id,)).fetchone()[0])
    finally:
        db.close()
