"""Claim an offline registration: publish `claim` until the fleet answers it.

A box provisioned offline (`simpul-field provision install`) carries a [claim] section
with its claim code and the site details the technician gave. On every connection the
box publishes the claim (QoS 1, on its `claim` leaf), and again every `retry_s` while
no answer came. The fleet answers on the box's `ack` leaf with stream "claim" and
epoch `claim_epoch(code)`; the router (agent/routing.py) hands that to `on_ack`, wired
by `wire` where the agent is built (agent/daemon.py). An accepted claim leaves a
marker file in the data dir naming the code, so later starts publish nothing; a
refused one is logged and not retried until the agent starts again (a technician
has to look at it, and a restart after the fix claims again).

    [claim]
    code = "K7M2-Q9XR-4T0B"
    site = "Halte Pasar Baru"
    district = "Kota Barat"
    lat = -6.2
    lon = 106.8
"""

import logging
import os
from pathlib import Path
from typing import Optional

from agent.link import Link
from agent.reactor import Reactor, Timer
from agent.routing import Router
from simpul_wire.config import AgentConfig, ClaimSection
from simpul_wire.models import CLAIM_STREAM, Ack, Claim, claim_epoch, encode
from simpul_wire.topics import topic

log = logging.getLogger("simpul.claim")

MARKER = "claim.acked"
CHECK_S = 1.0
RETRY_S = 60.0


def claimed_already(data_dir: str, code: str) -> bool:
    try:
        return (Path(data_dir) / MARKER).read_text(encoding="utf-8").strip() == code
    except OSError:
        return False


def _write_marker(data_dir: str, code: str) -> None:
    path = Path(data_dir) / MARKER
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(MARKER + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(code + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class Claimer:
    def __init__(self, section: ClaimSection, device_id: str, data_dir: str, link: Link,
                 reactor: Reactor, retry_s: float = RETRY_S) -> None:
        self.section = section
        self.device_id = device_id
        self.data_dir = data_dir
        self.link = link
        self.reactor = reactor
        self.retry_s = retry_s
        self.epoch = claim_epoch(section.code)
        self.done = False
        self.refused: Optional[str] = None
        self.sent = 0
        self._was_connected = False
        self._last_sent = float("-inf")
        self._timer: Optional[Timer] = None

    def start(self) -> None:
        self._timer = self.reactor.call_every(CHECK_S, self._tick, first=0.0)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _tick(self) -> None:
        if self.done:
            self.stop()
            return
        connected = self.link.connected
        fresh = connected and not self._was_connected
        self._was_connected = connected
        now = self.reactor.monotonic()
        if connected and (fresh or now - self._last_sent >= self.retry_s):
            self._publish(now)

    def _publish(self, now: float) -> None:
        s = self.section
        claim = Claim(device_id=self.device_id, claim_code=s.code, site=s.site,
                      district=s.district, lat=s.lat, lon=s.lon)
        if self.link.publish(topic(self.device_id, "claim"), encode(claim)):
            self._last_sent = now
            self.sent += 1
            log.info("claiming registration with code %s", s.code)

    def on_ack(self, ack: Ack) -> None:
        if ack.epoch != self.epoch or self.done:
            return  # an answer to another claim code
        self.done = True
        if ack.rejected:
            self.refused = ack.rejected
            log.error("the fleet refused this box's claim: %s; ask the office to check "
                      "code %s (it is tried again when the agent restarts)",
                      ack.rejected, self.section.code)
            return
        try:
            _write_marker(self.data_dir, self.section.code)
        except OSError as exc:  # claims again on the next start; the fleet answers the same
            log.warning("claim accepted, but cannot write its marker: %s", exc)
        log.info("the fleet recorded this box's claim")


def wire(config: AgentConfig, link: Link, reactor: Reactor, router: Router
         ) -> Optional[Claimer]:
    """A Claimer for a box that still has to claim, routed its answers; else None."""
    section = config.claim
    if section is None or claimed_already(config.device.data_dir, section.code):
        return None
    claimer = Claimer(section, config.device.device_id, config.device.data_dir, link, reactor)
    router.route_ack(CLAIM_STREAM, claimer.on_ack)
    return claimer
