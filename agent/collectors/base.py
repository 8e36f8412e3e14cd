"""The one collector interface: sensor drivers, client counters and health probes.

A collector's `gather` adds metrics and source statuses to an Accumulator. It must not
block for long: streaming sources (serial ports, packet capture) read in their own
thread from `start()` and hand over their latest values in `gather`. A collector that
raises becomes `unavailable` with the exception as its reason; the loop goes on.

A collector's optional abilities are Protocols of their own, checked with isinstance
(the way Telegraf names `ServiceInput`): `HealthReporter` (`gather_health(acc)`: figures
about itself, a serial port's frame counters, its source status, that go up with the
health stream whatever the collector's own stream is) and `Rescannable` (`rescan()`, the
`rescan_clients` command).
"""

import math
from typing import Dict, Optional, Protocol, runtime_checkable

from simpul_wire.models import SourceState, SourceStatus


class Accumulator:
    """Collects one sample of one stream: metrics (name -> number) and source statuses."""

    def __init__(self) -> None:
        self.metrics: Dict[str, float] = {}
        self.sources: Dict[str, SourceStatus] = {}

    def add(self, name: str, value: float) -> None:
        number = float(value)
        # NaN or infinity is no reading, and JSON has no word for it: left out.
        if math.isfinite(number):
            self.metrics[name] = number

    def status(self, source: str, state: SourceState, reason: Optional[str] = None) -> None:
        self.sources[source] = SourceStatus(state=state, reason=reason)


@runtime_checkable
class Collector(Protocol):
    """What every collector offers. `stream` says where its sample goes."""

    name: str
    stream: str

    def start(self) -> None:
        """Open ports or threads; called once before the first gather."""

    def gather(self, acc: Accumulator) -> None:
        """Add this tick's metrics and statuses; raise CollectorError if unreadable."""

    def close(self) -> None:
        """Release ports and threads."""


class PollingCollector:
    """Base for collectors with nothing to start or stop."""

    name = "collector"
    stream = "telemetry"

    def start(self) -> None:
        return None

    def close(self) -> None:
        return None

    def gather(self, acc: Accumulator) -> None:  # pragma: no cover - abstract
        raise NotImplementedError



@runtime_checkable
class HealthReporter(Protocol):
    """A collector with figures about itself for the health stream (serial sensors, Modbus)."""

    def gather_health(self, acc: Accumulator) -> None:
        """Add the collector's own counters and source status to a health sample."""


@runtime_checkable
class Rescannable(Protocol):
    """A client counter that can look for stations again at once (`rescan_clients`)."""

    def rescan(self) -> None:
        """Probe the network now instead of at the next scheduled scan."""
