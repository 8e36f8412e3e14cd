"""The planner: a tier and the current tc state in, a list of tc/ip commands out.

Pure: no I/O. The applier reads the current state (readback.py), asks for a plan,
runs it, reads back again and compares with `expected(...)`.

The tree built on each of the two devices (the hotspot interface for download, its
IFB twin for upload):

    qdisc htb 1: default fffe             (root; unclassified traffic -> 1:fffe)
    └── class 1:1      rate=tier  ceil=tier
        ├── class 1:fffe  rate=share ceil=tier    (everyone without a class of their own)
        └── class 1:<m>   rate=share ceil=min(cap, tier)   one per client (per-client caps)

    filters at prio 5 on parent 1:, protocol ip, u32 with a 256-bucket hash table
    (handle 2:) keyed on the last octet of the client address: dst on the
    interface's egress (download), src on the IFB (upload).

    interface ingress: qdisc ingress ffff: + u32 match-all -> mirred redirect to IFB.

A tier change on an existing tree is `tc class change` only, so the qdiscs (and the
flows queued in them) stay. Client minors are kept from the current state; new clients
take the lowest free minor from 0x10, which is also their u32 node id (12 bits).
"""

import ipaddress
import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from agent.shaper.errors import ShaperError

ROOT_MINOR = 0x1
DEFAULT_MINOR = 0xFFFE
FIRST_CLIENT_MINOR = 0x10
LAST_CLIENT_MINOR = 0xFFF  # u32 node ids are 12 bits
HASH_TABLE = 2
FILTER_PRIO = 5
MIRRED_PRIO = 1
# Offsets in the IPv4 header: source address at 12, destination at 16.
DST_OFFSET = 16
SRC_OFFSET = 12
QUANTUM = 15140  # ten full frames: HTB's default (rate / r2q) is far too big at 300 Mbit
MIN_RATE_KBIT = 8

Command = Tuple[str, ...]


@dataclass(frozen=True)
class Tier:
    """A bandwidth tier in Mbit/s; `per_client_mbps` None means no per-client caps."""

    down_mbps: float
    up_mbps: float
    per_client_mbps: Optional[float] = None

    def __post_init__(self) -> None:
        for name in ("down_mbps", "up_mbps"):
            value = getattr(self, name)
            if not 0 < value <= 10000:
                raise ShaperError(f"{name} must be above 0 and at most 10000, not {value}")
        cap = self.per_client_mbps
        if cap is not None and not 0 < cap <= 10000:
            raise ShaperError(f"per_client_mbps must be above 0 and at most 10000, not {cap}")


@dataclass(frozen=True)
class ClassSpec:
    minor: int
    parent_minor: int  # 0 means the qdisc root
    rate_kbit: int
    ceil_kbit: int


@dataclass(frozen=True)
class DeviceState:
    """What readback found on one device, reduced to what the planner needs."""

    exists: bool = True
    ours: bool = False  # root qdisc is htb 1: default fffe
    root_htb1: bool = False  # root qdisc is htb 1: at all (replace would keep its classes)
    classes: Dict[int, ClassSpec] = field(default_factory=dict)
    clients: Dict[str, int] = field(default_factory=dict)  # address -> minor (filter flowid)
    hash_table: bool = False  # u32 table 2: (256 buckets)
    hash_link: bool = False  # the 800:: filter hashing the last octet into it
    ingress: bool = False  # ingress qdisc ffff:
    mirred_to: Optional[str] = None  # device the ingress filter redirects to


@dataclass(frozen=True)
class Plan:
    interface: str
    ifb: str
    commands: List[Command]
    down: Dict[int, ClassSpec]
    up: Dict[int, ClassSpec]
    clients: Dict[str, int]

    def render(self, netns: Optional[str] = None) -> List[str]:
        return [" ".join(with_netns(cmd, netns)) for cmd in self.commands]


def with_netns(cmd: Command, netns: Optional[str]) -> Command:
    return (cmd[0], "-n", netns, *cmd[1:]) if netns else cmd


def ifb_name(interface: str) -> str:
    """The IFB twin of an interface; names are at most 15 characters."""
    name = f"ifb-{interface}"
    if len(name) <= 15:
        return name
    return f"ifb-{interface[:5]}-{zlib.crc32(interface.encode()) & 0xFFFFF:05x}"


def kbit(mbps: float) -> int:
    return max(MIN_RATE_KBIT, round(mbps * 1000))


def parse_clients(clients: Sequence[str]) -> List[str]:
    out = []
    for raw in clients:
        try:
            addr = ipaddress.IPv4Address(raw.strip())
        except ValueError as exc:
            raise ShaperError(f"client address {raw!r} is not an IPv4 address") from exc
        out.append(str(addr))
    return sorted(set(out), key=lambda a: int(ipaddress.IPv4Address(a)))


def allocate(clients: List[str], current: Dict[str, int]) -> Dict[str, int]:
    """Keep the minors clients already have; give new ones the lowest free minor."""
    kept = {a: m for a, m in current.items() if a in clients}
    used = set(kept.values())
    nxt = FIRST_CLIENT_MINOR
    out = dict(kept)
    for addr in clients:
        if addr in out:
            continue
        while nxt in used:
            nxt += 1
        if nxt > LAST_CLIENT_MINOR:
            most = LAST_CLIENT_MINOR - FIRST_CLIENT_MINOR + 1
            raise ShaperError(f"too many clients for per-client caps (at most {most})")
        out[addr] = nxt
        used.add(nxt)
    return out


def class_tree(
    total_mbps: float, cap_mbps: Optional[float], minors: Dict[str, int]
) -> Dict[int, ClassSpec]:
    total = kbit(total_mbps)
    n = len(minors) if cap_mbps is not None else 0
    share = max(MIN_RATE_KBIT, total // (n + 1))
    tree = {
        ROOT_MINOR: ClassSpec(ROOT_MINOR, 0, total, total),
        DEFAULT_MINOR: ClassSpec(DEFAULT_MINOR, ROOT_MINOR, share if n else total, total),
    }
    if cap_mbps is not None:
        ceil = min(kbit(cap_mbps), total)
        for minor in minors.values():
            tree[minor] = ClassSpec(minor, ROOT_MINOR, min(share, ceil), ceil)
    return tree


def _hex(minor: int) -> str:
    return f"{minor:x}"


def _class_cmd(verb: str, dev: str, spec: ClassSpec) -> Command:
    parent = f"1:{_hex(spec.parent_minor)}" if spec.parent_minor else "1:"
    return (
        "tc", "class", verb, "dev", dev, "parent", parent, "classid", f"1:{_hex(spec.minor)}",
        "htb", "rate", f"{spec.rate_kbit}kbit", "ceil", f"{spec.ceil_kbit}kbit",
        "quantum", str(QUANTUM),
    )  # fmt: skip


def _filter_handle(addr: str, minor: int) -> str:
    bucket = int(ipaddress.IPv4Address(addr)) & 0xFF
    return f"{HASH_TABLE:x}:{bucket:x}:{minor:x}"


def _filter(verb: str, dev: str, *rest: str) -> Command:
    return ("tc", "filter", verb, "dev", dev, "parent", "1:", "protocol", "ip",
            "prio", str(FILTER_PRIO), *rest)  # fmt: skip


def _device_commands(
    dev: str, state: DeviceState, tree: Dict[int, ClassSpec], clients: Dict[str, int],
    offset: int, direction: str,
) -> List[Command]:  # fmt: skip
    cmds: List[Command] = []
    fresh = not state.ours
    if fresh and state.root_htb1:
        cmds.append(("tc", "qdisc", "del", "dev", dev, "root"))
    if fresh:
        # replace swaps whatever root qdisc was there (pfifo_fast, mq, noqueue) for ours.
        cmds.append(("tc", "qdisc", "replace", "dev", dev, "root", "handle", "1:",
                     "htb", "default", _hex(DEFAULT_MINOR)))  # fmt: skip
    current_classes = {} if fresh else state.classes
    current_clients = {} if fresh else state.clients
    # Classes: parents before children (root first), changes keep queued packets.
    for minor in sorted(tree, key=lambda m: (m != ROOT_MINOR, m)):
        spec = tree[minor]
        if minor not in current_classes:
            cmds.append(_class_cmd("add", dev, spec))
        elif current_classes[minor] != spec:
            cmds.append(_class_cmd("change", dev, spec))
    if clients and (fresh or not state.hash_table):
        cmds.append(_filter("add", dev, "handle", f"{HASH_TABLE:x}:", "u32", "divisor", "256"))
    if clients and (fresh or not state.hash_link):
        cmds.append(_filter(
            "add", dev, "u32", "ht", "800::", "match", "ip", direction, "0.0.0.0/0",
            "hashkey", "mask", "0x000000ff", "at", str(offset), "link", f"{HASH_TABLE:x}:",
        ))  # fmt: skip
    # Departed clients: filter first, then its class.
    for addr, minor in sorted(current_clients.items()):
        if clients.get(addr) != minor:
            cmds.append(_filter("del", dev, "handle", _filter_handle(addr, minor), "u32"))
    for minor in sorted(current_classes):
        if minor not in tree:
            cmds.append(("tc", "class", "del", "dev", dev, "classid", f"1:{_hex(minor)}"))
    for addr, minor in sorted(clients.items(), key=lambda kv: kv[1]):
        if current_clients.get(addr) == minor:
            continue
        bucket = int(ipaddress.IPv4Address(addr)) & 0xFF
        cmds.append(_filter(
            "add", dev, "handle", _filter_handle(addr, minor),
            "u32", "ht", f"{HASH_TABLE:x}:{bucket:x}:",
            "match", "ip", direction, f"{addr}/32", "flowid", f"1:{_hex(minor)}",
        ))  # fmt: skip
    return cmds


def plan(
    interface: str,
    tier: Tier,
    clients: Sequence[str] = (),
    down_state: Optional[DeviceState] = None,
    up_state: Optional[DeviceState] = None,
) -> Plan:
    """Commands that bring `interface` (and its IFB) from the given state to `tier`.

    With no state given the plan builds everything from scratch (what --dry-run shows
    for a box never shaped before).
    """
    ifb = ifb_name(interface)
    down_state = down_state or DeviceState(exists=True)
    up_state = up_state or DeviceState(exists=False)
    addrs = parse_clients(clients) if tier.per_client_mbps is not None else []
    minors = allocate(addrs, down_state.clients if down_state.ours else {})
    down = class_tree(tier.down_mbps, tier.per_client_mbps, minors)
    up = class_tree(tier.up_mbps, tier.per_client_mbps, minors)
    cmds: List[Command] = []
    if not up_state.exists:
        cmds.append(("ip", "link", "add", "name", ifb, "type", "ifb"))
    # IFB's default queue of 32 packets drops bursts at these rates.
    cmds.append(("ip", "link", "set", "dev", ifb, "txqueuelen", "1000", "up"))
    cmds += _device_commands(interface, down_state, down, minors, DST_OFFSET, "dst")
    cmds += _device_commands(ifb, up_state, up, minors, SRC_OFFSET, "src")
    if not down_state.ingress:
        cmds.append(("tc", "qdisc", "add", "dev", interface, "handle", "ffff:", "ingress"))
    if down_state.mirred_to != ifb:
        if down_state.mirred_to is not None:
            cmds.append(("tc", "filter", "del", "dev", interface, "parent", "ffff:",
                         "protocol", "all", "prio", str(MIRRED_PRIO)))  # fmt: skip
        cmds.append((
            "tc", "filter", "add", "dev", interface, "parent", "ffff:", "protocol", "all",
            "prio", str(MIRRED_PRIO), "u32", "match", "u32", "0", "0",
            "action", "mirred", "egress", "redirect", "dev", ifb,
        ))  # fmt: skip
    return Plan(interface, ifb, cmds, down, up, minors)


def teardown(interface: str) -> List[Command]:
    """Commands that remove the shaping (each may fail harmlessly if already gone)."""
    return [
        ("tc", "qdisc", "del", "dev", interface, "root"),
        ("tc", "qdisc", "del", "dev", interface, "ingress"),
        ("ip", "link", "del", "dev", ifb_name(interface)),
    ]
