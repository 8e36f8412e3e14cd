"""The point page's 1 h / 24 h / 7 d charts in a real browser against a running fleet
(issue #20): a week of readings, more than the telemetry endpoint's 10,000-record page,
stored through the ingest's write path and rolled up by the worker's own rollup pass."""

import time
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from fleet_api.dashboard.i18n import STRINGS
from fleet_api.db import make_engine, marks, utcnow
from fleet_api.ingest import rollups
from fleet_api.ingest.store import Batch, write_batch
from testbed.harness import Fleet, wait_until

pytestmark = pytest.mark.slow

WEEK = "week-0001"
ONE = "one-0001"
EVERY_S = 8  # 10,800 telemetry records a day: more than one page even for 24 h
HEALTH_EVERY_S = 60  # 10,080 health records in the week
HOUR, DAY = 3600, 86400


@pytest.fixture
def engine(fleet: Fleet) -> Iterator[Engine]:
    engine = make_engine(fleet.db_url)

    # Each transaction takes SQLite's write lock as it begins: the rollup pass reads, then
    # writes, and a read snapshot the fleet process wrote past cannot become a write.
    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    # The fleet's worker makes its first rollup pass as it starts; records stored after
    # it are folded by the next pass (run here, not a minute later).
    wait_until(lambda: _mark(engine) is not None, 30, what="the worker's first rollup pass")
    yield engine
    engine.dispose()


def _mark(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(marks.c.at).where(marks.c.name == rollups.MARK)).first()


def store(engine: Engine, rows: List[Dict[str, Any]]) -> None:
    """Through the ingest's own batch write, received now (a box's backlog arriving)."""
    received = utcnow()
    batch = Batch(rows=[{**r, "received_at": received, "sources": {}, "gap_to": None}
                        for r in rows])
    with engine.begin() as conn:
        assert write_batch(conn, batch, received) == len(rows)


def week_of_readings(end: datetime, gap_start: datetime, gap_end: datetime
                     ) -> List[Dict[str, Any]]:
    rows: List[Dict[str, Any]] = []
    for stream, every in (("telemetry", EVERY_S), ("health", HEALTH_EVERY_S)):
        for i in range(7 * DAY // every):
            ts = end - timedelta(seconds=i * every)
            if gap_start <= ts < gap_end:
                continue
            days_ago = (end - ts).total_seconds() / DAY
            metrics = ({"air_pm2_5": 10 + days_ago, "air_pm10": 20 + days_ago,
                        "noise_db": 50.0} if stream == "telemetry"
                       else {"cpu_percent": 5 + days_ago, "soc_temp_c": 45.0})
            rows.append({"device_id": WEEK, "stream": stream, "epoch": "ab" * 8, "seq": i,
                         "ts": ts, "metrics": metrics})
    return rows


def sign_in(page, fleet: Fleet, device_id: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{fleet.url}/login?token={fleet.token}")
    page.goto(f"{fleet.url}/devices/{device_id}")
    page.wait_for_selector("body[data-loaded='1']", timeout=20000)


def show_range(page, seconds: int,  # type: ignore[no-untyped-def]
               charts: Tuple[str, ...] = ("c-air", "c-cpu")) -> None:
    """Choose a range and wait for the charts drawn anew (new uPlot instances)."""
    page.evaluate("() => Object.values(window.deviceCharts || {}).forEach(u => u.__old = 1)")
    page.click(f".ranges button[data-range='{seconds}']")
    page.wait_for_function("""ids => ids.every(id => window.deviceCharts &&
        window.deviceCharts[id] && !window.deviceCharts[id].__old)""",
                           arg=list(charts), timeout=20000)


def chart(page, chart_id: str) -> Dict[str, Any]:  # type: ignore[no-untyped-def]
    """The chart's x values (s), first series and x scale, from its uPlot instance."""
    return page.evaluate("""id => {
        const u = window.deviceCharts && window.deviceCharts[id];
        if (!u) return null;
        const rows = u.data[0].map((x, i) => [x, u.data[1][i]]).filter(r => r[1] != null);
        return {xs: rows.map(r => r[0]), ys: rows.map(r => r[1]),
                min: u.scales.x.min, max: u.scales.x.max};
    }""", chart_id)


def note(page) -> str:  # type: ignore[no-untyped-def]
    el = page.locator("#range-note")
    return el.inner_text() if el.is_visible() else ""


def test_long_ranges_read_rollups_and_include_today(page, fleet: Fleet,  # type: ignore[no-untyped-def]
                                                   engine: Engine) -> None:
    fleet.register(WEEK)
    end = utcnow().replace(microsecond=0) - timedelta(seconds=5)
    # Five whole hours without readings three days ago: the 7 d chart says so.
    gap_start = (end - timedelta(days=3)).replace(minute=0, second=0)
    gap_end = gap_start + timedelta(hours=5)
    rows = week_of_readings(end, gap_start, gap_end)
    assert sum(r["stream"] == "telemetry" for r in rows) > 2 * 10000
    store(engine, rows)
    time.sleep(rollups.SETTLE.total_seconds() + 0.5)
    assert rollups.run(engine, rollups.Retention()) == len(rows)
    newest = end.replace(tzinfo=timezone.utc).timestamp()

    sign_in(page, fleet, WEEK)
    # 1 h: the raw records of the last hour, the newest among them.
    one_hour = chart(page, "c-air")
    assert one_hour is not None and one_hour["xs"], one_hour
    assert max(one_hour["xs"]) >= newest - 60
    assert min(one_hour["xs"]) <= newest - HOUR + 120
    assert note(page) == ""

    # 7 d: hourly rollups, the whole week including today's hour.
    show_range(page, 7 * DAY)
    for chart_id in ("c-air", "c-cpu"):
        week = chart(page, chart_id)
        assert week is not None and week["xs"], chart_id
        assert max(week["xs"]) >= newest - 2 * HOUR, (chart_id, newest - max(week["xs"]))
        assert min(week["xs"]) <= newest - 6.5 * DAY, chart_id
        assert week["max"] - week["min"] >= 6.9 * DAY, chart_id
        # Today's values: the means of readings 0-1 days old.
        base = 10 if chart_id == "c-air" else 5
        assert base <= week["ys"][-1] <= base + 1.1, (chart_id, week["ys"][-1])
    gaps = note(page)
    assert STRINGS["id"]["gaps_note"] in gaps and "5 h" in gaps, gaps

    # 24 h: per-minute rollups (topped up from raw records) up to the newest minute.
    show_range(page, DAY)
    for chart_id in ("c-air", "c-cpu"):
        day = chart(page, chart_id)
        assert day is not None and day["xs"], chart_id
        assert max(day["xs"]) >= newest - 120, (chart_id, newest - max(day["xs"]))
        assert min(day["xs"]) <= newest - 23 * HOUR, chart_id
        assert len(day["xs"]) >= 23 * 60, (chart_id, len(day["xs"]))
    assert note(page) == ""  # continuous over the last day

    # The note is translated.
    page.goto(f"{fleet.url}/devices/{WEEK}?lang=en")
    page.wait_for_selector("body[data-loaded='1']", timeout=20000)
    show_range(page, 7 * DAY)
    assert STRINGS["en"]["gaps_note"] in note(page)


def test_one_reading_gets_an_axis_of_hours_not_years(page, fleet: Fleet,  # type: ignore[no-untyped-def]
                                                     engine: Engine) -> None:
    fleet.register(ONE)
    ts = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    store(engine, [{"device_id": ONE, "stream": "telemetry", "epoch": "cd" * 8, "seq": 1,
                    "ts": ts, "metrics": {"air_pm2_5": 12.0, "air_pm10": 30.0}}])
    sign_in(page, fleet, ONE)
    for seconds in (HOUR, 7 * DAY):
        if seconds != HOUR:
            show_range(page, seconds, ("c-air",))  # it has no health stream
        one = chart(page, "c-air")
        assert one is not None and len(one["xs"]) == 1, one
        span = one["max"] - one["min"]
        assert 0.5 * HOUR <= span <= seconds + HOUR, (seconds, span / HOUR)
        assert one["min"] <= one["xs"][0] <= one["max"]
        assert note(page) == ""
