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
from tests.clients.conftest import AGENT, PYTHON, REPO
from tests.clients.test_privacy import find_macs

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
            *AGENT,
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
    assert "counting on br0" in counting.stderr.readline()  # the filter is attached
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
    assert find_macs(out + err, net.macs) == []


def test_cli_on_an_interface_that_vanishes(net):
    net.ap_exec("ip", "link", "add", "gone0", "type", "veth", "peer", "name", "gone1")
    net.ap_exec("ip", "link", "set", "gone0", "up")
    counting = net.ap_popen(
        [
            "env",
            f"PYTHONPATH={REPO}",
            *AGENT,
            "clients",
            "count",
            "--interface",
            "gone0",
            "--seconds",
            "20",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert "counting on gone0" in counting.stderr.readline()
    net.ap_exec("ip", "link", "del", "gone0")
    out, err = counting.communicate(timeout=30)
    assert counting.returncode == 1 and out == ""
    assert err.strip() == "simpul-agent: interface gone0 went away"


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
from agent.collectors.clients_capture import CaptureCollector
from simpul_wire.config.clients import CaptureConfig
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


def test_probe_filter_on_a_link(net):
    """The monitor-mode BPF program, run by the kernel: RadioTap frames from the simulator
    are sent raw into one end of a veth (no radio here) and captured on the other."""
    code = """
import json, socket, subprocess, time
from agent.clients.counter import ClientCounter
from agent.clients.live import LiveCapture
from simulator.hotspot import Population
subprocess.run(["ip", "link", "add", "mon0", "type", "veth", "peer", "name", "mon1"], check=True)
for dev in ("mon0", "mon1"):
    subprocess.run(["ip", "link", "set", dev, "up"], check=True)
pop = Population(seed=5, clients=0, universal=6, randomized=4, duration=120, noise_rate=5)
pop.build_air()
counter = ClientCounter(keep_totals=True)
cap = LiveCapture("mon1", counter, monitor=True)
cap.open()
tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
tx.bind(("mon0", 0))
for _ts, frame in pop.air:
    tx.send(frame)
while cap.poll():  # until the socket has been idle for its timeout
    pass
t = counter.totals()
print(json.dumps({"sent": len(pop.air), "read": cap.frames, "matched": cap.matched,
                  "nearby": t.nearby, "randomized": t.nearby_randomized,
                  "truth": len(pop.seen["nearby"]),
                  "truth_randomized": sum(1 for m in pop.seen["nearby"] if m[0] & 2)}))
"""
    result = in_ap(net, code)
    assert result["read"] < result["sent"] / 5  # beacons, data and ACKs stayed in the kernel
    # every frame that reached Python was a probe request; the one with a bad FCS is
    # passed by BPF and dropped by the decoder
    assert result["matched"] == result["read"] - 1
    assert (result["nearby"], result["randomized"]) == (
        result["truth"],
        result["truth_randomized"],
    )


def test_arpscan_collector_and_rescan(net):
    net.lease_all()
    code = f"""
import json, time
from agent.collectors.base import Accumulator
from agent.collectors.clients_capture import ArpScanCollector
from simpul_wire.config.clients import ArpScanConfig
c = ArpScanCollector(ArpScanConfig(type="clients_arpscan", name="scan", interface="br0",
                                   subnet="{SUBNET}.0/27", rate_pps=100, every_s=3600))
c.start()
while c.scans < 1:
    time.sleep(0.1)
acc = Accumulator(); c.gather(acc)
c.rescan()  # the rescan_clients command: scan now, not in an hour
deadline = time.monotonic() + 20
while c.scans < 2 and time.monotonic() < deadline:
    time.sleep(0.1)
c.close()
print(json.dumps({{"connected": acc.metrics["scan_connected_1m"], "scans": c.scans,
                  "state": acc.sources["scan"].state}}))
"""
    result = in_ap(net, code)
    assert result == {"connected": CLIENTS, "scans": 2, "state": "ok"}


def test_simulator_live_hotspot_command(tmp_path):
    done = subprocess.run(
        [
            PYTHON,
            "-m",
            "simulator.cli",
            "hotspot",
            "--out",
            str(tmp_path),
            "--netns",
            "2",
            "--hold",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(REPO),
    )
    assert done.returncode == 0, done.stderr
    namespace = done.stdout.split("namespace ", 1)[1].split(",", 1)[0]
    assert "2 clients leased" in done.stdout and "namespaces deleted" in done.stdout
    assert (
        namespace
        not in subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, check=True
        ).stdout
    )
