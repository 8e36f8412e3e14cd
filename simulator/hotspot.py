"""A simulated hotspot population and its traffic, with the ground truth to check against.

Population (all addresses random but reproducible from the seed):
- `clients` connected clients, some with stable locally administered (per-SSID) MACs;
  each joins, does DHCP (DISCOVER/OFFER/REQUEST/ACK) or, for some, only ARPs (a lease
  from before the capture), ARPs for the gateway while present, and sends noise traffic
  (TCP, DNS, IPv6) that the counter must ignore. The gateway answers DHCP and ARPs too.
- `universal` nearby devices probing with their fixed MAC.
- `randomized` nearby devices probing with a locally administered MAC that changes
  every `rotate_s` seconds.
- 802.11 noise: beacons, probe responses, data frames, ACKs, and a probe request with a
  bad FCS from an address that is not part of the population.

Frames are crafted with scapy once per (address, kind) and reused as bytes, so large
files for the benchmark take seconds. The truth is computed from the frames emitted.
"""

import random
from typing import Any, Dict, List, Set, Tuple

from agent.clients.mac import format_mac, is_locally_administered

Packet = Tuple[float, bytes]
WINDOWS = {"1m": 60.0, "15m": 900.0, "1h": 3600.0}
GATEWAY_IP = "10.42.0.1"
SSID = "Simpul-Taman"


def _mac(rng: random.Random, local: bool) -> bytes:
    first = rng.randrange(256) & 0xFC | (0x02 if local else 0x00)
    return bytes([first]) + bytes(rng.randrange(256) for _ in range(5))


class Population:
    def __init__(
        self,
        seed: int = 1,
        clients: int = 20,
        universal: int = 15,
        randomized: int = 10,
        rotate_s: float = 120.0,
        duration: float = 600.0,
        noise_rate: float = 50.0,
        start: float = 1763900000.0,
    ) -> None:
        self.rng = random.Random(seed)
        self.duration, self.start, self.rotate_s = duration, start, rotate_s
        self.noise_rate = noise_rate
        rng = self.rng
        self.gateway = _mac(rng, False)
        self.ap_bssid = _mac(rng, False)
        self.clients: List[Dict[str, object]] = []
        for i in range(clients):
            join = rng.uniform(0, duration * 0.5)
            self.clients.append(
                {
                    "mac": _mac(rng, rng.random() < 0.3),
                    "ip": f"10.42.0.{10 + i}",
                    "join": join,
                    "leave": min(duration, join + rng.uniform(30, duration)),
                    "dhcp": rng.random() < 0.75,
                    "xid": rng.randrange(1 << 32),
                }
            )
        self.universal = [_mac(rng, False) for _ in range(universal)]
        self.randomized = randomized
        self.lan: List[Packet] = []
        self.air: List[Packet] = []
        # What the counter should see: kind -> mac -> last time it was emitted
        self.seen: Dict[str, Dict[bytes, float]] = {"connected": {}, "nearby": {}}

    # --- LAN side (Ethernet) -----------------------------------------------------

    def _lan_templates(self, c: Dict[str, object]) -> Dict[str, bytes]:
        from scapy.layers.dhcp import BOOTP, DHCP
        from scapy.layers.inet import IP, TCP, UDP
        from scapy.layers.inet6 import IPv6
        from scapy.layers.l2 import ARP, Ether

        mac, ip = format_mac(c["mac"]), str(c["ip"])  # type: ignore[arg-type]
        gw = format_mac(self.gateway)
        chaddr = c["mac"] + b"\x00" * 10  # type: ignore[operator]
        xid = int(c["xid"])  # type: ignore[call-overload]

        def bootp(op: int, src: str, dst: str, sip: str, dip: str, kind: str) -> bytes:
            udp = UDP(sport=68, dport=67) if op == 1 else UDP(sport=67, dport=68)
            frame = (
                Ether(src=src, dst=dst)
                / IP(src=sip, dst=dip)
                / udp
                / BOOTP(op=op, chaddr=chaddr, xid=xid, yiaddr=ip if op == 2 else "0.0.0.0")
                / DHCP(options=[("message-type", kind), ("server_id", GATEWAY_IP), "end"])
            )
            return bytes(frame)

        return {
            "discover": bootp(
                1, mac, "ff:ff:ff:ff:ff:ff", "0.0.0.0", "255.255.255.255", "discover"
            ),
            "offer": bootp(2, gw, mac, GATEWAY_IP, ip, "offer"),
            "request": bootp(1, mac, "ff:ff:ff:ff:ff:ff", "0.0.0.0", "255.255.255.255", "request"),
            "ack": bootp(2, gw, mac, GATEWAY_IP, ip, "ack"),
            "arp": bytes(
                Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
                / ARP(op=1, hwsrc=mac, psrc=ip, pdst=GATEWAY_IP)
            ),
            "arp_reply": bytes(
                Ether(src=gw, dst=mac) / ARP(op=2, hwsrc=gw, psrc=GATEWAY_IP, hwdst=mac, pdst=ip)
            ),
            "tcp": bytes(
                Ether(src=mac, dst=gw)
                / IP(src=ip, dst="93.184.216.34")
                / TCP(sport=40000, dport=443, flags="A")
                / (b"x" * 1200)
            ),
            "tcp_down": bytes(
                Ether(src=gw, dst=mac)
                / IP(src="93.184.216.34", dst=ip)
                / TCP(sport=443, dport=40000, flags="A")
                / (b"y" * 1400)
            ),
            "dns": bytes(
                Ether(src=mac, dst=gw)
                / IP(src=ip, dst=GATEWAY_IP)
                / UDP(sport=5353, dport=53)
                / (b"\x00" * 40)
            ),
            "ipv6": bytes(
                Ether(src=mac, dst="33:33:00:00:00:fb")
                / IPv6(src="fe80::1", dst="ff02::fb")
                / UDP(sport=5353, dport=5353)
                / (b"\x00" * 60)
            ),
        }

    def _emit_lan(self, t: float, data: bytes, counted: bool, mac: bytes) -> None:
        self.lan.append((self.start + t, data))
        if counted:
            self.seen["connected"][mac] = self.start + t

    def build_lan(self) -> None:
        rng = self.rng
        noise_kinds = ["tcp", "tcp_down", "tcp_down", "dns", "ipv6"]
        per_client_rate = self.noise_rate / max(1, len(self.clients))
        for c in self.clients:
            tpl = self._lan_templates(c)
            mac = c["mac"]
            t, leave = float(c["join"]), float(c["leave"])  # type: ignore[arg-type]
            if c["dhcp"]:
                for kind, dt in (("discover", 0), ("offer", 0.01), ("request", 0.5), ("ack", 0.51)):
                    self._emit_lan(t + dt, tpl[kind], kind in ("discover", "request"), mac)  # type: ignore[arg-type]
            arp_t = t + 1.0
            while arp_t < leave:
                self._emit_lan(arp_t, tpl["arp"], True, mac)  # type: ignore[arg-type]
                self._emit_lan(arp_t + 0.001, tpl["arp_reply"], False, mac)  # type: ignore[arg-type]
                arp_t += rng.uniform(30, 90)
            if per_client_rate > 0:
                nt = t + rng.expovariate(per_client_rate)
                while nt < leave:
                    self._emit_lan(nt, tpl[rng.choice(noise_kinds)], False, mac)  # type: ignore[arg-type]
                    nt += rng.expovariate(per_client_rate)
        self.lan.sort(key=lambda p: p[0])

    # --- air side (RadioTap + 802.11) --------------------------------------------

    def build_air(self) -> None:
        from scapy.layers.dot11 import (
            Dot11,
            Dot11Beacon,
            Dot11Elt,
            Dot11ProbeReq,
            Dot11ProbeResp,
            RadioTap,
        )

        rng = self.rng
        bssid = format_mac(self.ap_bssid)
        cache: Dict[Tuple[bytes, int, bool], bytes] = {}

        def radiotap(tsft: bool, bad: bool = False) -> RadioTap:
            present = (
                "TSFT+Flags+Rate+Channel+dBm_AntSignal"
                if tsft
                else "Flags+Rate+Channel+dBm_AntSignal"
            )
            fields: Dict[str, Any] = {
                "Flags": "badFCS" if bad else 0,
                "Rate": 2,
                "ChannelFrequency": 2437,
                "ChannelFlags": "CCK+2GHz",
                "dBm_AntSignal": -60,
            }
            if tsft:
                fields["mac_timestamp"] = 1234567
            return RadioTap(present=present, **fields)

        def probe(mac: bytes, channel: int, tsft: bool, bad: bool = False) -> bytes:
            key = (mac, channel, tsft)
            if key not in cache or bad:
                frame = (
                    radiotap(tsft, bad)
                    / Dot11(
                        type=0,
                        subtype=4,
                        addr1="ff:ff:ff:ff:ff:ff",
                        addr2=format_mac(mac),
                        addr3="ff:ff:ff:ff:ff:ff",
                    )
                    / Dot11ProbeReq()
                    / Dot11Elt(ID="SSID", info=b"")
                    / Dot11Elt(ID="Rates", info=b"\x02\x04\x0b\x16")
                    / Dot11Elt(ID="DSset", info=bytes([channel]))
                )
                if bad:
                    return bytes(frame)
                cache[key] = bytes(frame)
            return cache[key]

        def emit_probe_burst(t: float, mac: bytes) -> None:
            for i in range(rng.randint(1, 3)):
                ts = self.start + t + i * 0.02
                self.air.append((ts, probe(mac, (1, 6, 11)[i], rng.random() < 0.5)))
                self.seen["nearby"][mac] = ts

        for mac in self.universal:
            t, leave = rng.uniform(0, self.duration * 0.6), self.duration
            leave = min(self.duration, t + rng.uniform(20, self.duration))
            while t < leave:
                emit_probe_burst(t, mac)
                t += rng.uniform(20, 60)
        for _ in range(self.randomized):
            t = rng.uniform(0, self.duration * 0.6)
            leave = min(self.duration, t + rng.uniform(20, self.duration))
            mac, rotate_at = _mac(rng, True), t + self.rotate_s
            while t < leave:
                if t >= rotate_at:
                    mac, rotate_at = _mac(rng, True), t + self.rotate_s
                emit_probe_burst(t, mac)
                t += rng.uniform(10, 40)
        # noise: beacons every 102.4 ms would be huge; one every second is enough here
        beacon = bytes(
            radiotap(True)
            / Dot11(type=0, subtype=8, addr1="ff:ff:ff:ff:ff:ff", addr2=bssid, addr3=bssid)
            / Dot11Beacon()
            / Dot11Elt(ID="SSID", info=SSID.encode())
        )
        response = bytes(
            radiotap(False)
            / Dot11(
                type=0,
                subtype=5,
                addr1=format_mac(self.universal[0] if self.universal else self.gateway),
                addr2=bssid,
                addr3=bssid,
            )
            / Dot11ProbeResp()
            / Dot11Elt(ID="SSID", info=SSID.encode())
        )
        data = bytes(
            radiotap(False)
            / Dot11(
                type=2, subtype=0, FCfield=1, addr1=bssid, addr2="02:99:00:00:00:01", addr3=bssid
            )
            / (b"z" * 500)
        )
        ack = bytes(radiotap(False) / Dot11(type=1, subtype=13, addr1=bssid))
        stray = _mac(rng, False)
        t = 0.0
        while t < self.duration:
            self.air.append((self.start + t, beacon))
            for _ in range(int(self.noise_rate)):
                self.air.append((self.start + t + rng.random(), rng.choice((data, ack, response))))
            t += 1.0
        self.air.append((self.start + self.duration / 2, probe(stray, 6, True, bad=True)))
        self.air.sort(key=lambda p: p[0])

    # --- the truth and the state tools' view -------------------------------------

    def present_at_end(self) -> List[Dict[str, object]]:
        return [c for c in self.clients if float(c["leave"]) >= self.duration - 1e-9]  # type: ignore[arg-type]

    def truth(self) -> Dict[str, object]:
        # Windows end at each file's last frame, as the counter's do.
        ends = {
            "connected": self.lan[-1][0] if self.lan else 0.0,
            "nearby": self.air[-1][0] if self.air else 0.0,
        }
        out: Dict[str, object] = {}
        for kind, seen in self.seen.items():
            end = ends[kind]
            out[kind] = len(seen)
            out[f"{kind}_randomized"] = sum(1 for m in seen if is_locally_administered(m))
            for label, w in WINDOWS.items():
                inside: Set[bytes] = {m for m, ts in seen.items() if ts >= end - w}
                out[f"{kind}_{label}"] = len(inside)
                out[f"{kind}_randomized_{label}"] = sum(
                    1 for m in inside if is_locally_administered(m)
                )
        out["state_connected"] = len(self.present_at_end())
        out["lan_frames"] = len(self.lan)
        out["air_frames"] = len(self.air)
        out["lan_end_ts"], out["air_end_ts"] = ends["connected"], ends["nearby"]
        # Raw MACs, so the privacy test knows what to look for; the agent never writes these.
        out["population_macs"] = sorted(
            {format_mac(m) for m in list(self.seen["connected"]) + list(self.seen["nearby"])}
            | {format_mac(c["mac"]) for c in self.clients}  # type: ignore[arg-type]
        )
        out["infrastructure_macs"] = [format_mac(self.gateway), format_mac(self.ap_bssid)]
        return out
