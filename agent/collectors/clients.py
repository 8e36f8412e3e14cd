"""Client counters over the hotspot's state tools: hostapd, iw, dnsmasq, neighbour table.

Each source is its own collector type. Every tick it reads the tool (a control socket,
a command or a file), parses it with agent/clients/parsers.py, feeds the stations to a
ClientCounter (keyed identities only) and adds `{name}_connected_now`, the window
counts `{name}_connected_1m|15m|1h` (and `_randomized_`), and `{name}_dwell_<bucket>`.
A source that cannot be read raises CollectorError: `unavailable`, never zero.

Sample config:

    [[collectors]]
    type = "clients_hostapd"
    name = "hostapd"
    ctrl_path = "/var/run/hostapd/wlan0"

    [[collectors]]
    type = "clients_iw"
    name = "iw"
    interface = "wlan0"

    [[collectors]]
    type = "clients_dnsmasq"
    name = "leases"
    leases_path = "/var/lib/misc/dnsmasq.leases"

    [[collectors]]
    type = "clients_neigh"
    name = "neigh"
    device = "br-hotspot"
    source = "proc"
"""

import os
import socket
import subprocess
import tempfile
import time
from typing import List

from agent.clients.counter import CONNECTED, ClientCounter
from agent.clients.errors import ClientsError
from agent.clients.identity import shared_keyring
from agent.clients.mac import redact_macs
from agent.clients.parsers import (
    Station,
    Stations,
    parse_dnsmasq_leases,
    parse_hostapd_sta,
    parse_ip_neigh,
    parse_iw_station_dump,
    parse_proc_net_arp,
)
from agent.collectors.base import Accumulator
from simpul_wire.config.clients import (
    DnsmasqConfig,
    HostapdConfig,
    IwConfig,
    NeighConfig,
    StateToolConfig,
)


def run_command(argv: List[str], timeout: float) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise ClientsError(f"{argv[0]}: not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise ClientsError(f"{argv[0]}: no answer in {timeout:g} s") from exc
    if done.returncode != 0:
        first = done.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
        detail = redact_macs(first[0]) if first else ""
        raise ClientsError(f"{argv[0]} exited {done.returncode}: {detail}")
    return done.stdout.decode("utf-8", "replace")


def read_text(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read(4 * 1024 * 1024).decode("utf-8", "replace")
    except OSError as exc:
        raise ClientsError(f"{path}: cannot read: {exc.strerror}") from exc


def hostapd_ctrl_stations(ctrl_path: str, timeout: float) -> Stations:
    """Walk hostapd's control socket: STA-FIRST, then STA-NEXT <mac> until empty."""
    local = os.path.join(tempfile.gettempdir(), f"simpul-hostapd-{os.getpid()}-{id(ctrl_path)}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    try:
        if os.path.exists(local):
            os.unlink(local)
        sock.bind(local)
        sock.connect(ctrl_path)
        replies: List[Stations] = []
        request = b"STA-FIRST"
        for _ in range(4096):  # hostapd's own limit on stations is far below this
            sock.send(request)
            reply = sock.recv(65536).decode("utf-8", "replace")
            # Only an empty reply ends the list: a station still authenticating parses
            # to no station, and the walk goes on past it.
            if not reply.strip():
                return Stations.joined(replies)
            replies.append(parse_hostapd_sta(reply))
            request = b"STA-NEXT " + reply.split("\n", 1)[0].strip().encode()
        raise ClientsError(f"{ctrl_path}: hostapd keeps answering STA-NEXT; stopped at 4096")
    except socket.timeout as exc:
        raise ClientsError(f"{ctrl_path}: hostapd did not answer in {timeout:g} s") from exc
    except OSError as exc:
        raise ClientsError(f"{ctrl_path}: {exc.strerror or exc}") from exc
    finally:
        sock.close()
        if os.path.exists(local):
            os.unlink(local)


class StateCollector:
    """Shared by the state-tool collectors: read, parse, count, report."""

    stream = "telemetry"

    def __init__(self, config: StateToolConfig, name: str) -> None:
        self.name = name
        self.config = config
        self.counter = ClientCounter(keyring=shared_keyring(), idle_s=config.idle_s)

    def start(self) -> None:
        return None

    def close(self) -> None:
        return None

    def read(self) -> List[Station]:  # pragma: no cover - overridden
        raise NotImplementedError

    def gather(self, acc: Accumulator) -> None:
        now = time.time()
        stations = self.read()  # raises ClientsError: the loop marks us unavailable
        for station in stations:
            self.counter.see(CONNECTED, station.mac, now, station.connected_s)
        self.counter.prune(now)
        acc.add(f"{self.name}_connected_now", len({s.mac for s in stations}))
        for key, value in self.counter.metrics(now).items():
            if not key.startswith("nearby"):
                acc.add(f"{self.name}_{key}", value)
        # Entries the tool lists that are no connected client leave the source ok,
        # with how many in its reason (docs/clients.md).
        acc.status(self.name, "ok",
                   stations.reason if isinstance(stations, Stations) else None)


class HostapdCollector(StateCollector):
    def __init__(self, config: HostapdConfig) -> None:
        super().__init__(config, config.name)
        self.cfg = config

    def read(self) -> List[Station]:
        if self.cfg.ctrl_path is not None:
            return hostapd_ctrl_stations(self.cfg.ctrl_path, self.cfg.timeout_s)
        assert self.cfg.command is not None
        return parse_hostapd_sta(run_command(self.cfg.command, self.cfg.timeout_s))


class IwCollector(StateCollector):
    def __init__(self, config: IwConfig) -> None:
        super().__init__(config, config.name)
        self.argv = config.command or ["iw", "dev", config.interface, "station", "dump"]
        self.timeout = config.timeout_s

    def read(self) -> List[Station]:
        return parse_iw_station_dump(run_command(self.argv, self.timeout))


class DnsmasqCollector(StateCollector):
    def __init__(self, config: DnsmasqConfig) -> None:
        super().__init__(config, config.name)
        self.path = config.leases_path

    def read(self) -> List[Station]:
        return parse_dnsmasq_leases(read_text(self.path), now=time.time())


class NeighCollector(StateCollector):
    def __init__(self, config: NeighConfig) -> None:
        super().__init__(config, config.name)
        self.cfg = config

    def read(self) -> List[Station]:
        if self.cfg.source == "proc":
            return parse_proc_net_arp(read_text(self.cfg.proc_path), self.cfg.device)
        argv = ["ip", "neigh", "show"] + (["dev", self.cfg.device] if self.cfg.device else [])
        text = run_command(argv, self.cfg.timeout_s)
        if self.cfg.device:  # `ip neigh show dev X` leaves out the "dev X" column
            text = "\n".join(_with_dev(line, self.cfg.device) for line in text.splitlines())
        return parse_ip_neigh(text, self.cfg.device)


def _with_dev(line: str, device: str) -> str:
    fields = line.split()
    if not fields or "dev" in fields:
        return line
    return " ".join([fields[0], "dev", device, *fields[1:]])
