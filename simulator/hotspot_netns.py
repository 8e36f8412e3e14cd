"""Live hotspot clients in network namespaces: an AP namespace with a bridge and dnsmasq as the
DHCP server, and client namespaces joined to the bridge by veth pairs, each getting its
lease with `busybox udhcpc -B`. Names carry the pid so parallel runs never collide;
everything is deleted on exit, including on failure."""

import itertools
import os
import subprocess
import time
from pathlib import Path
from typing import Any, List, Optional

SUBNET = "10.77.0"
UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/${mask:-24}" dev "$interface" ;;
esac
exit 0
"""
_serial = itertools.count()


def sh(*argv: str, check: bool = True, timeout: float = 30) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


class NetnsHotspot:
    def __init__(self, workdir: Path, clients: int, universal_macs: int = 1) -> None:
        tag = f"{os.getpid()}x{next(_serial)}"
        self.workdir = workdir
        self.ap = f"sap{tag}"
        self.clients = [f"scl{tag}n{i}" for i in range(clients)]
        self.universal_macs = universal_macs
        self.dnsmasq: Optional[subprocess.Popen[bytes]] = None
        self.procs: List[subprocess.Popen[Any]] = []
        self.macs: List[str] = []

    def __enter__(self) -> "NetnsHotspot":
        try:
            self._build()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _build(self) -> None:
        sh("ip", "netns", "add", self.ap)
        self.ap_exec("ip", "link", "set", "lo", "up")
        self.ap_exec("ip", "link", "add", "br0", "type", "bridge")
        self.ap_exec("ip", "addr", "add", f"{SUBNET}.1/24", "dev", "br0")
        self.ap_exec("ip", "link", "set", "br0", "up")
        for i, ns in enumerate(self.clients):
            sh("ip", "netns", "add", ns)
            sh(
                "ip",
                "-n",
                self.ap,
                "link",
                "add",
                f"vc{i}",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns,
            )
            self.ap_exec("ip", "link", "set", f"vc{i}", "master", "br0", "up")
            if i < self.universal_macs:  # a universal (vendor) address; the rest stay random
                sh("ip", "-n", ns, "link", "set", "eth0", "address", f"00:16:3e:77:00:{i:02x}")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            text = sh("ip", "-n", ns, "-br", "link", "show", "eth0").stdout.split()
            self.macs.append(text[2])
        self.script = self.workdir / "udhcpc.sh"
        self.script.write_text(UDHCPC_SCRIPT)
        self.script.chmod(0o755)
        self.leases = self.workdir / "dnsmasq.leases"
        self.dnsmasq = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.ap,
                "dnsmasq",
                "--keep-in-foreground",
                "--port=0",
                "--interface=br0",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--no-ping",
                f"--dhcp-range={SUBNET}.10,{SUBNET}.30,1h",
                f"--dhcp-leasefile={self.leases}",
                f"--pid-file={self.workdir / 'dnsmasq.pid'}",
                "--log-facility=-",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(self.dnsmasq)
        deadline = time.monotonic() + 10
        while "67" not in self.ap_exec("ss", "-lun", check=False).stdout:
            if time.monotonic() > deadline:
                raise RuntimeError("dnsmasq did not start listening on port 67")
            time.sleep(0.1)

    def ap_exec(self, *argv: str, check: bool = True) -> "subprocess.CompletedProcess[str]":
        return sh("ip", "netns", "exec", self.ap, *argv, check=check)

    def ap_popen(self, argv: List[str], **kwargs: Any) -> "subprocess.Popen[Any]":
        proc = subprocess.Popen(["ip", "netns", "exec", self.ap, *argv], **kwargs)
        self.procs.append(proc)
        return proc

    def lease_all(self) -> None:
        """Every client asks for a lease at once (broadcast replies), then ARPs the gateway."""
        runs = [
            subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "busybox",
                    "udhcpc",
                    "-B",
                    "-q",
                    "-n",
                    "-i",
                    "eth0",
                    "-t",
                    "10",
                    "-T",
                    "1",
                    "-s",
                    str(self.script),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for ns in self.clients
        ]
        codes = [p.wait(timeout=30) for p in runs]
        if any(codes):
            raise RuntimeError(f"udhcpc failed in some clients: {codes}")
        self.chatter()

    def chatter(self) -> None:
        """Each client ARPs for the gateway once, as phones do every so often."""
        for ns in self.clients:
            sh(
                "ip",
                "netns",
                "exec",
                ns,
                "busybox",
                "arping",
                "-c",
                "1",
                "-w",
                "1",
                "-I",
                "eth0",
                f"{SUBNET}.1",
                check=False,
            )

    def client_ip(self, i: int) -> str:
        out = sh("ip", "-n", self.clients[i], "-4", "-br", "addr", "show", "eth0").stdout.split()
        return str(out[2].split("/")[0])

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        for ns in [*self.clients, self.ap]:
            sh("ip", "netns", "del", ns, check=False)
