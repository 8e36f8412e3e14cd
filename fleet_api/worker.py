"""Background work that must happen once across fleet processes, under a database lease:
republishing desired config, rollouts, command expiry and retries, alert evaluation,
credential rotations, deregistrations the broker could not take at the time.

Each `serve` runs a Worker; only the lease holder does the work, and a second process
takes over within the lease's lifetime when the first dies.
"""

import logging
import os
import secrets
import threading
import time
from typing import Callable, List, Optional

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Engine

from fleet_api import lease
from fleet_api.alerts import webhooks
from fleet_api.alerts.rules import Evaluator
from fleet_api.broker.accounts import AccountSync
from fleet_api.broker.publisher import Publisher, publish_desired
from fleet_api.control import box_commands, config_rollout
from fleet_api.db import devices
from fleet_api.devices import rotation
from fleet_api.ingest import rollups
from fleet_api.updates import rollout as update_rollout

log = logging.getLogger("simpul.worker")

LEASE = "fleet-worker"
LEASE_TTL_S = 10.0


class Worker:
    def __init__(self, engine: Engine, publisher: Optional[Publisher], tick_s: float = 1.0,
                 heartbeat_timeout_s: float = 120.0, alert_interval_s: float = 5.0,
                 accounts: Optional[AccountSync] = None,
                 clock_alert_after_s: float = 3600.0,
                 deregistrations: Optional[Callable[[], object]] = None) -> None:
        self.engine = engine
        self.accounts = accounts
        self.evaluator = Evaluator(engine, heartbeat_timeout_s,
                                   unsynced_after_s=clock_alert_after_s)
        self.alert_interval_s = alert_interval_s
        self._evaluated = 0.0
        self.retention = rollups.Retention()
        self.rollup_interval_s = 60.0
        self._rolled = 0.0
        self.http = httpx.Client(timeout=5.0)
        self.publisher = publisher
        self.tick_s = tick_s
        self.holder = f"{os.uname().nodename}:{os.getpid()}:{secrets.token_hex(3)}"
        self.held = False
        self.errors = 0
        self.tasks: List[Callable[[], object]] = [
            self._republish, lambda: config_rollout.advance(self.engine, self.publisher),
            lambda: box_commands.republish_queued(self.engine, self.publisher),
            self._expire, self._alerts,
            self._webhooks, self._rollups,
            lambda: rotation.advance(self.engine, self.accounts),
            lambda: update_rollout.advance(self.engine, self.publisher),
        ]
        if deregistrations is not None:  # fleet_api/devices/revoke.py: retry_pending
            self.tasks.append(deregistrations)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet-worker", daemon=True)

    def start(self) -> "Worker":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self.held:
            lease.release(self.engine, LEASE, self.holder)
        self.http.close()

    def _rollups(self) -> None:
        if time.monotonic() - self._rolled >= self.rollup_interval_s:
            self._rolled = time.monotonic()
            rollups.run(self.engine, self.retention)

    def _webhooks(self) -> None:
        webhooks.deliver_due(self.engine, self.http)

    def _alerts(self) -> None:
        if time.monotonic() - self._evaluated >= self.alert_interval_s:
            self._evaluated = time.monotonic()
            self.evaluator.run()

    def _expire(self) -> None:
        box_commands.expire(self.engine)

    def _republish(self) -> None:
        """Devices whose retained desired config the broker may lack."""
        with self.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(
                select(devices.c.device_id).where(
                    devices.c.published_version < devices.c.desired_version).limit(500))]
        publish_desired(self.engine, self.publisher, ids)

    def tick(self) -> None:
        held = lease.acquire(self.engine, LEASE, self.holder, LEASE_TTL_S)
        if held != self.held:
            log.info("%s the %s lease", "took" if held else "lost", LEASE)
        self.held = held
        if not held:
            return
        for task in self.tasks:
            try:
                task()
            except Exception:  # one failing task must not starve the others
                self.errors += 1
                log.exception("background task failed")

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.tick()
            except Exception:  # the database may be away; try again next tick
                self.errors += 1
                log.exception("worker tick failed")
