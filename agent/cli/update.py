"""`simpul-agent update ...`: install, check and inspect agent versions (docs/updates.md).

    apply --config C --bundle PATH|URL   what the fleet's `update` command runs
    bootstrap --config C --bundle PATH   first install on a fresh box (slot-a)
    health --config C                    the check a new version runs on itself
    status --config C                    committed slot, trial, last outcome
"""

import argparse
import json
from pathlib import Path
from typing import Callable, List, Tuple

from agent.errors import AgentError, CollectorError


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("update", help="install, check and inspect agent versions")
    usub = p.add_subparsers(dest="update_command", metavar="ACTION")
    usub.required = True
    for name, func, text in (("apply", apply, "verify and install a signed bundle"),
                             ("bootstrap", bootstrap, "first install into slot-a"),
                             ("health", health, "health check of this version"),
                             ("status", status, "show slots, trial and last outcome")):
        q = usub.add_parser(name, help=text)
        q.add_argument("--config", required=True, help="path to the agent's TOML config")
        if name in ("apply", "bootstrap"):
            q.add_argument("--bundle", required=True, help="bundle file or http(s) URL")
        if name == "apply":
            q.add_argument("--allow-downgrade", action="store_true")
        q.set_defaults(func=func)


def apply(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.update.slots import apply_bundle

    config = load_config(args.config)
    result = apply_bundle(config, args.config, args.bundle, args.allow_downgrade)
    print(f"installed {result['version']} in {result['slot']}; on trial until it commits "
          "itself (restart the agent now)")
    return 0


def bootstrap(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.update.slots import bootstrap as install_first

    config = load_config(args.config)
    state = install_first(config.update, config.device.data_dir, Path(args.bundle))
    print(f"installed {state['committed_version']} in {state['committed']}")
    return 0


def health(args: argparse.Namespace) -> int:
    """Config valid for this version, data dir, broker reachable, collectors build and
    gather without a code error, outbox intact. One line per check; exit 1 on a failure."""
    import os
    import socket

    from agent.collectors.base import Accumulator
    from agent.collectors.registry import build
    from agent.config import load_config
    from agent.update.trial import outbox_intact

    try:
        config = load_config(args.config)
    except AgentError as exc:
        print(f"FAIL config: {exc}")
        return 1

    def data_dir() -> str:
        if not os.access(config.device.data_dir, os.W_OK):
            raise AgentError(f"{config.device.data_dir} is not writable")
        return config.device.data_dir

    def broker() -> str:
        host, port = config.broker.host_port()
        try:
            with socket.create_connection((host, port), timeout=5):
                pass
        except OSError as exc:
            raise AgentError(f"cannot reach {host}:{port}: {exc}") from exc
        return f"{host}:{port} reached"

    def collectors() -> str:
        notes = []
        for cfg in config.collectors:
            collector = build(cfg)
            acc = Accumulator()
            try:
                collector.start()
                collector.gather(acc)
                away = [k for k, v in acc.sources.items() if v.state != "ok"]
                notes.append(f"{cfg.name} ok" + (f" (away: {', '.join(away)})" if away else ""))
            except CollectorError as exc:  # a source away is not the new code's fault
                notes.append(f"{cfg.name} unavailable ({exc})")
            finally:
                collector.close()
        return ", ".join(notes) or "none configured"

    def outbox() -> str:
        problem = outbox_intact(config.device.data_dir)
        if problem:
            raise AgentError(problem)
        return "quick_check ok"

    checks: List[Tuple[str, Callable[[], str]]] = [
        ("data dir", data_dir), ("broker", broker), ("collectors", collectors),
        ("outbox", outbox)]
    failed = 0
    for name, check in checks:
        try:
            print(f"ok   {name}: {check()}")
        except Exception as exc:  # any error here is the new version failing its check
            failed += 1
            print(f"FAIL {name}: {exc}")
    return 1 if failed else 0


def status(args: argparse.Namespace) -> int:
    from agent import __version__
    from agent.config import load_config
    from agent.update import guard

    config = load_config(args.config)
    state = guard.load_state(config.device.data_dir)
    state["current"] = guard.current_slot(config.update.root)
    state["this_version"] = __version__
    print(json.dumps(state, indent=1, sort_keys=True, default=str))
    return 0
