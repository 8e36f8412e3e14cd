"""Collectors to the outbox: one record per stream per tick, on the publish schedule.

The `telemetry` collectors are sampled every `publish.sample_interval_s`; the `health`
collectors, every collector that is a `HealthReporter`, and the agent's own figures
every `publish.health_interval_s`. A collector that cannot read reports `unavailable`;
one that raises is counted in `collector_errors` and never stops the loop.
"""

import logging
from datetime import datetime, timezone
from typing import Callable, Dict, List, Optional

from agent.collectors.base import Accumulator, Collector, HealthReporter
from agent.errors import CollectorError, OutboxError
from agent.outbox import Outbox
from agent.reactor import Reactor, Timer
from agent.timesync import ClockJumps
from simpul_wire.config import PublishSection

log = logging.getLogger("simpul.box")

WallClock = Callable[[], float]
Figures = Callable[[Accumulator], None]


def start_collectors(collectors: List[Collector]) -> None:
    for collector in collectors:
        try:
            collector.start()
        except CollectorError as exc:
            # It reports `unavailable` at each gather until its source comes back.
            log.warning("collector %s did not start: %s", collector.name, exc)


def close_collectors(collectors: List[Collector]) -> None:
    for collector in collectors:
        try:
            collector.close()
        except Exception:  # closing must never stop the agent; logged
            log.exception("collector %s did not close cleanly", collector.name)


class Sampler:
    def __init__(self, publish: PublishSection, reactor: Reactor, outbox: Outbox,
                 collectors: List[Collector], clock: WallClock,
                 stored: Callable[[], None], agent_figures: Optional[Figures] = None) -> None:
        """`stored` runs after each record is stored (the sender's pump); `agent_figures`
        adds the agent's own figures to every health sample."""
        self.publish = publish
        self.reactor = reactor
        self.outbox = outbox
        self.collectors = collectors
        self.clock = clock
        self.clock_jumps = ClockJumps(clock, reactor.monotonic)
        self.collector_errors: Dict[str, int] = {}
        self._stored = stored
        self._agent_figures = agent_figures
        self._clock_era_id = outbox.last_id()
        self._timers: List[Timer] = []

    # -- schedule ---------------------------------------------------------------------
    def start_schedule(self) -> None:
        pub = self.publish
        self._timers.append(self.reactor.call_every(pub.sample_interval_s, self.sample_telemetry,
                                                    first=0.0))
        # The first health sample waits a little, so it can say whether the link came up.
        self._timers.append(self.reactor.call_every(pub.health_interval_s, self.sample_health,
                                                    first=min(pub.health_interval_s, 3.0)))

    def stop_schedule(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    # -- sampling ---------------------------------------------------------------------
    def sample_telemetry(self) -> None:
        acc = self._gather("telemetry")
        if acc is not None:
            self.store("telemetry", acc)

    def sample_health(self) -> None:
        acc = self._gather("health") or Accumulator()
        self._gather_collector_health(acc)
        if self._agent_figures is not None:
            self._agent_figures(acc)
        self.store("health", acc)

    def _gather(self, stream: str) -> Optional[Accumulator]:
        group = [c for c in self.collectors if c.stream == stream]
        if not group:
            return None
        acc = Accumulator()
        for collector in group:
            try:
                collector.gather(acc)
            except CollectorError as exc:
                acc.status(collector.name, "unavailable", str(exc))
            except Exception as exc:  # a collector bug becomes a health figure, never a crash
                self._count_error(collector, acc, exc)
                log.exception("collector %s failed", collector.name)
        return acc

    def _gather_collector_health(self, acc: Accumulator) -> None:
        """Figures about collectors themselves (serial port counters, source status),
        whatever their stream."""
        for collector in self.collectors:
            if not isinstance(collector, HealthReporter):
                continue
            try:
                collector.gather_health(acc)
            except Exception as exc:  # a collector bug becomes a health figure, never a crash
                self._count_error(collector, acc, exc)
                log.exception("collector %s health failed", collector.name)

    def _count_error(self, collector: Collector, acc: Accumulator, exc: Exception) -> None:
        self.collector_errors[collector.name] = self.collector_errors.get(collector.name, 0) + 1
        acc.status(collector.name, "unavailable", f"collector error: {exc!r}")

    # -- storing ----------------------------------------------------------------------
    def _timestamp(self) -> str:
        return datetime.fromtimestamp(self.clock(), tz=timezone.utc).isoformat()

    def store(self, stream: str, acc: Accumulator) -> None:
        """One record of this stream into the outbox, then let the sender at it."""
        body: Dict[str, object] = {
            "ts": self._timestamp(),
            "metrics": acc.metrics,
            "sources": {k: v.model_dump(exclude_none=True) for k, v in acc.sources.items()},
        }
        step = self.clock_jumps.check()
        if step:  # NTP stepped the clock: records since the last step move with it
            moved = self.outbox.shift_times(step, self._clock_era_id)
            log.warning("wall clock stepped %+.0f s; %d stored records moved", step, moved)
            self._clock_era_id = self.outbox.last_id()
        try:
            self.outbox.append(stream, body)
        except OutboxError as exc:
            log.error("%s", exc)
        self._stored()
