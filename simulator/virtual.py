"""One virtual box of the fleet simulator: the agent's own `Agent` (box, outbox, link,
twin, command executor) plus what only a simulation does to a box: reboot it, cut or
flap its link, break a sensor, skew its clock.

At city scale the outbox and the command ledger live in memory (`Outbox(":memory:")`),
so 10,000 boxes do not mean 20,000 SQLite files and their WALs; the agent's code path is
the same. The in-memory stores outlive a virtual reboot, as the files would.
"""

import logging
import socket
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from agent.collectors.base import Accumulator, Collector
from agent.collectors.synthetic import SyntheticCollector
from agent.control.builtin import RecentLog
from agent.control.ledger import Ledger
from agent.control.twin import TierApplier
from agent.daemon import Agent, build_agent
from agent.errors import CollectorError
from agent.outbox import Outbox
from agent.reactor import Reactor
from simpul_wire.config import AgentConfig

log = logging.getLogger("simpul.sim.box")


class SkewClock:
    """time.time() plus an offset a scenario can change: a Pi without a real-time clock
    whose NTP has not synced, or has synced wrongly."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s


class FaultyCollector:
    """Wraps a collector while a sensor fault lasts.

    - `unavailable`: the sensor stops answering (the collector raises; the box reports
      the source unavailable, never a number);
    - `spike`: readings jump (PM2.5 x10, water level +150 cm), as a failing sensor or a
      real event would, so alert rules fire.
    """

    def __init__(self, inner: Collector, kind: str) -> None:
        self.inner = inner
        self.kind = kind
        self.name = inner.name
        self.stream = inner.stream

    def start(self) -> None:
        self.inner.start()

    def close(self) -> None:
        self.inner.close()

    def gather(self, acc: Accumulator) -> None:
        if self.kind == "unavailable":
            raise CollectorError(f"{self.name}: no answer from the sensor (simulated fault)")
        self.inner.gather(acc)
        for metric, value in list(acc.metrics.items()):
            if metric.endswith("pm2_5") or metric.endswith("pm10"):
                acc.metrics[metric] = round(value * 10, 1)
            elif metric.endswith("water_level_cm"):
                acc.metrics[metric] = round(value + 150, 1)


class VirtualBox:
    def __init__(self, config: AgentConfig, reactor: Reactor, password: str,
                 recent: RecentLog, tier_applier: TierApplier, in_memory: bool = True
                 ) -> None:
        self.config = config
        self.device_id = config.device.device_id
        self.reactor = reactor
        self.password = password
        self.recent = recent
        self.tier_applier = tier_applier
        self.clock = SkewClock()
        data = Path(config.device.data_dir)
        if in_memory:
            self.outbox = Outbox(":memory:", max_bytes=config.outbox.max_bytes,
                                 max_age_s=config.outbox.max_age_s, clock=self.clock,
                                 resend_after_s=config.outbox.resend_after_s)
            self.ledger = Ledger(":memory:")
        else:
            data.mkdir(parents=True, exist_ok=True)
            self.outbox = Outbox(str(data / "outbox.sqlite"), max_bytes=config.outbox.max_bytes,
                                 max_age_s=config.outbox.max_age_s, clock=self.clock,
                                 resend_after_s=config.outbox.resend_after_s)
            self.ledger = Ledger(str(data / "ledger.sqlite"))
        self.agent: Optional[Agent] = None
        self.running = False
        self.sampling = True  # False while the fleet drains: links only
        self.reboots = 0
        self.link_cuts = 0
        self.fault: Optional[str] = None
        self.extra_reconnects = 0  # link reconnects of boxes replaced by a reboot

    # -- life -------------------------------------------------------------------------
    def build(self) -> Agent:
        self.agent = build_agent(self.config, self.reactor, self.password,
                                 recent_log=self.recent, tier_applier=self.tier_applier,
                                 outbox=self.outbox, ledger=self.ledger, clock=self.clock)
        if self.fault:
            self._wrap(self.fault)
        return self.agent

    def start(self) -> None:
        agent = self.agent or self.build()
        agent.box.start()
        if not self.sampling:
            agent.box.sampler.stop_schedule()
        self.running = True

    def stop(self) -> None:
        """Stop the box; the outbox and ledger stay (they are its disk)."""
        if self.agent is not None and self.running:
            self.agent.box.stop()
            self.extra_reconnects += self.agent.box.link.reconnects
        self.running = False

    def close(self) -> None:
        self.stop()
        self.outbox.close()
        self.ledger.close()

    def reboot(self, down_s: float) -> None:
        """Power-cycle: the agent stops, the box is dark for down_s, then a new agent
        process (new boot id, new link) starts on the same outbox."""
        if not self.running:
            return
        self.stop()
        self.agent = None
        self.reboots += 1
        self.reactor.call_later(down_s, self.start)

    # -- the link ---------------------------------------------------------------------
    def _drop_socket(self) -> bool:
        if self.agent is None or not self.agent.box.link.connected:
            return False
        sock = self.agent.box.link.client.socket()
        if not isinstance(sock, socket.socket):
            return False
        try:
            sock.shutdown(socket.SHUT_RDWR)  # as a cut cable: no DISCONNECT, the will fires
        except OSError:
            return False
        return True

    def flap(self) -> None:
        """The link drops abruptly; the agent's own backoff brings it back."""
        if self._drop_socket():
            self.link_cuts += 1

    def cut(self, down_s: float) -> None:
        """The uplink is gone for down_s: the socket dies, no reconnect succeeds; the box
        keeps sampling into its outbox, and sends the backlog when the link heals."""
        if self.agent is None or not self.running:
            return
        agent = self.agent
        self._drop_socket()
        self.link_cuts += 1

        def hold() -> None:
            link = agent.box.link
            if link.connected:  # the drop has not been read yet
                self.reactor.call_later(0.05, hold)
                return
            link.stop()

        def heal() -> None:
            if self.agent is not agent or not self.running:
                return  # rebooted meanwhile: the new agent has its own link
            self.reactor.attach(agent.box.link.client)
            agent.box.link.start()

        self.reactor.call_later(0.0, hold)
        self.reactor.call_later(down_s, heal)

    # -- sensors ----------------------------------------------------------------------
    def _wrap(self, kind: str) -> None:
        assert self.agent is not None
        box = self.agent.box
        box.collectors = [FaultyCollector(c, kind) if c.stream == "telemetry" else c
                          for c in self._unwrapped()]

    def _unwrapped(self) -> List[Collector]:
        assert self.agent is not None
        return [c.inner if isinstance(c, FaultyCollector) else c
                for c in self.agent.box.collectors]

    def set_fault(self, kind: Optional[str]) -> None:
        self.fault = kind
        if self.agent is None:
            return
        if kind is None:
            self.agent.box.collectors = self._unwrapped()
        else:
            self._wrap(kind)

    def set_rain(self, mm_h: Optional[float]) -> None:
        if self.agent is None:
            return
        for c in self._unwrapped():
            if isinstance(c, SyntheticCollector):  # the one collector with weather
                c.rain_mm_h = mm_h

    # -- figures ----------------------------------------------------------------------
    def report(self) -> Dict[str, Any]:
        link = self.agent.box.link if self.agent is not None else None
        box = self.agent.box if self.agent is not None else None
        return {"epoch": self.outbox.epoch, "next_seq": self.outbox.next_seqs(),
                "depth": self.outbox.depth(), "dropped": self.outbox.counter("dropped"),
                "unconfirmed": self.outbox.unconfirmed(),
                # Batches waiting for a PUBACK (diagnostics: they are not resent meanwhile).
                "in_flight": len(box.sender.in_flight) if box is not None else 0,
                "connected": bool(link and link.connected), "reboots": self.reboots,
                "link_cuts": self.link_cuts,
                "reconnects": self.extra_reconnects + (link.reconnects if link else 0)}


def each(boxes: List[VirtualBox], fn: Callable[[VirtualBox], None]) -> None:
    for box in boxes:
        try:
            fn(box)
        except Exception:  # one box's failure must not stop a scenario step; logged
            log.exception("scenario step failed on %s", box.device_id)
