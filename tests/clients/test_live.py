"""Live: clients in network namespaces lease from dnsmasq; the agent counts them by real
capture on the bridge (AF_PACKET + BPF), scans them by ARP, and survives the interface
vanishing. Needs root (CI runs as root)."""

import json
import subprocess
import time

import pytest

from agent.clients.mac import parse_mac
from agent.clients.parsers import parse_dnsmasq_leases, parse_ip_neigh, parse_proc_net_arp
from simulator.hotspot_netns import SUBNET, NetnsHotspot
from tests.clients.conftest import AGENT_SHIM, PYTHON, REPO

pytestmark = pytest.mark.slow
CLIENTS = 4


def in_ap(net, code, timeout=60):
    done = net.ap_exec("env", f"PYTHONPATH={REPO}", PYTHON, "-c", code, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def net(tmp_path):
    with NetnsHotspot(tmp_path, CLIENTS, universal_macs=1) as hotspot:
        yield hotspot


def test_live_capture_counts_leasing_clients(net):
    counting = net.ap_popen(
        [
            "env",
            f"PYTHONPATH={REPO}",
            PYTHON,
            "-c",
            AGENT_SHIM,
            "clients",
            "count",
            "--interface",
            "br0",
            "--seconds",
            "6",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)  # the capture opens in well under a second; udhcpc retries anyway
    net.lease_all()
    # noise that must stay in the kernel: pings and UDP to a non-DHCP port
    for i in range(CLIENTS):
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                net.clients[i],
                "ping",
                "-c",
                "20",
                "-i",
                "0.01",
                "-q",
                f"{SUBNET}.1",
            ],
            capture_output=True,
            check=False,
            timeout=20,
        )
    out, err = counting.communicate(timeout=60)
    assert counting.returncode == 0, err
    report = json.loads(out)
    assert report["connected"] == CLIENTS
    assert report["connected_randomized"] == CLIENTS - 1  # kernel-random veth MACs
    assert report["windows"]["1m"]["connected"] == CLIENTS
    assert report["nearby"] == 0
    # BPF: only ARP and DHCP reached Python, not the 80 pings and their replies
    assert report["frames"] == report["frames_matched"]
    assert report["frames"] < 80


def test_state_sources_see_the_same_clients(net):
    net.lease_all()
    macs = {parse_mac(m) for m in net.macs}
    leases = parse_dnsmasq_leases(net.leases.read_text(), now=time.time())
    assert {s.mac for s in leases} == macs
    neigh = parse_ip_neigh(net.ap_exec("ip", "neigh", "show").stdout, device="br0")
    assert {s.mac for s in neigh} == macs
    arp = parse_proc_net_arp(net.ap_exec("cat", "/proc/net/arp").stdout, device="br0")
    assert {s.mac for s in arp} == macs


def test_arp_scan_finds_the_clients(net):
    net.lease_all()
    code = (
        "import json; from agent.clients.arpscan import arp_scan; "
        f"found = arp_scan('br0', '{SUBNET}.0/27', rate_pps=50, timeout=1.5, skip='{SUBNET}.1'); "
        "print(json.dumps(sorted(m.hex() for m in found)))"
    )
    found = in_ap(net, code)
    assert sorted(set(found)) == sorted(parse_mac(m).hex() for m in net.macs)


def test_interface_that_vanishes_becomes_unavailable(net):
    code = """
import json, subprocess, time
from agent.collectors.base import Accumulator
from agent.collectors.clients_capture import CaptureCollector, CaptureConfig
from agent.errors import CollectorError
subprocess.run(["ip", "link", "add", "dm0", "type", "veth", "peer", "name", "dm1"], check=True)
subprocess.run(["ip", "link", "set", "dm0", "up"], check=True)
c = CaptureCollector(CaptureConfig(type="clients_capture", name="lan", interface="dm0"))
c.start()
acc = Accumulator(); c.gather(acc); first = acc.sources["lan"].state
subprocess.run(["ip", "link", "del", "dm0"], check=True)
time.sleep(1.5)
reasons = []
for _ in range(2):
    try:
        c.gather(Accumulator()); reasons.append("ok")
    except CollectorError as exc:
        reasons.append(str(exc))
c.close()
print(json.dumps({"first": first, "after": reasons}))
"""
    result = in_ap(net, code)
    assert result["first"] == "ok"
    assert len(result["after"]) == 2
    assert "dm0 went away" in result["after"][0]
    assert "dm0 does not exist" in result["after"][1]  # still gone when reopening
