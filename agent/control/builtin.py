"""Built-in commands: reboot, restart_agent, rescan_clients, ping, sensor_selftest,
diagnostics. Each takes the command's args and returns a result dict, or raises
CommandError with a reason the operator can read."""

import logging
import platform
import re
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional

from agent import __version__
from agent.collectors.base import Accumulator, HealthReporter, Rescannable
from agent.errors import AgentError, CollectorError

Handler = Callable[[Dict[str, Any]], Dict[str, Any]]

_HOST = re.compile(r"^[A-Za-z0-9.:-]{1,253}$")


class CommandError(AgentError):
    """A command that ran and failed, or was refused; the message is the reason."""


@dataclass(frozen=True)
class Builtin:
    handler: Handler
    # Blocking handlers run on a worker thread; the others on the agent's loop.
    blocking: bool


class RecentLog(logging.Handler):
    """The last N log lines in memory, for the diagnostics bundle."""

    def __init__(self, size: int = 200) -> None:
        super().__init__(logging.INFO)
        self.lines: Deque[str] = deque(maxlen=size)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _host(args: Dict[str, Any]) -> str:
    host = str(args.get("host", ""))
    if not _HOST.match(host) or host.startswith("-"):
        raise CommandError("args.host must be a host name or address")
    return host


def ping(args: Dict[str, Any]) -> Dict[str, Any]:
    """TCP-probe host:port when a port is given, else ICMP ping (3 packets)."""
    host = _host(args)
    timeout = min(float(args.get("timeout_s", 3.0)), 10.0)
    if "port" in args:
        port = int(args["port"])
        started = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as exc:
            raise CommandError(f"tcp {host}:{port}: {exc}") from exc
        return {"host": host, "port": port, "connect_ms": round((time.monotonic() - started)
                                                                  * 1000, 2)}
    try:
        out = subprocess.run(["ping", "-n", "-c", "3", "-W", str(int(timeout)), host],
                             capture_output=True, text=True, timeout=timeout * 3 + 2)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CommandError(f"ping {host}: {exc}") from exc
    loss = re.search(r"([\d.]+)% packet loss", out.stdout)
    rtt = re.search(r"= [\d.]+/([\d.]+)/", out.stdout)
    if loss is None:
        raise CommandError(f"ping {host}: {(out.stderr or out.stdout).strip()[:200]}")
    return {"host": host, "loss_percent": float(loss.group(1)),
            "rtt_avg_ms": float(rtt.group(1)) if rtt else None}


def reboot(command: Optional[List[str]]) -> Handler:
    def run(args: Dict[str, Any]) -> Dict[str, Any]:
        if command is None:
            from agent.reboot import request_reboot

            try:
                request_reboot(str(args.get("reason", "reboot command from the fleet")))
            except AgentError as exc:
                raise CommandError(str(exc)) from exc
            return {"rebooting": True, "via": "reboot-request"}
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CommandError(f"reboot command {command[0]}: {exc}") from exc
        if done.returncode != 0:
            raise CommandError(f"reboot command exited {done.returncode}: "
                               f"{done.stderr.strip()[:200]}")
        return {"rebooting": True}

    return run


def sensor_selftest(collectors: Callable[[], List[Any]]) -> Handler:
    def run(_args: Dict[str, Any]) -> Dict[str, Any]:
        report: Dict[str, Any] = {}
        failed = []
        for collector in collectors():
            acc = Accumulator()
            try:
                collector.gather(acc)
                # Serial sensors add their port counters (frames ok, checksum errors).
                if isinstance(collector, HealthReporter):
                    collector.gather_health(acc)
            except CollectorError as exc:
                acc.status(collector.name, "unavailable", str(exc))
            statuses = {k: v.model_dump(exclude_none=True) for k, v in acc.sources.items()}
            report[collector.name] = {"metrics": acc.metrics, "sources": statuses}
            if any(v["state"] != "ok" for v in statuses.values()):
                failed.append(collector.name)
        if failed:
            raise CommandError(f"not ok: {', '.join(failed)}; details in result")
        return report

    return run


def rescan_clients(collectors: Callable[[], List[Any]]) -> Handler:
    def run(_args: Dict[str, Any]) -> Dict[str, Any]:
        done = []
        for collector in collectors():
            name = collector.name
            if isinstance(collector, Rescannable):
                collector.rescan()
                done.append(name)
        if not done:
            raise CommandError("no client counter is configured on this box")
        return {"rescanned": done}

    return run


def diagnostics(recent: RecentLog, config_hash: Callable[[], str]) -> Handler:
    """A summary bundle: recent logs, config hash, versions and interfaces (no MACs)."""

    def run(_args: Dict[str, Any]) -> Dict[str, Any]:
        import psutil

        interfaces = {}
        stats = psutil.net_if_stats()
        for name, addrs in psutil.net_if_addrs().items():
            interfaces[name] = {
                "up": bool(stats[name].isup) if name in stats else None,
                "addresses": [a.address for a in addrs
                              if a.family in (socket.AF_INET, socket.AF_INET6)],
            }
        return {
            "agent_version": __version__, "python": sys.version.split()[0],
            "platform": platform.platform(), "config_hash": config_hash(),
            "interfaces": interfaces, "log": list(recent.lines)[-100:],
        }

    return run
