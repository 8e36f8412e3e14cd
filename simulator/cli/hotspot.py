"""`simpul-sim hotspot`: capture files and state-tool fixtures with known ground truth.

Writes into --out: lan.pcap / lan.pcapng (Ethernet: DHCP, ARP, noise), air.pcap /
air.pcapng (RadioTap + 802.11: probe requests, noise), hostapd_all_sta.txt,
iw_station_dump.txt, dnsmasq.leases, ip_neigh.txt, proc_net_arp.txt, and truth.json.

With --netns N it instead builds a live hotspot in network namespaces (root): a bridge
with dnsmasq and N clients that lease with busybox udhcpc, prints how to count them,
and keeps it up until Ctrl-C or --hold seconds, then deletes everything.
"""

import argparse
import json
from pathlib import Path
from typing import Optional

from simulator.hotspot import Population
from simulator.hotspot_fixtures import (
    dnsmasq_leases,
    hostapd_all_sta,
    ip_neigh,
    iw_station_dump,
    proc_net_arp,
)
from simulator.pcapwrite import write_pcap, write_pcapng


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("hotspot", help="write hotspot capture files and fixtures with ground truth")
    p.add_argument("--out", required=True, help="directory to write into")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--clients", type=int, default=20, help="connected clients (ARP/DHCP)")
    p.add_argument("--universal", type=int, default=15, help="nearby devices with fixed MACs")
    p.add_argument("--randomized", type=int, default=10, help="nearby devices rotating MACs")
    p.add_argument("--rotate", type=float, default=120.0, help="seconds between MAC rotations")
    p.add_argument("--duration", type=float, default=600.0, help="seconds of traffic")
    p.add_argument("--noise-rate", type=float, default=50.0, help="noise frames per second")
    p.add_argument("--netns", type=int, metavar="N", help="live: N clients in namespaces")
    p.add_argument("--hold", type=float, help="live: seconds to keep it up (default: Ctrl-C)")
    p.set_defaults(func=run)


def run_live(out: Path, clients: int, hold: Optional[float]) -> int:
    import time

    from simulator.hotspot_netns import NetnsHotspot

    with NetnsHotspot(out, clients, universal_macs=min(1, clients)) as net:
        net.lease_all()
        print(f"hotspot up: namespace {net.ap}, bridge br0, {clients} clients leased; count with")
        print(f"  ip netns exec {net.ap} simpul-agent clients count --interface br0 --seconds 10")
        print(f"  (or read {net.leases})", flush=True)
        deadline = time.monotonic() + (hold if hold is not None else 10.0**9)
        try:
            while time.monotonic() < deadline:  # clients ARP now and then, as phones do
                time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
                net.chatter()
        except KeyboardInterrupt:
            pass
    print("hotspot namespaces deleted")
    return 0


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.netns is not None:
        return run_live(out, args.netns, args.hold)
    pop = Population(
        seed=args.seed,
        clients=args.clients,
        universal=args.universal,
        randomized=args.randomized,
        rotate_s=args.rotate,
        duration=args.duration,
        noise_rate=args.noise_rate,
    )
    pop.build_lan()
    pop.build_air()
    for name, linktype, packets in (("lan", 1, pop.lan), ("air", 127, pop.air)):
        with open(out / f"{name}.pcap", "wb") as fh:
            write_pcap(fh, linktype, packets)
        with open(out / f"{name}.pcapng", "wb") as fh:
            write_pcapng(fh, linktype, packets)
    present = pop.present_at_end()
    end = pop.start + pop.duration
    (out / "hostapd_all_sta.txt").write_text(hostapd_all_sta(present, pop.duration))
    (out / "iw_station_dump.txt").write_text(iw_station_dump(present, pop.duration))
    (out / "dnsmasq.leases").write_text(dnsmasq_leases(present, end))
    (out / "ip_neigh.txt").write_text(ip_neigh(present))
    (out / "proc_net_arp.txt").write_text(proc_net_arp(present))
    truth = pop.truth()
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    print(
        f"wrote {out}: {truth['lan_frames']} LAN frames, {truth['air_frames']} air frames; "
        f"truth connected={truth['connected']} nearby={truth['nearby']} "
        f"nearby_randomized={truth['nearby_randomized']}"
    )
    return 0
