"""One box: a sampler (collectors to the outbox) and a sender (the outbox to the link),
with the router that takes the link's incoming messages where they belong.

The same class runs in the daemon (one box on a reactor) and in the fleet simulator
(thousands on one reactor), so city-scale runs test the agent itself. Who else listens
(the config twin, the command executor, the claim, credential rotation) is wired onto
`router` by agent/daemon.py's build_agent; the box imports none of them.
"""

import secrets
import time
from typing import List, Optional, Tuple

from agent import __version__
from agent.collectors.base import Accumulator, Collector
from agent.collectors.registry import build
from agent.link import Link, LinkSettings
from agent.outbox import Outbox
from agent.reactor import Reactor
from agent.routing import Router
from agent.sampler import Sampler, WallClock, close_collectors, start_collectors
from agent.sender import Sender
from simpul_wire.config import AgentConfig
from simpul_wire.topics import subscription


class Box:
    def __init__(self, config: AgentConfig, reactor: Reactor, password: Optional[str],
                 outbox: Optional[Outbox] = None, clock: WallClock = time.time,
                 collectors: Optional[List[Collector]] = None) -> None:
        self._config = config
        self.device_id = config.device.device_id
        self.reactor = reactor
        self.clock = clock
        self.outbox = outbox or Outbox(
            f"{config.device.data_dir}/outbox.sqlite",
            max_bytes=config.outbox.max_bytes, max_age_s=config.outbox.max_age_s, clock=clock,
            resend_after_s=config.outbox.resend_after_s,
        )
        self.router = Router(self.device_id)
        host, port = config.broker.host_port()
        settings = LinkSettings(
            device_id=self.device_id, host=host, port=port,
            username=config.broker.username or self.device_id, password=password,
            keepalive_s=config.broker.keepalive_s, ca_file=config.broker.ca_file,
            cert_file=config.broker.cert_file, key_file=config.broker.key_file,
            tls=config.broker.url.startswith("mqtts://"),
            agent_version=__version__, boot_id=secrets.token_hex(8),
        )
        self.link = Link(reactor, settings, on_message=self.router.dispatch,
                         on_online=self._on_online,
                         subscriptions=(subscription("config/desired", self.device_id),
                                        subscription("cmd", self.device_id),
                                        subscription("ack", self.device_id)))
        self.sender = Sender(self.device_id, config.publish, self.outbox, self.link, reactor,
                             clock=reactor.monotonic)
        self.sampler = Sampler(
            config.publish, reactor, self.outbox,
            collectors if collectors is not None else [build(c) for c in config.collectors],
            clock, stored=self.sender.pump, agent_figures=self.add_agent_figures)
        # The sender first: the backlog is due before the others speak after a reconnect.
        self.router.when_online(self.sender.online)
        self.router.route_ack(None, self.sender.on_ack)

    @property
    def config(self) -> AgentConfig:
        return self._config

    @config.setter
    def config(self, config: AgentConfig) -> None:
        """A new managed config (the twin's restore and swap): its [publish] reaches the
        sampler's schedule and the sender's pacing."""
        self._config = config
        self.sampler.publish = self.sender.publish = config.publish

    @property
    def collectors(self) -> List[Collector]:
        """The running collector set (the sampler's)."""
        return self.sampler.collectors

    @collectors.setter
    def collectors(self, collectors: List[Collector]) -> None:
        self.sampler.collectors = collectors

    # -- life -------------------------------------------------------------------------
    def start(self) -> None:
        start_collectors(self.collectors)
        self.sampler.start_schedule()
        self.sender.start(self.config.outbox.resend_after_s)
        self.link.start()

    def swap(self, config: AgentConfig, collectors: List[Collector]) -> Tuple[AgentConfig,
                                                                               List[Collector]]:
        """Run a new managed config and collector set; return the old ones (for rollback).
        The outbox, its counters and the link carry on untouched."""
        old = (self.config, self.collectors)
        self.sampler.stop_schedule()
        self.config = config
        self.collectors = collectors
        self.outbox.max_bytes = config.outbox.max_bytes
        self.outbox.max_age_s = config.outbox.max_age_s
        self.outbox.resend_after_s = config.outbox.resend_after_s
        self.sampler.start_schedule()
        return old

    def stop(self) -> None:
        self.sender.stop()
        self.sampler.stop_schedule()
        self.link.stop()
        close_collectors(self.collectors)

    def _on_online(self, online: bool) -> None:
        if online:
            self.router.online()

    # -- figures ----------------------------------------------------------------------
    def add_agent_figures(self, acc: Accumulator) -> None:
        """The agent's own figures: how long can this box stay offline?"""
        acc.add("outbox_depth", self.outbox.depth())
        acc.add("outbox_bytes", self.outbox.bytes)
        oldest = self.outbox.oldest_age_s()
        acc.add("outbox_oldest_age_s", oldest or 0.0)
        acc.add("outbox_unconfirmed", self.outbox.unconfirmed())
        acc.add("outbox_dropped", self.outbox.counter("dropped"))
        acc.add("outbox_rejected_by_fleet", self.outbox.counter("rejected_by_fleet"))
        acc.add("outbox_write_errors", self.outbox.counter("write_errors"))
        acc.add("outbox_oversized", self.outbox.counter("oversized"))
        acc.add("link_reconnects", self.link.reconnects)
        acc.add("publish_refused", self.sender.publish_refused)
        acc.add("collector_errors", sum(self.sampler.collector_errors.values()))
        acc.status("uplink", "ok" if self.link.connected else "unavailable",
                   None if self.link.connected else "broker not connected")
