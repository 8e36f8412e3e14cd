"""`simpul-agent doctor --config PATH`: one plain line per check, exit 1 on any failure."""

import argparse
import os
import socket
from typing import Callable, List, Tuple

from agent.errors import AgentError

Check = Tuple[str, Callable[[], str]]


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("doctor", help="check config, data dir, broker, ports, tc and "
                                      "permissions")
    p.add_argument("--config", required=True, help="path to the agent's TOML config")
    p.set_defaults(func=doctor)


def _port_check(section: object) -> Callable[[], str]:
    def check() -> str:
        from agent.sensors.port import check_port

        baud = getattr(section, "baud", None) or 9600
        return check_port(str(getattr(section, "port", "")), int(baud))

    return check


def doctor(args: argparse.Namespace) -> int:
    from agent.config import load_config

    try:
        config = load_config(args.config)
    except AgentError as exc:
        print(f"FAIL config: {exc}")
        return 1
    print(f"ok   config: {args.config} is valid ({len(config.collectors)} collectors)")

    def data_dir() -> str:
        path = config.device.data_dir
        os.makedirs(path, exist_ok=True)
        if not os.access(path, os.W_OK):
            raise AgentError(f"{path} is not writable by uid {os.getuid()}")
        return f"{path} is writable"

    def password() -> str:
        from agent.cli.run import read_password

        if config.broker.password_file is None:
            return "no password file configured (certificate or anonymous login)"
        read_password(config.broker.password_file)
        return f"{config.broker.password_file} is readable"

    def broker() -> str:
        host, port = config.broker.host_port()
        try:
            with socket.create_connection((host, port), timeout=3):
                pass
        except OSError as exc:
            raise AgentError(f"cannot reach {host}:{port}: {exc}") from exc
        return f"{host}:{port} accepts connections"

    def ports() -> str:
        paths = [getattr(c, "port", None) for c in config.collectors]
        devices = [p for p in paths if isinstance(p, str) and "://" not in p]
        missing = [p for p in devices if not os.path.exists(p)]
        if missing:
            raise AgentError(f"serial port {missing[0]} is missing: check the cable or "
                             "use its /dev/serial/by-id name")
        unreadable = [p for p in devices if not os.access(p, os.R_OK | os.W_OK)]
        if unreadable:
            raise AgentError(f"no read/write access to {unreadable[0]}: add the agent's "
                             "user to the dialout group")
        return f"{len(devices)} serial port(s) present and accessible" if devices \
            else "no serial ports configured"

    def traffic_control() -> str:
        interface = config.control.tier_interface
        if interface is None:
            return "no tier interface configured"
        from agent.shaper import Shaper

        Shaper(interface).check()
        return f"tc can shape {interface}"

    checks: List[Check] = [("data dir", data_dir), ("broker password", password),
                           ("broker", broker), ("serial ports", ports),
                           ("traffic control", traffic_control)]
    for section in config.collectors:
        if getattr(section, "port", None):  # serial sensors: the port must open
            checks.append((f"port of {section.name}", _port_check(section)))
    failed = 0
    for name, check in checks:
        try:
            print(f"ok   {name}: {check()}")
        except (AgentError, OSError) as exc:
            failed += 1
            print(f"FAIL {name}: {exc}")
    return 1 if failed else 0
