"""Assemble one agent: box, config twin, command executor, claim, on one reactor.

This is where the listeners meet the box's router (agent/routing.py): the twin takes
`config/desired`, the executor `cmd`, the claimer the claim's acks, credential rotation
the link's CONNACKs; the box itself knows none of them.

The daemon (`simpul-agent run`) and the fleet simulator both build agents here.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

from agent import claim, credentials
from agent.box import Box
from agent.control import builtin
from agent.control.executor import Executor
from agent.control.ledger import Ledger
from agent.control.twin import TierApplier, Twin
from agent.outbox import Outbox
from agent.reactor import Reactor
from agent.sampler import WallClock
from agent.update import trial
from agent.update.command import update_command
from simpul_wire.config import AgentConfig

# Exit code asking systemd (Restart=always) for a fresh start.
RESTART_EXIT_CODE = 75


@dataclass
class Agent:
    box: Box
    twin: Twin
    executor: Executor
    ledger: Ledger
    claimer: Optional[claim.Claimer] = None

    def start(self) -> None:
        self.box.start()
        if self.claimer is not None:
            self.claimer.start()
        self._tell_systemd()

    def _tell_systemd(self) -> None:
        """READY=1 once running; WATCHDOG=1 from the loop, so a hung loop gets restarted."""
        from agent import sdnotify

        if not sdnotify.notify("READY=1"):
            return
        interval = sdnotify.watchdog_interval()
        if interval:
            def pet() -> None:
                sdnotify.notify("WATCHDOG=1")

            self.box.reactor.call_every(interval / 2, pet)

    def stop(self) -> None:
        if self.claimer is not None:
            self.claimer.stop()
        self.box.stop()
        self.box.outbox.close()
        self.ledger.close()


def build_agent(config: AgentConfig, reactor: Reactor, password: Optional[str],
                recent_log: Optional[builtin.RecentLog] = None,
                tier_applier: Optional[TierApplier] = None,
                config_path: Optional[str] = None, outbox: Optional[Outbox] = None,
                ledger: Optional[Ledger] = None, clock: Optional[WallClock] = None) -> Agent:
    """outbox, ledger and clock default to the box's own files and time.time; the fleet
    simulator passes in-memory ones it keeps across a virtual reboot, and skewed clocks."""
    Path(config.device.data_dir).mkdir(parents=True, exist_ok=True)
    box = Box(config, reactor, password, outbox=outbox, collectors=[],
              **({"clock": clock} if clock is not None else {}))
    if tier_applier is None and config.control.tier_interface:
        from agent.control.tier import shaper_applier

        tier_applier = shaper_applier(config.control.tier_interface)
    twin = Twin(box, tier_applier=tier_applier)
    twin.restore()
    if not box.collectors:
        from agent.collectors.registry import build

        box.collectors = [build(c) for c in box.config.collectors]
    recent = recent_log or builtin.RecentLog()
    collectors = lambda: box.collectors  # noqa: E731 - always the running set
    builtins: Dict[str, builtin.Builtin] = {
        "reboot": builtin.Builtin(builtin.reboot(config.control.reboot_command), True),
        "restart_agent": builtin.Builtin(lambda _args: {"restarting": True}, False),
        "rescan_clients": builtin.Builtin(builtin.rescan_clients(collectors), False),
        "ping": builtin.Builtin(builtin.ping, True),
        "sensor_selftest": builtin.Builtin(builtin.sensor_selftest(collectors), False),
        "diagnostics": builtin.Builtin(
            builtin.diagnostics(recent, lambda: box.config.managed().config_hash()), True),
    }
    if config_path is not None:  # updates need the file the new version re-reads
        builtins["update"] = builtin.Builtin(update_command(config, config_path), True)
    ledger = ledger or Ledger(str(Path(config.device.data_dir) / "ledger.sqlite"))
    executor = Executor(box, ledger, builtins)
    if recent_log is None:
        logging.getLogger("simpul").addHandler(recent)
    claimer = claim.wire(config, box.link, reactor, box.router)
    agent = Agent(box, twin, executor, ledger, claimer)
    trial.watch(agent, config.update, config.device.data_dir)
    credentials.attach(agent, config.broker.password_file)
    return agent
