"""A hotspot in network namespaces, for the shaper's tests and bench.

    ns box  : hs0 10.42.0.1/24 (the hotspot interface we shape; iperf3 servers run here)
    ns air  : bridge br0 joining hs0's peer and every client's peer (the radio)
    ns cN   : eth0 10.42.0.<host>/24 (a Wi-Fi client)

Names carry the pid and a counter, so parallel runs never collide; `close()` deletes
every namespace (deleting a namespace deletes its veths) and stops the iperf3 servers.
"""

import itertools
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

_counter = itertools.count()
SERVER_ADDR = "10.42.0.1"


def sh(*args: str, check: bool = True) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=30)


class Hotspot:
    def __init__(self, client_hosts: List[int]) -> None:
        tag = f"{os.getpid()}x{next(_counter)}"
        self.box = f"shbox{tag}"
        self.air = f"shair{tag}"
        self.clients: Dict[str, str] = {}  # address -> namespace
        self._servers: List[subprocess.Popen[bytes]] = []
        self._namespaces: List[str] = []
        try:
            self._build(tag, client_hosts)
        except BaseException:
            self.close()
            raise

    def _ns(self, name: str) -> None:
        sh("ip", "netns", "add", name)
        self._namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def _build(self, tag: str, hosts: List[int]) -> None:
        self._ns(self.box)
        self._ns(self.air)
        # forward_delay 0: ports forward at once instead of listening for 15 s.
        sh("ip", "-n", self.air, "link", "add", "br0", "type", "bridge", "forward_delay", "0")
        sh("ip", "-n", self.air, "link", "set", "br0", "up")
        sh("ip", "-n", self.box, "link", "add", "hs0", "type", "veth", "peer", "name", "up0",
           "netns", self.air)
        sh("ip", "-n", self.box, "addr", "add", f"{SERVER_ADDR}/24", "dev", "hs0")
        sh("ip", "-n", self.box, "link", "set", "hs0", "up")
        sh("ip", "-n", self.air, "link", "set", "up0", "master", "br0", "up")
        for i, host in enumerate(hosts):
            ns = f"shc{i}{tag}"
            self._ns(ns)
            addr = f"10.42.0.{host}"
            sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"p{i}",
               "netns", self.air)
            sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", self.air, "link", "set", f"p{i}", "master", "br0", "up")
            self.clients[addr] = ns
        # Bridge ports start in the listening state; wait until they forward.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out = sh("ip", "-n", self.air, "-j", "link", "show", "master", "br0").stdout
            if out.count('"operstate":"UP"') == len(hosts) + 1:
                break
            time.sleep(0.05)

    def server(self, port: int) -> None:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.box, "iperf3", "-s", "-p", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self._servers.append(proc)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            probe = sh("ip", "netns", "exec", self.box, "ss", "-Hltn", f"sport = :{port}",
                       check=False)
            if probe.stdout.strip():
                return
            time.sleep(0.05)
        raise RuntimeError(f"iperf3 server on port {port} did not start")

    def iperf(self, client: str, port: int, seconds: float, reverse: bool,
              omit: int = 1) -> "subprocess.Popen[str]":
        """Start an iperf3 client; reverse=True measures download (box -> client)."""
        cmd = ["ip", "netns", "exec", self.clients[client], "iperf3", "-c", SERVER_ADDR,
               "-p", str(port), "-t", f"{seconds:g}", "-O", str(omit), "-J", "-i", "0.5"]
        if reverse:
            cmd.append("-R")
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def close(self) -> None:
        for proc in self._servers:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for ns in reversed(self._namespaces):
            sh("ip", "netns", "del", ns, check=False)
        # The shaper's per-interface lock files for this box.
        for lock in Path(tempfile.gettempdir()).glob(f"shaper-{self.box}-*.lock"):
            lock.unlink(missing_ok=True)


def finish(proc: "subprocess.Popen[str]", timeout: float = 60) -> Dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    try:
        data: Dict[str, Any] = json.loads(out)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"iperf3 printed no JSON: {err or out}") from exc
    if proc.returncode != 0 or "error" in data:
        raise AssertionError(f"iperf3 failed ({proc.returncode}): {data.get('error', err)}")
    return data


def received_mbps(data: Dict[str, Any]) -> float:
    return float(data["end"]["sum_received"]["bits_per_second"]) / 1e6


def interval_mbps(data: Dict[str, Any]) -> List[float]:
    return [float(i["sum"]["bits_per_second"]) / 1e6 for i in data["intervals"]
            if not i["sum"].get("omitted")]


def measure(hs: Hotspot, client: str, port: int, seconds: float, reverse: bool,
            omit: int = 1) -> float:
    return received_mbps(finish(hs.iperf(client, port, seconds, reverse, omit)))


def ns_of(hs: Optional[Hotspot]) -> str:
    assert hs is not None
    return hs.box
