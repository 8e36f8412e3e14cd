"""`simpul-agent run --config PATH`: the daemon."""

import argparse
import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Optional

from agent.errors import LinkError

TRIM_EVERY_S = 120.0


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("run", help="run the agent daemon")
    p.add_argument("--config", required=True, help="path to the agent's TOML config")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=run)


def read_password(path: Optional[str]) -> Optional[str]:
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise LinkError(f"broker password file {path}: {exc.strerror}") from exc


def run(args: argparse.Namespace) -> int:
    # Imported here so `simpul-agent --help` stays fast on a Pi.
    from agent import memory
    from agent.config import load_config
    from agent.daemon import RESTART_EXIT_CODE, build_agent
    from agent.reactor import Reactor

    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)
    password = read_password(config.broker.password_file)
    reactor = Reactor()
    agent = build_agent(config, reactor, password, config_path=args.config)

    def stop(_signum: int, _frame: Optional[FrameType]) -> None:
        reactor.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGUSR2, lambda *_: reactor.call_soon_threadsafe(
        memory.report_growth))
    agent.start()
    # Once start-up's garbage is gone, then now and again (after an outage's replay).
    reactor.call_every(TRIM_EVERY_S, memory.trim, first=10.0)
    logging.getLogger("simpul.agent").info("agent %s running", config.device.device_id)
    try:
        reactor.run()
    finally:
        agent.stop()
    return RESTART_EXIT_CODE if agent.executor.restart_requested else 0
